//! The SAM port's error type.

use std::path::PathBuf;

/// Everything that can go wrong loading SAM or running it on user input.
///
/// Messages are lowercase and name the offending value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SamError {
    /// The checkpoint file could not be read at all.
    #[error("cannot read checkpoint {path}")]
    Io {
        /// The checkpoint path.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not a checkpoint this port understands (not a PyTorch zip archive,
    /// no pickled state dict inside, truncated, or not a safetensors file).
    #[error("{path} is not a usable checkpoint: {reason}")]
    Checkpoint {
        /// The checkpoint path.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// The checkpoint lacks a parameter the model needs.
    #[error("checkpoint has no parameter `{name}` (is it a SAM checkpoint of this model size?)")]
    MissingWeight {
        /// The state-dict key.
        name: String,
    },
    /// A parameter has a different shape than the configured model expects, which is what a
    /// checkpoint of another model size (say `vit_l` weights for `vit_b`) looks like.
    #[error(
        "parameter `{name}` has shape {found:?}, the {model} model expects {expected:?} (wrong model size?)"
    )]
    WeightShape {
        /// The state-dict key.
        name: String,
        /// Which model configuration was being built.
        model: String,
        /// The shape the model needs.
        expected: Vec<i64>,
        /// The shape in the checkpoint.
        found: Vec<i64>,
    },
    /// The checkpoint holds parameters the model does not use (strict loading, like
    /// PyTorch's `load_state_dict`).
    #[error("checkpoint has {count} parameter(s) the {model} model does not use, e.g. `{first}` (wrong model size?)")]
    UnexpectedWeights {
        /// Which model configuration was being built.
        model: String,
        /// How many keys were left over.
        count: usize,
        /// The first of them, in key order.
        first: String,
    },
    /// The checkpoint holds another official model than the one asked for.
    #[error("checkpoint holds a {found} model, not the requested {requested}")]
    ModelMismatch {
        /// The model asked for (`vit_b`…).
        requested: &'static str,
        /// The model the checkpoint holds.
        found: &'static str,
    },
    /// The model configuration is inconsistent (e.g. heads that do not divide the width).
    #[error("invalid sam config: {0}")]
    Config(String),
    /// The input image cannot be segmented (grayscale, too small…).
    #[error("invalid image: {0}")]
    Image(String),
    /// A prompt is malformed or lies outside the image.
    #[error("invalid prompt: {0}")]
    Prompt(String),
    /// An automatic-mask-generator option is out of range.
    #[error("invalid option {name} = {value}: {reason}")]
    Option {
        /// The option's reference name (`points_per_side`…).
        name: &'static str,
        /// The rejected value.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The device asked for cannot be used here.
    #[error(transparent)]
    Device(#[from] crate::DeviceError),
    /// LibTorch reported an error (shapes are checked before every call that user input
    /// reaches, so this means a bug or an exhausted resource).
    #[error("libtorch failed")]
    Torch(#[from] tch::TchError),
}

/// A SAM error reaches the pipeline as [`som_core::SomError::Segment`] with the
/// `SamError` itself as its source.
impl From<SamError> for som_core::SomError {
    fn from(e: SamError) -> Self {
        som_core::SomError::segment(e)
    }
}

impl From<crate::torch::CheckpointError> for SamError {
    fn from(e: crate::torch::CheckpointError) -> Self {
        use crate::torch::CheckpointError as C;
        match e {
            C::Io { path, source } => SamError::Io { path, source },
            C::Format { path, reason } => SamError::Checkpoint { path, reason },
            C::MissingWeight { name, .. } => SamError::MissingWeight { name },
            C::WeightShape {
                name,
                model,
                expected,
                found,
            } => SamError::WeightShape {
                name,
                model,
                expected,
                found,
            },
            C::UnexpectedWeights { model, count, first } => {
                SamError::UnexpectedWeights { model, count, first }
            }
            C::Torch(e) => SamError::Torch(e),
            e @ C::Inconsistent { .. } => SamError::Config(e.to_string()),
        }
    }
}
