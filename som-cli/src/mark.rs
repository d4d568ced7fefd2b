//! `som mark`: segment → allocate → render.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
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
    /// The image(s) to mark (PNG or JPEG), or folders of them.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// Where to write the marked image (.png or .jpg); default `<stem>.marked.png`.
    /// Only for a single image; several images go to --out-dir.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also write the marks as JSON (anchors, label boxes, regions with their masks).
    /// Only for a single image; with --out-dir every image gets `<stem>.marks.json`.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Mark several images (or folders of images): write `<stem>.marked.png` and
    /// `<stem>.marks.json` for each into this folder, reporting progress on stderr.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
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

/// The stages, built once and used for every image.
struct Stages {
    allocator: Allocator,
    renderer: Renderer,
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
    let labels = match args.labels {
        Labels::Number => LabelScheme::Number {
            zero_based: args.zero_based,
        },
        Labels::Letter => LabelScheme::Letter,
    };
    let stages = Stages {
        allocator: Allocator::new(AllocatorConfig {
            mode: match args.allocation {
                Allocation::Paper => AllocationMode::Paper,
                Allocation::Independent => AllocationMode::Independent,
            },
            labels,
            ..AllocatorConfig::default()
        }),
        renderer: Renderer::new(RenderConfig {
            draw,
            alpha: args.alpha,
            font_px: args.font_size,
            ..RenderConfig::default()
        }),
    };

    let batch = args.out_dir.is_some() || args.images.len() > 1 || args.images[0].is_dir();
    if !batch {
        let image = &args.images[0];
        let output = args
            .output
            .clone()
            .unwrap_or_else(|| io::derived_path(image, None, ".marked.png"));
        // Check the output extension before doing any work.
        io::encode_image(&image::RgbImage::new(1, 1), &output)?;
        return mark_one(&args, &stages, image, &output, args.json.as_deref());
    }

    if args.output.is_some() || args.json.is_some() {
        bail!("-o/--json name one file; with several images or a folder use --out-dir DIR");
    }
    if args.segmenter.regions.is_some() || args.segmenter.boxes.is_some() {
        bail!("--regions/--boxes describe one image; mark several images with a segmenter");
    }
    let out_dir = args.out_dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let inputs = io::expand_images(&args.images)?;
    let total = inputs.len();
    for (i, image) in inputs.iter().enumerate() {
        eprintln!("[{}/{total}] {}", i + 1, image.display());
        let output = io::derived_path(image, Some(&out_dir), ".marked.png");
        let json = io::derived_path(image, Some(&out_dir), ".marks.json");
        mark_one(&args, &stages, image, &output, Some(&json))
            .with_context(|| format!("{} (image {} of {total})", image.display(), i + 1))?;
    }
    Ok(())
}

/// Marks one image and writes its outputs.
fn mark_one(
    args: &MarkArgs,
    stages: &Stages,
    input: &Path,
    output: &Path,
    json: Option<&Path>,
) -> anyhow::Result<()> {
    let mut timings = Vec::new();
    let (image, t) = StageTiming::measure("decode", || io::load_image(input));
    timings.push(t);
    let image = image?;
    let size = ImageSize::new(image.width(), image.height());

    let (segmentation, t) = StageTiming::measure("segment", || args.segmenter.segment(&image));
    timings.push(t);
    let (segmentation, sub_stages) = segmentation?;
    timings.extend(sub_stages);
    if segmentation.is_empty() {
        bail!("no regions to mark in {}", input.display());
    }

    let (marks, t) = StageTiming::measure("allocate", || {
        stages.allocator.allocate(&segmentation, &stages.renderer)
    });
    timings.push(t);
    let marks = marks?;
    let rgb = image.to_rgb8();
    let (rendered, t) =
        StageTiming::measure("render", || stages.renderer.render(&rgb, &segmentation, &marks));
    timings.push(t);
    let rendered = rendered?;

    let (bytes, t) = StageTiming::measure("encode", || io::encode_image(&rendered, output));
    timings.push(t);
    let (written, t) = StageTiming::measure("write", || -> anyhow::Result<()> {
        io::write_file(output, &bytes?)?;
        if let Some(json_path) = json {
            let text = write_marks(&io::image_info(input, size), &segmentation, &marks);
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
        display(input),
        marks.len(),
        display(output),
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
