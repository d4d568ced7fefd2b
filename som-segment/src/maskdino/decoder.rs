//! The transformer decoder and its heads (`transformer_decoder/maskdino_decoder.py`,
//! `MaskDINODecoder`): two-stage query selection from the encoder output (proposals per
//! encoder cell, top-k by class score), box initialisation from the first predicted masks,
//! the DINO decoder with iterative box refinement, and the class, mask and box heads.

use tch::{Kind, Tensor};

use super::config::{BoxInit, DecoderConfig};
use super::dino_decoder::{inverse_sigmoid, TransformerDecoder};
use crate::torch::nn::{Conv2d, LayerNorm, Linear, Mlp};
use crate::torch::{CheckpointError, Vb};

/// The decoder's outputs for a batch.
#[derive(Debug)]
pub struct DecoderOutput {
    /// `(N, Q, K)` class logits (sigmoid scores) of the last layer.
    pub pred_logits: Tensor,
    /// `(N, Q, H/4, W/4)` mask logits of the last layer.
    pub pred_masks: Tensor,
    /// `(N, Q, 4)` boxes `(cx, cy, w, h)` relative to the padded input, of the last layer.
    pub pred_boxes: Tensor,
    /// The boxes after each layer, the initial ones first (`(N, Q, 4)` each).
    pub layer_boxes: Vec<Tensor>,
    /// Class logits of the selected encoder proposals (`interm_outputs`).
    pub interm_logits: Tensor,
    /// Boxes of the selected encoder proposals (`interm_outputs`), before mask-based
    /// initialisation.
    pub interm_boxes: Tensor,
}

/// `gen_encoder_output_proposals` for unpadded levels: the memory with invalid proposals
/// zeroed, and a proposal box (unsigmoided) per encoder cell.
fn encoder_output_proposals(memory: &Tensor, spatial_shapes: &[(i64, i64)]) -> (Tensor, Tensor) {
    let n = memory.size()[0];
    let device = memory.device();
    let mut proposals = Vec::with_capacity(spatial_shapes.len());
    for (lvl, &(h, w)) in spatial_shapes.iter().enumerate() {
        let ys = Tensor::linspace(0.0, (h - 1) as f64, h, (Kind::Float, device));
        let xs = Tensor::linspace(0.0, (w - 1) as f64, w, (Kind::Float, device));
        let g = Tensor::meshgrid_indexing(&[ys, xs], "ij");
        let grid = Tensor::cat(&[g[1].unsqueeze(-1), g[0].unsqueeze(-1)], -1);
        // valid_W, valid_H as float, like `torch.cat([valid_W, valid_H]).view(N, 1, 1, 2)`.
        let scale = Tensor::from_slice(&[w as f32, h as f32])
            .to_device(device)
            .view([1, 1, 1, 2]);
        let grid = (grid.unsqueeze(0).expand([n, -1, -1, -1], false) + 0.5) / scale;
        let wh = grid.ones_like() * 0.05 * 2f64.powi(lvl as i32);
        proposals.push(Tensor::cat(&[grid, wh], -1).view([n, -1, 4]));
    }
    let proposals = Tensor::cat(&proposals, 1);
    let valid = proposals
        .gt(0.01)
        .logical_and(&proposals.lt(0.99))
        .all_dims(-1, true);
    let proposals = (&proposals / (-&proposals + 1.0)).log();
    let invalid = valid.logical_not();
    let proposals = proposals.masked_fill(&invalid, f64::INFINITY);
    let memory = memory.masked_fill(&invalid, 0.0);
    (memory, proposals)
}

