//! The automatic mask generator (`segment_anything/automatic_mask_generator.py` and
//! `segment_anything/utils/amg.py`): prompts SAM with a grid of points over the image and
//! over overlapping crops, filters the masks by predicted IoU and stability, removes
//! duplicates with box NMS, optionally cleans small holes and islands, and writes one record
//! per mask in the shape upstream writes (`output_mode="coco_rle"`).
//!
//! Everything after the model calls (thresholds, stability, boxes, RLE, NMS) runs on plain
//! slices in Rust, one mask at a time, instead of on batched tensors.

use std::time::Instant;

use image::RgbImage;

use serde::{Deserialize, Serialize};
use som_core::{ImageSize, Rle};
use tch::{Kind, Tensor};

use super::components::{remove_small_regions, RegionMode};
use super::mask_decoder::{DecodedTokens, DECODE_GROUP};
use super::resize::apply_coords;
use super::sam::{ImageEmbedding, Sam, MASK_THRESHOLD};
use super::transformer::SharedImage;
use super::upscale::{self, LowRes, UpscalePlan};
use super::SamError;
use crate::torch::floats::floats;
use crate::torch::parallel::for_each_chunk_mut;

/// `is_box_near_crop_edge`'s tolerance, in pixels.
const CROP_EDGE_ATOL: f64 = 20.0;

/// Options of `SamAutomaticMaskGenerator`, with its names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AmgOptions {
    /// Points sampled along one side of the image (the grid has `n²` points).
    pub points_per_side: u32,
    /// Points run through the decoder at once (memory, not results).
    pub points_per_batch: usize,
    /// Keep masks whose predicted IoU is above this (0 disables the filter).
    pub pred_iou_thresh: f64,
    /// Keep masks whose stability score is at least this (0 disables the filter).
    pub stability_score_thresh: f64,
    /// Logit offset used for the stability score.
    pub stability_score_offset: f64,
    /// Box IoU above which NMS drops the lower-IoU mask within a crop.
    pub box_nms_thresh: f64,
    /// Extra layers of crops (layer `i` has `2^i × 2^i` crops); 0 runs on the image only.
    pub crop_n_layers: u32,
    /// Box IoU above which NMS drops duplicates between crops (smaller crops win).
    pub crop_nms_thresh: f64,
    /// Overlap of neighbouring crops as a fraction of the image's shorter side (layer 1).
    pub crop_overlap_ratio: f64,
    /// Points per side in layer `i` are divided by this to the power `i`.
    pub crop_n_points_downscale_factor: u32,
    /// Fill holes and remove islands smaller than this area (0 disables; OpenCV-equivalent).
    pub min_mask_region_area: u64,
}

impl Default for AmgOptions {
    fn default() -> Self {
        AmgOptions {
            points_per_side: 32,
            points_per_batch: 64,
            pred_iou_thresh: 0.88,
            stability_score_thresh: 0.95,
            stability_score_offset: 1.0,
            box_nms_thresh: 0.7,
            crop_n_layers: 0,
            crop_nms_thresh: 0.7,
            crop_overlap_ratio: 512.0 / 1500.0,
            crop_n_points_downscale_factor: 1,
            min_mask_region_area: 0,
        }
    }
}

impl AmgOptions {
    /// Checks every option is in range.
    ///
    /// # Errors
    /// [`SamError::Option`] naming the first bad option.
    pub fn validate(&self) -> Result<(), SamError> {
        let bad = |name: &'static str, value: String, reason: &'static str| {
            Err(SamError::Option { name, value, reason })
        };
        if self.points_per_side == 0 {
            return bad("points_per_side", "0".into(), "must be at least 1");
        }
        if self.points_per_batch == 0 {
            return bad("points_per_batch", "0".into(), "must be at least 1");
        }
        for (name, v) in [
            ("pred_iou_thresh", self.pred_iou_thresh),
            ("stability_score_thresh", self.stability_score_thresh),
            ("stability_score_offset", self.stability_score_offset),
            ("box_nms_thresh", self.box_nms_thresh),
            ("crop_nms_thresh", self.crop_nms_thresh),
        ] {
            if !v.is_finite() {
                return bad(name, v.to_string(), "must be a finite number");
            }
        }
        if !(0.0..1.0).contains(&self.crop_overlap_ratio) {
            return bad(
                "crop_overlap_ratio",
                self.crop_overlap_ratio.to_string(),
                "must be in [0, 1)",
            );
        }
        if self.crop_n_points_downscale_factor == 0 {
            return bad("crop_n_points_downscale_factor", "0".into(), "must be at least 1");
        }
        if self.crop_n_layers > 8 {
            return bad(
                "crop_n_layers",
                self.crop_n_layers.to_string(),
                "must be at most 8",
            );
        }
        for layer in 0..=self.crop_n_layers {
            if self.points_in_layer(layer) == 0 {
                return bad(
                    "crop_n_points_downscale_factor",
                    self.crop_n_points_downscale_factor.to_string(),
                    "leaves no points in the deepest crop layer",
                );
            }
        }
        Ok(())
    }

    /// `int(n_per_side / scale_per_layer ** i)`.
    fn points_in_layer(&self, layer: u32) -> usize {
        (f64::from(self.points_per_side) / f64::from(self.crop_n_points_downscale_factor).powi(layer as i32))
            as usize
    }
}

/// A COCO RLE as upstream writes it: `{"size": [h, w], "counts": "<compressed>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RleRecord {
    /// `[height, width]`.
    pub size: [u32; 2],
    /// pycocotools' compressed counts string.
    pub counts: String,
}

/// One generated mask, the record `SamAutomaticMaskGenerator.generate` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AmgRecord {
    /// The mask.
    pub segmentation: RleRecord,
    /// Pixels in the mask.
    pub area: u64,
    /// `[x, y, w, h]` where `w`, `h` are max − min coordinates (upstream's convention:
    /// one less than the pixel extent).
    pub bbox: [i64; 4],
    /// The model's IoU prediction.
    #[serde(deserialize_with = "nan_if_null")]
    pub predicted_iou: f64,
    /// The grid point that produced the mask, in image pixels.
    pub point_coords: Vec<[f64; 2]>,
    /// The stability score (NaN for an empty mask, written as `null` in JSON).
    #[serde(deserialize_with = "nan_if_null")]
    pub stability_score: f64,
    /// The crop the mask came from, `[x, y, w, h]`.
    pub crop_box: [i64; 4],
}

