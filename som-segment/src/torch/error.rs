//! The error of checkpoint reading, shared by every LibTorch model.

use std::path::PathBuf;

/// Everything that can go wrong reading a checkpoint or taking a model's parameters from it.
///
/// Each model's error type converts from it (`SamError`, `MaskDinoError`), so a caller sees
/// one error type per model. Messages are lowercase and name the offending file or key.
///
/// ```
/// use som_segment::torch::CheckpointError;
/// let e = CheckpointError::MissingWeight { name: "pixel_decoder.w".into(), model: "r50".into() };
/// assert_eq!(e.to_string(), "checkpoint has no parameter `pixel_decoder.w` (is it a r50 checkpoint?)");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The checkpoint file could not be read at all.
    #[error("cannot read checkpoint {path}")]
    Io {
        /// The checkpoint path.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not a checkpoint this crate understands (not a PyTorch zip archive, no
    /// pickled state dict inside, truncated, or not a safetensors file).
    #[error("{path} is not a usable checkpoint: {reason}")]
    Format {
        /// The checkpoint path.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// The checkpoint lacks a parameter the model needs.
    #[error("checkpoint has no parameter `{name}` (is it a {model} checkpoint?)")]
    MissingWeight {
        /// The state-dict key.
        name: String,
        /// Which model configuration was being built.
        model: String,
    },
    /// A parameter has another shape than the configured model expects, which is what a
    /// checkpoint of another model size or configuration looks like.
    #[error("parameter `{name}` has shape {found:?}, the {model} model expects {expected:?} (wrong model?)")]
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
    #[error(
        "checkpoint has {count} parameter(s) the {model} model does not use, e.g. `{first}` (wrong model?)"
    )]
    UnexpectedWeights {
        /// Which model configuration was being built.
        model: String,
        /// How many keys were left over.
        count: usize,
        /// The first of them, in key order.
        first: String,
    },
    /// A parameter holds values the model cannot use, or aliases of one parameter (keys that
    /// share one storage upstream) disagree.
    #[error("parameter `{name}` {reason}")]
    Inconsistent {
        /// The state-dict key.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// LibTorch failed while converting a tensor (an exhausted resource or a bug).
    #[error("libtorch")]
    Torch(#[from] tch::TchError),
}
