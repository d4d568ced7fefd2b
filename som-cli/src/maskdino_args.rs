//! `--segmenter maskdino`: MaskDINO's instance, panoptic or semantic masks with COCO class
//! names (needs the `torch` feature).
//!
//! The released checkpoint is named by `--maskdino-config` (or recognised from the
//! checkpoint; a JSON `MaskDinoConfig` file loads checkpoints of other widths); `--confidence-threshold` is detectron2's demo flag with its default; the
//! panoptic thresholds keep the config's names (`OBJECT_MASK_THRESHOLD`,
//! `OVERLAP_THRESHOLD`). The checkpoint, threads and progress options are shared with the
//! other torch segmenters ([`crate::model_args::ModelArgs`]).

use clap::{Args, ValueEnum};
use som_core::Segmenter;

use crate::model_args::ModelArgs;

/// MaskDINO's outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MaskdinoTaskArg {
    /// One region per instance scoring at least --confidence-threshold.
    Instance,
    /// One region per panoptic segment (things and merged stuff; panoptic models).
    Panoptic,
    /// One region per class of the per-pixel semantic map (panoptic models).
    Semantic,
}

/// Options of `--segmenter maskdino`.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "MaskDINO (--segmenter maskdino, needs the torch feature)")]
pub struct MaskdinoArgs {
    /// The released model the checkpoint holds: r50_instance, r50_panoptic, swinl_instance,
    /// swinl_panoptic, or a JSON file holding a MaskDinoConfig for other widths (default:
    /// recognised from the checkpoint).
    #[arg(long, value_name = "CONFIG|FILE")]
    pub maskdino_config: Option<String>,
    /// Which output becomes the regions (default: panoptic for *_panoptic models, else instance).
    #[arg(long, value_enum, value_name = "TASK")]
    pub maskdino_task: Option<MaskdinoTaskArg>,
    /// Minimum instance score [default: 0.5]; 0 keeps every instance the model returns (its top 100).
    #[arg(long, value_name = "T")]
    pub confidence_threshold: Option<f64>,
    /// Panoptic: a query whose class score is at most this makes no segment [default: 0.25].
    #[arg(long, value_name = "T")]
    pub object_mask_threshold: Option<f64>,
    /// Panoptic: a segment must keep at least this share of its mask after overlaps [default: 0.8].
    #[arg(long, value_name = "T")]
    pub overlap_threshold: Option<f64>,
}

impl MaskdinoArgs {
    /// The first MaskDINO option given, as its flag: they mean nothing to other segmenters.
    pub fn first_given(&self) -> Option<&'static str> {
        [
            (self.maskdino_config.is_some(), "--maskdino-config"),
            (self.maskdino_task.is_some(), "--maskdino-task"),
            (self.confidence_threshold.is_some(), "--confidence-threshold"),
            (self.object_mask_threshold.is_some(), "--object-mask-threshold"),
            (self.overlap_threshold.is_some(), "--overlap-threshold"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }

    /// Loads the checkpoint and builds the segmenter.
    ///
    /// # Errors
    /// No `--checkpoint`, a bad checkpoint or option, or a build without `torch`.
    #[cfg(feature = "torch")]
    pub fn build(&self, model: &ModelArgs) -> anyhow::Result<Box<dyn Segmenter + Send + Sync>> {
        use anyhow::Context;
        use som_segment::maskdino::{
            MaskDino, MaskDinoConfig, MaskDinoModel, MaskDinoSegmenter, MaskDinoSegmenterOptions,
            MaskDinoTask, DEFAULT_CONFIDENCE_THRESHOLD,
        };

        let path = model
            .checkpoint
            .as_ref()
            .context("--segmenter maskdino needs --checkpoint PATH")?;
        let device = model.device()?;
        let maskdino = match self.maskdino_config.as_deref() {
            None => MaskDino::load_on(path, None, device)?,
            Some(name) => match name.parse::<MaskDinoModel>() {
                Ok(kind) => MaskDino::load_on(path, Some(kind), device)?,
                Err(_) if name.ends_with(".json") => {
                    let text =
                        std::fs::read_to_string(name).with_context(|| format!("cannot read {name}"))?;
                    let config: MaskDinoConfig = serde_json::from_str(&text)
                        .with_context(|| format!("{name} is not a MaskDINO config"))?;
                    let weights = som_segment::torch::Weights::from_file_on(path, device.resolve()?)?;
                    MaskDino::from_weights(&weights, config)?
                }
                Err(e) => return Err(e.into()),
            },
        };
        let task = match self.maskdino_task {
            Some(MaskdinoTaskArg::Instance) => MaskDinoTask::Instance,
            Some(MaskdinoTaskArg::Panoptic) => MaskDinoTask::Panoptic,
            Some(MaskdinoTaskArg::Semantic) => MaskDinoTask::Semantic,
            None => MaskDinoTask::default_for_config(maskdino.config()),
        };
        let options = MaskDinoSegmenterOptions {
            task,
            confidence_threshold: self.confidence_threshold.unwrap_or(DEFAULT_CONFIDENCE_THRESHOLD),
            object_mask_threshold: self.object_mask_threshold,
            overlap_threshold: self.overlap_threshold,
            quiet: model.quiet,
            num_threads: model.threads,
        };
        Ok(Box::new(MaskDinoSegmenter::new(maskdino, options)?))
    }

    /// Without the `torch` feature MaskDINO is not available.
    ///
    /// # Errors
    /// Always: this build has no LibTorch.
    #[cfg(not(feature = "torch"))]
    pub fn build(&self, _model: &ModelArgs) -> anyhow::Result<Box<dyn Segmenter + Send + Sync>> {
        anyhow::bail!(
            "this som was built without MaskDINO; rebuild with `--features torch` (LibTorch 2.13: tools/setup-libtorch.sh)"
        )
    }
}
