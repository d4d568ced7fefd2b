//! The pixel decoder (`pixel_decoder/maskdino_encoder.py`, `MaskDINOEncoder`): projections
//! of the backbone levels (plus extra downsampled levels), the multi-scale deformable
//! attention encoder (`MSDeformAttnTransformerEncoderOnly`) with level embeddings, sine
//! positional encodings and per-pixel reference points, and the FPN path to the stride-4
//! mask features.

use tch::{Device, Kind, Tensor};

use super::config::{feature_index, PixelDecoderConfig};
use super::position::position_embedding_sine;
use crate::torch::deform_attn::MsDeformAttn;
use crate::torch::nn::{Conv2d, ConvOptions, GroupNorm, LayerNorm, Linear};
use crate::torch::{CheckpointError, Vb};

/// `MSDeformAttnTransformerEncoderLayer` (post-norm, ReLU feed-forward).
#[derive(Debug)]
pub(crate) struct EncoderLayer {
    self_attn: MsDeformAttn,
    norm1: LayerNorm,
    linear1: Linear,
    linear2: Linear,
    norm2: LayerNorm,
}

impl EncoderLayer {
    pub(crate) fn load(
        vb: &Vb,
        d_model: i64,
        d_ffn: i64,
        n_levels: i64,
        n_heads: i64,
        n_points: i64,
    ) -> Result<Self, CheckpointError> {
        Ok(EncoderLayer {
            self_attn: MsDeformAttn::load(&vb.pp("self_attn"), d_model, n_levels, n_heads, n_points)?,
            norm1: LayerNorm::load(&vb.pp("norm1"), d_model, 1e-5)?,
            linear1: Linear::load(&vb.pp("linear1"), d_model, d_ffn, true)?,
            linear2: Linear::load(&vb.pp("linear2"), d_ffn, d_model, true)?,
            norm2: LayerNorm::load(&vb.pp("norm2"), d_model, 1e-5)?,
        })
    }

    /// `src` and `pos` `(N, S, C)`, `reference_points` `(N, S, L, 2)`.
    pub(crate) fn forward(
        &self,
        src: &Tensor,
        pos: &Tensor,
        reference_points: &Tensor,
        spatial_shapes: &[(i64, i64)],
    ) -> Result<Tensor, tch::TchError> {
        let src2 = self
            .self_attn
            .forward(&(src + pos), reference_points, src, spatial_shapes)?;
        let src = self.norm1.forward(&(src + src2));
        let src2 = self.linear2.forward(&self.linear1.forward(&src).relu());
        Ok(self.norm2.forward(&(src + src2)))
    }
}

/// `MSDeformAttnTransformerEncoder.get_reference_points` for unpadded levels: the centre of
/// every cell, `(1, S, L, 2)` as `(x, y)` in `[0, 1]`.
pub(crate) fn encoder_reference_points(spatial_shapes: &[(i64, i64)], device: Device) -> Tensor {
    let mut per_level = Vec::with_capacity(spatial_shapes.len());
    for &(h, w) in spatial_shapes {
        let ys = Tensor::linspace(0.5, h as f64 - 0.5, h, (Kind::Float, device));
        let xs = Tensor::linspace(0.5, w as f64 - 0.5, w, (Kind::Float, device));
        let grid = Tensor::meshgrid_indexing(&[ys, xs], "ij");
        let ref_y = grid[0].reshape([1, -1]) / (h as f64);
        let ref_x = grid[1].reshape([1, -1]) / (w as f64);
        per_level.push(Tensor::stack(&[ref_x, ref_y], -1));
    }
    let reference_points = Tensor::cat(&per_level, 1);
    let levels = spatial_shapes.len() as i64;
    reference_points.unsqueeze(2).expand([-1, -1, levels, 2], false)
}

/// `nn.Sequential(Conv2d, GroupNorm(32, c))` (`input_proj.{i}.0`, `input_proj.{i}.1`).
#[derive(Debug)]
struct Projection {
    conv: Conv2d,
    norm: GroupNorm,
}

