//! The pipeline of a command, built once, and one image run through it.
//!
//! Every command that marks (`mark`, `ask`) or segments (`segment`) builds
//! its [`Stages`] once from its options, so a segmenter with weights loads
//! them once (the `load_model` stage), and then runs each image through the
//! same `som_core::SomPipeline`.

use std::path::Path;

use som_core::json::ImageInfo;
use som_core::{ImageSize, MarkedImage, Segmentation, Segmenter, SomPipeline, StageTiming};
use som_marks::{Allocator, MarkStyle, Renderer};

use crate::seg_args::SegmenterArgs;

/// The stages of a command.
pub struct Stages {
    /// Segmenter, allocator and renderer.
    pub pipeline: SomPipeline<Box<dyn Segmenter>, Allocator, Renderer>,
    /// Whether to print each stage's time on stderr.
    pub timings: bool,
}

/// One decoded image and what the pipeline made of it.
pub struct Marked {
    /// The marked image, its marks and regions.
    pub marked: MarkedImage,
    /// The `image` object of the JSON outputs.
    pub info: ImageInfo,
}

impl Stages {
    /// Builds every stage once. With `timings`, prints the `load_model` line
    /// of a segmenter with weights here, once per command.
    ///
    /// # Errors
    /// Bad segmenter options or an unusable checkpoint; a style out of range.
    pub fn build(segmenter: &SegmenterArgs, style: MarkStyle, timings: bool) -> anyhow::Result<Self> {
        style.validate()?;
        let built = segmenter.build()?;
        if timings {
            if let Some(t) = &built.load_model {
                eprintln!("{}", t.to_json_line());
            }
        }
        Ok(Self {
            pipeline: SomPipeline::new(built.segmenter, style.allocator(), style.renderer()),
            timings,
        })
    }

    /// Decodes `path` and marks it. An image with no regions is marked with
    /// none (the image stays as it is), with a warning on stderr.
    ///
    /// # Errors
    /// The file cannot be read or decoded, or a stage fails.
    pub fn mark_file(&self, path: &Path, timings: &mut Vec<StageTiming>) -> anyhow::Result<Marked> {
        let (image, info) = decode(path, timings)?;
        let (marked, t) = self.pipeline.mark_timed(&image)?;
        timings.extend(t);
        if marked.marks().is_empty() {
            eprintln!(
                "som: warning: {}: no regions found; the image is left unmarked",
                path.display()
            );
        }
        Ok(Marked { marked, info })
    }

    /// Decodes `path` and segments it.
    ///
    /// # Errors
    /// The file cannot be read or decoded, or the segmenter fails.
    pub fn segment_file(
        &self,
        path: &Path,
        timings: &mut Vec<StageTiming>,
    ) -> anyhow::Result<(Segmentation, ImageInfo)> {
        let (image, info) = decode(path, timings)?;
        let (segmentation, t) = self.pipeline.segment_timed(&image)?;
        timings.extend(t);
        Ok((segmentation, info))
    }

    /// Prints `timings` as `--timings` lines when they were asked for.
    pub fn report(&self, timings: &[StageTiming]) {
        if self.timings {
            for t in timings {
                eprintln!("{}", t.to_json_line());
            }
        }
    }
}

fn decode(path: &Path, timings: &mut Vec<StageTiming>) -> anyhow::Result<(image::DynamicImage, ImageInfo)> {
    let (image, t) = StageTiming::measure("decode", || som_core::io::load_image(path));
    timings.push(t);
    let image = image?;
    let info = ImageInfo::for_file(path, ImageSize::new(image.width(), image.height()));
    Ok((image, info))
}

/// Times `f` as `stage`, appending the timing.
pub fn timed<T>(timings: &mut Vec<StageTiming>, stage: &str, f: impl FnOnce() -> T) -> T {
    let (out, t) = StageTiming::measure(stage, f);
    timings.push(t);
    out
}
