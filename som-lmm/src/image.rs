//! Fitting images to each provider's limits and encoding them for upload.

use base64::Engine as _;
use image::{imageops::FilterType, RgbImage};
use som_core::io::{OutputFormat, DEFAULT_JPEG_QUALITY};
use som_core::{ImageScale, ImageSize};

use crate::error::LmmError;

/// The largest image a provider takes (or uses: larger ones are shrunk on
/// arrival, so sending them only costs bandwidth).
///
/// Each provider states its own ([`crate::providers::ProviderInfo::image_limits`]).
///
/// ```
/// use som_lmm::providers::OpenAiChat;
/// use som_core::ImageSize;
/// // OpenAI: fit in 2048×2048, then the short side to 768.
/// assert_eq!(OpenAiChat::INFO.image_limits.fit(ImageSize::new(4096, 2048)), ImageSize::new(1536, 768));
/// assert_eq!(OpenAiChat::INFO.image_limits.fit(ImageSize::new(640, 427)), ImageSize::new(640, 427));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageLimits {
    /// Longest side in pixels.
    pub max_long_edge: u32,
    /// Shortest side in pixels, if limited.
    pub max_short_edge: Option<u32>,
    /// Pixel count, if limited.
    pub max_pixels: Option<u64>,
    /// Encoded size in bytes (before base64).
    pub max_bytes: usize,
}

impl ImageLimits {
    /// The size an image of `size` is sent at: scaled down (never up),
    /// keeping its aspect ratio, until every limit holds.
    pub fn fit(&self, size: ImageSize) -> ImageSize {
        if size.is_empty() {
            return size;
        }
        let (w, h) = (f64::from(size.width), f64::from(size.height));
        let mut scale: f64 = 1.0;
        scale = scale.min(f64::from(self.max_long_edge.max(1)) / w.max(h));
        if let Some(s) = self.max_short_edge {
            scale = scale.min(f64::from(s.max(1)) / w.min(h));
        }
        if let Some(p) = self.max_pixels {
            scale = scale.min((p.max(1) as f64 / (w * h)).sqrt());
        }
        if scale >= 1.0 {
            return size;
        }
        let nw = ((w * scale + 1e-9).floor() as u32).max(1);
        let nh = ((h * scale + 1e-9).floor() as u32).max(1);
        ImageSize::new(nw, nh)
    }
}

/// An image ready to inline in a request.
#[derive(Clone, PartialEq)]
pub struct EncodedImage {
    /// `image/png` or `image/jpeg`.
    pub mime: &'static str,
    /// The encoded bytes in standard base64.
    pub base64: String,
    /// Original and sent sizes.
    pub scale: ImageScale,
}

impl std::fmt::Debug for EncodedImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedImage")
            .field("mime", &self.mime)
            .field("base64_len", &self.base64.len())
            .field("scale", &self.scale)
            .finish()
    }
}

impl EncodedImage {
    /// A `data:` URL (OpenAI's `image_url`).
    pub fn data_url(&self) -> String {
        format!("data:{};base64,{}", self.mime, self.base64)
    }
}

/// Resizes `image` to `limits` and encodes it: PNG (marks stay crisp), or
/// JPEG (quality 90) when the PNG breaks the byte limit, shrinking further
/// if even that is too large.
///
/// # Errors
/// [`LmmError::Image`] for an empty image or one that cannot fit the byte limit.
///
/// ```
/// use image::RgbImage;
/// use som_lmm::prepare_image;
/// use som_lmm::providers::AnthropicMessages;
/// let img = RgbImage::new(4000, 1000);
/// let enc = prepare_image(&img, &AnthropicMessages::INFO.image_limits)?;
/// assert_eq!(enc.mime, "image/png");
/// assert_eq!((enc.scale.sent.width, enc.scale.sent.height), (1568, 392));
/// # Ok::<(), som_lmm::LmmError>(())
/// ```
pub fn prepare_image(image: &RgbImage, limits: &ImageLimits) -> Result<EncodedImage, LmmError> {
    let original = ImageSize::new(image.width(), image.height());
    if original.is_empty() {
        return Err(LmmError::Image(format!("the image is empty ({original})")));
    }
    let mut target = limits.fit(original);
    for _ in 0..8 {
        let resized;
        let img = if target == original {
            image
        } else {
            resized = image::imageops::resize(image, target.width, target.height, FilterType::Triangle);
            &resized
        };
        let png = encode(img, OutputFormat::Png)?;
        let (mime, bytes) = if png.len() <= limits.max_bytes {
            ("image/png", png)
        } else {
            (
                "image/jpeg",
                encode(
                    img,
                    OutputFormat::Jpeg {
                        quality: DEFAULT_JPEG_QUALITY,
                    },
                )?,
            )
        };
        if bytes.len() <= limits.max_bytes {
            return Ok(EncodedImage {
                mime,
                base64: base64::engine::general_purpose::STANDARD.encode(&bytes),
                scale: ImageScale {
                    original,
                    sent: target,
                },
            });
        }
        target = ImageSize::new(
            ((f64::from(target.width) * 0.75) as u32).max(1),
            ((f64::from(target.height) * 0.75) as u32).max(1),
        );
    }
    Err(LmmError::Image(format!(
        "a {original} image does not fit in {} bytes",
        limits.max_bytes
    )))
}

