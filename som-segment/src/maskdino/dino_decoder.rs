//! The DINO decoder (`transformer_decoder/dino_decoder.py`): `TransformerDecoder`, whose
//! layers refine query boxes iteratively, and `DeformableTransformerDecoderLayer` (query
//! self-attention, deformable cross-attention into the encoder levels around each query's
//! box, feed-forward; post-norm).

use tch::Tensor;

use super::position::sine_embed_for_boxes;
use crate::torch::deform_attn::MsDeformAttn;
use crate::torch::nn::{LayerNorm, Linear, Mlp, MultiheadAttention};
use crate::torch::{CheckpointError, Vb};

/// `inverse_sigmoid` of `utils/utils.py` (eps 1e-5).
pub(crate) fn inverse_sigmoid(x: &Tensor) -> Tensor {
    let eps = 1e-5;
    let x = x.clamp(0.0, 1.0);
    let x1 = x.clamp_min(eps);
    let x2 = (-&x + 1.0).clamp_min(eps);
    (x1 / x2).log()
}

/// `DeformableTransformerDecoderLayer`.
#[derive(Debug)]
pub(crate) struct DecoderLayer {
    cross_attn: MsDeformAttn,
    norm1: LayerNorm,
    self_attn: MultiheadAttention,
    norm2: LayerNorm,
    linear1: Linear,
    linear2: Linear,
    norm3: LayerNorm,
}

impl DecoderLayer {
    pub(crate) fn load(
        vb: &Vb,
        d_model: i64,
        d_ffn: i64,
        n_levels: i64,
        n_heads: i64,
        n_points: i64,
    ) -> Result<Self, CheckpointError> {
        Ok(DecoderLayer {
            cross_attn: MsDeformAttn::load(&vb.pp("cross_attn"), d_model, n_levels, n_heads, n_points)?,
            norm1: LayerNorm::load(&vb.pp("norm1"), d_model, 1e-5)?,
            self_attn: MultiheadAttention::load(&vb.pp("self_attn"), d_model, n_heads)?,
            norm2: LayerNorm::load(&vb.pp("norm2"), d_model, 1e-5)?,
            linear1: Linear::load(&vb.pp("linear1"), d_model, d_ffn, true)?,
            linear2: Linear::load(&vb.pp("linear2"), d_ffn, d_model, true)?,
            norm3: LayerNorm::load(&vb.pp("norm3"), d_model, 1e-5)?,
        })
    }

    /// `tgt` and `query_pos` `(nq, bs, d)`, `reference_points` `(nq, bs, L, 4)`, `memory`
    /// `(S, bs, d)`.
    pub(crate) fn forward(
        &self,
        tgt: &Tensor,
        query_pos: &Tensor,
        reference_points: &Tensor,
        memory: &Tensor,
        spatial_shapes: &[(i64, i64)],
    ) -> Result<Tensor, tch::TchError> {
        let q = tgt + query_pos;
        let tgt2 = self.self_attn.forward(&q, &q, tgt);
        let tgt = self.norm2.forward(&(tgt + tgt2));
        let tgt2 = self
            .cross_attn
            .forward(
                &(&tgt + query_pos).transpose(0, 1),
                &reference_points.transpose(0, 1).contiguous(),
                &memory.transpose(0, 1),
                spatial_shapes,
            )?
            .transpose(0, 1);
        let tgt = self.norm1.forward(&(tgt + tgt2));
        let tgt2 = self.linear2.forward(&self.linear1.forward(&tgt).relu());
        Ok(self.norm3.forward(&(tgt + tgt2)))
    }
}

/// `TransformerDecoder` (deformable, 4-d box queries, no query scale).
#[derive(Debug)]
pub(crate) struct TransformerDecoder {
    layers: Vec<DecoderLayer>,
    ref_point_head: Mlp,
    d_model: i64,
    num_levels: i64,
}

/// What [`TransformerDecoder::forward`] returns (batch first).
#[derive(Debug)]
pub(crate) struct DecoderStates {
    /// `norm(output)` after each layer, `(bs, nq, d)`.
    pub hs: Vec<Tensor>,
    /// The reference boxes before the first layer and after each layer, `(bs, nq, 4)`.
    pub references: Vec<Tensor>,
}

impl TransformerDecoder {
    pub(crate) fn load(
        vb: &Vb,
        num_layers: usize,
        d_model: i64,
        d_ffn: i64,
        n_levels: i64,
        n_heads: i64,
        n_points: i64,
    ) -> Result<Self, CheckpointError> {
        let mut layers = Vec::with_capacity(num_layers);
        for i in 0..num_layers {
            layers.push(DecoderLayer::load(
                &vb.pp("layers").pp(i),
                d_model,
                d_ffn,
                n_levels,
                n_heads,
                n_points,
            )?);
        }
        Ok(TransformerDecoder {
            layers,
            ref_point_head: Mlp::load(&vb.pp("ref_point_head"), 2 * d_model, d_model, d_model, 2)?,
            d_model,
            num_levels: n_levels,
        })
    }

    /// `tgt` `(nq, bs, d)`, `memory` `(S, bs, d)`, `refpoints_unsigmoid` `(nq, bs, 4)`;
    /// `norm` is the decoder norm, `bbox_embed` the box head shared by every layer.
    pub(crate) fn forward(
        &self,
        tgt: &Tensor,
        memory: &Tensor,
        refpoints_unsigmoid: &Tensor,
        spatial_shapes: &[(i64, i64)],
        norm: &LayerNorm,
        bbox_embed: &Mlp,
    ) -> Result<DecoderStates, tch::TchError> {
        let mut output = tgt.shallow_clone();
        let mut reference_points = refpoints_unsigmoid.sigmoid();
        let mut hs = Vec::with_capacity(self.layers.len());
        let mut references = Vec::with_capacity(self.layers.len() + 1);
        references.push(reference_points.transpose(0, 1));
        let (nq, bs, _) = reference_points.size3()?;
        for layer in &self.layers {
            // Valid ratios are all 1 (nothing is padded inside the batch).
            let reference_points_input = reference_points
                .unsqueeze(2)
                .expand([nq, bs, self.num_levels, 4], false);
            let query_sine_embed =
                sine_embed_for_boxes(&reference_points_input.select(2, 0), self.d_model / 2);
            let query_pos = self.ref_point_head.forward(&query_sine_embed);
            output = layer.forward(
                &output,
                &query_pos,
                &reference_points_input,
                memory,
                spatial_shapes,
            )?;
            let delta_unsig = bbox_embed.forward(&output);
            let new_reference_points = (delta_unsig + inverse_sigmoid(&reference_points)).sigmoid();
            references.push(new_reference_points.transpose(0, 1));
            reference_points = new_reference_points;
            hs.push(norm.forward(&output).transpose(0, 1));
        }
        Ok(DecoderStates { hs, references })
    }
}
