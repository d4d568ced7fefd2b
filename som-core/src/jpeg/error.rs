//! What can go wrong while decoding a JPEG.

/// Why a JPEG could not be decoded.
///
/// Messages are lowercase and one line. Damage that libjpeg-turbo only warns
/// about (a bad Huffman code, a marker in the middle of entropy-coded data, a
/// wrong restart marker) is not an error here either: the decoder goes on the
/// way libjpeg-turbo does, so the pixels still match PIL's.
///
/// ```
/// use som_core::jpeg::{decode, JpegError, Limits};
/// let limits = Limits { max_side: 16_384, max_bytes: 1 << 30 };
/// let err = decode(b"GIF89a", &limits).unwrap_err();
/// assert!(matches!(err, JpegError::NotJpeg));
/// assert_eq!(err.to_string(), "not a JPEG file (it does not start with FF D8 FF)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JpegError {
    /// The data does not start with the start-of-image marker and a marker.
    #[error("not a JPEG file (it does not start with FF D8 FF)")]
    NotJpeg,
    /// The data ends before the end-of-image marker.
    #[error("truncated JPEG: the data ends {0}")]
    Truncated(&'static str),
    /// A marker segment or the frame structure is malformed.
    #[error("corrupt JPEG: {0}")]
    Corrupt(String),
    /// A valid JPEG variant this decoder (like PIL) does not decode.
    #[error("unsupported JPEG: {0}")]
    Unsupported(String),
    /// The image is wider or taller than the limit.
    #[error("the JPEG is {width}x{height} pixels, more than the limit of {limit} pixels a side")]
    TooLarge {
        /// Width from the frame header.
        width: u32,
        /// Height from the frame header.
        height: u32,
        /// [`Limits::max_side`](super::Limits::max_side).
        limit: u32,
    },
    /// Decoding would need more memory than the limit.
    #[error("the JPEG would need {needed} bytes to decode, more than the limit of {limit} bytes")]
    TooMuchMemory {
        /// Bytes the decoder would allocate.
        needed: u64,
        /// [`Limits::max_bytes`](super::Limits::max_bytes).
        limit: u64,
    },
}

impl JpegError {
    pub(crate) fn corrupt(message: impl Into<String>) -> Self {
        JpegError::Corrupt(message.into())
    }

    pub(crate) fn unsupported(message: impl Into<String>) -> Self {
        JpegError::Unsupported(message.into())
    }
}

/// Results inside the decoder.
pub(crate) type Result<T, E = JpegError> = std::result::Result<T, E>;