/// Tight boxes `(x0, y0, x1, y1)` of binary masks `(n, h, w)`.
///
/// `inclusive` is `box_ops.masks_to_boxes` (last pixel inclusive; an empty mask gives
/// `(1e8, 1e8, 0, 0)`), otherwise `BitMasks.get_bounding_boxes` (exclusive; an empty mask
/// gives zeros). Both are computed from row and column occupancy, which gives exactly the
/// integers upstream's per-pixel formulas give.
fn masks_to_boxes(masks: &Tensor, inclusive: bool) -> Tensor {
    let (n, h, w) = masks.size3().unwrap_or((0, 0, 0));
    let device = masks.device();
    let x_any = masks.any_dim(1, false); // (n, w)
    let y_any = masks.any_dim(2, false); // (n, h)
    let extent = |any: &Tensor, len: i64| {
        let coords = Tensor::arange(len, (Kind::Float, device)).unsqueeze(0);
        let hi = coords.where_self(any, &coords.zeros_like()).amax(1, false);
        let lo = coords
            .where_self(any, &Tensor::full([1, len], 1e8, (Kind::Float, device)))
            .amin(1, false);
        (lo, hi)
    };
    let (x0, x1) = extent(&x_any, w);
    let (y0, y1) = extent(&y_any, h);
    if inclusive {
        Tensor::stack(&[x0, y0, x1, y1], 1)
    } else {
        let nonempty = x_any.any_dim(1, true).logical_and(&y_any.any_dim(1, true));
        let boxes = Tensor::stack(&[x0, y0, x1 + 1.0, y1 + 1.0], 1);
        boxes.where_self(&nonempty, &Tensor::zeros([n, 4], (Kind::Float, device)))
    }
}

/// `box_xyxy_to_cxcywh`.
pub(crate) fn box_xyxy_to_cxcywh(b: &Tensor) -> Tensor {
    let x0 = b.select(-1, 0);
    let y0 = b.select(-1, 1);
    let x1 = b.select(-1, 2);
    let y1 = b.select(-1, 3);
    Tensor::stack(&[(&x0 + &x1) / 2.0, (&y0 + &y1) / 2.0, &x1 - &x0, &y1 - &y0], -1)
}

/// `MaskDINODecoder` at inference (two-stage, no denoising queries).
#[derive(Debug)]
pub(crate) struct MaskDinoDecoder {
    input_proj: Vec<Option<Conv2d>>,
    enc_output: Linear,
    enc_output_norm: LayerNorm,
    class_embed: Linear,
    mask_embed: Mlp,
    decoder_norm: LayerNorm,
    bbox_embed: Mlp,
    decoder: TransformerDecoder,
    num_queries: i64,
    hidden_dim: i64,
    initialize_box_type: BoxInit,
}

/// Takes a parameter stored under several aliased keys (modules registered twice upstream,
/// which `state_dict` writes under every name): at least one must be present, and all
/// present ones must agree.
fn aliased(vb: &Vb, names: &[String], shape: &[i64]) -> Result<Tensor, CheckpointError> {
    let mut found: Option<(String, Tensor)> = None;
    for name in names {
        if !vb.contains(name) {
            continue;
        }
        let t = vb.get(name, shape)?;
        match &found {
            None => found = Some((name.clone(), t)),
            Some((first, f)) => {
                if !f.equal(&t) {
                    return Err(CheckpointError::Inconsistent {
                        name: vb.key(name),
                        reason: format!("differs from its alias `{}`", vb.key(first)),
                    });
                }
            }
        }
    }
    match found {
        Some((_, t)) => Ok(t),
        // Report the canonical name as missing.
        None => vb.get(&names[0], shape),
    }
}

/// An [`Mlp`] whose layers are stored under several aliased prefixes.
fn aliased_mlp(vb: &Vb, prefixes: &[String], dims: &[i64]) -> Result<Mlp, CheckpointError> {
    let mut tensors = Vec::new();
    for (i, pair) in dims.windows(2).enumerate() {
        let (n, k) = (pair[0], pair[1]);
        let w: Vec<String> = prefixes
            .iter()
            .map(|p| format!("{p}.layers.{i}.weight"))
            .collect();
        let b: Vec<String> = prefixes.iter().map(|p| format!("{p}.layers.{i}.bias")).collect();
        tensors.push((aliased(vb, &w, &[k, n])?, aliased(vb, &b, &[k])?));
    }
    Ok(Mlp::from_layers(tensors))
}

