//! `som segment`: write an image's regions as JSON.

use std::path::PathBuf;

use clap::Args;
use som_core::io::write_file;
use som_core::json::write_regions;
use som_marks::MarkStyle;

use crate::seg_args::SegmenterArgs;
use crate::stages::{timed, Stages};

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
    // The segmenter is built (and checked) once, before anything is decoded.
    let stages = Stages::build(&args.segmenter, MarkStyle::default(), args.timings)?;
    let mut timings = Vec::new();
    let result = stages
        .segment_file(&args.image, &mut timings)
        .and_then(|(seg, info)| {
            let text = timed(&mut timings, "encode", || write_regions(&info, &seg));
            timed(&mut timings, "write", || {
                write_file(&args.output, text.as_bytes())
            })?;
            Ok(())
        });
    stages.report(&timings);
    result
}
