//! `som mark`: segment → allocate → render.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use crate::seg_args::SegmenterArgs;

/// Arguments of `som mark`.
#[derive(Debug, Args)]
pub struct MarkArgs {
    /// The image to mark.
    pub image: PathBuf,
    #[command(flatten)]
    pub segmenter: SegmenterArgs,
}

/// Runs `som mark`.
pub fn run(_args: MarkArgs) -> anyhow::Result<()> {
    bail!("not yet wired")
}