impl MaskDinoDecoder {
    /// `in_channels` is the pixel decoder's width, `levels` its number of levels.
    pub(crate) fn load(
        vb: &Vb,
        c: &DecoderConfig,
        in_channels: i64,
        mask_dim: i64,
        levels: usize,
    ) -> Result<Self, CheckpointError> {
        let d = c.hidden_dim;
        let mut input_proj = Vec::with_capacity(levels);
        for i in 0..levels {
            input_proj.push(if in_channels != d || c.enforce_input_project {
                Some(Conv2d::load(
                    &vb.pp("input_proj").pp(i),
                    in_channels,
                    d,
                    1,
                    1,
                    0,
                    true,
                )?)
            } else {
                None
            });
        }
        // `decoder_norm` is also registered as `decoder.norm`; `_bbox_embed` as
        // `bbox_embed.{i}` and `decoder.bbox_embed.{i}` for every layer.
        let norm_names = |p: &str| vec![format!("decoder_norm.{p}"), format!("decoder.norm.{p}")];
        let norm_weight = aliased(vb, &norm_names("weight"), &[d])?;
        let norm_bias = aliased(vb, &norm_names("bias"), &[d])?;
        let mut box_prefixes = vec!["_bbox_embed".to_owned()];
        for i in 0..c.dec_layers {
            box_prefixes.push(format!("bbox_embed.{i}"));
            box_prefixes.push(format!("decoder.bbox_embed.{i}"));
        }
        let bbox_embed = aliased_mlp(vb, &box_prefixes, &[d, d, d, 4])?;
        // The label embedding only feeds denoising queries in training.
        let _ = vb.get("label_enc.weight", &[c.num_classes, d])?;
        let levels = levels as i64;
        Ok(MaskDinoDecoder {
            input_proj,
            enc_output: Linear::load(&vb.pp("enc_output"), d, d, true)?,
            enc_output_norm: LayerNorm::load(&vb.pp("enc_output_norm"), d, 1e-5)?,
            class_embed: Linear::load(&vb.pp("class_embed"), d, c.num_classes, true)?,
            mask_embed: Mlp::load(&vb.pp("mask_embed"), d, d, mask_dim, 3)?,
            decoder_norm: LayerNorm::from_parts(norm_weight, norm_bias, d, 1e-5),
            bbox_embed,
            decoder: TransformerDecoder::load(
                &vb.pp("decoder"),
                c.dec_layers,
                d,
                c.dim_feedforward,
                levels,
                c.nheads,
                c.n_points,
            )?,
            num_queries: c.num_queries,
            hidden_dim: d,
            initialize_box_type: c.initialize_box_type,
        })
    }

    /// `forward_prediction_heads`: class logits and (when asked) mask logits of
    /// `output` `(nq, bs, d)`.
    fn prediction_heads(
        &self,
        output: &Tensor,
        mask_features: &Tensor,
        pred_mask: bool,
    ) -> (Tensor, Option<Tensor>) {
        let decoder_output = self.decoder_norm.forward(output).transpose(0, 1);
        let outputs_class = self.class_embed.forward(&decoder_output);
        let outputs_mask = pred_mask.then(|| {
            let mask_embed = self.mask_embed.forward(&decoder_output);
            Tensor::einsum(
                "bqc,bchw->bqhw",
                &[mask_embed, mask_features.shallow_clone()],
                None::<i64>,
            )
        });
        (outputs_class, outputs_mask)
    }

