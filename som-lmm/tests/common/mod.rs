//! Shared helpers for som-lmm's integration tests.
#![allow(dead_code)]

use std::time::Duration;

use image::RgbImage;
use som_core::{BBox, ImageSize, LabelScheme, Mark, MarkedImage, Point, Region, Segmentation};
use som_lmm::{ApiKey, ClientConfig, LmmClient, Provider, RetryPolicy};

/// The key every test client uses; no output may ever contain it.
pub const KEY: &str = "sk-test-SECRET-0123456789abcdef";

/// A `w`×`h` marked image with `n` box regions (ids 100, 101, …) marked by `scheme`.
pub fn marked_with(n: usize, scheme: LabelScheme, w: u32, h: u32) -> MarkedImage {
    let size = ImageSize::new(w, h);
    let regions: Vec<Region> = (0..n)
        .map(|i| Region::from_box(100 + i as u64, BBox::new((i as u32 * 3) % w, 0, 1, 1)))
        .collect();
    let seg = Segmentation::new(size, regions).expect("valid segmentation");
    let marks = (0..n)
        .map(|i| {
            Mark::new(
                scheme.id(i),
                scheme.text(i),
                Point::new((i as u32 * 3) % w, 0),
                i,
                BBox::new(0, 0, 1, 1),
            )
        })
        .collect();
    let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 128]));
    MarkedImage::new(img, marks, seg).expect("valid marked image")
}

/// Ten numbered marks on a 40×30 image.
pub fn marked() -> MarkedImage {
    marked_with(10, LabelScheme::Number { zero_based: false }, 40, 30)
}

/// Retries with tiny waits so fault tests stay fast.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        ..RetryPolicy::default()
    }
}

/// A config for `provider` pointed at `base`, with the test key and fast retries.
pub fn config(provider: Provider, model: &str, base: &str) -> ClientConfig {
    ClientConfig::new(provider, model)
        .with_base_url(base)
        .with_api_key(ApiKey::new(KEY))
        .with_retry(fast_retry())
        .with_timeout(Duration::from_secs(10))
}

pub fn client(provider: Provider, model: &str, base: &str) -> LmmClient {
    LmmClient::new(config(provider, model, base)).expect("client")
}

/// Decodes a base64 image and returns its size.
pub fn decoded_size(b64: &str) -> (u32, u32) {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    let img = image::load_from_memory(&bytes).expect("an image");
    (img.width(), img.height())
}

pub fn ids(answer: &som_core::GroundingAnswer) -> Vec<u32> {
    answer.marks.iter().map(|m| m.id).collect()
}
