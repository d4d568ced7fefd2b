//! Shared helpers for the SAM test binaries (a module directory, so not a test binary itself).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use som_segment::sam::{Sam, SamConfig};
use tch::Tensor;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/sam")
        .join(name)
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
    Tensor::read_safetensors(fixture("expected.safetensors"))
        .expect("expected.safetensors")
        .into_iter()
        .collect()
}

pub fn meta() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).expect("expected.json"))
        .expect("json")
}

pub fn image() -> image::RgbImage {
    image::open(fixture("image.png")).expect("image.png").to_rgb8()
}

/// Largest absolute difference between two float tensors of the same shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shapes differ");
    (a.to_kind(tch::Kind::Double) - b.to_kind(tch::Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

/// A temporary path unique to this process and `name`.
pub fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("som-sam-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
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
