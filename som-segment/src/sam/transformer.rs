//! The two-way transformer of the mask decoder (`segment_anything/modeling/transformer.py`):
//! prompt tokens attend to the image and the image attends back to the tokens.

use tch::Tensor;

use super::common::MlpBlock;
use super::config::TwoWayTransformerConfig;
use super::image_rows::{Chain, Layer};
use super::products::{
    image_token_attention, image_token_attention_scale, image_token_mix, libtorch_mix,
    libtorch_token_image_scores, probe_tensor, probed, recombine_heads, scores_kernel_exact, separate_heads,
    token_image_scores, Probe,
};
use super::softmax::exact_inverse;
use super::token_mix::{libtorch_softmax_mix, softmax_mix};
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
    /// What the scores are divided by: the square root of the head width.
    divisor: f64,
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
            divisor: ((internal / num_heads) as f64).sqrt(),
        })
    }

    /// [`separate_heads`] into this attention's heads.
    fn separate_heads(&self, x: &Tensor) -> Tensor {
        separate_heads(x, self.num_heads)
    }

    pub(crate) fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
        let (q, k, v) = (
            self.q_proj.forward(q),
            self.k_proj.forward(k),
            self.v_proj.forward(v),
        );
        let scores = libtorch_token_image_scores(&q, &k, self.num_heads);
        self.out_proj
            .forward(&libtorch_mix(&scores, self.divisor, &v, self.num_heads))
    }
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

/// `softmax(scores / divisor) @ values` on `(G, R, K)` scores and `(G, K, c)` values, as the
/// reference's attention computes them: by [`softmax_mix`] where it applies, by LibTorch
/// otherwise (the same values).
fn softmax_then_mix(scores: &Tensor, divisor: f64, values: &Tensor) -> Tensor {
    softmax_mix(scores, divisor, values).unwrap_or_else(|| libtorch_softmax_mix(scores, divisor, values))
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
    let batches = |t: Option<&Tensor>| t.map_or(0, |t| t.size().first().copied().unwrap_or(0));
    let block = packed_block(packed, [b, m, k, batches(x_add), batches(residual)])?;
    let Some((norm, exact)) = norm else {
        return packed.forward(x, x_add, residual, block, None);
    };
    match exact.and_then(exact_norm) {
        Some(exact) => packed.forward(x, x_add, residual, block, Some(exact)),
        None => packed
            .forward(x, x_add, residual, block, None)
            .map(|out| norm.forward(&out)),
    }
}

/// The first block of [`BLOCKS`] in which `packed` gives the bits of LibTorch's linear
/// layer and additions (`residual + ((x + x_add) Wᵀ + b)`) on `(b, m, k)` inputs with
/// `add_batches` and `res_batches` batches of addition and residual (0: none), as a probe
/// found once per shape; `None` where no block does.
fn packed_block(packed: &PackedLinear, [b, m, k, add_batches, res_batches]: [i64; 5]) -> Option<usize> {
    let out = packed.out_dim();
    BLOCKS.into_iter().find(|&block| {
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
    })
}

