//! The MaskDINO port's error type.

use crate::torch::CheckpointError;

/// Everything that can go wrong loading MaskDINO or running it on user input.
///
/// Messages are lowercase, one line, and name the offending value.
///
/// ```
/// use som_segment::maskdino::MaskDinoError;
/// let e = MaskDinoError::Image("1x1 is smaller than 32 pixels a side".into());
/// assert_eq!(e.to_string(), "invalid image: 1x1 is smaller than 32 pixels a side");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MaskDinoError {
    /// The checkpoint cannot be read, or its parameters do not fit the configuration
    /// (missing, unexpected or wrongly shaped tensors).
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The checkpoint holds no MaskDINO state dict (e.g. a SAM checkpoint).
    #[error("checkpoint is not a maskdino model: {0}")]
    NotMaskDino(String),
    /// The checkpoint holds another published model than the configuration names.
    #[error("checkpoint holds a {found} model, not {expected} (choose the config that matches it)")]
    WrongModel {
        /// The configuration asked for.
        expected: String,
        /// What the checkpoint's tensors say it is.
        found: String,
    },
    /// The configuration is inconsistent.
    #[error("invalid maskdino config: {0}")]
    Config(String),
    /// The input image cannot be segmented (grayscale, too small…).
    #[error("invalid image: {0}")]
    Image(String),
    /// A segmenter option is out of range.
    #[error("invalid option {name} = {value}: {reason}")]
    Option {
        /// The option's name (`confidence_threshold`…).
        name: &'static str,
        /// The rejected value.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The device asked for is not available to this LibTorch (see [`crate::Device`]).
    #[error(transparent)]
    Device(#[from] crate::DeviceError),
    /// LibTorch reported an error (shapes are checked before every call that user input
    /// reaches, so this means a bug or an exhausted resource).
    #[error("libtorch failed")]
    Torch(#[from] tch::TchError),
}

/// A MaskDINO error reaches the pipeline as [`som_core::SomError::Segment`] with the
/// `MaskDinoError` itself as its source (`err.find::<MaskDinoError>()` gets it back).
impl From<MaskDinoError> for som_core::SomError {
    fn from(e: MaskDinoError) -> Self {
        som_core::SomError::segment(e)
    }
}
