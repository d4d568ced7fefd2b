//! A JPEG decoder whose pixels equal libjpeg-turbo's, so equal PIL's
//! (`np.asarray(PIL.Image.open(path).convert("RGB"))`) and OpenCV's
//! (`cv2.imdecode`, which also turns the image by its EXIF orientation;
//! neither PIL's `Image.open` nor this decoder does, and OpenCV converts
//! CMYK files its own way).
//!
//! Python pipelines decode JPEGs with libjpeg-turbo's defaults; the `image`
//! crate's decoder (zune-jpeg) differs by a level or two on a few percent of
//! the values, and region-growing segmenters amplify that: the Felzenszwalb
//! partition of a JPEG photo then agrees with skimage's at an adjusted Rand
//! index of 0.57–0.86 instead of exactly. This decoder reproduces each step
//! of libjpeg-turbo's default decompression bit for bit, in safe Rust:
//!
//! - Huffman decoding, sequential and progressive (spectral selection and
//!   successive approximation), restart intervals; damaged entropy-coded
//!   data is handled as libjpeg-turbo does (zeros after a premature marker,
//!   resynchronisation at restart markers) instead of failing;
//! - the "islow" integer inverse DCT (`jidctint.c`) with the arithmetic of
//!   its x86 SIMD versions, which PIL runs;
//! - "fancy" upsampling (`jdsample.c`): triangle filters for h2v1, h1v2 and
//!   h2v2 sampling, replication for other integral ratios;
//! - YCbCr → RGB through libjpeg's 16-bit fixed-point tables (`jdcolor.c`);
//! - libjpeg's guess of the colour space (JFIF and Adobe markers, component
//!   ids) and, for four-component files, PIL's CMYK handling.
//!
//! - block smoothing of progressive files whose low-frequency coefficients
//!   never got their last refinement (`jdcoefct.c`).
//!
//! What it refuses, with a [`JpegError::Unsupported`], is what PIL refuses
//! or what is practically never seen: arithmetic coding, lossless and
//! hierarchical JPEG, samples other than 8-bit, 2 components. Data that
//! ends before the end-of-image marker is an error, as in PIL.
//!
//! `som_core::io::decode_image` uses this decoder for JPEGs when the
//! `exact-jpeg` feature is on (the default); without it, the `image`
//! crate's decoder is used.
//!
//! # Example
//! ```
//! use som_core::jpeg::{decode, Limits};
//! // Any JPEG; here one written by the `image` crate's encoder.
//! let rgb = image::RgbImage::from_fn(33, 17, |x, y| image::Rgb([x as u8 * 7, y as u8 * 15, 99]));
//! let mut bytes = Vec::new();
//! rgb.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Jpeg)?;
//! let limits = Limits { max_side: 16_384, max_bytes: 1 << 30 };
//! let decoded = decode(&bytes, &limits)?;
//! assert_eq!((decoded.width(), decoded.height()), (33, 17));
//! assert!(decode(&bytes[..bytes.len() / 2], &limits).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bits;
mod color;
mod decoder;
mod error;
mod frame;
mod huffman;
mod idct;
mod markers;
mod output;
mod scan;
mod smooth;
mod upsample;

pub use error::JpegError;

use image::DynamicImage;

/// Resource limits for untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest width or height accepted (pixels).
    pub max_side: u32,
    /// The most bytes the decoder may allocate (coefficients, sample planes
    /// and the output image); checked before anything is allocated.
    pub max_bytes: u64,
}

/// Whether `data` starts like a JPEG file (the SOI marker and a marker).
///
/// ```
/// assert!(som_core::jpeg::is_jpeg(&[0xFF, 0xD8, 0xFF, 0xE0]));
/// assert!(!som_core::jpeg::is_jpeg(b"\x89PNG\r\n\x1a\n"));
/// ```
pub fn is_jpeg(data: &[u8]) -> bool {
    data.starts_with(&[0xFF, 0xD8, 0xFF])
}

/// Decodes a JPEG to the pixels libjpeg-turbo (PIL, OpenCV) gives:
/// [`DynamicImage::ImageLuma8`] for a grayscale file (PIL mode `L`),
/// [`DynamicImage::ImageRgb8`] otherwise (for CMYK, PIL's
/// `convert("RGB")`). The EXIF orientation is not applied, as PIL's
/// `Image.open` does not apply it.
///
/// # Errors
/// A [`JpegError`] naming the problem: not a JPEG, truncated data, a corrupt
/// header, an unsupported variant, or a [`Limits`] exceeded. Never panics,
/// whatever the input.
///
/// # Example
/// ```
/// use som_core::jpeg::{decode, JpegError, Limits};
/// let limits = Limits { max_side: 16_384, max_bytes: 1 << 30 };
/// let err = decode(&[0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8, 0, 1, 0, 1, 1, 1, 0x11, 0], &limits);
/// assert!(matches!(err, Err(JpegError::Truncated(_))));
/// ```
pub fn decode(data: &[u8], limits: &Limits) -> Result<DynamicImage, JpegError> {
    decoder::decode(data, limits)
}

/// The width and height a JPEG's frame header declares, read as [`decode`] reads
/// it (the markers before the frame header are walked, nothing is decoded).
///
/// # Errors
/// As [`decode`] for what comes before the frame header: not a JPEG, truncated,
/// corrupt, or an unsupported frame type.
///
/// # Example
/// ```
/// use som_core::jpeg::dimensions;
/// // SOI, then a baseline frame header: 8-bit, 1 row, 2 columns, one component.
/// let jpeg = [0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8, 0, 1, 0, 2, 1, 1, 0x11, 0];
/// assert_eq!(dimensions(&jpeg)?, (2, 1));
/// assert!(dimensions(&jpeg[..8]).is_err());
/// # Ok::<(), som_core::jpeg::JpegError>(())
/// ```
pub fn dimensions(data: &[u8]) -> Result<(u32, u32), JpegError> {
    decoder::dimensions(data)
}

/// Zig-zag index → natural (row-major) index, with 16 extra entries so a
/// corrupt run length past the end lands on the last coefficient, as in
/// libjpeg (`jpeg_natural_order`).
#[rustfmt::skip]
pub(crate) const NATURAL_ORDER: [usize; 80] = [
     0,  1,  8, 16,  9,  2,  3, 10, 17, 24, 32, 25, 18, 11,  4,  5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13,  6,  7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
    63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
];
