//! `som ask`: mark an image and ask a multimodal model about it.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

/// Arguments of `som ask`.
#[derive(Debug, Args)]
pub struct AskArgs {
    /// The image to ask about.
    pub image: PathBuf,
    /// The question.
    pub prompt: String,
}

/// Runs `som ask`.
pub fn run(_args: AskArgs) -> anyhow::Result<()> {
    bail!("no model client is available yet: `som ask` arrives with som-lmm (issue 5)")
}