/// JSON has no NaN: serde_json writes it as `null`, so `null` reads back as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

impl AmgRecord {
    /// The mask as an [`Rle`].
    ///
    /// # Errors
    /// [`som_core::SomError::Rle`] if the record's counts are malformed.
    pub fn rle(&self) -> Result<Rle, som_core::SomError> {
        Rle::from_compressed(
            ImageSize::new(self.segmentation.size[1], self.segmentation.size[0]),
            &self.segmentation.counts,
        )
    }
}

/// Where the time of one [`AutomaticMaskGenerator::generate_timed`] run went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AmgTimings {
    /// Image encoder (all crops), ms.
    pub encode_ms: f64,
    /// Prompt encoder, mask decoder and mask upscaling (all batches), ms.
    pub decode_ms: f64,
    /// Everything else (filtering, boxes, RLE, NMS, small regions), ms.
    pub post_ms: f64,
    /// Crops processed.
    pub crops: u32,
    /// Crops whose masks were decided from the low-res logits (the rest were upscaled by
    /// LibTorch, see [`AutomaticMaskGenerator::reference_upscaling`]).
    pub exact_upscaling_crops: u32,
    /// Crops decoded with the image-only work shared between prompts.
    pub shared_decoder_crops: u32,
}

/// A candidate's mask inside a crop, before NMS.
#[derive(Debug, Clone)]
enum PendingMask {
    /// Uncompressed column-major counts over the full image.
    Counts(Vec<u32>),
    /// Low-res logits covering every pixel that may be in the mask (and, while the
    /// stability score is not computed, every pixel that may be above either of its
    /// thresholds), and their margin (see [`upscale::margin`]); rasterised with the crop's
    /// [`UpscalePlan`] once the candidate survives NMS.
    Logits { low: LowRes, margin: f32 },
}

/// A candidate of one crop, before NMS: its mask may still be logits.
#[derive(Debug, Clone)]
struct Pending {
    mask: PendingMask,
    /// `[x0, y0, x1, y1]`, inclusive maxima, in the crop's frame.
    bbox: [i64; 4],
    iou: f32,
    point: [f64; 2],
    /// `None` where no stability filter applies (`stability_score_thresh <= 0`): NMS does
    /// not read the score, so it is computed for the survivors only, from `mask`'s logits.
    stability: Option<f32>,
}

/// One candidate mask (a row of upstream's `MaskData`).
#[derive(Debug, Clone)]
struct Candidate {
    /// Uncompressed column-major counts over the full image.
    counts: Vec<u32>,
    /// `[x0, y0, x1, y1]`, inclusive maxima, in the frame of the current stage.
    bbox: [i64; 4],
    iou: f32,
    point: [f64; 2],
    stability: f32,
    crop_box: [i64; 4],
}

/// `SamAutomaticMaskGenerator`.
///
/// ```no_run
/// use som_segment::sam::{AmgOptions, AutomaticMaskGenerator, Sam, SamModel};
/// let sam = Sam::load("sam_vit_b_01ec64.pth", SamModel::VitB)?;
/// let generator = AutomaticMaskGenerator::new(AmgOptions::default())?;
/// let records = generator.generate(&sam, &image::open("photo.jpg")?.to_rgb8())?;
/// println!("{}", serde_json::to_string(&records)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct AutomaticMaskGenerator {
    options: AmgOptions,
    point_grids: Vec<Vec<[f64; 2]>>,
    quiet: bool,
    reference_upscaling: bool,
}

impl AutomaticMaskGenerator {
    /// A generator with `options`; progress goes to stderr unless [`Self::quiet`] is set.
    ///
    /// # Errors
    /// [`SamError::Option`] for options out of range.
    pub fn new(options: AmgOptions) -> Result<Self, SamError> {
        options.validate()?;
        let point_grids = (0..=options.crop_n_layers)
            .map(|l| build_point_grid(options.points_in_layer(l)))
            .collect();
        Ok(AutomaticMaskGenerator {
            options,
            point_grids,
            quiet: true,
            reference_upscaling: false,
        })
    }

    /// Prints progress (crops, point batches) on stderr when `quiet` is false.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// Upscales every candidate mask with LibTorch before filtering, as `segment_anything`
    /// does, instead of deciding each pixel from the low-res logits (and computing exact
    /// values only near the thresholds). Both give the same records; this is the slow path,
    /// for checking that claim. It is also what the generator falls back to by itself when
    /// LibTorch's upscaling arithmetic is not one it can reproduce (another LibTorch build,
    /// a GPU).
    pub fn reference_upscaling(mut self, on: bool) -> Self {
        self.reference_upscaling = on;
        self
    }

    /// The options.
    pub fn options(&self) -> &AmgOptions {
        &self.options
    }

    /// Generates masks for an RGB image.
    ///
    /// # Errors
    /// [`SamError::Image`] for images SAM cannot take.
    pub fn generate(&self, sam: &Sam, image: &RgbImage) -> Result<Vec<AmgRecord>, SamError> {
        Ok(self.generate_timed(sam, image)?.0)
    }

