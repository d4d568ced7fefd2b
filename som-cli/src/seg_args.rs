//! Segmenter selection shared by `mark`, `segment` and `ask`.

use std::path::PathBuf;

use clap::Args;

/// Where regions come from.
#[derive(Debug, Clone, Args)]
pub struct SegmenterArgs {
    /// A regions file (regions JSON, COCO annotations or SAM AMG records) instead of segmenting.
    #[arg(long, value_name = "FILE")]
    pub regions: Option<PathBuf>,
}
