//! Decoding images from untrusted files with resource limits, and encoding
//! images as PNG or JPEG.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageReader, Limits};

use crate::error::SomError;

mod encode;

pub use encode::{encode_jpeg, encode_png, OutputFormat, DEFAULT_JPEG_QUALITY};

/// The largest width or height accepted by [`decode_image`] (pixels).
pub const MAX_IMAGE_SIDE: u32 = 16_384;
/// The most memory [`decode_image`] lets a decoder allocate (bytes).
pub const MAX_DECODE_BYTES: u64 = 1 << 30;

/// Decodes a PNG or JPEG from memory, refusing images larger than
/// [`MAX_IMAGE_SIDE`] on a side or needing more than [`MAX_DECODE_BYTES`].
///
/// With the `exact-jpeg` feature (default), JPEGs are decoded by
/// [`crate::jpeg`], pixel-identically to PIL and OpenCV (libjpeg-turbo);
/// without it, by the `image` crate's decoder.
///
/// # Errors
/// [`SomError::Image`] naming the problem: unknown format, truncated or corrupt
/// data, or a limit exceeded.
///
/// # Example
/// ```
/// use som_core::io::decode_image;
/// let mut png = Vec::new();
/// image::RgbImage::new(3, 2).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
/// assert_eq!(decode_image(&png)?.width(), 3);
/// assert!(decode_image(&png[..png.len() / 2]).is_err());
/// assert!(decode_image(b"not an image").is_err());
/// # Ok::<(), som_core::SomError>(())
/// ```
pub fn decode_image(bytes: &[u8]) -> Result<DynamicImage, SomError> {
    #[cfg(feature = "exact-jpeg")]
    if crate::jpeg::is_jpeg(bytes) {
        let limits = crate::jpeg::Limits {
            max_side: MAX_IMAGE_SIDE,
            max_bytes: MAX_DECODE_BYTES,
        };
        return crate::jpeg::decode(bytes, &limits).map_err(|e| SomError::Image(e.to_string()));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| SomError::Image(format!("cannot read the image: {e}")))?;
    if reader.format().is_none() {
        return Err(SomError::Image("not a PNG or JPEG image".into()));
    }
    // The header's size first: a clear message before any decoder allocates.
    if let Ok((w, h)) = image_dimensions(bytes) {
        if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE {
            return Err(SomError::Image(format!(
                "the image is {w}x{h} pixels, more than the {MAX_IMAGE_SIDE} px a side som decodes"
            )));
        }
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => SomError::Image(format!(
            "the image is larger than som decodes ({MAX_IMAGE_SIDE} px a side, {} MiB)",
            MAX_DECODE_BYTES >> 20
        )),
        e => SomError::Image(format!("cannot decode the image: {}", one_line(&e.to_string()))),
    })?;
    if image.width() == 0 || image.height() == 0 {
        return Err(SomError::Image("the image has no pixels".into()));
    }
    Ok(image)
}

/// The width and height a PNG's or JPEG's header declares, read by the decoder
/// [`decode_image`] uses for it (with `exact-jpeg`, [`crate::jpeg::dimensions`]), so
/// a size check before decoding agrees with the decoding. Nothing is decoded.
///
/// # Errors
/// [`SomError::Image`] when the header cannot be read (not an image, truncated,
/// corrupt).
///
/// # Example
/// ```
/// use som_core::io::image_dimensions;
/// let mut png = Vec::new();
/// image::RgbImage::new(3, 2).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
/// assert_eq!(image_dimensions(&png)?, (3, 2));
/// assert!(image_dimensions(b"not an image").is_err());
/// # Ok::<(), som_core::SomError>(())
/// ```
pub fn image_dimensions(bytes: &[u8]) -> Result<(u32, u32), SomError> {
    #[cfg(feature = "exact-jpeg")]
    if crate::jpeg::is_jpeg(bytes) {
        return crate::jpeg::dimensions(bytes)
            .map_err(|e| SomError::Image(format!("cannot read the image header: {e}")));
    }
    ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| SomError::Image(format!("cannot read the image: {e}")))?
        .into_dimensions()
        .map_err(|e| {
            SomError::Image(format!(
                "cannot read the image header: {}",
                one_line(&e.to_string())
            ))
        })
}

/// Reads and decodes an image file with the limits of [`decode_image`].
///
/// # Errors
/// [`SomError::Io`] when the file cannot be read, [`SomError::Image`] when it
/// cannot be decoded; both name the path.
pub fn load_image(path: &Path) -> Result<DynamicImage, SomError> {
    let bytes = std::fs::read(path).map_err(|source| SomError::io(path, source))?;
    decode_image(&bytes).map_err(|e| match e {
        SomError::Image(m) => SomError::Image(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// Encodes `image` in the format `path`'s extension names and writes it,
/// creating missing parent folders.
///
/// # Errors
/// [`SomError::Image`] for an unknown extension or a failed encoding,
/// [`SomError::Io`] when the file cannot be written; each names the path.
///
/// # Example
/// ```
/// let dir = std::env::temp_dir().join(format!("som-save-doc-{}", std::process::id()));
/// let path = dir.join("out/marked.png");
/// som_core::io::save_image(&image::RgbImage::new(4, 3), &path)?;
/// assert_eq!(som_core::io::load_image(&path)?.width(), 4);
/// assert!(som_core::io::save_image(&image::RgbImage::new(4, 3), &dir.join("a.gif")).is_err());
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), som_core::SomError>(())
/// ```
pub fn save_image(image: &image::RgbImage, path: &Path) -> Result<(), SomError> {
    let bytes = OutputFormat::from_path(path)?.encode(image)?;
    write_file(path, &bytes)
}

/// Writes `bytes` to `path`, creating missing parent folders.
///
/// # Errors
/// [`SomError::Io`] naming the folder or file that could not be created.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SomError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| SomError::io(parent, e))?;
    }
    std::fs::write(path, bytes).map_err(|e| SomError::io(path, e))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
