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