    /// [`Self::generate`], also returning where the time went.
    ///
    /// # Errors
    /// As [`Self::generate`].
    pub fn generate_timed(
        &self,
        sam: &Sam,
        image: &RgbImage,
    ) -> Result<(Vec<AmgRecord>, AmgTimings), SamError> {
        let start = Instant::now();
        let mut timings = AmgTimings::default();
        let (w, h) = (image.width(), image.height());
        super::sam::check_size(w, h)?;
        let (crop_boxes, layers) = generate_crop_boxes(
            (h, w),
            self.options.crop_n_layers,
            self.options.crop_overlap_ratio,
        );
        let mut data: Vec<Candidate> = Vec::new();
        for (i, (crop_box, layer)) in crop_boxes.iter().zip(&layers).enumerate() {
            if !self.quiet {
                eprintln!("sam: crop {}/{} {:?}", i + 1, crop_boxes.len(), crop_box);
            }
            data.extend(self.process_crop(sam, image, *crop_box, *layer as usize, (h, w), &mut timings)?);
        }
        if crop_boxes.len() > 1 {
            let scores: Vec<f32> = data
                .iter()
                .map(|c| {
                    let [x0, y0, x1, y1] = c.crop_box;
                    1.0 / ((x1 - x0) * (y1 - y0)) as f32
                })
                .collect();
            let keep = nms(
                &data.iter().map(|c| c.bbox).collect::<Vec<_>>(),
                &scores,
                self.options.crop_nms_thresh,
            );
            data = keep.into_iter().map(|i| data[i].clone()).collect();
        }
        if self.options.min_mask_region_area > 0 {
            data = postprocess_small_regions(
                data,
                (h, w),
                self.options.min_mask_region_area as f64,
                self.options.box_nms_thresh.max(self.options.crop_nms_thresh),
            )?;
        }
        let size = ImageSize::new(w, h);
        let records = data
            .into_iter()
            .map(|c| {
                let area: u64 = c.counts.iter().skip(1).step_by(2).map(|&v| u64::from(v)).sum();
                let rle = Rle::from_counts(size, c.counts).map_err(|e| SamError::Image(e.to_string()))?;
                let [x0, y0, x1, y1] = c.bbox;
                let [cx0, cy0, cx1, cy1] = c.crop_box;
                Ok(AmgRecord {
                    segmentation: RleRecord {
                        size: [h, w],
                        counts: rle.to_compressed(),
                    },
                    area,
                    bbox: [x0, y0, x1 - x0, y1 - y0],
                    predicted_iou: f64::from(c.iou),
                    point_coords: vec![c.point],
                    stability_score: f64::from(c.stability),
                    crop_box: [cx0, cy0, cx1 - cx0, cy1 - cy0],
                })
            })
            .collect::<Result<Vec<_>, SamError>>()?;
        let total = start.elapsed().as_secs_f64() * 1e3;
        timings.post_ms = total - timings.encode_ms - timings.decode_ms;
        Ok((records, timings))
    }

