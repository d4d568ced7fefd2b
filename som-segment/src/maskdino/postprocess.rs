//! Inference post-processing (`maskdino.py`: `instance_inference`, `panoptic_inference`,
//! `semantic_inference`, `box_postprocess`, and detectron2's `sem_seg_postprocess`): mask
//! logits upsampled to the padded input, cropped to the resized image and resized to the
//! original image; instances as the top-k of queries × classes scored by class score times
//! mean mask probability; panoptic segments by per-pixel argmax with object-mask and overlap
//! thresholds; semantic maps by class-weighted mask probabilities.
//!
//! Upsampling and resizing act on each query's mask alone, so only the queries an output
//! uses are upsampled (the top-k of instances, the kept queries of panoptic): the values are
//! those upstream computes for all queries, without the memory for all of them.

use tch::{Kind, Tensor};

use super::config::{Dataset, TestConfig};

/// Sizes that map the model's outputs back to the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSizes {
    /// The image as given, `(height, width)`.
    pub original: (i64, i64),
    /// After the test-time resize, `(height, width)`.
    pub resized: (i64, i64),
    /// After padding to the size divisibility, `(height, width)`.
    pub padded: (i64, i64),
}

/// One detected instance (`Instances` of one image).
#[derive(Debug)]
pub struct Instance {
    /// Contiguous class id (0-based) of the dataset's classes.
    pub class_id: i64,
    /// Class score × mean mask probability inside the mask.
    pub score: f64,
    /// The predicted box `(x0, y0, x1, y1)` in original-image pixels.
    pub bbox: [f64; 4],
    /// `(height, width)` boolean mask at the original size.
    pub mask: Tensor,
}

/// One panoptic segment (`segments_info`).
#[derive(Debug, Clone, PartialEq)]
pub struct PanopticSegment {
    /// The segment's id in [`Panoptic::ids`] (1-based; 0 is no segment).
    pub id: i32,
    /// Contiguous class id.
    pub class_id: i64,
    /// Whether the class is a thing (an instance) rather than stuff (merged per class).
    pub is_thing: bool,
    /// The (temperature-sharpened) class score of the query that created the segment.
    pub score: f64,
}

/// A panoptic segmentation.
#[derive(Debug)]
pub struct Panoptic {
    /// `(height, width)` `int32` segment ids, 0 where no segment.
    pub ids: Tensor,
    /// The segments, in id order.
    pub segments: Vec<PanopticSegment>,
}

/// Everything the enabled outputs of one image hold.
#[derive(Debug, Default)]
pub struct Prediction {
    /// Instances (when `instance_on`), in upstream's order.
    pub instances: Option<Vec<Instance>>,
    /// The panoptic segmentation (when `panoptic_on`).
    pub panoptic: Option<Panoptic>,
    /// `(K, height, width)` per-class scores (when `semantic_on`).
    pub semantic: Option<Tensor>,
}

/// `F.interpolate` to the padded size, then `sem_seg_postprocess`: crop to the resized
/// image and resize to the original. `masks` is `(Q, h, w)`.
pub(crate) fn masks_to_original(masks: &Tensor, sizes: &ImageSizes) -> Tensor {
    let (ph, pw) = sizes.padded;
    let (rh, rw) = sizes.resized;
    let (oh, ow) = sizes.original;
    masks
        .unsqueeze(0)
        .upsample_bilinear2d([ph, pw], false, None, None)
        .squeeze_dim(0)
        .narrow(1, 0, rh)
        .narrow(2, 0, rw)
        .unsqueeze(0)
        .upsample_bilinear2d([oh, ow], false, None, None)
        .squeeze_dim(0)
}

/// `box_postprocess`: `(cx, cy, w, h)` relative to the padded input to `(x0, y0, x1, y1)`
/// in original pixels.
fn boxes_to_original(boxes: &Tensor, sizes: &ImageSizes) -> Tensor {
    let img_h = sizes.padded.0 as f64 / sizes.resized.0 as f64 * sizes.original.0 as f64;
    let img_w = sizes.padded.1 as f64 / sizes.resized.1 as f64 * sizes.original.1 as f64;
    let cx = boxes.select(-1, 0);
    let cy = boxes.select(-1, 1);
    let w = boxes.select(-1, 2);
    let h = boxes.select(-1, 3);
    let xyxy = Tensor::stack(
        &[&cx - &w * 0.5, &cy - &h * 0.5, &cx + &w * 0.5, &cy + &h * 0.5],
        -1,
    );
    let scale = Tensor::from_slice(&[img_w as f32, img_h as f32, img_w as f32, img_h as f32])
        .to_device(boxes.device());
    xyxy * scale
}

