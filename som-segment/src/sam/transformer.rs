//! The two-way transformer of the mask decoder (`segment_anything/modeling/transformer.py`):
//! prompt tokens attend to the image and the image attends back to the tokens.

use tch::{Kind, Tensor};

use super::common::MlpBlock;
use super::config::TwoWayTransformerConfig;
use super::products::{
    image_token_attention, image_token_mix, libtorch_mix, libtorch_token_image_scores, probe_tensor, probed,
    recombine_heads, separate_heads, token_image_scores, Probe,
};
use super::softmax::libtorch_scaled_softmax;
use super::SamError;
use crate::torch::gemm::{PackedLinear, BLOCKS};
use crate::torch::layer_norm::RowNorm;
use crate::torch::nn::{Activation, LayerNorm, Linear, StackedLinear};
use crate::torch::Vb;

/// LayerNorm epsilon of the decoder (PyTorch's default).
const DECODER_LN_EPS: f64 = 1e-5;

/// Attention with separate q/k/v projections and an optional downscaled inner width.
#[derive(Debug)]
pub(crate) struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    num_heads: i64,
}

impl Attention {
    pub(crate) fn load(vb: &Vb, dim: i64, num_heads: i64, downsample_rate: i64) -> Result<Self, SamError> {
        let internal = dim / downsample_rate;
        Ok(Attention {
            q_proj: Linear::load(&vb.pp("q_proj"), dim, internal, true)?,
            k_proj: Linear::load(&vb.pp("k_proj"), dim, internal, true)?,
            v_proj: Linear::load(&vb.pp("v_proj"), dim, internal, true)?,
            out_proj: Linear::load(&vb.pp("out_proj"), internal, dim, true)?,
            num_heads,
        })
    }

    /// [`separate_heads`] into this attention's heads.
    fn separate_heads(&self, x: &Tensor) -> Tensor {
        separate_heads(x, self.num_heads)
    }

    pub(crate) fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
        self.attend(
            &self.q_proj.forward(q),
            &self.k_proj.forward(k),
            &self.v_proj.forward(v),
            Kernels::LibTorch,
        )
    }

    /// The attention of projected `(B, N, C_int)` queries, keys and values, with
    /// `kernels` in place of some of LibTorch's operations (the same values).
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, kernels: Kernels) -> Tensor {
        self.out_proj.forward(&self.mix(q, k, v, kernels))
    }

    /// [`Self::attend`] before the output projection: the heads' mixes of the values,
    /// recombined, `(B, N, C_int)`.
    fn mix(&self, q: &Tensor, k: &Tensor, v: &Tensor, kernels: Kernels) -> Tensor {
        let heads = self.num_heads;
        let divisor = ((q.size()[2] / heads) as f64).sqrt();
        match kernels {
            Kernels::LibTorch => libtorch_mix(&libtorch_token_image_scores(q, k, heads), divisor, v, heads),
            Kernels::TokenToImage => {
                let probabilities = token_image_scores(q, k, heads, divisor).softmax(-1, None::<Kind>);
                recombine_heads(&probabilities.matmul(&separate_heads(v, heads)))
            }
            Kernels::ImageToToken => image_token_attention(&self.separate_heads(q), k, v, divisor)
                .unwrap_or_else(|| {
                    image_token_mix(&libtorch_token_image_scores(q, k, heads), divisor, v, heads)
                }),
        }
    }
}

/// Which of the exact kernels an attention uses instead of LibTorch's operations (the
/// same bits, faster; the shared-image decoder only, which the generator checks against
/// the reference path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernels {
    /// LibTorch's operations, as the reference's module.
    LibTorch,
    /// Prompt tokens attending to the image: scores by [`token_image_scores`], without
    /// copying the image keys per head, divided as they are written.
    TokenToImage,
    /// The image attending to prompt tokens: scores, softmax and mix in one pass by
    /// [`image_token_attention`] where it applies, else the softmax over the few scores and
    /// the mix of the token values by [`image_token_mix`].
    ImageToToken,
}