    fn process_crop(
        &self,
        sam: &Sam,
        image: &RgbImage,
        crop_box: [i64; 4],
        layer: usize,
        orig: (u32, u32),
        timings: &mut AmgTimings,
    ) -> Result<Vec<Candidate>, SamError> {
        let [x0, y0, x1, y1] = crop_box;
        let cropped =
            image::imageops::crop_imm(image, x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32)
                .to_image();
        let t = Instant::now();
        let embedding = sam.embed_image(&cropped)?;
        timings.encode_ms += t.elapsed().as_secs_f64() * 1e3;
        let plan = if self.reference_upscaling {
            None
        } else {
            let low = sam.low_res_size();
            let (ih, iw) = embedding.input_size;
            let (ch, cw) = embedding.original_size;
            UpscalePlan::probe(
                (low.0 as usize, low.1 as usize),
                sam.img_size() as usize,
                (ih as usize, iw as usize),
                (ch as usize, cw as usize),
                embedding.features.device(),
            )
        };
        let (cw, ch) = (f64::from(cropped.width()), f64::from(cropped.height()));
        let points: Vec<[f64; 2]> = self.point_grids[layer]
            .iter()
            .map(|p| [p[0] * cw, p[1] * ch])
            .collect();
        // The decoder's image-only work, once per crop; checked against the per-prompt
        // decoder on the first points before it is trusted.
        let t = Instant::now();
        let shared = match &plan {
            Some(plan) => sam.share_image(&embedding).filter(|shared| {
                // Two decoder groups against one batch: also catches a LibTorch whose
                // values depend on the batch size.
                let n = points
                    .len()
                    .min(self.options.points_per_batch)
                    .min(2 * DECODE_GROUP as usize);
                self.shared_decoder_matches(sam, &embedding, shared, &points[..n], plan)
                    .unwrap_or(false)
            }),
            None => None,
        };
        timings.decode_ms += t.elapsed().as_secs_f64() * 1e3;
        timings.crops += 1;
        timings.exact_upscaling_crops += u32::from(plan.is_some());
        timings.shared_decoder_crops += u32::from(shared.is_some());
        let mut data = Vec::new();
        let n_batches = points.len().div_ceil(self.options.points_per_batch);
        for (b, batch) in points.chunks(self.options.points_per_batch).enumerate() {
            if !self.quiet {
                eprintln!(
                    "sam:   points batch {}/{} ({} points)",
                    b + 1,
                    n_batches,
                    batch.len()
                );
            }
            let decoder = Decoder {
                plan: plan.as_ref(),
                shared: shared.as_ref(),
            };
            data.extend(self.process_batch(sam, &embedding, batch, crop_box, orig, decoder, timings)?);
        }
        let boxes: Vec<[i64; 4]> = data.iter().map(|c| c.bbox).collect();
        let scores: Vec<f32> = data.iter().map(|c| c.iou).collect();
        let keep = nms(&boxes, &scores, self.options.box_nms_thresh);
        let (hi, lo, _) = self.stability_thresholds();
        let mut out = Vec::with_capacity(keep.len());
        for i in keep {
            let c = &data[i];
            let (counts, stability) = match &c.mask {
                PendingMask::Counts(counts) => (counts.clone(), c.stability),
                PendingMask::Logits { low, margin } => {
                    let plan = plan.as_ref().ok_or_else(|| {
                        SamError::Torch(tch::TchError::Kind("logits candidate without a plan".into()))
                    })?;
                    // A deferred score (no stability filter) is counted for survivors only.
                    let stability = c
                        .stability
                        .unwrap_or_else(|| stability_score(plan, low, *margin, hi, lo));
                    let (bits, w, h) = rasterize(plan, low, *margin, c.bbox);
                    let [bx0, by0, _, _] = c.bbox;
                    let counts = crop_rle_counts(&bits, w, h, [x0 + bx0, y0 + by0, 0, 0], orig);
                    (counts, Some(stability))
                }
            };
            let stability = stability.ok_or_else(|| {
                SamError::Torch(tch::TchError::Kind(
                    "a candidate without its stability score".into(),
                ))
            })?;
            out.push(Candidate {
                counts,
                bbox: [c.bbox[0] + x0, c.bbox[1] + y0, c.bbox[2] + x0, c.bbox[3] + y0],
                iou: c.iou,
                point: [c.point[0] + x0 as f64, c.point[1] + y0 as f64],
                stability,
                crop_box,
            });
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn process_batch(
        &self,
        sam: &Sam,
        embedding: &ImageEmbedding,
        points: &[[f64; 2]],
        crop_box: [i64; 4],
        orig: (u32, u32),
        decoder: Decoder,
        timings: &mut AmgTimings,
    ) -> Result<Vec<Pending>, SamError> {
        let (in_points, in_labels) = point_prompts(sam, embedding, points);
        let t = Instant::now();
        let iou_thr = self.options.pred_iou_thresh as f32;
        let iou_filter = |iou: &[f32]| -> Vec<usize> {
            (0..iou.len())
                .filter(|&i| {
                    self.options.pred_iou_thresh <= 0.0
                        || iou[i].partial_cmp(&iou_thr) == Some(std::cmp::Ordering::Greater)
                })
                .collect()
        };
        let (Some(plan), Some(shared)) = (decoder.plan, decoder.shared) else {
            let (low_res, iou) =
                sam.predict_low_res(embedding, Some((&in_points, &in_labels)), None, None, true);
            let iou = Vec::<f32>::try_from(&iou.flatten(0, 1).f_to_device(tch::Device::Cpu)?)?;
            // The IoU filter needs no mask: apply it before any upscaling.
            let kept = iou_filter(&iou);
            let ctx = BatchContext {
                iou: &iou,
                points,
                k: iou.len() / points.len(),
                crop_box,
                orig,
            };
            if let Some(plan) = decoder.plan {
                let low_res = low_res.flatten(0, 1).f_to_device(tch::Device::Cpu)?.contiguous();
                timings.decode_ms += t.elapsed().as_secs_f64() * 1e3;
                let rows: Vec<(usize, usize)> = kept.iter().map(|&i| (i, i)).collect();
                return self.fast_candidates(plan, &low_res, &rows, &ctx);
            }
            let masks = {
                let _guard = tch::no_grad_guard();
                sam.postprocess_masks(&low_res, embedding.input_size, embedding.original_size)
            };
            let masks = masks.flatten(0, 1).f_to_device(tch::Device::Cpu)?.contiguous();
            timings.decode_ms += t.elapsed().as_secs_f64() * 1e3;
            return self.reference_candidates(&masks, embedding.original_size, &kept, &ctx);
        };
        // Fast decoder: the transformer and the IoU head for every prompt, then the mask
        // upscaling only for prompts with a mask that passed the IoU filter, and only for
        // the embedding cells that reach the image.
        let decoded = sam.decode_points_shared(shared, &in_points, &in_labels);
        let k_all = sam.mask_decoder().num_mask_tokens();
        let iou = Vec::<f32>::try_from(
            &decoded
                .iou
                .narrow(1, 1, k_all - 1)
                .flatten(0, 1)
                .f_to_device(tch::Device::Cpu)?,
        )?;
        let k = (k_all - 1) as usize;
        let kept = iou_filter(&iou);
        let mut prompts: Vec<i64> = kept.iter().map(|&i| (i / k) as i64).collect();
        prompts.dedup();
        let ctx = BatchContext {
            iou: &iou,
            points,
            k,
            crop_box,
            orig,
        };
        if prompts.is_empty() {
            timings.decode_ms += t.elapsed().as_secs_f64() * 1e3;
            return Ok(Vec::new());
        }
        let selected = prompts.len();
        if selected == 1 && points.len() > 1 {
            // A batch of one takes another convolution path in LibTorch; decode a second
            // prompt along (its masks are ignored) to stay on the batched one.
            prompts.push(if prompts[0] == 0 { 1 } else { 0 });
        }
        let low_res = self.upscale_prompts(sam, embedding, &decoded, &prompts, plan)?;
        timings.decode_ms += t.elapsed().as_secs_f64() * 1e3;
        let rows: Vec<(usize, usize)> = kept
            .iter()
            .map(|&i| {
                let p = prompts[..selected].partition_point(|&q| q < (i / k) as i64);
                (i, p * k + i % k)
            })
            .collect();
        self.fast_candidates(plan, &low_res, &rows, &ctx)
    }

    /// Low-res logits `(S·K, rows, cols)` of the multimask outputs of `prompts`, for the
    /// embedding cells that reach the image under `plan`.
    fn upscale_prompts(
        &self,
        sam: &Sam,
        embedding: &ImageEmbedding,
        decoded: &DecodedTokens,
        prompts: &[i64],
        plan: &UpscalePlan,
    ) -> Result<Tensor, SamError> {
        let grid = embedding.features.size();
        let (gh, gw) = (grid[grid.len() - 2], grid[grid.len() - 1]);
        let (lh, lw) = sam.low_res_size();
        let (fy, fx) = ((lh / gh).max(1), (lw / gw).max(1));
        let (ur, uc) = plan.used();
        let cells = (
            ((ur as i64 + fy - 1) / fy).clamp(1, gh),
            ((uc as i64 + fx - 1) / fx).clamp(1, gw),
        );
        let k_all = sam.mask_decoder().num_mask_tokens();
        let low = sam
            .mask_decoder()
            .upscale_selected(decoded, prompts, (gh, gw), cells)
            .narrow(1, 1, k_all - 1);
        Ok(low.flatten(0, 1).f_to_device(tch::Device::Cpu)?.contiguous())
    }

    /// Whether the shared-image decoder gives bit-identical IoU predictions and low-res
    /// logits to the per-prompt decoder on `points` (the assumption behind it: LibTorch's
    /// matrix products and convolutions compute each row and each sample the same way
    /// whatever the batch size, which holds on the CPUs we test on but is not a contract).
    fn shared_decoder_matches(
        &self,
        sam: &Sam,
        embedding: &ImageEmbedding,
        shared: &SharedImage,
        points: &[[f64; 2]],
        plan: &UpscalePlan,
    ) -> Result<bool, SamError> {
        if points.is_empty() {
            return Ok(false);
        }
        let (in_points, in_labels) = point_prompts(sam, embedding, points);
        let (low_ref, iou_ref) =
            sam.predict_low_res(embedding, Some((&in_points, &in_labels)), None, None, true);
        let decoded = sam.decode_points_shared(shared, &in_points, &in_labels);
        let k_all = sam.mask_decoder().num_mask_tokens();
        if !decoded.iou.narrow(1, 1, k_all - 1).equal(&iou_ref) {
            return Ok(false);
        }
        let prompts: Vec<i64> = (0..points.len() as i64).collect();
        let low = self.upscale_prompts(sam, embedding, &decoded, &prompts, plan)?;
        let s = low.size();
        let want = low_ref
            .flatten(0, 1)
            .narrow(1, 0, s[1])
            .narrow(2, 0, s[2])
            .f_to_device(tch::Device::Cpu)?;
        Ok(low.equal(&want))
    }

    /// The candidates of one batch from fully upscaled logits `(B·K, H, W)`, as upstream
    /// computes them.
    fn reference_candidates(
        &self,
        masks: &Tensor,
        size: (u32, u32),
        kept: &[usize],
        ctx: &BatchContext,
    ) -> Result<Vec<Pending>, SamError> {
        let (ch, cw) = (size.0 as usize, size.1 as usize);
        let px = ch * cw;
        let n = ctx.iou.len();
        if masks.kind() != Kind::Float || !masks.is_contiguous() || masks.numel() != n * px {
            return Err(SamError::Torch(tch::TchError::Kind(format!(
                "mask logits are {:?} {:?}, expected contiguous f32 [{n}, {ch}, {cw}]",
                masks.kind(),
                masks.size(),
            ))));
        }
        // SAFETY: `masks` (contiguous, of exactly n * px elements: checked above) outlives
        // this slice and is only read while it lives.
        let all: &[f32] = unsafe { floats(masks) };
        let (hi, lo, stab_thr) = self.stability_thresholds();
        // Sequential on purpose: LibTorch's OpenMP workers spin between operations, and a
        // second thread pool (rayon) contending with them made the next decoder call up to
        // 8x slower on two cores; one pass per mask is fast enough.
        let mut out = Vec::new();
        for &i in kept {
            let logits = &all[i * px..(i + 1) * px];
            let (mut inter, mut union) = (0u32, 0u32);
            for &v in logits {
                inter += u32::from(v > hi);
                union += u32::from(v > lo);
            }
            let stability = inter as f32 / union as f32;
            if !self.passes_stability(stability, stab_thr) {
                continue;
            }
            let bits: Vec<u8> = logits
                .iter()
                .map(|&v| u8::from(v > MASK_THRESHOLD as f32))
                .collect();
            let bbox = mask_to_box(&bits, cw, ch);
            if ctx.near_crop_edge(bbox) {
                continue;
            }
            out.push(Pending {
                mask: PendingMask::Counts(crop_rle_counts(&bits, cw, ch, ctx.crop_box, ctx.orig)),
                bbox,
                iou: ctx.iou[i],
                point: ctx.points[i / ctx.k],
                stability: Some(stability),
            });
        }
        Ok(out)
    }

    /// The candidates of one batch from low-res logits `(B·K, 4h, 4w)`: the same decisions
    /// as [`Self::reference_candidates`], with exact values only where a footprint
    /// straddles a threshold (see [`upscale`]).
    fn fast_candidates(
        &self,
        plan: &UpscalePlan,
        low_res: &Tensor,
        rows: &[(usize, usize)],
        ctx: &BatchContext,
    ) -> Result<Vec<Pending>, SamError> {
        let size = low_res.size();
        let (lh, lw) = match size[..] {
            [_, h, w] => (h as usize, w as usize),
            _ => {
                return Err(SamError::Torch(tch::TchError::Kind(format!(
                    "low-res logits have shape {size:?}"
                ))))
            }
        };
        let n = size[0] as usize;
        let (ur, uc) = plan.used();
        if low_res.kind() != Kind::Float
            || !low_res.is_contiguous()
            || lh < ur
            || lw < uc
            || rows.iter().any(|&(_, r)| r >= n)
        {
            return Err(SamError::Torch(tch::TchError::Kind(format!(
                "low-res logits are {:?} {size:?}, expected contiguous f32 [{n}, >={ur}, >={uc}]",
                low_res.kind()
            ))));
        }
        // SAFETY: `low_res` (contiguous, of exactly n * lh * lw elements: checked above)
        // outlives this slice and is only read while it lives.
        let all: &[f32] = unsafe { floats(low_res) };
        let (hi, lo, stab_thr) = self.stability_thresholds();
        let t0 = MASK_THRESHOLD as f32;
        // Candidates in parallel on LibTorch's threads (each on its own; collected in
        // order, so the same records).
        let candidate = |&(i, row): &(usize, usize)| -> Option<Pending> {
            let mask = &all[row * lh * lw..(row + 1) * lh * lw];
            let mut data = Vec::with_capacity(ur * uc);
            for r in 0..ur {
                data.extend_from_slice(&mask[r * lw..r * lw + uc]);
            }
            let low = LowRes {
                data,
                r0: 0,
                c0: 0,
                h: ur,
                w: uc,
            };
            let margin = upscale::margin(&low);
            // Without a stability filter only NMS's survivors need the score (two of the
            // three walks over each candidate's logits): their logits are kept down to the
            // lowest of its two thresholds and the mask's (a negative offset puts `hi` below
            // `lo`) for it.
            let (stability, kept_above) = if !self.filters_stability() {
                (None, lo.min(hi).min(t0))
            } else {
                let stability = stability_score(plan, &low, margin, hi, lo);
                if !self.passes_stability(stability, stab_thr) {
                    return None;
                }
                (Some(stability), t0)
            };
            let bbox = box_above(plan, &low, t0, margin);
            if ctx.near_crop_edge(bbox) {
                return None;
            }
            let low = match upscale::window(&low, kept_above, margin) {
                Some(w) => low.sub(w.rows, w.cols),
                None => low.sub(0..0, 0..0),
            };
            Some(Pending {
                mask: PendingMask::Logits { low, margin },
                bbox,
                iou: ctx.iou[i],
                point: ctx.points[i / ctx.k],
                stability,
            })
        };
        let mut out: Vec<Option<Pending>> = (0..rows.len()).map(|_| None).collect();
        for_each_chunk_mut(&mut out, 1, |j, slot| slot[0] = candidate(&rows[j]));
        Ok(out.into_iter().flatten().collect())
    }

    /// `(mask_threshold + offset, mask_threshold - offset, stability_score_thresh)` as the
    /// float32 values torch compares with.
    fn stability_thresholds(&self) -> (f32, f32, f32) {
        let o = self.options.stability_score_offset;
        (
            (MASK_THRESHOLD + o) as f32,
            (MASK_THRESHOLD - o) as f32,
            self.options.stability_score_thresh as f32,
        )
    }

    fn passes_stability(&self, stability: f32, thr: f32) -> bool {
        // NaN (an empty union) fails the test, as in torch.
        !self.filters_stability() || stability.partial_cmp(&thr).is_some_and(|o| o.is_ge())
    }

    /// Whether the stability filter can drop a candidate: not at a threshold of 0 or below,
    /// where every score passes (so a score nothing else reads need not be computed).
    fn filters_stability(&self) -> bool {
        self.options.stability_score_thresh > 0.0
    }
}

/// How one crop's batches are decoded: with an exact upscaling plan (or the reference's
/// upscaling without one) and with the shared-image decoder (or the per-prompt one).
#[derive(Debug, Clone, Copy)]
struct Decoder<'a> {
    plan: Option<&'a UpscalePlan>,
    shared: Option<&'a SharedImage>,
}

/// Point prompts for a batch of grid points (image pixels of the crop): coordinates
/// `(B, 1, 2)` in the resized-input frame and foreground labels `(B, 1)`.
fn point_prompts(sam: &Sam, embedding: &ImageEmbedding, points: &[[f64; 2]]) -> (Tensor, Tensor) {
    let long = sam.img_size();
    let n = points.len() as i64;
    let transformed: Vec<f64> = points
        .iter()
        .flat_map(|p| {
            let (x, y) = apply_coords(p[0], p[1], embedding.original_size, long);
            [x, y]
        })
        .collect();
    let device = embedding.features.device();
    (
        Tensor::from_slice(&transformed).view([n, 1, 2]).to_device(device),
        Tensor::ones([n, 1], (Kind::Int, device)),
    )
}

/// What the candidates of one batch share.
struct BatchContext<'a> {
    iou: &'a [f32],
    points: &'a [[f64; 2]],
    /// Masks per point.
    k: usize,
    crop_box: [i64; 4],
    orig: (u32, u32),
}

