//! The error type of the segmenters in this crate.

use som_core::{ImageSize, SomError};

/// Everything that can go wrong while segmenting or reading precomputed
/// regions, label maps, mask folders and boxes.
///
/// Messages are lowercase, one line, and name the offending value or file.
/// Every variant converts into [`SomError`] (what the [`som_core::Segmenter`]
/// trait returns).
///
/// ```
/// use som_segment::SegmentError;
/// let e = SegmentError::Param { name: "sigma", message: "-1 is negative".into() };
/// assert_eq!(e.to_string(), "invalid parameter sigma: -1 is negative");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// A parameter outside its valid range.
    #[error("invalid parameter {name}: {message}")]
    Param {
        /// The parameter's name (`scale`, `sigma`, `max_regions`…).
        name: &'static str,
        /// What is wrong with its value.
        message: String,
    },
    /// An image the segmenter cannot work on (empty, too large, odd pixel format).
    #[error("unsupported image: {0}")]
    Image(String),
    /// A label map, mask or regions file whose size differs from the image's.
    #[error("size mismatch in {what}: expected {expected}, found {found}")]
    Size {
        /// Which input (a file name, `label map`…).
        what: String,
        /// The image size.
        expected: ImageSize,
        /// The size found.
        found: ImageSize,
    },
    /// A label map, mask folder or boxes file that does not follow its format.
    #[error("invalid {what}: {message}")]
    Format {
        /// Which input (a file name or format name).
        what: String,
        /// What is wrong, naming the offending value.
        message: String,
    },
    /// A file whose content `som-core` refused (a regions JSON, a mask PNG); the
    /// `SomError` is the source and says what is wrong.
    #[error("{path}")]
    InFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        #[source]
        source: SomError,
    },
    /// A file or folder that cannot be read.
    #[error("cannot access {path}")]
    Io {
        /// The path involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An error from `som-core` (RLE, regions JSON, masks).
    #[error(transparent)]
    Core(#[from] SomError),
    /// An error of the SAM port (checkpoint, weights, prompts, LibTorch).
    #[cfg(feature = "torch")]
    #[error(transparent)]
    Sam(#[from] crate::sam::SamError),
    /// An error of the MaskDINO port (checkpoint, config, image, LibTorch).
    #[cfg(feature = "torch")]
    #[error(transparent)]
    MaskDino(#[from] crate::maskdino::MaskDinoError),
}

/// `Result` with [`SegmentError`] as the default error.
pub type Result<T, E = SegmentError> = std::result::Result<T, E>;

impl SegmentError {
    /// Shorthand for [`SegmentError::Format`].
    pub fn format(what: impl Into<String>, message: impl Into<String>) -> Self {
        SegmentError::Format {
            what: what.into(),
            message: message.into(),
        }
    }

    pub(crate) fn param(name: &'static str, message: impl Into<String>) -> Self {
        SegmentError::Param {
            name,
            message: message.into(),
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        SegmentError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// A segmenter's error reaches the pipeline as [`SomError::Segment`] with the
/// segmenter's own error as its source: a `SegmentError`, or for SAM the
/// `som_segment::sam::SamError` itself. Errors that already are `SomError`s (a
/// malformed regions JSON) pass through unchanged.
impl From<SegmentError> for SomError {
    fn from(e: SegmentError) -> Self {
        match e {
            SegmentError::Core(inner) => inner,
            #[cfg(feature = "torch")]
            SegmentError::Sam(inner) => SomError::segment(inner),
            #[cfg(feature = "torch")]
            SegmentError::MaskDino(inner) => SomError::segment(inner),
            other => SomError::segment(other),
        }
    }
}
