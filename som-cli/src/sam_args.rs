//! `--segmenter sam`: SAM's automatic mask generator (needs the `torch` feature).
//!
//! The generator options keep `segment_anything`'s names and defaults
//! (`--points-per-side 32`, `--pred-iou-thresh 0.88`, …). The model size is read from the
//! checkpoint unless `--sam-model` names it (`--model` already names the LMM of `som ask`).
//! The checkpoint, threads and progress options are shared with the other torch
//! segmenters ([`crate::model_args::ModelArgs`]).

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
}

/// Options of `--segmenter sam`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "SAM (--segmenter sam, needs the torch feature)")]
pub struct SamArgs {
    /// Model size of the checkpoint (default: recognised from the checkpoint).
    #[arg(long, value_enum, value_name = "MODEL")]
    pub sam_model: Option<SamModelArg>,
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
    /// Loads the checkpoint and builds the segmenter.
    ///
    /// # Errors
    /// No `--checkpoint`, a bad checkpoint or option, or a build without `torch`.
    #[cfg(feature = "torch")]
    pub fn build(&self, model: &ModelArgs) -> anyhow::Result<Box<dyn Segmenter>> {
        use anyhow::Context;
        use som_segment::sam::{AmgOptions, Sam, SamModel, SamSegmenter, SamSegmenterOptions};

        let path = model
            .checkpoint
            .as_ref()
            .context("--segmenter sam needs --checkpoint PATH")?;
        let sam = match self.sam_model {
            Some(m) => {
                let model = match m {
                    SamModelArg::VitB => SamModel::VitB,
                    SamModelArg::VitL => SamModel::VitL,
                    SamModelArg::VitH => SamModel::VitH,
                };
                Sam::load(path, model)?
            }
            None => Sam::load_detect(path)?,
        };
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
        };
        Ok(Box::new(SamSegmenter::new(sam, options)?))
    }

    /// Without the `torch` feature SAM is not available.
    ///
    /// # Errors
    /// Always: this build has no LibTorch.
    #[cfg(not(feature = "torch"))]
    pub fn build(&self, _model: &ModelArgs) -> anyhow::Result<Box<dyn Segmenter>> {
        anyhow::bail!(
            "this som was built without SAM; rebuild with `--features torch` (LibTorch 2.13: tools/setup-libtorch.sh)"
        )
    }
}
