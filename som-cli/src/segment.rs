//! `som segment`: write an image's regions as JSON.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use som_core::json::{write_regions, ImageInfo};
use som_core::{ImageSize, StageTiming};

use crate::seg_args::SegmenterArgs;

/// Arguments of `som segment`.
#[derive(Debug, Args)]
pub struct SegmentArgs {
    /// The image to segment (PNG or JPEG).
    pub image: PathBuf,
    /// Where to write the regions JSON.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Print one JSON line per stage with its time to stderr.
    #[arg(long)]
    pub timings: bool,
    #[command(flatten)]
    pub segmenter: SegmenterArgs,
}

/// Runs `som segment`.
pub fn run(args: SegmentArgs) -> anyhow::Result<()> {
    // Check the options before decoding anything.
    args.segmenter.build()?;
    let mut timings = Vec::new();
    let (image, t) = StageTiming::measure("decode", || som_core::io::load_image(&args.image));
    timings.push(t);
    let image = image?;
    let size = ImageSize::new(image.width(), image.height());
    let (seg, t) = StageTiming::measure("segment", || args.segmenter.segment(&image));
    timings.push(t);
    let (seg, sub_stages) = seg.with_context(|| format!("{}", args.image.display()))?;
    timings.extend(sub_stages);
    let mut info = ImageInfo::new(size.width, size.height);
    if let Some(name) = args.image.file_name().and_then(|n| n.to_str()) {
        info = info.with_file_name(name);
    }
    let (text, t) = StageTiming::measure("encode", || write_regions(&info, &seg));
    timings.push(t);
    if let Some(parent) = args.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create folder {}", parent.display()))?;
    }
    std::fs::write(&args.output, text.as_bytes())
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    if args.timings {
        for t in &timings {
            eprintln!("{}", t.to_json_line());
        }
    }
    Ok(())
}