/// `norm` where a probe found that its kernel gives LibTorch's LayerNorm bits for its
/// width.
fn exact_norm(norm: &RowNorm) -> Option<&RowNorm> {
    probed(Probe::LayerNorm(norm.width() as i64), || norm.matches_libtorch()).then_some(norm)
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

    /// The block on `(B, N, C)` tokens and `(B, hw, C)` image keys, by LibTorch's operations
    /// as the reference's module.
    fn forward(
        &self,
        queries: &Tensor,
        keys: &Tensor,
        query_pe: &Tensor,
        key_pe: &Tensor,
    ) -> (Tensor, Tensor) {
        let queries = self.self_attention(queries, query_pe);
        // Upstream adds the position encodings to the unchanged keys twice in a block; once
        // gives the same values.
        let k = keys + key_pe;
        let attn_out = self
            .cross_attn_token_to_image
            .forward(&(&queries + query_pe), &k, keys);
        let queries = self.after_token_to_image(&queries, &attn_out);
        let attn_out = self
            .cross_attn_image_to_token
            .forward(&k, &(&queries + query_pe), &queries);
        let keys = self.norm4.forward(&(keys + attn_out));
        (queries, keys)
    }

    /// The tokens' self-attention and `norm1` (block 0 skips the position encodings).
    fn self_attention(&self, queries: &Tensor, query_pe: &Tensor) -> Tensor {
        let queries = if self.skip_first_layer_pe {
            self.self_attn.forward(queries, queries, queries)
        } else {
            let q = queries + query_pe;
            queries + self.self_attn.forward(&q, &q, queries)
        };
        self.norm1.forward(&queries)
    }

    /// The tokens after their attention to the image (`attn_out`): `norm2`, the MLP and
    /// `norm3`.
    fn after_token_to_image(&self, queries: &Tensor, attn_out: &Tensor) -> Tensor {
        let queries = self.norm2.forward(&(queries + attn_out));
        let queries = &queries + self.mlp.forward(&queries);
        self.norm3.forward(&queries)
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
            (queries, keys) = layer.forward(&queries, &keys, point_embedding, &image_pe);
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
        let (queries, keys, _) = self.forward_shared_with(shared, point_embedding, true);
        (queries, keys)
    }

    /// [`Self::forward_shared`], the image side of each block by [`Chain`] where `rows` and
    /// the probes allow it, by whole-tensor operations otherwise (the same values); also
    /// how many blocks went through [`Chain`].
    ///
    /// The blocks' steps run in another order than the reference's: the tokens do not
    /// change in a block's image → token attention, so the next attention's token queries
    /// are computed before it, and the image side runs from one block's image → token
    /// attention up to the next token → image attention's scores in one go.
    fn forward_shared_with(
        &self,
        shared: &SharedImage,
        point_embedding: &Tensor,
        rows: bool,
    ) -> (Tensor, Tensor, usize) {
        let first = &self.layers[0];
        let pe = point_embedding;
        let b = pe.size()[0];
        let queries = first.self_attention(pe, pe);
        // Token -> image: all prompts' queries against the shared keys, one bmm per head.
        let a = &first.cross_attn_token_to_image;
        let q = a.separate_heads(&a.q_proj.forward(&(&queries + pe)));
        let (_, heads, n, c) = q.size4().expect("heads are (B, H, N, C)");
        let q_all = q.permute([1, 0, 2, 3]).reshape([heads, b * n, c]);
        let out = softmax_then_mix(&q_all.bmm(&shared.t2i_k), a.divisor, &shared.t2i_v)
            .reshape([heads, b, n, c])
            .permute([1, 0, 2, 3]);
        let attn_out = a.out_proj.forward(&recombine_heads(&out));
        let mut queries = first.after_token_to_image(&queries, &attn_out);
        // Block 0's image -> token attention reads the shared image queries; the image
        // keys before it are the shared ones.
        let mut image_queries = ImageQueries::Shared(&shared.i2t_q);
        let mut keys = shared.keys.shallow_clone();
        let mut by_rows = 0;
        for (index, block) in self.layers.iter().enumerate() {
            let next = self.layers.get(index + 1);
            let i2t = &block.cross_attn_image_to_token;
            let token_keys = i2t.k_proj.forward(&(&queries + pe));
            let token_values = i2t.v_proj.forward(&queries);
            let (before, t2i) = match next {
                Some(next) => (next.self_attention(&queries, pe), &next.cross_attn_token_to_image),
                None => (queries, &self.final_attn_token_to_image),
            };
            let stage = self.image_stage(
                &Stage {
                    block,
                    next,
                    image_queries: &image_queries,
                    token_keys: &token_keys,
                    token_values: &token_values,
                    residual: &keys,
                    key_pe: &shared.key_pe,
                    token_queries: &t2i.q_proj.forward(&(&before + pe)),
                },
                rows,
            );
            // The reference's `softmax(scores) @ values` on (B, H, ·, ·) views: its matmul
            // is one bmm of the B·H matrices.
            let (bh, hw) = (b * t2i.num_heads, stage.values.size()[2]);
            let mixed = softmax_then_mix(
                &stage.scores.reshape([bh, -1, hw]),
                1.0,
                &stage.values.reshape([bh, hw, -1]),
            );
            let mixed = recombine_heads(&mixed.view([b, t2i.num_heads, -1, mixed.size()[2]]));
            let attn_out = t2i.out_proj.forward(&mixed);
            keys = stage.keys;
            by_rows += usize::from(stage.by_rows);
            queries = match next {
                Some(next) => {
                    let projected = stage
                        .image_queries
                        .expect("a stage before a block gives its queries");
                    image_queries = ImageQueries::Projected(projected);
                    next.after_token_to_image(&before, &attn_out)
                }
                None => self.norm_final_attn.forward(&(before + attn_out)),
            };
        }
        (queries, keys, by_rows)
    }

    /// The image side of [`Self::forward_shared_with`] from `stage.block`'s image → token
    /// attention to the next attention's scores: by [`Chain`] where `rows` is set and every
    /// kernel of it applies (probes included), else by whole-tensor operations, each by its
    /// exact kernel where one applies and by LibTorch otherwise.
    fn image_stage(&self, stage: &Stage, rows: bool) -> StageOutput {
        let Stage {
            block,
            next,
            image_queries,
            token_keys,
            token_values,
            residual,
            key_pe,
            token_queries,
        } = *stage;
        let i2t = &block.cross_attn_image_to_token;
        let b = token_keys.size()[0];
        let queries = image_queries.heads(b, i2t.num_heads);
        if rows {
            if let Some(out) = self.image_rows(stage, &queries) {
                return out;
            }
        }
        let mixed = image_token_attention(&queries, token_keys, token_values, i2t.divisor)
            .unwrap_or_else(|| image_queries.libtorch_mix(token_keys, token_values, i2t));
        let keys = packed_forward(
            block.packed.i2t_out.as_ref(),
            &mixed,
            None,
            Some(residual),
            Some((&block.norm4, block.packed.norm4.as_ref())),
        )
        .unwrap_or_else(|| block.norm4.forward(&(residual + i2t.out_proj.forward(&mixed))));
        let (t2i, t2i_keys, next_queries, values) = match next {
            Some(next) => {
                let t2i = &next.cross_attn_token_to_image;
                let (k, q) = next.image_projections(&keys, key_pe);
                let values = packed_forward(next.packed.t2i_v.as_ref(), &keys, None, None, None)
                    .unwrap_or_else(|| t2i.v_proj.forward(&keys));
                (t2i, k, Some(q), t2i.separate_heads(&values))
            }
            None => {
                let f = &self.final_attn_token_to_image;
                let (packed_k, packed_v) = &self.final_packed;
                let k = packed_forward(packed_k.as_ref(), &keys, Some(key_pe), None, None)
                    .unwrap_or_else(|| f.k_proj.forward(&(&keys + key_pe)));
                let values = packed_forward(packed_v.as_ref(), &keys, None, None, None)
                    .unwrap_or_else(|| f.v_proj.forward(&keys));
                (f, k, None, f.separate_heads(&values))
            }
        };
        StageOutput {
            scores: token_image_scores(token_queries, &t2i_keys, t2i.num_heads, t2i.divisor),
            keys,
            image_queries: next_queries,
            values,
            by_rows: false,
        }
    }

    /// [`Self::image_stage`] by [`Chain`] on the `(B, H, HW, c)` image `queries`; `None`
    /// where a kernel of the chain does not apply or a probe refused it for these shapes.
    fn image_rows(&self, stage: &Stage, queries: &Tensor) -> Option<StageOutput> {
        let (block, next, token_keys, residual) = (stage.block, stage.next, stage.token_keys, stage.residual);
        let i2t = &block.cross_attn_image_to_token;
        let attention_scale =
            image_token_attention_scale(queries, token_keys, stage.token_values, i2t.divisor)?;
        let ((b, n, inner), (res_batches, hw, width)) = (token_keys.size3().ok()?, residual.size3().ok()?);
        // A packed layer on `(b, hw, k)` inputs with `add` and `res` batches of addition and
        // residual, with the block its probe found.
        fn layer(packed: Option<&PackedLinear>, shape: [i64; 5]) -> Option<Layer<'_>> {
            let packed = packed?;
            Some(Layer {
                packed,
                block: packed_block(packed, shape)?,
            })
        }
        let out = layer(block.packed.i2t_out.as_ref(), [b, hw, inner, 0, res_batches])?;
        let norm = exact_norm(block.packed.norm4.as_ref()?)?;
        let (t2i, keys, values) = match next {
            Some(next) => (
                &next.cross_attn_token_to_image,
                layer(next.packed.projections.as_ref(), [b, hw, width, 1, 0])?,
                layer(next.packed.t2i_v.as_ref(), [b, hw, width, 0, 0])?,
            ),
            None => (
                &self.final_attn_token_to_image,
                layer(self.final_packed.0.as_ref(), [b, hw, width, 1, 0])?,
                layer(self.final_packed.1.as_ref(), [b, hw, width, 0, 0])?,
            ),
        };
        let heads = t2i.num_heads;
        let exact_scores = scores_kernel_exact(b, n, hw, heads, inner / heads);
        let score_scale = exact_inverse(t2i.divisor).filter(|_| exact_scores)?;
        let out = Chain {
            queries,
            token_keys,
            token_values: stage.token_values,
            attention_scale,
            out,
            norm,
            residual,
            keys,
            key_pe: stage.key_pe,
            values,
            token_queries: stage.token_queries,
            score_scale,
        }
        .run()?;
        Some(StageOutput {
            image_queries: out.queries,
            keys: out.keys,
            values: out.values,
            scores: out.scores,
            by_rows: true,
        })
    }
}

