//! The error type shared by the pipeline traits.

use crate::geometry::ImageSize;

/// Everything that can go wrong in `som-core` and in the pipeline stages.
///
/// Messages are lowercase, one line, and name the offending value so a command
/// line can print them as they are.
///
/// ```
/// use som_core::{ImageSize, SomError};
/// let e = SomError::MaskSize { expected: ImageSize::new(640, 480), found: "a mask of 10x10".into() };
/// assert_eq!(e.to_string(), "mask size mismatch: expected 640x480, found a mask of 10x10");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SomError {
    /// A mask or label map does not have the image's size.
    #[error("mask size mismatch: expected {expected}, found {found}")]
    MaskSize {
        /// The image size the mask should have.
        expected: ImageSize,
        /// What was found instead.
        found: String,
    },
    /// A malformed COCO run-length encoding.
    #[error("invalid RLE: {0}")]
    Rle(String),
    /// A malformed polygon.
    #[error("invalid polygon: {0}")]
    Polygon(String),
    /// A regions or marks document that does not follow the format.
    #[error("invalid {what}: {message}")]
    Format {
        /// Which document (e.g. `"regions JSON"`).
        what: &'static str,
        /// What is wrong, with the path to the offending value where known.
        message: String,
    },
    /// A region that cannot be used as it is (empty mask, box outside the image…).
    #[error("region {id}: {message}")]
    Region {
        /// The region's id.
        id: u64,
        /// What is wrong with it.
        message: String,
    },
    /// An image that cannot be decoded or encoded, or breaks a limit.
    #[error("image error: {0}")]
    Image(String),
    /// A failure inside a segmenter.
    #[error("segmentation failed: {0}")]
    Segment(String),
    /// A failure inside a mark allocator.
    #[error("mark allocation failed: {0}")]
    Allocate(String),
    /// A failure inside a renderer.
    #[error("rendering failed: {0}")]
    Render(String),
    /// A failure talking to, or understanding, a grounding model.
    #[error("grounding failed: {0}")]
    Grounding(String),
    /// An I/O error, with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl SomError {
    /// Shorthand for a [`SomError::Format`].
    pub fn format(what: &'static str, message: impl Into<String>) -> Self {
        SomError::Format {
            what,
            message: message.into(),
        }
    }
}