impl BatchContext<'_> {
    fn near_crop_edge(&self, bbox: [i64; 4]) -> bool {
        is_box_near_crop_edge(
            bbox,
            self.crop_box,
            [0, 0, i64::from(self.orig.1), i64::from(self.orig.0)],
        )
    }
}

/// `calculate_stability_score` of the upscaled mask: its pixels above `hi` over those above
/// `lo`, as float32 (NaN when none is above `lo`, as in torch).
fn stability_score(plan: &UpscalePlan, low: &LowRes, margin: f32, hi: f32, lo: f32) -> f32 {
    count_above(plan, low, hi, margin) as f32 / count_above(plan, low, lo, margin) as f32
}

/// Pixels of the upscaled mask above `t`.
fn count_above(plan: &UpscalePlan, low: &LowRes, t: f32, margin: f32) -> u64 {
    let mut n = 0u64;
    plan.walk(low, t, margin, |ys, xs, values| match values {
        None => n += (ys.len() * xs.len()) as u64,
        Some(v) => n += v.iter().filter(|&&x| x > t).count() as u64,
    });
    n
}

/// `batched_mask_to_box` of the upscaled mask `> t`: `[x0, y0, x1, y1]` inclusive, zeros
/// when empty.
fn box_above(plan: &UpscalePlan, low: &LowRes, t: f32, margin: f32) -> [i64; 4] {
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0usize, 0usize);
    plan.walk(low, t, margin, |ys, xs, values| match values {
        None => {
            x0 = x0.min(xs.start);
            x1 = x1.max(xs.end - 1);
            y0 = y0.min(ys.start);
            y1 = y1.max(ys.end - 1);
        }
        Some(v) => {
            let w = xs.len();
            for (j, &val) in v.iter().enumerate() {
                if val > t {
                    let (y, x) = (ys.start + j / w, xs.start + j % w);
                    x0 = x0.min(x);
                    x1 = x1.max(x);
                    y0 = y0.min(y);
                    y1 = y1.max(y);
                }
            }
        }
    });
    if x0 == usize::MAX {
        [0, 0, 0, 0]
    } else {
        [x0 as i64, y0 as i64, x1 as i64, y1 as i64]
    }
}

