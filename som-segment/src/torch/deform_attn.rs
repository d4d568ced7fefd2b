//! Multi-scale deformable attention (Deformable DETR's `MSDeformAttn`) in its exact
//! pure-tensor form.
//!
//! Upstream ships a compiled CUDA/C++ kernel (`MultiScaleDeformableAttention`) and a
//! reference in plain PyTorch, `ms_deform_attn_core_pytorch`, which samples each feature
//! level with bilinear `grid_sample` (zero padding, `align_corners=False`) and sums the
//! samples with the attention weights. That reference is what upstream runs on a CPU, and
//! what [`ms_deform_attn`] computes, operation for operation, so no custom kernel is needed
//! anywhere LibTorch runs. MaskDINO's encoder and decoder use it, as do the other models of
//! the DINO family (Semantic-SAM).

use tch::{Kind, Tensor};

use super::nn::Linear;
use super::{CheckpointError, Vb};

/// `ms_deform_attn_core_pytorch`: deformable attention over several feature levels.
///
/// - `value`: `(N, S, M, D)` — batch, `S = Σ H_l·W_l` flattened positions of all levels,
///   `M` heads, `D` channels per head;
/// - `spatial_shapes`: `(H_l, W_l)` of each level, in the order they are flattened in `S`;
/// - `sampling_locations`: `(N, Lq, M, L, P, 2)` — `(x, y)` in `[0, 1]` relative to each
///   level (points outside sample zeros, as `grid_sample` does);
/// - `attention_weights`: `(N, Lq, M, L, P)`.
///
/// Returns `(N, Lq, M·D)`.
///
/// # Errors
/// [`tch::TchError`] when the shapes do not fit together.
///
/// ```
/// use som_segment::torch::ms_deform_attn;
/// use tch::{Kind, Tensor};
/// // One level of 2×2, one head of one channel, one query sampling the centre with weight 1.
/// let value = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([1, 4, 1, 1]);
/// let loc = Tensor::from_slice(&[0.5f32, 0.5]).view([1, 1, 1, 1, 1, 2]);
/// let w = Tensor::ones([1, 1, 1, 1, 1], (Kind::Float, tch::Device::Cpu));
/// let out = ms_deform_attn(&value, &[(2, 2)], &loc, &w)?;
/// assert_eq!(out.size(), [1, 1, 1]);
/// assert_eq!(out.double_value(&[0, 0, 0]), 2.5);
/// # Ok::<(), tch::TchError>(())
/// ```
pub fn ms_deform_attn(
    value: &Tensor,
    spatial_shapes: &[(i64, i64)],
    sampling_locations: &Tensor,
    attention_weights: &Tensor,
) -> Result<Tensor, tch::TchError> {
    let (n, _s, m, d) = value.size4()?;
    let loc = sampling_locations.size();
    let [_, lq, _, l, p, two] = loc[..] else {
        return Err(tch::TchError::Shape(format!(
            "sampling locations have shape {loc:?}, expected (N, Lq, M, L, P, 2)"
        )));
    };
    if two != 2 || l != spatial_shapes.len() as i64 {
        return Err(tch::TchError::Shape(format!(
            "sampling locations have shape {loc:?} for {} levels",
            spatial_shapes.len()
        )));
    }
    let split: Vec<i64> = spatial_shapes.iter().map(|&(h, w)| h * w).collect();
    let value_list = value.f_split_with_sizes(split.as_slice(), 1)?;
    let sampling_grids = sampling_locations.f_mul_scalar(2)?.f_sub_scalar(1)?;
    let mut sampled = Vec::with_capacity(spatial_shapes.len());
    for (lid, &(h, w)) in spatial_shapes.iter().enumerate() {
        // N, H*W, M, D -> N, H*W, M*D -> N, M*D, H*W -> N*M, D, H, W
        let value_l = value_list[lid]
            .f_flatten(2, -1)?
            .f_transpose(1, 2)?
            .f_reshape([n * m, d, h, w])?;
        // N, Lq, M, P, 2 -> N, M, Lq, P, 2 -> N*M, Lq, P, 2
        let grid_l = sampling_grids
            .f_select(3, lid as i64)?
            .f_transpose(1, 2)?
            .f_flatten(0, 1)?;
        // N*M, D, Lq, P; mode bilinear (0), padding zeros (0), align_corners false.
        sampled.push(value_l.f_grid_sampler_2d(&grid_l, 0, 0, false)?);
    }
    // (N, Lq, M, L, P) -> (N, M, Lq, L, P) -> (N*M, 1, Lq, L*P)
    let weights = attention_weights
        .f_transpose(1, 2)?
        .f_reshape([n * m, 1, lq, l * p])?;
    let stacked = Tensor::f_stack(&sampled, -2)?;
    drop(sampled);
    let out = stacked
        .f_flatten(-2, -1)?
        .f_mul(&weights)?
        .f_sum_dim_intlist(-1, false, None::<Kind>)?
        .f_view([n, m * d, lq])?;
    out.f_transpose(1, 2)?.f_contiguous()
}

