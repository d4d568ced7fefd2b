//! Shared helpers for the MaskDINO test binaries (a module directory, so not a test binary).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use som_segment::maskdino::{MaskDino, MaskDinoConfig};
use som_segment::torch::Weights;
use tch::{Kind, Tensor};

/// Absolute tolerance of the issue for every float output.
pub const TOL: f64 = 1e-4;

#[path = "../fixture_support/mod.rs"]
mod fixture_support;

#[allow(unused_imports)] // not every test binary compares tensors
pub use fixture_support::max_abs_diff;
use fixture_support::FixtureDir;

const MASKDINO: FixtureDir = FixtureDir("maskdino");

pub fn fixture(name: &str) -> PathBuf {
    MASKDINO.path(name)
}

/// The reduced config of `gen_maskdino.py` with box initialisation `variant`
/// (`no`, `mask2box`, `bitmask`).
pub fn tiny_config(variant: &str) -> MaskDinoConfig {
    let text = std::fs::read_to_string(fixture("tiny_config.json")).expect("tiny_config.json");
    let all: serde_json::Value = serde_json::from_str(&text).expect("json");
    serde_json::from_value(all[variant].clone()).expect("valid config")
}

pub fn tiny_model(file: &str, variant: &str) -> MaskDino {
    MaskDino::load_with_config(fixture(file), tiny_config(variant)).expect("tiny checkpoint loads")
}

pub fn expected() -> BTreeMap<String, Tensor> {
    MASKDINO.expected()
}

pub fn meta() -> serde_json::Value {
    MASKDINO.meta()
}

pub fn image() -> image::RgbImage {
    MASKDINO.image()
}

/// Asserts `got` is within [`TOL`] of the fixture tensor `key`.
pub fn assert_close(exp: &BTreeMap<String, Tensor>, key: &str, got: &Tensor) {
    let want = exp.get(key).unwrap_or_else(|| panic!("fixture has no `{key}`"));
    let d = max_abs_diff(got, want);
    assert!(d <= TOL, "{key} differs by {d}");
}

/// Asserts the values of `got` at the fixture's sampled positions `{key}.index` are within
/// [`TOL`] of `{key}.values`.
pub fn assert_sampled_close(exp: &BTreeMap<String, Tensor>, key: &str, got: &Tensor) {
    let index = exp[&format!("{key}.index")].to_kind(Kind::Int64);
    let values = &exp[&format!("{key}.values")];
    let got = got.flatten(0, -1).index_select(0, &index);
    let d = max_abs_diff(&got, values);
    assert!(d <= TOL, "{key} differs by {d} at the sampled positions");
}

/// A temporary path unique to this process and `name`.
pub fn temp_path(name: &str) -> PathBuf {
    MASKDINO.temp_path(name)
}

// ---- deterministic weights of the full-width blocks (`counter_uniform` in gen_maskdino.py)

fn fnv1a64(text: &str) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// `n` values in [-1, 1): SplitMix64 of (fnv1a64(key) + (i + 1) · golden), top 24 bits.
pub fn counter_uniform(key: &str, n: usize) -> Vec<f32> {
    let seed = fnv1a64(key);
    (1..=n as u64)
        .map(|i| {
            let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

/// Inputs of the full-width blocks (`uniform_tensor`).
pub fn uniform_tensor(key: &str, shape: &[i64]) -> Tensor {
    let n: i64 = shape.iter().product();
    Tensor::from_slice(&counter_uniform(key, n as usize)).view(shape)
}

/// A parameter of a full-width block (`counter_tensor`).
pub fn counter_tensor(key: &str, shape: &[i64]) -> Tensor {
    let n: i64 = shape.iter().product::<i64>().max(1);
    let u = counter_uniform(key, n as usize);
    let mut parts = key.rsplit('.');
    let leaf = parts.next().unwrap_or("");
    let parent = parts.next().unwrap_or("");
    let v: Vec<f32> = if leaf == "running_var" {
        u.iter().map(|&u| 0.25f32 * (u + 1.0) + 1.0).collect()
    } else if leaf == "weight" && shape.len() == 1 && parent.contains("norm") {
        u.iter().map(|&u| 0.1f32 * u + 1.0).collect()
    } else if shape.len() <= 1 {
        u.iter().map(|&u| 0.1f32 * u).collect()
    } else {
        let fan_in: i64 = shape[1..].iter().product();
        let scale = (1.0 / (fan_in as f64).sqrt()) as f32;
        u.iter().map(|&u| scale * u).collect()
    };
    Tensor::from_slice(&v).view(shape)
}

/// The weights of full-width block `block` of `expected.json` (`prefix` is the key prefix
/// `gen_maskdino.py` hashed them under), plus `extra` tensors.
pub fn block_weights(block: &str, prefix: &str, extra: Vec<(String, Tensor)>) -> Weights {
    let meta = meta();
    let params = meta["blocks"][block]["params"].as_array().expect("params");
    let mut tensors: Vec<(String, Tensor)> = params
        .iter()
        .map(|p| {
            let name = p[0].as_str().expect("name").to_owned();
            let shape: Vec<i64> = p[1]
                .as_array()
                .expect("shape")
                .iter()
                .map(|v| v.as_i64().expect("dim"))
                .collect();
            let t = counter_tensor(&format!("{prefix}{name}"), &shape);
            (name, t)
        })
        .collect();
    tensors.extend(extra);
    Weights::from_tensors(tensors).expect("weights")
}

/// A JSON array of integers.
pub fn ints(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_i64().expect("integer"))
        .collect()
}