/// Where a block's image → token attention finds its image queries.
enum ImageQueries<'a> {
    /// Block 0's: `(H, HW, c)`, one image's for every prompt ([`SharedImage::i2t_q`]).
    Shared(&'a Tensor),
    /// A later block's: `(B, HW, H·c)`, the second half of the stacked projection.
    Projected(Tensor),
}

impl ImageQueries<'_> {
    /// The `(B, H, HW, c)` per-head view of the queries for `b` prompts (no copy).
    fn heads(&self, b: i64, heads: i64) -> Tensor {
        match self {
            ImageQueries::Shared(q) => q.unsqueeze(0).expand([b, -1, -1, -1], false),
            ImageQueries::Projected(q) => separate_heads(q, heads),
        }
    }

    /// The attention's mix by LibTorch's scores (on the reference's layout: one bmm per
    /// prompt for the shared queries) and [`image_token_mix`].
    fn libtorch_mix(&self, token_keys: &Tensor, token_values: &Tensor, i2t: &Attention) -> Tensor {
        let heads = i2t.num_heads;
        let scores = match self {
            ImageQueries::Shared(q) => {
                let k = separate_heads(token_keys, heads);
                let scores: Vec<Tensor> = (0..k.size()[0])
                    .map(|j| q.bmm(&k.get(j).permute([0, 2, 1]).contiguous()))
                    .collect();
                Tensor::stack(&scores, 0)
            }
            ImageQueries::Projected(q) => libtorch_token_image_scores(q, token_keys, heads),
        };
        image_token_mix(&scores, i2t.divisor, token_values, heads)
    }
}