/// `instance_inference` for one image: `logits` `(Q, K)`, `masks` `(Q, h, w)` mask logits
/// at the decoder's resolution, `boxes` `(Q, 4)`.
pub(crate) fn instance_inference(
    logits: &Tensor,
    masks: &Tensor,
    boxes: &Tensor,
    sizes: &ImageSizes,
    test: &TestConfig,
    dataset: Dataset,
) -> Vec<Instance> {
    let (_q, k) = logits.size2().unwrap_or((0, 0));
    let scores = logits.sigmoid();
    let (scores_per_image, topk) = scores.flatten(0, 1).topk(test.topk_per_image, -1, true, false);
    let labels = topk.remainder(k);
    let queries = topk.floor_divide_scalar(k);
    let keep: Vec<usize> = (0..labels.size()[0] as usize)
        .filter(|&i| !test.panoptic_on || dataset.is_thing(labels.int64_value(&[i as i64])))
        .collect();
    if keep.is_empty() {
        return Vec::new();
    }
    let keep_t =
        Tensor::from_slice(&keep.iter().map(|&i| i as i64).collect::<Vec<_>>()).to_device(logits.device());
    let queries = queries.index_select(0, &keep_t);
    let labels = labels.index_select(0, &keep_t);
    let scores_per_image = scores_per_image.index_select(0, &keep_t);
    // Upsample each selected query once (a query can be selected for several classes).
    let query_list: Vec<i64> = Vec::<i64>::try_from(&queries).unwrap_or_default();
    let mut unique = query_list.clone();
    unique.sort_unstable();
    unique.dedup();
    let unique_t = Tensor::from_slice(&unique).to_device(masks.device());
    let up = masks_to_original(&masks.index_select(0, &unique_t), sizes);
    let position: Vec<i64> = query_list
        .iter()
        .map(|q| unique.binary_search(q).unwrap_or(0) as i64)
        .collect();
    let mask_pred = up.index_select(0, &Tensor::from_slice(&position).to_device(up.device()));
    drop(up);
    let pred_masks = mask_pred.gt(0.0).to_kind(Kind::Float);
    let mask_scores = (mask_pred.sigmoid().flatten(1, -1) * pred_masks.flatten(1, -1)).sum_dim_intlist(
        1,
        false,
        None::<Kind>,
    ) / (pred_masks.flatten(1, -1).sum_dim_intlist(1, false, None::<Kind>) + 1e-6);
    let final_scores = scores_per_image * mask_scores;
    let boxes = boxes_to_original(boxes, sizes).index_select(0, &queries);
    let binary = pred_masks.to_kind(Kind::Bool);
    (0..keep.len() as i64)
        .map(|i| Instance {
            class_id: labels.int64_value(&[i]),
            score: final_scores.double_value(&[i]),
            bbox: [0, 1, 2, 3].map(|j| boxes.double_value(&[i, j])),
            mask: binary.get(i),
        })
        .collect()
}

/// `panoptic_inference` for one image.
pub(crate) fn panoptic_inference(
    logits: &Tensor,
    masks: &Tensor,
    sizes: &ImageSizes,
    test: &TestConfig,
    dataset: Dataset,
) -> Panoptic {
    let prob = 0.5;
    let sig = logits.sigmoid();
    let (scores, _) = sig.max_dim(-1, false);
    let keep = scores.gt(test.object_mask_threshold);
    let (scores, labels) = if test.transform_eval {
        (sig / test.pano_temp)
            .softmax(-1, None::<Kind>)
            .max_dim(-1, false)
    } else {
        sig.max_dim(-1, false)
    };
    let (oh, ow) = sizes.original;
    let mut ids = Tensor::zeros([oh, ow], (Kind::Int, masks.device()));
    let kept = keep.nonzero().squeeze_dim(1);
    let n = kept.size()[0];
    if n == 0 {
        return Panoptic {
            ids,
            segments: Vec::new(),
        };
    }
    let cur_scores = scores.index_select(0, &kept);
    let cur_classes = labels.index_select(0, &kept);
    let cur_masks = masks_to_original(&masks.index_select(0, &kept), sizes).sigmoid();
    let cur_mask_ids = (cur_scores.view([-1, 1, 1]) * &cur_masks).argmax(0, false);
    let mut segments = Vec::new();
    let mut stuff_memory: Vec<(i64, i32)> = Vec::new();
    let mut current_segment_id = 0i32;
    for k in 0..n {
        let pred_class = cur_classes.int64_value(&[k]);
        let is_thing = dataset.is_thing(pred_class);
        let in_argmax = cur_mask_ids.eq(k);
        let confident = cur_masks.get(k).ge(prob);
        let mask_area = in_argmax.sum(Kind::Int64).int64_value(&[]);
        let original_area = confident.sum(Kind::Int64).int64_value(&[]);
        let mask = in_argmax.logical_and(&confident);
        let area = mask.sum(Kind::Int64).int64_value(&[]);
        if mask_area > 0 && original_area > 0 && area > 0 {
            if (mask_area as f64 / original_area as f64) < test.overlap_threshold {
                continue;
            }
            if !is_thing {
                if let Some(&(_, id)) = stuff_memory.iter().find(|(c, _)| *c == pred_class) {
                    let _ = ids.masked_fill_(&mask, i64::from(id));
                    continue;
                }
                stuff_memory.push((pred_class, current_segment_id + 1));
            }
            current_segment_id += 1;
            let _ = ids.masked_fill_(&mask, i64::from(current_segment_id));
            segments.push(PanopticSegment {
                id: current_segment_id,
                class_id: pred_class,
                is_thing,
                score: cur_scores.double_value(&[k]),
            });
        }
    }
    Panoptic { ids, segments }
}

/// `semantic_inference` for one image (sigmoid class scores, sharpened with the panoptic
/// temperature when `transform_eval`): `(K, height, width)`.
pub(crate) fn semantic_inference(
    logits: &Tensor,
    masks: &Tensor,
    sizes: &ImageSizes,
    test: &TestConfig,
) -> Tensor {
    let mut mask_cls = logits.sigmoid();
    if test.transform_eval {
        mask_cls = (mask_cls / test.pano_temp).softmax(-1, None::<Kind>);
    }
    let mask_pred = masks_to_original(masks, sizes).sigmoid();
    Tensor::einsum("qc,qhw->chw", &[mask_cls, mask_pred], None::<i64>)
}
