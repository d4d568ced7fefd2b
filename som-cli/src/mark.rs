//! `som mark`: segment → allocate → render, for one image or a batch.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Args;
use som_core::io::{write_file, OutputFormat};
use som_core::json::write_marks;
use som_core::{ErrorChain, Placement, StageTiming};

use crate::io;
use crate::seg_args::SegmenterArgs;
use crate::stages::{timed, Stages};
use crate::style_args::MarkStyleArgs;

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
    /// An image that fails is reported and skipped; the exit status says whether any did.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    #[command(flatten)]
    pub segmenter: SegmenterArgs,
    #[command(flatten)]
    pub style: MarkStyleArgs,
    /// Print one JSON line per stage with its time to stderr.
    #[arg(long)]
    pub timings: bool,
}

/// Runs `som mark`.
pub fn run(args: MarkArgs) -> anyhow::Result<()> {
    let batch = args.out_dir.is_some() || args.images.len() > 1 || args.images[0].is_dir();
    if !batch {
        let image = &args.images[0];
        let output = args
            .output
            .clone()
            .unwrap_or_else(|| io::derived_path(image, None, ".marked.png"));
        // Check the output format before doing any work.
        let format = OutputFormat::from_path(&output)?;
        let stages = Stages::build(&args.segmenter, args.style.style(), args.timings)?;
        return mark_one(&stages, image, &output, format, args.json.as_deref());
    }

    if args.output.is_some() || args.json.is_some() {
        bail!("-o/--json name one file; with several images or a folder use --out-dir DIR");
    }
    if args.segmenter.regions.is_some() || args.segmenter.boxes.is_some() {
        bail!("--regions/--boxes describe one image; mark several images with a segmenter");
    }
    let out_dir = args.out_dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let inputs = io::expand_images(&args.images)?;
    let stages = Stages::build(&args.segmenter, args.style.style(), args.timings)?;
    let total = inputs.len();
    let mut failed = 0usize;
    for (i, image) in inputs.iter().enumerate() {
        eprintln!("[{}/{total}] {}", i + 1, image.display());
        let output = io::derived_path(image, Some(&out_dir), ".marked.png");
        let json = io::derived_path(image, Some(&out_dir), ".marks.json");
        if let Err(e) = mark_one(&stages, image, &output, OutputFormat::Png, Some(&json)) {
            failed += 1;
            let e: &(dyn std::error::Error + 'static) = e.as_ref();
            let message = ErrorChain(e).to_string();
            let name = image.display().to_string();
            if message.contains(&name) {
                eprintln!("som: error: {message}");
            } else {
                eprintln!("som: error: {name}: {message}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {total} images failed (each is reported above); the others were marked");
    }
    eprintln!("marked {total} images into {}", out_dir.display());
    Ok(())
}

/// Marks one image and writes its outputs.
fn mark_one(
    stages: &Stages,
    input: &Path,
    output: &Path,
    format: OutputFormat,
    json: Option<&Path>,
) -> anyhow::Result<()> {
    let mut timings: Vec<StageTiming> = Vec::new();
    let result = stages.mark_file(input, &mut timings);
    let written = result.and_then(|m| {
        let bytes = timed(&mut timings, "encode", || format.encode(m.marked.image()))?;
        timed(&mut timings, "write", || -> anyhow::Result<()> {
            write_file(output, &bytes)?;
            if let Some(json_path) = json {
                let text = write_marks(&m.info, m.marked.segmentation(), m.marked.marks());
                write_file(json_path, text.as_bytes())?;
            }
            Ok(())
        })?;
        Ok(m)
    });
    stages.report(&timings);
    let marked = written?.marked;
    let marks = marked.marks();
    let flagged = marks.iter().filter(|m| !m.overlaps.is_empty()).count();
    let outside = marks.iter().filter(|m| m.placement == Placement::Outside).count();
    println!(
        "{}: {} marks -> {}{}{}",
        input.display(),
        marks.len(),
        output.display(),
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
