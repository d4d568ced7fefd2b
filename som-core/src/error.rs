//! The error type shared by the pipeline traits.

use crate::geometry::ImageSize;

/// A backend's own error, carried inside a [`SomError`] stage variant.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`SomError`] as the default error.
pub type Result<T, E = SomError> = std::result::Result<T, E>;

/// Everything that can go wrong in `som-core` and in the pipeline stages.
///
/// Messages are lowercase, one line, and name the offending value so a command
/// line can print them as they are.
///
/// The stage variants ([`SomError::Segment`], [`SomError::Allocate`],
/// [`SomError::Render`], [`SomError::Grounding`]) carry the stage's own error
/// as their [`source`](std::error::Error::source), so a caller can tell a SAM
/// weight-shape error from an HTTP 429: downcast the source, or ask
/// [`SomError::find`] for the type along the whole chain. Their own message
/// names only the stage; [`ErrorChain`] prints the whole chain on one line.
///
/// ```
/// use som_core::{ImageSize, SomError};
/// let e = SomError::MaskSize { expected: ImageSize::new(640, 480), found: "a mask of 10x10".into() };
/// assert_eq!(e.to_string(), "mask size mismatch: expected 640x480, found a mask of 10x10");
///
/// // A backend error keeps its type through the stage trait.
/// let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "model server timed out");
/// let e = SomError::grounding(io);
/// assert_eq!(e.to_string(), "grounding model failed");
/// assert_eq!(e.find::<std::io::Error>().map(|e| e.kind()), Some(std::io::ErrorKind::TimedOut));
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
    #[error("{0}")]
    Image(String),
    /// A failure inside a segmenter; the segmenter's own error is the source
    /// (e.g. `som_segment::SegmentError` or `som_segment::sam::SamError`).
    #[error("segmentation failed")]
    Segment(#[source] BoxError),
    /// A failure inside a mark allocator; the allocator's error is the source.
    #[error("mark allocation failed")]
    Allocate(#[source] BoxError),
    /// A failure inside a renderer; the renderer's error is the source.
    #[error("rendering failed")]
    Render(#[source] BoxError),
    /// A failure talking to, or understanding, a grounding model; the client's
    /// error is the source (e.g. `som_lmm::LmmError`, with its HTTP status).
    #[error("grounding model failed")]
    Grounding(#[source] BoxError),
    /// An I/O error, with the path involved; the `std::io::Error` is the source.
    #[error("cannot access {path}")]
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

    /// A [`SomError::Segment`] carrying a segmenter's error.
    pub fn segment(source: impl Into<BoxError>) -> Self {
        SomError::Segment(source.into())
    }

    /// A [`SomError::Allocate`] carrying an allocator's error.
    pub fn allocate(source: impl Into<BoxError>) -> Self {
        SomError::Allocate(source.into())
    }

    /// A [`SomError::Render`] carrying a renderer's error.
    pub fn render(source: impl Into<BoxError>) -> Self {
        SomError::Render(source.into())
    }

    /// A [`SomError::Grounding`] carrying a model client's error.
    pub fn grounding(source: impl Into<BoxError>) -> Self {
        SomError::Grounding(source.into())
    }

    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        SomError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// The first error of type `T` along the source chain, starting with the
    /// error itself.
    ///
    /// ```
    /// use som_core::SomError;
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("weights do not fit")]
    /// struct ShapeError;
    /// let e = SomError::segment(ShapeError);
    /// assert!(e.find::<ShapeError>().is_some());
    /// assert!(e.find::<std::io::Error>().is_none());
    /// ```
    pub fn find<T: std::error::Error + 'static>(&self) -> Option<&T> {
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = next {
            if let Some(t) = e.downcast_ref::<T>() {
                return Some(t);
            }
            next = e.source();
        }
        None
    }
}

/// Displays an error and its sources as one line, each said once: messages
/// joined with `": "`, line breaks folded into spaces, and a source whose
/// message the line already holds left out. This is how `som` prints errors.
///
/// ```
/// use som_core::{ErrorChain, SomError};
/// let e = SomError::io("photos/missing.jpg".as_ref(), std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"));
/// assert_eq!(ErrorChain(&e).to_string(), "cannot access photos/missing.jpg: no such file");
/// let e = SomError::segment(std::io::Error::other("the model\nran out of memory"));
/// assert_eq!(ErrorChain(&e).to_string(), "segmentation failed: the model ran out of memory");
/// ```
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut line = String::new();
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(self.0);
        while let Some(e) = next {
            let message = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
            if !message.is_empty() && !line.contains(&message) {
                if !line.is_empty() {
                    line.push_str(": ");
                }
                line.push_str(&message);
            }
            next = e.source();
        }
        f.write_str(&line)
    }
}

impl std::fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}