/// The parts of the first block that depend on the image alone (one image embedding,
/// no mask prompt): computed once per image instead of once per prompt, with the same
/// operations as the reference's per-prompt copies (on the same memory layouts wherever a
/// layout could change the arithmetic), so the values are bit-identical.
#[derive(Debug)]
pub(crate) struct SharedImage {
    /// `(1, hw, C)` image tokens (upstream's `flatten(2).permute(0, 2, 1)`, contiguous).
    keys: Tensor,
    /// `(1, hw, C)` their position encodings, likewise.
    key_pe: Tensor,
    /// Layer 0, token → image: keys `(heads, c, hw)` and values `(heads, hw, c)`.
    t2i_k: Tensor,
    t2i_v: Tensor,
    /// Layer 0, image → token: queries `(heads, hw, c)`.
    i2t_q: Tensor,
}

/// `TwoWayAttentionBlock`.
#[derive(Debug)]
struct TwoWayAttentionBlock {
    self_attn: Attention,
    norm1: LayerNorm,
    cross_attn_token_to_image: Attention,
    norm2: LayerNorm,
    mlp: MlpBlock,
    norm3: LayerNorm,
    norm4: LayerNorm,
    cross_attn_image_to_token: Attention,
    /// The token → image keys' and the image → token queries' projections, stacked: both
    /// project `keys + key_pe`.
    image_projections: Option<StackedLinear>,
    /// The layers on image tokens packed for the linear kernel.
    packed: PackedImageLayers,
    skip_first_layer_pe: bool,
}

/// A block's linear layers on the image tokens, packed for [`PackedLinear`] (the
/// shared-image decoder only; `None` where the kernel does not apply).
#[derive(Debug)]
struct PackedImageLayers {
    /// Token → image values.
    t2i_v: Option<PackedLinear>,
    /// [`TwoWayAttentionBlock::image_projections`], with `keys + key_pe` fused.
    projections: Option<PackedLinear>,
    /// Image → token output projection, with the residual keys fused.
    i2t_out: Option<PackedLinear>,
    /// [`TwoWayAttentionBlock::norm4`] for the kernel that normalises `i2t_out`'s rows.
    norm4: Option<RowNorm>,
}

/// `residual + ((x + x_add) Wᵀ + b)` by `packed` ([`PackedLinear::forward`]) in the first
/// block of [`BLOCKS`] that a probe found to give LibTorch's bits for these shapes on this
/// CPU (`x.linear` and the additions as separate operations), then the LayerNorm of `norm`
/// where given (`(layer, the same layer for RowNorm's kernel)`): by the kernel on the rows
/// as they are finished where there is one and a probe found it to give LibTorch's bits
/// for this width, else by `layer.forward`. `None` where no block gives LibTorch's bits,
/// and the caller runs LibTorch's operations.
fn packed_forward(
    packed: Option<&PackedLinear>,
    x: &Tensor,
    x_add: Option<&Tensor>,
    residual: Option<&Tensor>,
    norm: Option<(&LayerNorm, Option<&RowNorm>)>,
) -> Option<Tensor> {
    let packed = packed?;
    let (b, m, k) = x.size3().ok()?;
    let out = packed.out_dim();
    let batches = |t: Option<&Tensor>| t.map_or(0, |t| t.size().first().copied().unwrap_or(0));
    let (add_batches, res_batches) = (batches(x_add), batches(residual));
    let block = BLOCKS.into_iter().find(|&block| {
        probed(
            Probe::PackedLinear([b, m, k, out, add_batches, res_batches, block as i64]),
            || {
                let w = probe_tensor(&[out, k], 31);
                let bias = probe_tensor(&[out], 32);
                let Some(layer) = PackedLinear::new(&w, Some(&bias)) else {
                    return false;
                };
                let x = probe_tensor(&[b, m, k], 33);
                let add = (add_batches > 0).then(|| probe_tensor(&[add_batches, m, k], 34));
                let res = (res_batches > 0).then(|| probe_tensor(&[res_batches, m, out], 35));
                let input = add.as_ref().map_or_else(|| x.shallow_clone(), |a| &x + a);
                let linear = input.linear(&w, Some(&bias));
                let want = res
                    .as_ref()
                    .map_or_else(|| linear.shallow_clone(), |r| r + &linear);
                layer
                    .forward(&x, add.as_ref(), res.as_ref(), block, None)
                    .is_some_and(|got| got.equal(&want))
            },
        )
    })?;
    let Some((norm, exact)) = norm else {
        return packed.forward(x, x_add, residual, block, None);
    };
    let exact = exact.filter(|exact| {
        probed(Probe::LayerNorm(exact.width() as i64), || {
            exact.matches_libtorch()
        })
    });
    match exact {
        Some(exact) => packed.forward(x, x_add, residual, block, Some(exact)),
        None => packed
            .forward(x, x_add, residual, block, None)
            .map(|out| norm.forward(&out)),
    }
}