/// Encodes `img` for upload with the workspace's one encoder (PNG with fast
/// deflate: on the 600×400 coffee photo, default deflate took 53 ms instead
/// of 1.6 ms for a payload 0.7% smaller).
fn encode(img: &RgbImage, format: OutputFormat) -> Result<Vec<u8>, LmmError> {
    format.encode(img).map_err(|e| LmmError::Image(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{AnthropicMessages, GeminiGenerate, OllamaChat, OpenAiChat};

    #[test]
    fn fit_gives_the_exact_size_each_provider_uses() {
        // (width, height) → size sent, per provider: OpenAI fits in 2048 and
        // the short side in 768; Anthropic fits in 1568 and 1.15 MP; Gemini in
        // 3072; Ollama in 1536. Sizes are rounded down, at least 1 px.
        let sizes = [
            (1, 1),
            (10_000, 1),
            (1, 10_000),
            (4000, 3000),
            (640, 427),
            (2048, 2048),
            (3000, 1000),
        ];
        let expected = [
            (
                OpenAiChat::INFO.image_limits,
                [
                    (1, 1),
                    (2048, 1),
                    (1, 2048),
                    (1024, 768),
                    (640, 427),
                    (768, 768),
                    (2048, 682),
                ],
            ),
            (
                AnthropicMessages::INFO.image_limits,
                [
                    (1, 1),
                    (1568, 1),
                    (1, 1568),
                    (1238, 928),
                    (640, 427),
                    (1072, 1072),
                    (1568, 522),
                ],
            ),
            (
                GeminiGenerate::INFO.image_limits,
                [
                    (1, 1),
                    (3072, 1),
                    (1, 3072),
                    (3072, 2304),
                    (640, 427),
                    (2048, 2048),
                    (3000, 1000),
                ],
            ),
            (
                OllamaChat::INFO.image_limits,
                [
                    (1, 1),
                    (1536, 1),
                    (1, 1536),
                    (1536, 1152),
                    (640, 427),
                    (1536, 1536),
                    (1536, 512),
                ],
            ),
        ];
        for (limits, want) in expected {
            for ((w, h), (ew, eh)) in sizes.into_iter().zip(want) {
                assert_eq!(
                    limits.fit(ImageSize::new(w, h)),
                    ImageSize::new(ew, eh),
                    "{w}x{h} under {limits:?}"
                );
            }
        }
    }

    #[test]
    fn prepared_images_have_the_fitted_size_and_scale() {
        let img = RgbImage::from_fn(4000, 1000, |x, y| {
            image::Rgb([(x % 251) as u8, (y % 241) as u8, 7])
        });
        let enc = prepare_image(&img, &AnthropicMessages::INFO.image_limits).unwrap();
        let sent = ImageSize::new(1568, 392);
        assert_eq!(
            enc.scale,
            ImageScale {
                original: ImageSize::new(4000, 1000),
                sent
            }
        );
        assert_eq!(enc.mime, "image/png");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&enc.base64)
            .unwrap();
        let decoded = image::load_from_memory(&bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (1568, 392));
        // The scale maps the sent image's corners back onto the original's.
        let far = enc.scale.to_original(som_core::Point::new(1567, 391));
        assert_eq!((far.x, far.y), (3997, 997));
        // An image within the limits is sent as it is, byte for byte.
        let small = RgbImage::from_fn(30, 20, |x, y| image::Rgb([x as u8, y as u8, 200]));
        let enc = prepare_image(&small, &OpenAiChat::INFO.image_limits).unwrap();
        assert_eq!(enc.scale.sent, enc.scale.original);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&enc.base64)
            .unwrap();
        assert_eq!(image::load_from_memory(&bytes).unwrap().to_rgb8(), small);
    }

    #[test]
    fn jpeg_fallback_and_shrinking_keep_the_byte_limit() {
        // Noise does not compress: the PNG breaks a small byte limit.
        let img = RgbImage::from_fn(300, 200, |x, y| {
            let v = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) as u8;
            image::Rgb([v, v.wrapping_mul(7), v.wrapping_add(91)])
        });
        let limits = ImageLimits {
            max_long_edge: 1000,
            max_short_edge: None,
            max_pixels: None,
            max_bytes: 40_000,
        };
        let enc = prepare_image(&img, &limits).unwrap();
        assert_eq!(enc.mime, "image/jpeg");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&enc.base64)
            .unwrap();
        assert!(bytes.len() <= 40_000);
        let decoded = image::load_from_memory(&bytes).unwrap();
        assert_eq!(
            (decoded.width(), decoded.height()),
            (enc.scale.sent.width, enc.scale.sent.height)
        );
        // The full-size JPEG is over the limit too, so the image was shrunk
        // by 3/4 per step: 300×200 → 225×150 → 168×112 (the first to fit).
        assert_eq!(enc.scale.sent, ImageSize::new(168, 112));
        assert_eq!(enc.scale.original, ImageSize::new(300, 200));
        let impossible = ImageLimits {
            max_bytes: 10,
            ..limits
        };
        assert!(matches!(
            prepare_image(&img, &impossible),
            Err(LmmError::Image(_))
        ));
        assert!(matches!(
            prepare_image(&RgbImage::new(0, 5), &limits),
            Err(LmmError::Image(_))
        ));
    }
}