/// The upscaled mask `> 0` inside `bbox` (inclusive, crop frame), row-major, with its width
/// and height.
fn rasterize(plan: &UpscalePlan, low: &LowRes, margin: f32, bbox: [i64; 4]) -> (Vec<u8>, usize, usize) {
    let [bx0, by0, bx1, by1] = bbox.map(|v| v as usize);
    let (w, h) = (bx1 - bx0 + 1, by1 - by0 + 1);
    let mut bits = vec![0u8; w * h];
    let t = MASK_THRESHOLD as f32;
    plan.walk(low, t, margin, |ys, xs, values| match values {
        None => {
            for y in ys {
                let row = &mut bits[(y - by0) * w..(y - by0 + 1) * w];
                row[xs.start - bx0..xs.end - bx0].fill(1);
            }
        }
        Some(v) => {
            let xw = xs.len();
            for (j, &val) in v.iter().enumerate() {
                if val > t {
                    let (y, x) = (ys.start + j / xw, xs.start + j % xw);
                    bits[(y - by0) * w + (x - bx0)] = 1;
                }
            }
        }
    });
    (bits, w, h)
}

/// `build_point_grid`: `n × n` cell centres in `[0, 1]²`, x varying fastest, computed as
/// `numpy.linspace` does.
fn build_point_grid(n: usize) -> Vec<[f64; 2]> {
    let offset = 1.0 / (2.0 * n as f64);
    let side: Vec<f64> = if n == 1 {
        vec![offset]
    } else {
        let (start, stop) = (offset, 1.0 - offset);
        let step = (stop - start) / (n - 1) as f64;
        (0..n)
            .map(|i| if i == n - 1 { stop } else { i as f64 * step + start })
            .collect()
    };
    let mut grid = Vec::with_capacity(n * n);
    for &y in &side {
        for &x in &side {
            grid.push([x, y]);
        }
    }
    grid
}

