//! The crate's error type.

use som_core::{ImageSize, SomError};

/// Everything that can go wrong in `som-eval`.
///
/// Messages are lowercase and one line; they name the file and the item
/// (image, ref, sentence, sequence, frame, line…) where one is involved, and
/// do not repeat the text of their [`source`](std::error::Error::source).
///
/// ```
/// use som_eval::EvalError;
/// let e = EvalError::dataset("annotations/instances.json", "annotation 7", "image_id 99 names no image");
/// assert_eq!(e.to_string(), "annotations/instances.json: annotation 7: image_id 99 names no image");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// Two masks or label maps that should cover the same image do not.
    #[error("size mismatch: {what}: expected {expected}, found {found}")]
    Size {
        /// What was compared (`"prediction frame 00003 of bear"`…).
        what: String,
        /// The size it should have.
        expected: ImageSize,
        /// The size it has.
        found: ImageSize,
    },
    /// A malformed dataset file, or an item in it that breaks the format.
    #[error("{path}: {item}{sep}{message}", sep = if item.is_empty() { "" } else { ": " })]
    Dataset {
        /// The file or folder.
        path: String,
        /// The offending item (`"ref 12"`, `"line 3"`, `"frame 00004"`), or empty.
        item: String,
        /// What is wrong.
        message: String,
    },
    /// A file or folder that cannot be read or written.
    #[error("cannot {action} {path}")]
    Io {
        /// `"read"`, `"write"`, `"create"`…
        action: &'static str,
        /// The path involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An option or argument that cannot be used (`limit 0`, a negative price…).
    #[error("invalid {what}: {message}")]
    Invalid {
        /// Which option.
        what: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A failure in a pipeline stage (segmenter, allocator, renderer, model).
    #[error("{context}")]
    Stage {
        /// Where it happened (`"item refcocog/ref-12/sent-40: segment"`).
        context: String,
        /// The stage's error.
        #[source]
        source: SomError,
    },
    /// A core error (RLE, mask size…) outside any stage.
    #[error(transparent)]
    Core(#[from] SomError),
}

impl EvalError {
    /// Shorthand for [`EvalError::Dataset`].
    pub fn dataset(path: impl Into<String>, item: impl Into<String>, message: impl Into<String>) -> Self {
        EvalError::Dataset {
            path: path.into(),
            item: item.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`EvalError::Io`].
    pub fn io(action: &'static str, path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        EvalError::Io {
            action,
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    /// Shorthand for [`EvalError::Invalid`].
    pub fn invalid(what: &'static str, message: impl Into<String>) -> Self {
        EvalError::Invalid {
            what,
            message: message.into(),
        }
    }
}

/// `Result` with [`EvalError`] as the default error.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;