impl TwoWayAttentionBlock {
    fn load(vb: &Vb, c: &TwoWayTransformerConfig, skip_first_layer_pe: bool) -> Result<Self, SamError> {
        let d = c.embedding_dim;
        let cross_attn_token_to_image = Attention::load(
            &vb.pp("cross_attn_token_to_image"),
            d,
            c.num_heads,
            c.attention_downsample_rate,
        )?;
        let cross_attn_image_to_token = Attention::load(
            &vb.pp("cross_attn_image_to_token"),
            d,
            c.num_heads,
            c.attention_downsample_rate,
        )?;
        let image_projections = StackedLinear::new(
            &cross_attn_token_to_image.k_proj,
            &cross_attn_image_to_token.q_proj,
        );
        let norm4 = LayerNorm::load(&vb.pp("norm4"), d, DECODER_LN_EPS)?;
        let packed = PackedImageLayers {
            t2i_v: cross_attn_token_to_image.v_proj.packed(),
            projections: image_projections.as_ref().and_then(StackedLinear::packed),
            i2t_out: cross_attn_image_to_token.out_proj.packed(),
            norm4: norm4.row_norm(),
        };
        Ok(TwoWayAttentionBlock {
            self_attn: Attention::load(&vb.pp("self_attn"), d, c.num_heads, 1)?,
            norm1: LayerNorm::load(&vb.pp("norm1"), d, DECODER_LN_EPS)?,
            image_projections,
            packed,
            cross_attn_token_to_image,
            norm2: LayerNorm::load(&vb.pp("norm2"), d, DECODER_LN_EPS)?,
            mlp: MlpBlock::load(&vb.pp("mlp"), d, c.mlp_dim, Activation::Relu)?,
            norm3: LayerNorm::load(&vb.pp("norm3"), d, DECODER_LN_EPS)?,
            norm4,
            cross_attn_image_to_token,
            skip_first_layer_pe,
        })
    }

