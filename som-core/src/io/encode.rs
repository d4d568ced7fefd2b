//! Encoding images as PNG or JPEG: the one encoder every crate and the CLI use.

use std::path::Path;

use crate::error::SomError;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder, RgbImage};

/// JPEG quality used when none is given.
pub const DEFAULT_JPEG_QUALITY: u8 = 90;

/// The file format of an encoded image (a marked image, an image sent to a model).
///
/// # Example
/// ```
/// use som_core::io::OutputFormat;
/// assert_eq!(OutputFormat::from_path("out/marked.PNG")?, OutputFormat::Png);
/// assert_eq!(OutputFormat::from_path("a.jpeg")?, OutputFormat::Jpeg { quality: 90 });
/// assert!(OutputFormat::from_path("a.gif").is_err());
///
/// let img = image::RgbImage::new(4, 3);
/// let bytes = OutputFormat::Png.encode(&img)?;
/// assert_eq!(&bytes[1..4], b"PNG");
/// # Ok::<(), som_core::SomError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Lossless PNG (the default; what models should see).
    #[default]
    Png,
    /// JPEG at `quality` (1–100; out-of-range values are clamped).
    Jpeg {
        /// Encoder quality, 1–100.
        quality: u8,
    },
}

impl OutputFormat {
    /// The format named by a file's extension: `.png`, or `.jpg` / `.jpeg`
    /// (quality [`DEFAULT_JPEG_QUALITY`]); case-insensitive.
    ///
    /// # Errors
    /// [`SomError::Image`] naming the path when the extension is missing or
    /// not one of those.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, SomError> {
        let path = path.as_ref();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("png") => Ok(OutputFormat::Png),
            Some("jpg" | "jpeg") => Ok(OutputFormat::Jpeg {
                quality: DEFAULT_JPEG_QUALITY,
            }),
            _ => Err(SomError::Image(format!(
                "cannot write {}: unknown image extension (use .png, .jpg or .jpeg)",
                path.display()
            ))),
        }
    }

    /// Encodes `image` in this format.
    ///
    /// # Errors
    /// [`SomError::Image`] when the encoder fails (e.g. an empty image for JPEG).
    pub fn encode(&self, image: &RgbImage) -> Result<Vec<u8>, SomError> {
        match *self {
            OutputFormat::Png => encode_png(image),
            OutputFormat::Jpeg { quality } => encode_jpeg(image, quality),
        }
    }
}

/// Encodes `image` as PNG (fast deflate, adaptive filters; deterministic).
///
/// # Errors
/// [`SomError::Image`] when the encoder fails.
///
/// # Example
/// ```
/// let img = image::RgbImage::from_pixel(8, 8, image::Rgb([10, 20, 30]));
/// let png = som_core::io::encode_png(&img)?;
/// let back = image::load_from_memory(&png).unwrap().to_rgb8();
/// assert_eq!(back, img);
/// # Ok::<(), som_core::SomError>(())
/// ```
pub fn encode_png(image: &RgbImage) -> Result<Vec<u8>, SomError> {
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            ExtendedColorType::Rgb8,
        )
        .map_err(|e| {
            SomError::Image(format!(
                "cannot encode a {}x{} image as PNG: {e}",
                image.width(),
                image.height()
            ))
        })?;
    Ok(out)
}

/// Encodes `image` as baseline JPEG at `quality` (clamped to 1–100).
///
/// # Errors
/// [`SomError::Image`] when the encoder fails.
///
/// # Example
/// ```
/// let img = image::RgbImage::from_pixel(8, 8, image::Rgb([10, 20, 30]));
/// let jpg = som_core::io::encode_jpeg(&img, 85)?;
/// assert_eq!(&jpg[..2], &[0xFF, 0xD8]);
/// # Ok::<(), som_core::SomError>(())
/// ```
pub fn encode_jpeg(image: &RgbImage, quality: u8) -> Result<Vec<u8>, SomError> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100))
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            ExtendedColorType::Rgb8,
        )
        .map_err(|e| {
            SomError::Image(format!(
                "cannot encode a {}x{} image as JPEG: {e}",
                image.width(),
                image.height()
            ))
        })?;
    Ok(out)
}