impl Projection {
    fn load(vb: &Vb, in_ch: i64, out_ch: i64, kernel: i64, stride: i64) -> Result<Self, CheckpointError> {
        let options = ConvOptions {
            stride,
            padding: kernel / 2,
            ..ConvOptions::default()
        };
        Ok(Projection {
            conv: Conv2d::load_with(&vb.pp(0), in_ch, out_ch, kernel, options)?,
            norm: GroupNorm::load(&vb.pp(1), 32, out_ch)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.norm.forward(&self.conv.forward(x))
    }
}

/// detectron2's `Conv2d(..., bias=False, norm=GroupNorm(32, c))` (`adapter_1`, `layer_1`).
#[derive(Debug)]
struct ConvGn {
    conv: Conv2d,
    norm: GroupNorm,
}

impl ConvGn {
    fn load(vb: &Vb, in_ch: i64, out_ch: i64, kernel: i64) -> Result<Self, CheckpointError> {
        let options = ConvOptions {
            padding: kernel / 2,
            bias: false,
            ..ConvOptions::default()
        };
        Ok(ConvGn {
            conv: Conv2d::load_with(vb, in_ch, out_ch, kernel, options)?,
            norm: GroupNorm::load(&vb.pp("norm"), 32, out_ch)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.norm.forward(&self.conv.forward(x))
    }
}

/// The pixel decoder's outputs.
#[derive(Debug)]
pub struct EncoderOutput {
    /// `(N, mask_dim, H/4, W/4)`: the per-pixel embeddings masks are predicted from.
    pub mask_features: Tensor,
    /// The encoder's levels, highest resolution first, `(N, conv_dim, H_l, W_l)` each:
    /// what the decoder attends over.
    pub multi_scale_features: Vec<Tensor>,
    /// The encoder memory `(N, Σ H_l·W_l, conv_dim)` before it is split into levels.
    pub memory: Tensor,
}

/// `MaskDINOEncoder` with `FEATURE_ORDER: low2high` (every published config).
#[derive(Debug)]
pub(crate) struct PixelDecoder {
    /// Indices (0 = `res2`) of the encoder's backbone inputs, highest resolution first.
    transformer_in: Vec<usize>,
    /// `input_proj`: one per encoder input level, then the extra downsampling ones.
    input_proj: Vec<Projection>,
    level_embed: Tensor,
    layers: Vec<EncoderLayer>,
    /// `(backbone index, adapter, layer)` of the FPN levels, lowest resolution first.
    fpn: Vec<(usize, ConvGn, ConvGn)>,
    mask_features: Conv2d,
    conv_dim: i64,
    total_levels: usize,
}

impl PixelDecoder {
    pub(crate) fn load(vb: &Vb, c: &PixelDecoderConfig, channels: [i64; 4]) -> Result<Self, CheckpointError> {
        let mut transformer_in: Vec<usize> = c
            .transformer_in_features
            .iter()
            .map(|f| feature_index(f))
            .collect();
        transformer_in.sort_unstable();
        transformer_in.dedup();
        let mut in_features: Vec<usize> = c.in_features.iter().map(|f| feature_index(f)).collect();
        in_features.sort_unstable();
        in_features.dedup();
        let d = c.conv_dim;
        let vb_proj = vb.pp("input_proj");
        let mut input_proj = Vec::with_capacity(c.total_num_feature_levels);
        for (i, &f) in transformer_in.iter().enumerate() {
            input_proj.push(Projection::load(&vb_proj.pp(i), channels[f], d, 1, 1)?);
        }
        let mut in_ch = transformer_in.iter().map(|&f| channels[f]).max().unwrap_or(d);
        for i in transformer_in.len()..c.total_num_feature_levels {
            input_proj.push(Projection::load(&vb_proj.pp(i), in_ch, d, 3, 2)?);
            in_ch = d;
        }
        let levels = c.total_num_feature_levels as i64;
        let vb_t = vb.pp("transformer");
        let level_embed = vb_t.get("level_embed", &[levels, d])?;
        let mut layers = Vec::with_capacity(c.enc_layers);
        for i in 0..c.enc_layers {
            layers.push(EncoderLayer::load(
                &vb_t.pp("encoder").pp("layers").pp(i),
                d,
                c.dim_feedforward,
                levels,
                c.nheads,
                c.n_points,
            )?);
        }
        // Strides of res2..res5 are 4..32: log2(min stride) - log2(common stride) levels.
        let min_stride_log2 = transformer_in.first().copied().unwrap_or(0) as i64 + 2;
        let common_log2 = c.common_stride.max(1).ilog2() as i64;
        let num_fpn = (min_stride_log2 - common_log2).max(1) as usize;
        let mut fpn = Vec::with_capacity(num_fpn);
        for (idx, &f) in in_features.iter().take(num_fpn).enumerate() {
            let adapter = ConvGn::load(&vb.pp(format!("adapter_{}", idx + 1)), channels[f], d, 1)?;
            let layer = ConvGn::load(&vb.pp(format!("layer_{}", idx + 1)), d, d, 3)?;
            fpn.push((f, adapter, layer));
        }
        fpn.reverse();
        Ok(PixelDecoder {
            transformer_in,
            input_proj,
            level_embed,
            layers,
            fpn,
            mask_features: Conv2d::load(&vb.pp("mask_features"), d, c.mask_dim, 1, 1, 0, true)?,
            conv_dim: d,
            total_levels: c.total_num_feature_levels,
        })
    }

    /// `forward_features` on the backbone's `res2`…`res5`.
    pub(crate) fn forward(&self, features: &[Tensor]) -> Result<EncoderOutput, tch::TchError> {
        let n_in = self.transformer_in.len();
        let num_pos_feats = self.conv_dim / 2;
        let mut srcs = Vec::with_capacity(self.total_levels);
        let mut pos = Vec::with_capacity(self.total_levels);
        for (idx, &f) in self.transformer_in.iter().enumerate() {
            let x = &features[f];
            srcs.push(self.input_proj[idx].forward(x));
            pos.push(position_embedding_sine(x, num_pos_feats));
        }
        // Extra levels, each downsampled from the one before, the first from the
        // lowest-resolution input; upstream appends them in reverse order of creation.
        let mut extra: Vec<Tensor> = Vec::new();
        let smallest = &features[*self.transformer_in.last().unwrap_or(&3)];
        for l in n_in..self.total_levels {
            let src = match extra.last() {
                None => self.input_proj[l].forward(smallest),
                Some(p) => self.input_proj[l].forward(p),
            };
            extra.push(src);
        }
        for src in extra.into_iter().rev() {
            pos.push(position_embedding_sine(&src, num_pos_feats));
            srcs.push(src);
        }
        // Flatten the levels.
        let bs = srcs[0].size()[0];
        let mut spatial_shapes = Vec::with_capacity(srcs.len());
        let mut src_flatten = Vec::with_capacity(srcs.len());
        let mut pos_flatten = Vec::with_capacity(srcs.len());
        for (lvl, (src, p)) in srcs.iter().zip(&pos).enumerate() {
            let (_, _, h, w) = src.size4()?;
            spatial_shapes.push((h, w));
            src_flatten.push(src.flatten(2, -1).transpose(1, 2));
            let p = p.flatten(2, -1).transpose(1, 2);
            pos_flatten.push(p + self.level_embed.get(lvl as i64).view([1, 1, -1]));
        }
        drop(srcs);
        drop(pos);
        let mut memory = Tensor::cat(&src_flatten, 1);
        drop(src_flatten);
        let pos = Tensor::cat(&pos_flatten, 1);
        drop(pos_flatten);
        let reference_points = encoder_reference_points(&spatial_shapes, memory.device());
        for layer in &self.layers {
            memory = layer.forward(&memory, &pos, &reference_points, &spatial_shapes)?;
        }
        drop(pos);
        // Split back into levels.
        let sizes: Vec<i64> = spatial_shapes.iter().map(|&(h, w)| h * w).collect();
        let mut out: Vec<Tensor> = memory
            .split_with_sizes(sizes.as_slice(), 1)
            .into_iter()
            .zip(&spatial_shapes)
            .map(|(z, &(h, w))| z.transpose(1, 2).view([bs, -1, h, w]))
            .collect();
        // FPN levels, lowest resolution first, each adding the upsampled first level.
        for (f, adapter, layer) in &self.fpn {
            let cur = adapter.forward(&features[*f]);
            let (_, _, h, w) = cur.size4()?;
            let up = out[0].upsample_bilinear2d([h, w], false, None, None);
            let mut y = layer.forward(&(cur + up));
            let _ = y.relu_();
            out.push(y);
        }
        let last = out
            .last()
            .ok_or_else(|| tch::TchError::Shape("pixel decoder without levels".into()))?;
        let mask_features = self.mask_features.forward(last);
        out.truncate(self.total_levels);
        Ok(EncoderOutput {
            mask_features,
            multi_scale_features: out,
            memory,
        })
    }
}