/// The operands of [`TwoWayTransformer::image_stage`]: `block`'s image → token attention
/// of the `image_queries` on `(B, N, H·c)` token keys and values, with `residual` (`(1 or
/// B, HW, C)` image keys) and `norm4`, then the token → image attention that follows
/// (`next`'s, the final one when `None`) on the new keys, for its `(B, N, H·c)` projected
/// `token_queries`.
#[derive(Clone, Copy)]
struct Stage<'a> {
    block: &'a TwoWayAttentionBlock,
    next: Option<&'a TwoWayAttentionBlock>,
    image_queries: &'a ImageQueries<'a>,
    token_keys: &'a Tensor,
    token_values: &'a Tensor,
    residual: &'a Tensor,
    key_pe: &'a Tensor,
    token_queries: &'a Tensor,
}

/// What [`TwoWayTransformer::image_stage`] gives.
struct StageOutput {
    /// `(B, HW, C)`: the block's new image keys.
    keys: Tensor,
    /// `(B, HW, H·c)`: the next block's image → token queries (`None` before the final
    /// attention).
    image_queries: Option<Tensor>,
    /// `(B, H, HW, c)`: the token → image attention's values per head (a view or a
    /// contiguous tensor: the same values).
    values: Tensor,
    /// `(B, H, N, HW)`: its scores, divided.
    scores: Tensor,
    /// Whether [`Chain`] computed it.
    by_rows: bool,
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
            for rows in [true, false] {
                let (got_q, got_k, by_rows) = transformer.forward_shared_with(&shared, &tokens, rows);
                assert!(
                    got_q.equal(&want_q),
                    "{prompts} prompts, rows {rows}: tokens differ"
                );
                assert!(
                    got_k.equal(&want_k),
                    "{prompts} prompts, rows {rows}: image keys differ"
                );
                // Both blocks' image sides go through the chain wherever its kernels apply
                // (the image -> token attention's probe refuses it on some CPUs).
                let chain = rows
                    && crate::torch::gemm::has_avx2_fma()
                    && probed(Probe::ImageTokenAttention([prompts, 4096, 7, 8, 16]), || false);
                assert_eq!(
                    by_rows,
                    if chain { 2 } else { 0 },
                    "{prompts} prompts, rows {rows}"
                );
            }
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