    /// The decoder on the pixel decoder's levels (highest resolution first) and mask
    /// features.
    pub(crate) fn forward(
        &self,
        x: &[Tensor],
        mask_features: &Tensor,
    ) -> Result<DecoderOutput, tch::TchError> {
        let levels = x.len();
        // Flatten the levels lowest resolution first, as upstream does.
        let mut spatial_shapes = Vec::with_capacity(levels);
        let mut src_flatten = Vec::with_capacity(levels);
        for i in 0..levels {
            let idx = levels - 1 - i;
            let (_, _, h, w) = x[idx].size4()?;
            spatial_shapes.push((h, w));
            let projected = match &self.input_proj[idx] {
                Some(conv) => conv.forward(&x[idx]),
                None => x[idx].shallow_clone(),
            };
            src_flatten.push(projected.flatten(2, -1).transpose(1, 2));
        }
        let src_flatten = Tensor::cat(&src_flatten, 1);

        // Two-stage query selection.
        let (output_memory, output_proposals) = encoder_output_proposals(&src_flatten, &spatial_shapes);
        let output_memory = self
            .enc_output_norm
            .forward(&self.enc_output.forward(&output_memory));
        let enc_class = self.class_embed.forward(&output_memory);
        let enc_coord = self.bbox_embed.forward(&output_memory) + output_proposals;
        let k = self.num_queries.min(enc_class.size()[1]);
        let (_, topk) = enc_class.amax(-1, false).topk(k, 1, true, true);
        let refpoint_undetach = enc_coord.gather(1, &topk.unsqueeze(-1).repeat([1, 1, 4]), false);
        let tgt = output_memory.gather(1, &topk.unsqueeze(-1).repeat([1, 1, self.hidden_dim]), false);
        drop((output_memory, enc_coord));
        let need_masks = self.initialize_box_type != BoxInit::No;
        let (interm_logits, interm_masks) =
            self.prediction_heads(&tgt.transpose(0, 1), mask_features, need_masks);
        let interm_boxes = refpoint_undetach.sigmoid();
        let refpoint_embed = match (self.initialize_box_type, interm_masks) {
            (BoxInit::No, _) | (_, None) => refpoint_undetach,
            (kind, Some(masks)) => {
                let (n, q, h, w) = masks.size4()?;
                let binary = masks.flatten(0, 1).gt(0.0);
                drop(masks);
                let boxes = masks_to_boxes(&binary, kind == BoxInit::Mask2Box);
                let norm =
                    Tensor::from_slice(&[w as f32, h as f32, w as f32, h as f32]).to_device(boxes.device());
                let cxcywh = box_xyxy_to_cxcywh(&boxes) / norm;
                inverse_sigmoid(&cxcywh.reshape([n, q, 4]))
            }
        };

        // The decoder.
        let memory = src_flatten.transpose(0, 1);
        let states = self.decoder.forward(
            &tgt.transpose(0, 1),
            &memory,
            &refpoint_embed.transpose(0, 1),
            &spatial_shapes,
            &self.decoder_norm,
            &self.bbox_embed,
        )?;
        let last = states
            .hs
            .last()
            .ok_or_else(|| tch::TchError::Shape("decoder has no layers".into()))?;
        let (pred_logits, pred_masks) = self.prediction_heads(&last.transpose(0, 1), mask_features, true);
        let pred_masks = pred_masks.ok_or_else(|| tch::TchError::Shape("no masks predicted".into()))?;

        // Iterative box prediction (`pred_box`): from each layer's normalised output and the
        // reference it started from.
        let mut layer_boxes = Vec::with_capacity(states.hs.len() + 1);
        layer_boxes.push(refpoint_embed.sigmoid());
        for (reference, hs) in states.references.iter().zip(&states.hs) {
            let delta = self.bbox_embed.forward(hs);
            layer_boxes.push((delta + inverse_sigmoid(reference)).sigmoid());
        }
        let pred_boxes = layer_boxes[layer_boxes.len() - 1].shallow_clone();
        Ok(DecoderOutput {
            pred_logits,
            pred_masks,
            pred_boxes,
            layer_boxes,
            interm_logits,
            interm_boxes,
        })
    }
}