    /// The block on `(B, N, C)` tokens and `(B, hw, C)` image keys; `fast` computes the same
    /// values with the exact kernels ([`Kernels`], [`Self::image_projections`]).
    fn forward(
        &self,
        queries: &Tensor,
        keys: &Tensor,
        query_pe: &Tensor,
        key_pe: &Tensor,
        fast: bool,
    ) -> (Tensor, Tensor) {
        let queries = if self.skip_first_layer_pe {
            self.self_attn.forward(queries, queries, queries)
        } else {
            let q = queries + query_pe;
            queries + self.self_attn.forward(&q, &q, queries)
        };
        let queries = self.norm1.forward(&queries);

        let q = &queries + query_pe;
        let (t2i, i2t) = (&self.cross_attn_token_to_image, &self.cross_attn_image_to_token);
        let (t2i_keys, i2t_queries) = if fast {
            self.image_projections(keys, key_pe)
        } else {
            // Upstream adds the position encodings to the unchanged keys twice in a block
            // and projects the sum in each cross attention; once each gives the same values.
            let k = keys + key_pe;
            (t2i.k_proj.forward(&k), i2t.q_proj.forward(&k))
        };
        let values = if fast {
            packed_forward(self.packed.t2i_v.as_ref(), keys, None, None, None)
        } else {
            None
        };
        let kernels = |fast_kernels| {
            if fast {
                fast_kernels
            } else {
                Kernels::LibTorch
            }
        };
        let attn_out = t2i.attend(
            &t2i.q_proj.forward(&q),
            &t2i_keys,
            &values.unwrap_or_else(|| t2i.v_proj.forward(keys)),
            kernels(Kernels::TokenToImage),
        );
        let queries = self.norm2.forward(&(&queries + attn_out));

        let queries = &queries + self.mlp.forward(&queries);
        let queries = self.norm3.forward(&queries);

        let q = &queries + query_pe;
        let mixed = i2t.mix(
            &i2t_queries,
            &i2t.k_proj.forward(&q),
            &i2t.v_proj.forward(&queries),
            kernels(Kernels::ImageToToken),
        );
        let fused = if fast {
            packed_forward(
                self.packed.i2t_out.as_ref(),
                &mixed,
                None,
                Some(keys),
                Some((&self.norm4, self.packed.norm4.as_ref())),
            )
        } else {
            None
        };
        let keys = fused.unwrap_or_else(|| self.norm4.forward(&(keys + i2t.out_proj.forward(&mixed))));
        (queries, keys)
    }

    /// The token → image keys and the image → token queries of `(B, hw, C)` image tokens
    /// `keys + key_pe`: by the linear kernel on the stacked weights, the addition fused,
    /// where probes found that it gives LibTorch's bits for these shapes; else by one
    /// LibTorch product with the stacked weights where a probe found that it gives the two
    /// products' bits; by two otherwise.
    fn image_projections(&self, keys: &Tensor, key_pe: &Tensor) -> (Tensor, Tensor) {
        if let Some(stacked) = &self.image_projections {
            if let Some(both) =
                packed_forward(self.packed.projections.as_ref(), keys, Some(key_pe), None, None)
            {
                return stacked.split(&both);
            }
        }
        let k = keys + key_pe;
        let (first, second) = (
            &self.cross_attn_token_to_image.k_proj,
            &self.cross_attn_image_to_token.q_proj,
        );
        if let (Some(stacked), Ok((b, rows, width))) = (&self.image_projections, k.size3()) {
            let exact = probed(Probe::StackedLinear([b, rows, width, stacked.out_dim()]), || {
                let x = probe_tensor(&[b, rows, width], 21);
                let (a, c) = stacked.forward(&x);
                a.equal(&first.forward(&x)) && c.equal(&second.forward(&x))
            });
            if exact {
                return stacked.forward(&k);
            }
        }
        (first.forward(&k), second.forward(&k))
    }
}

/// `TwoWayTransformer`.
#[derive(Debug)]
pub struct TwoWayTransformer {
    layers: Vec<TwoWayAttentionBlock>,
    final_attn_token_to_image: Attention,
    /// The final attention's key and value projections packed for the linear kernel.
    final_packed: (Option<PackedLinear>, Option<PackedLinear>),
    norm_final_attn: LayerNorm,
}

impl TwoWayTransformer {
    pub(crate) fn load(vb: &Vb, c: &TwoWayTransformerConfig) -> Result<Self, SamError> {
        let layers = (0..c.depth)
            .map(|i| TwoWayAttentionBlock::load(&vb.pp("layers").pp(i), c, i == 0))
            .collect::<Result<Vec<_>, _>>()?;
        let final_attn_token_to_image = Attention::load(
            &vb.pp("final_attn_token_to_image"),
            c.embedding_dim,
            c.num_heads,
            c.attention_downsample_rate,
        )?;
        Ok(TwoWayTransformer {
            layers,
            final_packed: (
                final_attn_token_to_image.k_proj.packed(),
                final_attn_token_to_image.v_proj.packed(),
            ),
            final_attn_token_to_image,
            norm_final_attn: LayerNorm::load(&vb.pp("norm_final_attn"), c.embedding_dim, DECODER_LN_EPS)?,
        })
    }

