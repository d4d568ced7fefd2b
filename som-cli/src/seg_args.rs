//! Segmenter selection shared by `mark`, `segment` and `ask`.
//!
//! With no option, the segmenter is `classic` (Felzenszwalb plus SoM
//! post-processing). `--regions FILE` reads precomputed regions instead (the
//! kind is picked from the path: a folder of PNG masks, a `.png` label map,
//! or a regions / COCO / SAM AMG JSON), `--boxes FILE` box-only regions.
//! New segmenters add a [`SegmenterKind`] variant, their options in a file of
//! their own (as `sam_args.rs`), and a branch in [`SegmenterArgs::build`];
//! segmenters with weights share [`ModelArgs`].
//!
//! [`SegmenterArgs::build`] is called once per command: a segmenter that loads
//! weights loads them once, however many images follow.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use som_core::json::ImageSelector;
use som_core::{Segmenter, StageTiming};
use som_segment::{
    BoxFormat, BoxOptions, Boxes, Classic, ClassicParams, Felzenszwalb, FelzenszwalbParams, LabelMapOptions,
    Precomputed, RegionSource,
};

use crate::model_args::ModelArgs;

/// The segmenters `--segmenter` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SegmenterKind {
    /// Felzenszwalb graph segmentation plus SoM post-processing (the default).
    Classic,
    /// The raw Felzenszwalb partition, as skimage computes it (hundreds of regions).
    Felzenszwalb,
    /// Precomputed regions from --regions FILE.
    Regions,
    /// Box-only regions from --boxes FILE.
    Boxes,
    /// SAM's automatic mask generator on LibTorch (--checkpoint PATH; needs the torch feature).
    Sam,
    /// MaskDINO instance / panoptic masks with COCO class names (--checkpoint PATH; needs the torch feature).
    Maskdino,
}

/// Box coordinate formats for `--box-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BoxFormatArg {
    /// [x0, y0, x1, y1]
    Xyxy,
    /// [x, y, width, height] (COCO)
    Xywh,
}

/// Where regions come from.
#[derive(Debug, Clone, Args)]
pub struct SegmenterArgs {
    /// Precomputed regions instead of segmenting: a regions JSON, COCO annotation file,
    /// SAM AMG record list, a PNG label map (one id per pixel) or a folder of binary PNG masks.
    #[arg(long, value_name = "FILE")]
    pub regions: Option<PathBuf>,
    /// The segmenter (default: classic; regions with --regions, boxes with --boxes).
    #[arg(long, value_enum, value_name = "NAME")]
    pub segmenter: Option<SegmenterKind>,
    /// Box-only regions from a JSON list of boxes (`[[x0, y0, x1, y1], …]` or objects with bbox/label).
    #[arg(long, value_name = "FILE")]
    pub boxes: Option<PathBuf>,
    /// How boxes that do not say their format are read.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = BoxFormatArg::Xyxy)]
    pub box_format: BoxFormatArg,
    /// Reject boxes that leave the image instead of clipping them.
    #[arg(long)]
    pub no_clip: bool,
    /// In a PNG label map, the pixel value that means "no region" (e.g. 0).
    #[arg(long, value_name = "ID")]
    pub background: Option<u32>,
    /// In a COCO file with several images, the image to use: its id or file name.
    #[arg(long, value_name = "ID|NAME")]
    pub coco_image: Option<String>,
    /// Felzenszwalb scale (higher: larger segments), as in skimage.
    #[arg(long, value_name = "S", default_value_t = FelzenszwalbParams::REFERENCE.scale)]
    pub scale: f64,
    /// Felzenszwalb Gaussian pre-smoothing sigma in pixels, as in skimage.
    #[arg(long, value_name = "G", default_value_t = FelzenszwalbParams::REFERENCE.sigma)]
    pub sigma: f64,
    /// Felzenszwalb minimum segment size in pixels, as in skimage.
    #[arg(long, value_name = "M", default_value_t = FelzenszwalbParams::REFERENCE.min_size)]
    pub min_size: usize,
    /// classic: at most this many regions.
    #[arg(long, value_name = "N", default_value_t = ClassicParams::default().max_regions)]
    pub max_regions: usize,
    /// classic: merging similar neighbours stops at this many regions.
    #[arg(long, value_name = "N", default_value_t = ClassicParams::default().min_regions)]
    pub min_regions: usize,
    /// classic: split regions into 4-connected pieces at the end.
    #[arg(long)]
    pub split_disconnected: bool,
    /// classic: segment images larger than this (longer side, pixels) at this size; 0: native size.
    #[arg(long, value_name = "PX", default_value_t = 1024)]
    pub max_side: u32,
    /// Options of every segmenter with weights (`--checkpoint`, `--threads`, `--quiet`).
    #[command(flatten)]
    pub model: ModelArgs,
    /// SAM options (`--segmenter sam`).
    #[command(flatten)]
    pub sam: crate::sam_args::SamArgs,
    /// MaskDINO options (`--segmenter maskdino`).
    #[command(flatten)]
    pub maskdino: crate::maskdino_args::MaskdinoArgs,
}

/// A segmenter built from the options, and how long loading its model took
/// (`None` for segmenters without weights).
pub struct BuiltSegmenter {
    /// The segmenter (`Send + Sync`: `som serve` shares it between requests).
    pub segmenter: Box<dyn Segmenter + Send + Sync>,
    /// The `load_model` stage, for segmenters that load weights.
    pub load_model: Option<StageTiming>,
}

