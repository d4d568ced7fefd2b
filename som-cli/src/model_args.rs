//! Options every segmenter with model weights shares (`--segmenter sam`, and
//! the other LibTorch segmenters): the checkpoint, threads, progress.

use std::path::PathBuf;

use clap::Args;

/// Model options shared by the torch segmenters.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Model weights (torch segmenters, need the torch feature)")]
pub struct ModelArgs {
    /// The model checkpoint: an official .pth (e.g. sam_vit_b_01ec64.pth) or a safetensors copy.
    #[arg(long, value_name = "PATH")]
    pub checkpoint: Option<PathBuf>,
    /// LibTorch threads (default: one per core).
    #[arg(long, value_name = "N", alias = "sam-threads")]
    pub threads: Option<i32>,
    /// No model progress on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Where the model runs: cpu (default), cuda, cuda:N, mps, or auto (a GPU if there is
    /// one, else the CPU). GPU runs are untested here.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
}

impl ModelArgs {
    /// The device `--device` names (the CPU without it).
    ///
    /// # Errors
    /// A name that is no device.
    #[cfg(feature = "torch")]
    pub fn device(&self) -> Result<som_segment::Device, som_segment::DeviceError> {
        self.device
            .as_deref()
            .map_or(Ok(som_segment::Device::Cpu), str::parse)
    }

    /// The first model option given, as its flag: they mean nothing to the
    /// segmenters without weights.
    pub fn first_given(&self) -> Option<&'static str> {
        if self.checkpoint.is_some() {
            Some("--checkpoint")
        } else if self.threads.is_some() {
            Some("--threads")
        } else if self.device.is_some() {
            Some("--device")
        } else {
            None
        }
    }
}