/// `MSDeformAttn`: projections around [`ms_deform_attn`], with reference points given as
/// points `(x, y)` or boxes `(x, y, w, h)`, normalised to `[0, 1]`.
#[derive(Debug)]
pub(crate) struct MsDeformAttn {
    sampling_offsets: Linear,
    attention_weights: Linear,
    value_proj: Linear,
    output_proj: Linear,
    n_heads: i64,
    n_levels: i64,
    n_points: i64,
    d_model: i64,
}

impl MsDeformAttn {
    pub(crate) fn load(
        vb: &Vb,
        d_model: i64,
        n_levels: i64,
        n_heads: i64,
        n_points: i64,
    ) -> Result<Self, CheckpointError> {
        let hlp = n_heads * n_levels * n_points;
        Ok(MsDeformAttn {
            sampling_offsets: Linear::load(&vb.pp("sampling_offsets"), d_model, hlp * 2, true)?,
            attention_weights: Linear::load(&vb.pp("attention_weights"), d_model, hlp, true)?,
            value_proj: Linear::load(&vb.pp("value_proj"), d_model, d_model, true)?,
            output_proj: Linear::load(&vb.pp("output_proj"), d_model, d_model, true)?,
            n_heads,
            n_levels,
            n_points,
            d_model,
        })
    }

    /// `query` `(N, Lq, C)`, `reference_points` `(N, Lq, L, 2 or 4)`, `input_flatten`
    /// `(N, S, C)`; no padding mask (MaskDINO never pads inside the batch at inference).
    pub(crate) fn forward(
        &self,
        query: &Tensor,
        reference_points: &Tensor,
        input_flatten: &Tensor,
        spatial_shapes: &[(i64, i64)],
    ) -> Result<Tensor, tch::TchError> {
        let (n, len_q, _) = query.size3()?;
        let (_, len_in, _) = input_flatten.size3()?;
        let (m, l, p) = (self.n_heads, self.n_levels, self.n_points);
        let value = self
            .value_proj
            .forward(input_flatten)
            .f_view([n, len_in, m, self.d_model / m])?;
        let offsets = self
            .sampling_offsets
            .forward(query)
            .f_view([n, len_q, m, l, p, 2])?;
        let weights = self
            .attention_weights
            .forward(query)
            .f_view([n, len_q, m, l * p])?
            .f_softmax(-1, None::<Kind>)?
            .f_view([n, len_q, m, l, p])?;
        let locations = match reference_points.size().last() {
            Some(2) => {
                let normalizer: Vec<f32> = spatial_shapes
                    .iter()
                    .flat_map(|&(h, w)| [w as f32, h as f32])
                    .collect();
                let normalizer = Tensor::from_slice(&normalizer)
                    .to_device(query.device())
                    .f_view([1, 1, 1, l, 1, 2])?;
                reference_points
                    .f_unsqueeze(2)?
                    .f_unsqueeze(4)?
                    .f_add(&offsets.f_div(&normalizer)?)?
            }
            Some(4) => {
                let r = reference_points.f_unsqueeze(2)?.f_unsqueeze(4)?;
                let xy = r.f_narrow(-1, 0, 2)?;
                let wh = r.f_narrow(-1, 2, 2)?;
                xy.f_add(&offsets.f_div_scalar(p)?.f_mul(&wh)?.f_mul_scalar(0.5)?)?
            }
            other => {
                return Err(tch::TchError::Shape(format!(
                    "reference points end in {other:?}, expected 2 or 4"
                )))
            }
        };
        drop(offsets);
        let out = ms_deform_attn(&value, spatial_shapes, &locations, &weights)?;
        Ok(self.output_proj.forward(&out))
    }
}