/// `generate_crop_boxes`: the whole image, then `2^i × 2^i` overlapping crops per layer, as
/// `[x0, y0, x1, y1]` with their layer index.
fn generate_crop_boxes(im_size: (u32, u32), n_layers: u32, overlap_ratio: f64) -> (Vec<[i64; 4]>, Vec<u32>) {
    let (im_h, im_w) = (i64::from(im_size.0), i64::from(im_size.1));
    let short_side = im_h.min(im_w);
    let mut boxes = vec![[0, 0, im_w, im_h]];
    let mut layers = vec![0];
    let crop_len = |orig_len: i64, n_crops: i64, overlap: i64| -> i64 {
        (((overlap * (n_crops - 1) + orig_len) as f64) / n_crops as f64).ceil() as i64
    };
    for i_layer in 0..n_layers {
        let n_crops = 1i64 << (i_layer + 1);
        let overlap = (overlap_ratio * short_side as f64 * (2.0 / n_crops as f64)) as i64;
        let crop_w = crop_len(im_w, n_crops, overlap);
        let crop_h = crop_len(im_h, n_crops, overlap);
        let x0s: Vec<i64> = (0..n_crops).map(|i| (crop_w - overlap) * i).collect();
        let y0s: Vec<i64> = (0..n_crops).map(|i| (crop_h - overlap) * i).collect();
        for &x0 in &x0s {
            for &y0 in &y0s {
                boxes.push([x0, y0, (x0 + crop_w).min(im_w), (y0 + crop_h).min(im_h)]);
                layers.push(i_layer + 1);
            }
        }
    }
    (boxes, layers)
}

/// `batched_mask_to_box` for one row-major `w × h` mask: `[x0, y0, x1, y1]` with inclusive
/// maxima, `[0, 0, 0, 0]` when empty.
fn mask_to_box(bits: &[u8], w: usize, h: usize) -> [i64; 4] {
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0usize, 0usize);
    for y in 0..h {
        let row = &bits[y * w..(y + 1) * w];
        let Some(first) = row.iter().position(|&b| b != 0) else {
            continue;
        };
        let last = row.iter().rposition(|&b| b != 0).unwrap_or(first);
        x0 = x0.min(first);
        x1 = x1.max(last);
        y0 = y0.min(y);
        y1 = y;
    }
    if x0 == usize::MAX {
        [0, 0, 0, 0]
    } else {
        [x0 as i64, y0 as i64, x1 as i64, y1 as i64]
    }
}

/// `is_box_near_crop_edge`: a (crop-frame) box within 20 px of a crop edge that is not
/// also an image edge.
fn is_box_near_crop_edge(bbox: [i64; 4], crop_box: [i64; 4], orig_box: [i64; 4]) -> bool {
    let b = [
        bbox[0] + crop_box[0],
        bbox[1] + crop_box[1],
        bbox[2] + crop_box[0],
        bbox[3] + crop_box[1],
    ];
    (0..4).any(|i| {
        let near_crop = ((b[i] - crop_box[i]) as f32).abs() as f64 <= CROP_EDGE_ATOL;
        let near_image = ((b[i] - orig_box[i]) as f32).abs() as f64 <= CROP_EDGE_ATOL;
        near_crop && !near_image
    })
}

/// Column-major run lengths of a crop mask pasted into the full image
/// (`uncrop_masks` + `mask_to_rle_pytorch`), starting with a run of zeros.
fn crop_rle_counts(bits: &[u8], cw: usize, ch: usize, crop_box: [i64; 4], orig: (u32, u32)) -> Vec<u32> {
    let (h, w) = (orig.0 as usize, orig.1 as usize);
    let (x0, y0) = (crop_box[0] as usize, crop_box[1] as usize);
    let mut counts = Vec::new();
    let mut current = 0u8;
    let mut run = 0u32;
    let push = |v: u8, n: usize, current: &mut u8, run: &mut u32, counts: &mut Vec<u32>| {
        if n == 0 {
            return;
        }
        if v != *current {
            counts.push(*run);
            *run = 0;
            *current = v;
        }
        *run += n as u32;
    };
    for x in 0..w {
        if x < x0 || x >= x0 + cw {
            push(0, h, &mut current, &mut run, &mut counts);
            continue;
        }
        let cx = x - x0;
        push(0, y0, &mut current, &mut run, &mut counts);
        for cy in 0..ch {
            push(bits[cy * cw + cx], 1, &mut current, &mut run, &mut counts);
        }
        push(0, h - y0 - ch, &mut current, &mut run, &mut counts);
    }
    counts.push(run);
    counts
}

