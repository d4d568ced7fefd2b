//! `som mark`: segment → allocate → render.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, ValueEnum};
use som_core::json::write_marks;
use som_core::{ImageSize, LabelScheme, MarkAllocator, MarkRenderer, StageTiming};
use som_marks::{AllocationMode, Allocator, AllocatorConfig, Draw, RenderConfig, Renderer};

use crate::io;
use crate::seg_args::SegmenterArgs;

/// Mark texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Labels {
    /// 1, 2, 3… (0, 1, 2… with --zero-based).
    Number,
    /// a, b, … z, aa, ab…
    Letter,
}

/// Allocation modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Allocation {
    /// The paper's algorithm with exclusion and label collision avoidance (default).
    Paper,
    /// What the released SoM code does: each region's own distance maximum.
    Independent,
}

/// Arguments of `som mark`.
#[derive(Debug, Args)]
pub struct MarkArgs {
    /// The image to mark (PNG or JPEG).
    pub image: PathBuf,
    /// Where to write the marked image (.png or .jpg); default `<stem>.marked.png`.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also write the marks as JSON (anchors, label boxes, regions with their masks).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub segmenter: SegmenterArgs,
    /// Mark texts.
    #[arg(long, value_enum, default_value_t = Labels::Number)]
    pub labels: Labels,
    /// Number marks from 0 instead of 1.
    #[arg(long)]
    pub zero_based: bool,
    /// What to draw: any of mark, mask, contour, box, comma-separated.
    #[arg(long, value_name = "LIST", default_value = "mark,mask,contour")]
    pub draw: String,
    /// Opacity of the mask tint, 0 to 1.
    #[arg(long, value_name = "A", default_value_t = 0.4)]
    pub alpha: f32,
    /// Label font size in pixels (default: scaled with the image).
    #[arg(long, value_name = "PX")]
    pub font_size: Option<f32>,
    /// Where marks go.
    #[arg(long, value_enum, default_value_t = Allocation::Paper)]
    pub allocation: Allocation,
    /// Print one JSON line per stage with its time to stderr.
    #[arg(long)]
    pub timings: bool,
}

/// Runs `som mark`.
pub fn run(args: MarkArgs) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.alpha) || !args.alpha.is_finite() {
        bail!("--alpha must be between 0 and 1, got {}", args.alpha);
    }
    if let Some(px) = args.font_size {
        if !(px.is_finite() && (4.0..=512.0).contains(&px)) {
            bail!("--font-size must be between 4 and 512 pixels, got {px}");
        }
    }
    let draw: Draw = args.draw.parse().map_err(|e| anyhow::anyhow!("--draw: {e}"))?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| io::derived_path(&args.image, None, ".marked.png"));
    // Check the output extension before doing any work.
    let _ = io::encode_image(&image::RgbImage::new(1, 1), &output)?;

    let mut timings = Vec::new();
    let (image, t) = StageTiming::measure("decode", || io::load_image(&args.image));
    timings.push(t);
    let image = image?;
    let size = ImageSize::new(image.width(), image.height());

    let (segmentation, t) = StageTiming::measure("segment", || args.segmenter.segment(&image));
    timings.push(t);
    let segmentation = segmentation?;
    if segmentation.is_empty() {
        bail!("no regions to mark in {}", args.image.display());
    }

    let labels = match args.labels {
        Labels::Number => LabelScheme::Number {
            zero_based: args.zero_based,
        },
        Labels::Letter => LabelScheme::Letter,
    };
    let allocator = Allocator::new(AllocatorConfig {
        mode: match args.allocation {
            Allocation::Paper => AllocationMode::Paper,
            Allocation::Independent => AllocationMode::Independent,
        },
        labels,
        ..AllocatorConfig::default()
    });
    let renderer = Renderer::new(RenderConfig {
        draw,
        alpha: args.alpha,
        font_px: args.font_size,
        ..RenderConfig::default()
    });

    let (marks, t) = StageTiming::measure("allocate", || allocator.allocate(&segmentation, &renderer));
    timings.push(t);
    let marks = marks?;
    let rgb = image.to_rgb8();
    let (rendered, t) = StageTiming::measure("render", || renderer.render(&rgb, &segmentation, &marks));
    timings.push(t);
    let rendered = rendered?;

    let (bytes, t) = StageTiming::measure("encode", || io::encode_image(&rendered, &output));
    timings.push(t);
    let (written, t) = StageTiming::measure("write", || -> anyhow::Result<()> {
        io::write_file(&output, &bytes?)?;
        if let Some(json_path) = &args.json {
            let text = write_marks(&io::image_info(&args.image, size), &segmentation, &marks);
            io::write_file(json_path, text.as_bytes())?;
        }
        Ok(())
    });
    timings.push(t);
    written?;

    if args.timings {
        for t in &timings {
            eprintln!("{}", t.to_json_line());
        }
    }
    let flagged = marks.iter().filter(|m| !m.overlaps.is_empty()).count();
    let outside = marks
        .iter()
        .filter(|m| m.placement == som_core::Placement::Outside)
        .count();
    println!(
        "{}: {} marks -> {}{}{}",
        display(&args.image),
        marks.len(),
        display(&output),
        if outside > 0 {
            format!(" ({outside} placed beside their region)")
        } else {
            String::new()
        },
        if flagged > 0 {
            format!(" ({flagged} labels overlap: the image has no room for all)")
        } else {
            String::new()
        },
    );
    Ok(())
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