impl SegmenterArgs {
    /// The segmenter kind these options ask for.
    ///
    /// # Errors
    /// Contradictory options (e.g. `--segmenter classic --regions FILE`).
    pub fn kind(&self) -> anyhow::Result<SegmenterKind> {
        let kind = match (self.segmenter, &self.regions, &self.boxes) {
            (_, Some(_), Some(_)) => bail!("give either --regions or --boxes, not both"),
            (Some(k), _, _) => k,
            (None, Some(_), None) => SegmenterKind::Regions,
            (None, None, Some(_)) => SegmenterKind::Boxes,
            (None, None, None) => SegmenterKind::Classic,
        };
        match kind {
            SegmenterKind::Regions if self.regions.is_none() => {
                bail!("--segmenter regions needs --regions FILE")
            }
            SegmenterKind::Boxes if self.boxes.is_none() => bail!("--segmenter boxes needs --boxes FILE"),
            SegmenterKind::Classic
            | SegmenterKind::Felzenszwalb
            | SegmenterKind::Regions
            | SegmenterKind::Boxes
                if self.model.first_given().is_some() =>
            {
                bail!(
                    "{} is for segmenters with weights (--segmenter sam or maskdino); --segmenter {} has none",
                    self.model.first_given().unwrap_or_default(),
                    kind_name(kind)
                )
            }
            SegmenterKind::Classic
            | SegmenterKind::Felzenszwalb
            | SegmenterKind::Regions
            | SegmenterKind::Boxes
            | SegmenterKind::Maskdino
                if self.sam.first_prompt_given().is_some() =>
            {
                bail!(
                    "{} prompts SAM (--segmenter sam); --segmenter {} takes no prompts",
                    self.sam.first_prompt_given().unwrap_or_default(),
                    kind_name(kind)
                )
            }
            SegmenterKind::Classic
            | SegmenterKind::Felzenszwalb
            | SegmenterKind::Sam
            | SegmenterKind::Maskdino
                if self.regions.is_some() || self.boxes.is_some() =>
            {
                bail!(
                    "--segmenter {} computes regions itself; drop --regions / --boxes",
                    kind_name(kind)
                )
            }
            k if k != SegmenterKind::Maskdino && self.maskdino.first_given().is_some() => bail!(
                "{} is for --segmenter maskdino, not --segmenter {}",
                self.maskdino.first_given().unwrap_or_default(),
                kind_name(kind)
            ),
            _ => Ok(kind),
        }
    }

    fn felzenszwalb_params(&self) -> FelzenszwalbParams {
        FelzenszwalbParams {
            scale: self.scale,
            sigma: self.sigma,
            min_size: self.min_size,
        }
    }

    /// Builds the chosen segmenter (with no options, `classic`), loading its
    /// model if it has one, timed as the `load_model` stage.
    ///
    /// # Errors
    /// Contradictory options, out-of-range parameters or an unusable
    /// checkpoint, with the flag or file named.
    pub fn build(&self) -> anyhow::Result<BuiltSegmenter> {
        let felz = self.felzenszwalb_params();
        let segmenter: Box<dyn Segmenter + Send + Sync> = match self.kind()? {
            SegmenterKind::Classic => {
                let params = ClassicParams {
                    felzenszwalb: felz,
                    max_regions: self.max_regions,
                    min_regions: self.min_regions.min(self.max_regions),
                    split_disconnected: self.split_disconnected,
                    max_side: (self.max_side > 0).then_some(self.max_side),
                    ..ClassicParams::default()
                };
                params.validate().context("classic segmenter options")?;
                Box::new(Classic::new(params))
            }
            SegmenterKind::Felzenszwalb => {
                felz.validate().context("felzenszwalb options")?;
                Box::new(Felzenszwalb::new(felz))
            }
            SegmenterKind::Regions => {
                let path = self
                    .regions
                    .clone()
                    .context("--segmenter regions needs --regions FILE")?;
                let mut pre = Precomputed::from_path(path);
                match &mut pre.source {
                    RegionSource::Json { image, .. } => {
                        *image = self.coco_image.as_deref().map(|s| match s.parse::<u64>() {
                            Ok(id) => ImageSelector::Id(id),
                            Err(_) => ImageSelector::FileName(s.to_string()),
                        });
                    }
                    RegionSource::LabelMap { options, .. } => {
                        *options = LabelMapOptions {
                            background: self.background,
                            ..LabelMapOptions::default()
                        };
                    }
                    RegionSource::MaskFolder { .. } => {}
                }
                Box::new(pre)
            }
            SegmenterKind::Boxes => {
                let path = self
                    .boxes
                    .clone()
                    .context("--segmenter boxes needs --boxes FILE")?;
                let format = match self.box_format {
                    BoxFormatArg::Xyxy => BoxFormat::Xyxy,
                    BoxFormatArg::Xywh => BoxFormat::Xywh,
                };
                Box::new(Boxes::new(
                    path,
                    BoxOptions {
                        format,
                        clip: !self.no_clip,
                    },
                ))
            }
            SegmenterKind::Sam => {
                let box_format = match self.box_format {
                    BoxFormatArg::Xyxy => BoxFormat::Xyxy,
                    BoxFormatArg::Xywh => BoxFormat::Xywh,
                };
                let (segmenter, t) =
                    StageTiming::measure("load_model", || self.sam.build(&self.model, box_format));
                return Ok(BuiltSegmenter {
                    segmenter: segmenter?,
                    load_model: Some(t),
                });
            }
            SegmenterKind::Maskdino => {
                let (segmenter, t) = StageTiming::measure("load_model", || self.maskdino.build(&self.model));
                return Ok(BuiltSegmenter {
                    segmenter: segmenter?,
                    load_model: Some(t),
                });
            }
        };
        Ok(BuiltSegmenter {
            segmenter,
            load_model: None,
        })
    }
}

/// The name `--segmenter` gives `kind`.
pub(crate) fn kind_name(kind: SegmenterKind) -> String {
    kind.to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}
