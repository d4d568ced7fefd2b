//! Fixture loading shared by the benchmarks and the side-by-side timing tool.
//!
//! The mask sets are the reference harness's (`../shared/ref/gen_masks.py`),
//! committed as regions JSON under `fixtures/masks/`.

use std::path::PathBuf;

use anyhow::Context;
use som_core::json::read_regions;
use som_core::Segmentation;

/// The repository's `fixtures/` folder.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// Loads the reference mask set `name` (e.g. `synth_1024x768_n200`).
pub fn load_set(name: &str) -> anyhow::Result<Segmentation> {
    let path = fixtures_dir().join("masks").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    Ok(read_regions(&text)?.1)
}

/// The compressed RLE strings of a mask set, as pycocotools wrote them.
pub fn load_rle_strings(name: &str) -> anyhow::Result<Vec<String>> {
    let path = fixtures_dir().join("masks").join(format!("{name}.json"));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let regions = doc["regions"].as_array().context("no regions")?;
    Ok(regions
        .iter()
        .filter_map(|r| r["segmentation"]["counts"].as_str().map(String::from))
        .collect())
}

/// The background used for a set: the photo for felz sets, else coffee.png
/// resized to the canvas (as the reference harness does).
pub fn background(name: &str, seg: &Segmentation) -> anyhow::Result<image::RgbImage> {
    let photo = match name.strip_prefix("felz_") {
        Some("rocket") => "rocket.jpg".to_string(),
        Some(p) => format!("{p}.png"),
        None => "coffee.png".to_string(),
    };
    let img = som_core::io::load_image(&fixtures_dir().join("images").join(photo))?.to_rgb8();
    if img.dimensions() == (seg.size().width, seg.size().height) {
        return Ok(img);
    }
    Ok(image::imageops::resize(
        &img,
        seg.size().width,
        seg.size().height,
        image::imageops::FilterType::Triangle,
    ))
}

/// Median of a list of milliseconds.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs `f` once to warm up, then `reps` times, and returns the median milliseconds.
pub fn time_median(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let times = (0..reps.max(1))
        .map(|_| {
            let t = std::time::Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    median(times)
}

/// A 2048x1536 JPEG for decoding benchmarks: astronaut.png scaled up
/// (triangle filter) and encoded by the `image` crate (quality 90, 4:2:2).
pub fn big_jpeg() -> anyhow::Result<Vec<u8>> {
    let photo = som_core::io::load_image(&fixtures_dir().join("images/astronaut.png"))?.to_rgb8();
    let big = image::imageops::resize(&photo, 2048, 1536, image::imageops::FilterType::Triangle);
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90).encode_image(&big)?;
    Ok(bytes)
}
