//! The two-way transformer of the mask decoder (`segment_anything/modeling/transformer.py`):
//! prompt tokens attend to the image and the image attends back to the tokens.

use tch::Tensor;

use super::common::MlpBlock;
use super::config::TwoWayTransformerConfig;
use super::products::{
    image_token_mix, libtorch_mix, libtorch_token_image_scores, probe_tensor, probed, recombine_heads,
    separate_heads, token_image_scores, Probe,
};
use super::softmax::libtorch_scaled_softmax;
use super::SamError;
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
        let heads = self.num_heads;
        let scores = match kernels {
            Kernels::TokenToImage => token_image_scores(q, k, heads),
            Kernels::LibTorch | Kernels::ImageToToken => libtorch_token_image_scores(q, k, heads),
        };
        let divisor = ((q.size()[2] / heads) as f64).sqrt();
        let mixed = match kernels {
            Kernels::ImageToToken => image_token_mix(&scores, divisor, v, heads),
            Kernels::LibTorch | Kernels::TokenToImage => libtorch_mix(&scores, divisor, v, heads),
        };
        self.out_proj.forward(&mixed)
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
    /// copying the image keys per head.
    TokenToImage,
    /// The image attending to prompt tokens: the softmax over their few scores and the mix
    /// of their values by [`image_token_mix`].
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
    skip_first_layer_pe: bool,
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
        Ok(TwoWayAttentionBlock {
            self_attn: Attention::load(&vb.pp("self_attn"), d, c.num_heads, 1)?,
            norm1: LayerNorm::load(&vb.pp("norm1"), d, DECODER_LN_EPS)?,
            image_projections: StackedLinear::new(
                &cross_attn_token_to_image.k_proj,
                &cross_attn_image_to_token.q_proj,
            ),
            cross_attn_token_to_image,
            norm2: LayerNorm::load(&vb.pp("norm2"), d, DECODER_LN_EPS)?,
            mlp: MlpBlock::load(&vb.pp("mlp"), d, c.mlp_dim, Activation::Relu)?,
            norm3: LayerNorm::load(&vb.pp("norm3"), d, DECODER_LN_EPS)?,
            norm4: LayerNorm::load(&vb.pp("norm4"), d, DECODER_LN_EPS)?,
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
        // Upstream adds the position encodings to the unchanged keys twice in a block and
        // projects the sum in each cross attention; once each gives the same values.
        let k = keys + key_pe;
        let (t2i, i2t) = (&self.cross_attn_token_to_image, &self.cross_attn_image_to_token);
        let (t2i_keys, i2t_queries) = if fast {
            self.image_projections(&k)
        } else {
            (t2i.k_proj.forward(&k), i2t.q_proj.forward(&k))
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
            &t2i.v_proj.forward(keys),
            kernels(Kernels::TokenToImage),
        );
        let queries = self.norm2.forward(&(&queries + attn_out));

        let queries = &queries + self.mlp.forward(&queries);
        let queries = self.norm3.forward(&queries);

        let q = &queries + query_pe;
        let attn_out = i2t.attend(
            &i2t_queries,
            &i2t.k_proj.forward(&q),
            &i2t.v_proj.forward(&queries),
            kernels(Kernels::ImageToToken),
        );
        let keys = self.norm4.forward(&(keys + attn_out));
        (queries, keys)
    }

    /// The token → image keys and the image → token queries of `(B, hw, C)` image tokens
    /// `k` (`keys + key_pe`): by one product with the stacked weights where a probe found
    /// that it gives the two products' bits for this shape, by two otherwise.
    fn image_projections(&self, k: &Tensor) -> (Tensor, Tensor) {
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
                return stacked.forward(k);
            }
        }
        (first.forward(k), second.forward(k))
    }
}

/// `TwoWayTransformer`.
#[derive(Debug)]
pub struct TwoWayTransformer {
    layers: Vec<TwoWayAttentionBlock>,
    final_attn_token_to_image: Attention,
    norm_final_attn: LayerNorm,
}

impl TwoWayTransformer {
    pub(crate) fn load(vb: &Vb, c: &TwoWayTransformerConfig) -> Result<Self, SamError> {
        let layers = (0..c.depth)
            .map(|i| TwoWayAttentionBlock::load(&vb.pp("layers").pp(i), c, i == 0))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TwoWayTransformer {
            layers,
            final_attn_token_to_image: Attention::load(
                &vb.pp("final_attn_token_to_image"),
                c.embedding_dim,
                c.num_heads,
                c.attention_downsample_rate,
            )?,
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
        let k = i.separate_heads(&i.k_proj.forward(&(&queries + pe)));
        let v = i.v_proj.forward(&queries);
        let scores: Vec<Tensor> = (0..b)
            .map(|j| shared.i2t_q.bmm(&k.get(j).permute([0, 2, 1]).contiguous()))
            .collect();
        let mixed = image_token_mix(&Tensor::stack(&scores, 0), (c as f64).sqrt(), &v, i.num_heads);
        let attn_out = i.out_proj.forward(&mixed);
        let keys = first.norm4.forward(&(&shared.keys + attn_out));
        let mut queries = queries;
        let mut keys = keys;
        for layer in &self.layers[1..] {
            (queries, keys) = layer.forward(&queries, &keys, pe, &shared.key_pe, true);
        }
        let q = &queries + pe;
        let k = &keys + &shared.key_pe;
        let f = &self.final_attn_token_to_image;
        let attn_out = f.attend(
            &f.q_proj.forward(&q),
            &f.k_proj.forward(&k),
            &f.v_proj.forward(&keys),
            Kernels::TokenToImage,
        );
        let queries = self.norm_final_attn.forward(&(queries + attn_out));
        (queries, keys)
    }
}
