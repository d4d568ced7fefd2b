//! `som segment`: write an image's regions as JSON.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use crate::seg_args::SegmenterArgs;

/// Arguments of `som segment`.
#[derive(Debug, Args)]
pub struct SegmentArgs {
    /// The image to segment.
    pub image: PathBuf,
    /// Where to write the regions JSON.
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub segmenter: SegmenterArgs,
}

/// Runs `som segment`.
pub fn run(_args: SegmentArgs) -> anyhow::Result<()> {
    bail!("no segmenter is available yet: `som segment` arrives with the segmentation work (issue 3)")
}