/// torchvision's `nms` (CPU kernel) on integer boxes in `f32`: indices kept, by descending
/// score (ties in index order, as its stable sort leaves them).
fn nms(boxes: &[[i64; 4]], scores: &[f32], iou_threshold: f64) -> Vec<usize> {
    let n = boxes.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        let (sa, sb) = (scores[a], scores[b]);
        // Descending; NaN sorts first, as in torch.sort(descending=True).
        match (sa.is_nan(), sb.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Less,
            (false, true) => std::cmp::Ordering::Greater,
            _ => sb.partial_cmp(&sa).unwrap_or(std::cmp::Ordering::Equal),
        }
    });
    let f: Vec<[f32; 4]> = boxes.iter().map(|b| b.map(|v| v as f32)).collect();
    let areas: Vec<f32> = f.iter().map(|b| (b[2] - b[0]) * (b[3] - b[1])).collect();
    let mut suppressed = vec![false; n];
    let mut keep = Vec::new();
    for (oi, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        let [ix1, iy1, ix2, iy2] = f[i];
        for &j in &order[oi + 1..] {
            if suppressed[j] {
                continue;
            }
            let xx1 = ix1.max(f[j][0]);
            let yy1 = iy1.max(f[j][1]);
            let xx2 = ix2.min(f[j][2]);
            let yy2 = iy2.min(f[j][3]);
            let iw = (xx2 - xx1).max(0.0);
            let ih = (yy2 - yy1).max(0.0);
            let inter = iw * ih;
            let ovr = inter / (areas[i] + areas[j] - inter);
            if f64::from(ovr) > iou_threshold {
                suppressed[j] = true;
            }
        }
    }
    keep
}

/// Full-image row-major bits from column-major counts.
fn counts_to_bits(counts: &[u32], h: usize, w: usize) -> Vec<u8> {
    let mut bits = vec![0u8; h * w];
    let mut idx = 0usize;
    let mut value = 0u8;
    for &c in counts {
        if value == 1 {
            for p in idx..idx + c as usize {
                let (x, y) = (p / h, p % h);
                bits[y * w + x] = 1;
            }
        }
        idx += c as usize;
        value ^= 1;
    }
    bits
}

/// `postprocess_small_regions`.
fn postprocess_small_regions(
    data: Vec<Candidate>,
    orig: (u32, u32),
    min_area: f64,
    nms_thresh: f64,
) -> Result<Vec<Candidate>, SamError> {
    if data.is_empty() {
        return Ok(data);
    }
    let (h, w) = (orig.0 as usize, orig.1 as usize);
    let mut new_masks = Vec::with_capacity(data.len());
    let mut scores = Vec::with_capacity(data.len());
    let mut boxes = Vec::with_capacity(data.len());
    for c in &data {
        let mask = counts_to_bits(&c.counts, h, w);
        let (mask, changed_holes) = remove_small_regions(&mask, w, h, min_area, RegionMode::Holes)?;
        let (mask, changed_islands) = remove_small_regions(&mask, w, h, min_area, RegionMode::Islands)?;
        let unchanged = !changed_holes && !changed_islands;
        boxes.push(mask_to_box(&mask, w, h));
        scores.push(if unchanged { 1.0f32 } else { 0.0 });
        new_masks.push(mask);
    }
    let keep = nms(&boxes, &scores, nms_thresh);
    Ok(keep
        .into_iter()
        .map(|i| {
            let mut c = data[i].clone();
            if scores[i] == 0.0 {
                c.counts = crop_rle_counts(&new_masks[i], w, h, [0, 0, w as i64, h as i64], orig);
                c.bbox = boxes[i];
            }
            c
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_grid_matches_linspace() {
        let g = build_point_grid(4);
        assert_eq!(g.len(), 16);
        assert_eq!(g[0], [0.125, 0.125]);
        assert_eq!(g[1], [0.375, 0.125]);
        assert_eq!(g[15], [0.875, 0.875]);
        assert_eq!(build_point_grid(1), vec![[0.5, 0.5]]);
    }

    #[test]
    fn crop_boxes_match_reference() {
        // generate_crop_boxes((133, 200), 1, 512/1500) in Python.
        let (boxes, layers) = generate_crop_boxes((133, 200), 1, 512.0 / 1500.0);
        assert_eq!(boxes[0], [0, 0, 200, 133]);
        assert_eq!(layers, vec![0, 1, 1, 1, 1]);
        assert_eq!(boxes[1], [0, 0, 123, 89]);
        assert_eq!(boxes[2], [0, 44, 123, 133]);
        assert_eq!(boxes[3], [78, 0, 200, 89]);
    }

    #[test]
    fn rle_of_pasted_crop() {
        // 2x2 crop at (1, 1) in a 4x3 image (h=3, w=4), crop fully set.
        let counts = crop_rle_counts(&[1, 1, 1, 1], 2, 2, [1, 1, 3, 3], (3, 4));
        assert_eq!(counts, vec![4, 2, 1, 2, 3]);
        let bits = counts_to_bits(&counts, 3, 4);
        assert_eq!(mask_to_box(&bits, 4, 3), [1, 1, 2, 2]);
        let empty = crop_rle_counts(&[0, 0, 0, 0], 2, 2, [0, 0, 2, 2], (3, 4));
        assert_eq!(empty, vec![12]);
        let first_on = crop_rle_counts(&[1, 0, 0, 0], 2, 2, [0, 0, 2, 2], (3, 4));
        assert_eq!(first_on, vec![0, 1, 11]);
    }

    #[test]
    fn nms_keeps_best_and_ties_in_index_order() {
        let boxes = [[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60], [0, 0, 10, 10]];
        assert_eq!(nms(&boxes, &[0.5, 0.9, 0.1, 0.9], 0.5), vec![1, 2]);
        assert_eq!(nms(&boxes, &[1.0, 1.0, 1.0, 1.0], 0.5), vec![0, 2]);
        assert_eq!(nms(&boxes, &[1.0, 1.0, 1.0, 1.0], 0.99), vec![0, 1, 2]);
    }
}
