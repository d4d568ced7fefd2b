//! Fixture readers the SAM and MaskDINO test helpers share: each fixture folder (written by
//! a `tools/fixtures/gen_*.py` script) holds `expected.safetensors`, `expected.json` and
//! `image.png`. A module directory, so not a test binary itself.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use tch::{Kind, Tensor};

/// A folder under `fixtures/`.
pub struct FixtureDir(pub &'static str);

impl FixtureDir {
    /// The path of `name` in the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures")
            .join(self.0)
            .join(name)
    }

    /// The reference's tensors (`expected.safetensors`).
    pub fn expected(&self) -> BTreeMap<String, Tensor> {
        Tensor::read_safetensors(self.path("expected.safetensors"))
            .expect("expected.safetensors")
            .into_iter()
            .collect()
    }

    /// The reference's other outputs (`expected.json`).
    pub fn meta(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.path("expected.json")).expect("expected.json");
        serde_json::from_str(&text).expect("json")
    }

    /// The input photo (`image.png`).
    pub fn image(&self) -> image::RgbImage {
        image::open(self.path("image.png")).expect("image.png").to_rgb8()
    }

    /// A temporary path unique to this folder, this process and `name`.
    pub fn temp_path(&self, name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("som-{}-test-{}", self.0, std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir.join(name)
    }
}

/// Largest absolute difference between two float tensors of the same shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shapes differ");
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}