    /// Runs the transformer on `(B, C, h, w)` image embeddings with their position encodings
    /// and `(B, N, C)` prompt tokens; returns the processed tokens and image keys `(B, hw, C)`.
    pub fn forward(
        &self,
        image_embedding: &Tensor,
        image_pe: &Tensor,
        point_embedding: &Tensor,
    ) -> (Tensor, Tensor) {
        let image_embedding = image_embedding.flatten(2, -1).permute([0, 2, 1]);
        let image_pe = image_pe.flatten(2, -1).permute([0, 2, 1]);
        let mut queries = point_embedding.shallow_clone();
        let mut keys = image_embedding;
        for layer in &self.layers {
            (queries, keys) = layer.forward(&queries, &keys, point_embedding, &image_pe, false);
        }
        let q = &queries + point_embedding;
        let k = &keys + &image_pe;
        let attn_out = self.final_attn_token_to_image.forward(&q, &k, &keys);
        let queries = self.norm_final_attn.forward(&(queries + attn_out));
        (queries, keys)
    }

    /// The image-only parts of the first block for `(1, C, h, w)` image embeddings (dense
    /// prompt already added) and their `(1, C, h, w)` position encodings; `None` when the
    /// transformer has no block.
    pub(crate) fn share_image(&self, image_embedding: &Tensor, image_pe: &Tensor) -> Option<SharedImage> {
        let first = self.layers.first()?;
        let keys = image_embedding.flatten(2, -1).permute([0, 2, 1]);
        let key_pe = image_pe.flatten(2, -1).permute([0, 2, 1]);
        let k = &keys + &key_pe;
        let a = &first.cross_attn_token_to_image;
        let t2i_k = a
            .separate_heads(&a.k_proj.forward(&k))
            .get(0)
            .permute([0, 2, 1])
            .contiguous();
        let t2i_v = a.separate_heads(&a.v_proj.forward(&keys)).get(0).contiguous();
        let b = &first.cross_attn_image_to_token;
        let i2t_q = b.separate_heads(&b.q_proj.forward(&k)).get(0).contiguous();
        // Every prompt group adds these to its own contiguous tokens: contiguous copies make
        // those additions (the same values) read memory in order.
        Some(SharedImage {
            keys: keys.contiguous(),
            key_pe: key_pe.contiguous(),
            t2i_k,
            t2i_v,
            i2t_q,
        })
    }

