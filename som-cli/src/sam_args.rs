//! `--segmenter sam`: SAM's automatic mask generator, or with `--points` / `--prompt-boxes`
//! its predictor on those prompts (needs the `torch` feature).
//!
//! The generator options keep `segment_anything`'s names and defaults
//! (`--points-per-side 32`, `--pred-iou-thresh 0.88`, …). The model (SAM ViT-B/L/H,
//! MobileSAM) is read from the checkpoint unless `--sam-model` names it (`--model` already
//! names the LMM of `som ask`). The checkpoint, threads, device and progress options are
//! shared with the other torch segmenters ([`crate::model_args::ModelArgs`]).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use som_core::Segmenter;

use crate::model_args::ModelArgs;

/// Official SAM model sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SamModelArg {
    /// ViT-B (sam_vit_b_01ec64.pth).
    #[value(name = "vit_b")]
    VitB,
    /// ViT-L (sam_vit_l_0b3195.pth).
    #[value(name = "vit_l")]
    VitL,
    /// ViT-H (sam_vit_h_4b8939.pth).
    #[value(name = "vit_h")]
    VitH,
    /// MobileSAM's TinyViT (mobile_sam.pt).
    #[value(name = "vit_t")]
    VitT,
}

/// Options of `--segmenter sam`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "SAM (--segmenter sam, needs the torch feature)")]
pub struct SamArgs {
    /// Model of the checkpoint (default: recognised from the checkpoint).
    #[arg(long, value_enum, value_name = "MODEL")]
    pub sam_model: Option<SamModelArg>,
    /// Segment only the objects at these points instead of everything: `x,y[,label];…`
    /// in pixels, label 1 (the default) on an object, 0 on the background; one region per
    /// object point, background points apply to all.
    #[arg(long, value_name = "POINTS", allow_hyphen_values = true)]
    pub points: Option<String>,
    /// Segment only the objects in these boxes instead of everything: a JSON list of boxes
    /// as for --boxes (--box-format applies), one region per box, labelled as the box.
    #[arg(long, value_name = "FILE")]
    pub prompt_boxes: Option<PathBuf>,
    /// Points sampled along one side of the image.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub points_per_side: u32,
    /// Points run through the mask decoder at once.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub points_per_batch: usize,
    /// Keep masks whose predicted IoU is above this.
    #[arg(long, value_name = "T", default_value_t = 0.88)]
    pub pred_iou_thresh: f64,
    /// Keep masks whose stability score is at least this.
    #[arg(long, value_name = "T", default_value_t = 0.95)]
    pub stability_score_thresh: f64,
    /// Logit offset of the stability score.
    #[arg(long, value_name = "O", default_value_t = 1.0)]
    pub stability_score_offset: f64,
    /// Box IoU above which NMS removes duplicate masks within a crop.
    #[arg(long, value_name = "T", default_value_t = 0.7)]
    pub box_nms_thresh: f64,
    /// Extra layers of image crops (layer i has 2^i x 2^i crops).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub crop_n_layers: u32,
    /// Box IoU above which NMS removes duplicates between crops.
    #[arg(long, value_name = "T", default_value_t = 0.7)]
    pub crop_nms_thresh: f64,
    /// Overlap of neighbouring crops, as a fraction of the shorter image side.
    #[arg(long, value_name = "R", default_value_t = 512.0 / 1500.0)]
    pub crop_overlap_ratio: f64,
    /// Points per side are divided by this in each crop layer.
    #[arg(long, value_name = "F", default_value_t = 1)]
    pub crop_n_points_downscale_factor: u32,
    /// Fill holes and remove islands smaller than this many pixels (0: off).
    #[arg(long, value_name = "PIXELS", default_value_t = 0)]
    pub min_mask_region_area: u64,
}

impl SamArgs {
    /// The first prompt option given, as its flag (they need `--segmenter sam`).
    pub fn first_prompt_given(&self) -> Option<&'static str> {
        if self.points.is_some() {
            Some("--points")
        } else if self.prompt_boxes.is_some() {
            Some("--prompt-boxes")
        } else {
            None
        }
    }

    /// Loads the checkpoint and builds the segmenter: the predictor on `--points` /
    /// `--prompt-boxes` when given, else the automatic mask generator.
    ///
    /// # Errors
    /// No `--checkpoint`, a bad checkpoint, device, prompt or option, or a build without
    /// `torch`.
    #[cfg(feature = "torch")]
    pub fn build(
        &self,
        model: &ModelArgs,
        box_format: som_segment::BoxFormat,
    ) -> anyhow::Result<Box<dyn Segmenter + Send + Sync>> {
        use anyhow::Context;
        use som_segment::sam::{
            AmgOptions, ObjectPrompt, Sam, SamModel, SamPromptSegmenter, SamSegmenter, SamSegmenterOptions,
        };

        let path = model
            .checkpoint
            .as_ref()
            .context("--segmenter sam needs --checkpoint PATH")?;
        let device = model.device()?;
        // Prompts first: a typo in them should not wait for the weights to load.
        let points = self
            .points
            .as_deref()
            .map(ObjectPrompt::parse_points)
            .transpose()?;
        let boxes = self
            .prompt_boxes
            .as_ref()
            .map(|p| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display())))
            .transpose()?;
        let sam_model = self.sam_model.map(|m| match m {
            SamModelArg::VitB => SamModel::VitB,
            SamModelArg::VitL => SamModel::VitL,
            SamModelArg::VitH => SamModel::VitH,
            SamModelArg::VitT => SamModel::VitT,
        });
        let sam = Sam::load_on(path, sam_model, device)?;
        let options = SamSegmenterOptions {
            amg: AmgOptions {
                points_per_side: self.points_per_side,
                points_per_batch: self.points_per_batch,
                pred_iou_thresh: self.pred_iou_thresh,
                stability_score_thresh: self.stability_score_thresh,
                stability_score_offset: self.stability_score_offset,
                box_nms_thresh: self.box_nms_thresh,
                crop_n_layers: self.crop_n_layers,
                crop_nms_thresh: self.crop_nms_thresh,
                crop_overlap_ratio: self.crop_overlap_ratio,
                crop_n_points_downscale_factor: self.crop_n_points_downscale_factor,
                min_mask_region_area: self.min_mask_region_area,
            },
            quiet: model.quiet,
            num_threads: model.threads,
            device,
        };
        if points.is_none() && boxes.is_none() {
            return Ok(Box::new(SamSegmenter::new(sam, options)?));
        }
        let mut segmenter = SamPromptSegmenter::new(sam, points.unwrap_or_default(), options)?;
        if let Some(json) = boxes {
            segmenter = segmenter.with_boxes(&json, box_format)?;
        }
        Ok(Box::new(segmenter))
    }

    /// Without the `torch` feature SAM is not available.
    ///
    /// # Errors
    /// Always: this build has no LibTorch.
    #[cfg(not(feature = "torch"))]
    pub fn build(
        &self,
        _model: &ModelArgs,
        _box_format: som_segment::BoxFormat,
    ) -> anyhow::Result<Box<dyn Segmenter + Send + Sync>> {
        anyhow::bail!(
            "this som was built without SAM; rebuild with `--features torch` (LibTorch 2.13: tools/setup-libtorch.sh)"
        )
    }
}