    /// [`Self::forward`] for `(B, N, C)` prompt tokens on the image of `shared`, reusing its
    /// image-only parts: the same values as `forward` on `B` copies of the image.
    pub(crate) fn forward_shared(&self, shared: &SharedImage, point_embedding: &Tensor) -> (Tensor, Tensor) {
        let first = &self.layers[0];
        let pe = point_embedding;
        let b = pe.size()[0];
        // Block 0 skips the query position encoding in its self-attention.
        let queries = first.self_attn.forward(pe, pe, pe);
        let queries = first.norm1.forward(&queries);
        // Token -> image: all prompts' queries against the shared keys, one bmm per head.
        let a = &first.cross_attn_token_to_image;
        let q = a.separate_heads(&a.q_proj.forward(&(&queries + pe)));
        let (_, heads, n, c) = q.size4().expect("heads are (B, H, N, C)");
        let q_all = q.permute([1, 0, 2, 3]).reshape([heads, b * n, c]);
        let attn = libtorch_scaled_softmax(&q_all.bmm(&shared.t2i_k), (c as f64).sqrt());
        let out = attn
            .bmm(&shared.t2i_v)
            .reshape([heads, b, n, c])
            .permute([1, 0, 2, 3]);
        let attn_out = a.out_proj.forward(&recombine_heads(&out));
        let queries = first.norm2.forward(&(&queries + attn_out));
        let queries = &queries + first.mlp.forward(&queries);
        let queries = first.norm3.forward(&queries);
        // Image -> token: the shared image queries against each prompt's tokens.
        let i = &first.cross_attn_image_to_token;
        let k = i.k_proj.forward(&(&queries + pe));
        let v = i.v_proj.forward(&queries);
        let divisor = (c as f64).sqrt();
        let image_queries = shared.i2t_q.unsqueeze(0).expand([b, -1, -1, -1], false);
        let mixed = image_token_attention(&image_queries, &k, &v, divisor).unwrap_or_else(|| {
            let k = i.separate_heads(&k);
            let scores: Vec<Tensor> = (0..b)
                .map(|j| shared.i2t_q.bmm(&k.get(j).permute([0, 2, 1]).contiguous()))
                .collect();
            image_token_mix(&Tensor::stack(&scores, 0), divisor, &v, i.num_heads)
        });
        let keys = packed_forward(
            first.packed.i2t_out.as_ref(),
            &mixed,
            None,
            Some(&shared.keys),
            Some((&first.norm4, first.packed.norm4.as_ref())),
        )
        .unwrap_or_else(|| first.norm4.forward(&(&shared.keys + i.out_proj.forward(&mixed))));
        let mut queries = queries;
        let mut keys = keys;
        for layer in &self.layers[1..] {
            (queries, keys) = layer.forward(&queries, &keys, pe, &shared.key_pe, true);
        }
        let q = &queries + pe;
        let f = &self.final_attn_token_to_image;
        let (packed_k, packed_v) = &self.final_packed;
        let k = packed_forward(packed_k.as_ref(), &keys, Some(&shared.key_pe), None, None)
            .unwrap_or_else(|| f.k_proj.forward(&(&keys + &shared.key_pe)));
        let v = packed_forward(packed_v.as_ref(), &keys, None, None, None)
            .unwrap_or_else(|| f.v_proj.forward(&keys));
        let attn_out = f.attend(&f.q_proj.forward(&q), &k, &v, Kernels::TokenToImage);
        let queries = self.norm_final_attn.forward(&(queries + attn_out));
        (queries, keys)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use tch::{Device, Kind, Tensor};

    use super::TwoWayTransformer;
    use crate::sam::config::TwoWayTransformerConfig;
    use crate::sam::products::{probed, Probe};
    use crate::torch::gemm::BLOCKS;
    use crate::torch::Weights;

    /// A weight for tests: layer-norm weights near 1, the rest random and scaled by the
    /// fan-in, each from its own seed (the next of `seed`).
    pub(crate) fn random_weight(name: &str, shape: &[i64], seed: &mut u64) -> Tensor {
        *seed += 1;
        tch::manual_seed(*seed as i64);
        let fan_in = *shape.last().unwrap_or(&1) as f64;
        if shape.len() == 1 && name.contains("norm") && name.ends_with("weight") {
            Tensor::ones(shape, (Kind::Float, Device::Cpu))
                + Tensor::randn(shape, (Kind::Float, Device::Cpu)) * 0.1
        } else {
            Tensor::randn(shape, (Kind::Float, Device::Cpu)) / fan_in.sqrt()
        }
    }

    /// The weights of SAM's decoder transformer (every released model's: 256 wide, 8 heads,
    /// MLP 2048, cross attentions at half width) under `prefix`, random ([`random_weight`]).
    pub(crate) fn full_size_weights(prefix: &str, seed: &mut u64) -> Vec<(String, Tensor)> {
        let (d, mlp) = (256i64, 2048i64);
        let mut tensors = Vec::new();
        let mut add = |name: String, shape: &[i64]| {
            let name = format!("{prefix}{name}");
            let t = random_weight(&name, shape, seed);
            tensors.push((name, t));
        };
        let attention = |add: &mut dyn FnMut(String, &[i64]), prefix: &str, inner: i64| {
            for p in ["q_proj", "k_proj", "v_proj"] {
                add(format!("{prefix}.{p}.weight"), &[inner, d]);
                add(format!("{prefix}.{p}.bias"), &[inner]);
            }
            add(format!("{prefix}.out_proj.weight"), &[d, inner]);
            add(format!("{prefix}.out_proj.bias"), &[d]);
        };
        for layer in 0..2 {
            let l = format!("layers.{layer}");
            attention(&mut add, &format!("{l}.self_attn"), d);
            attention(&mut add, &format!("{l}.cross_attn_token_to_image"), d / 2);
            attention(&mut add, &format!("{l}.cross_attn_image_to_token"), d / 2);
            for n in 1..=4 {
                add(format!("{l}.norm{n}.weight"), &[d]);
                add(format!("{l}.norm{n}.bias"), &[d]);
            }
            add(format!("{l}.mlp.lin1.weight"), &[mlp, d]);
            add(format!("{l}.mlp.lin1.bias"), &[mlp]);
            add(format!("{l}.mlp.lin2.weight"), &[d, mlp]);
            add(format!("{l}.mlp.lin2.bias"), &[d]);
        }
        attention(&mut add, "final_attn_token_to_image", d / 2);
        add("norm_final_attn.weight".into(), &[d]);
        add("norm_final_attn.bias".into(), &[d]);
        tensors
    }

    /// The configuration [`full_size_weights`] fits.
    pub(crate) const FULL_SIZE: TwoWayTransformerConfig = TwoWayTransformerConfig {
        depth: 2,
        embedding_dim: 256,
        num_heads: 8,
        mlp_dim: 2048,
        attention_downsample_rate: 2,
    };

    /// SAM's decoder transformer with random weights ([`full_size_weights`]).
    fn full_size_transformer() -> TwoWayTransformer {
        let weights = Weights::from_tensors(full_size_weights("", &mut 0)).expect("float tensors");
        let transformer =
            TwoWayTransformer::load(&weights.root("sam"), &FULL_SIZE).expect("all weights present");
        weights.check_all_used("sam").expect("every weight taken");
        transformer
    }

    /// The shared-image path (the generator's: exact kernels, stacked and packed
    /// projections with their additions fused) gives the reference path's tokens and image
    /// keys bit for bit at the released models' sizes, and takes the packed layers on
    /// CPUs with AVX2 and FMA.
    #[test]
    fn the_shared_path_gives_the_reference_values_at_full_size() {
        let _guard = tch::no_grad_guard();
        let transformer = full_size_transformer();
        tch::manual_seed(99);
        let image = Tensor::randn([1, 256, 64, 64], (Kind::Float, Device::Cpu));
        let pe = Tensor::randn([1, 256, 64, 64], (Kind::Float, Device::Cpu));
        for prompts in [4i64, 5] {
            let tokens = Tensor::randn([prompts, 7, 256], (Kind::Float, Device::Cpu));
            let (want_q, want_k) = transformer.forward(
                &image.expand([prompts, -1, -1, -1], false).contiguous(),
                &pe.expand([prompts, -1, -1, -1], false).contiguous(),
                &tokens,
            );
            let shared = transformer.share_image(&image, &pe).expect("two blocks");
            let (got_q, got_k) = transformer.forward_shared(&shared, &tokens);
            assert!(got_q.equal(&want_q), "{prompts} prompts: tokens differ");
            assert!(got_k.equal(&want_k), "{prompts} prompts: image keys differ");
        }
        if !crate::torch::gemm::has_avx2_fma() {
            return;
        }
        // The probes ran above; each must have accepted its packed layer with one of the
        // blocks MKL uses on the CPUs we know.
        for [b, m, k, out, add, res] in [
            [4, 4096, 256, 256, 1, 0], // stacked projections of keys + key_pe
            [4, 4096, 256, 128, 0, 0], // token -> image values
            [4, 4096, 128, 256, 0, 1], // block 0: out projection + the shared keys
            [4, 4096, 128, 256, 0, 4], // block 1: out projection + the keys
            [4, 4096, 256, 128, 1, 0], // final keys of keys + key_pe
        ] {
            assert!(
                BLOCKS.into_iter().any(|block| probed(
                    Probe::PackedLinear([b, m, k, out, add, res, block as i64]),
                    || false
                )),
                "{:?} went through LibTorch",
                [b, m, k, out, add, res]
            );
        }
        assert!(
            probed(Probe::LayerNorm(256), || false),
            "norm4 went through LibTorch"
        );
    }
}
