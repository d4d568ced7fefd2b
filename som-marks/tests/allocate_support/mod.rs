//! Shared by the allocation tests: fixture loading and a deterministic label measure.
#![allow(dead_code)]

use std::path::PathBuf;

use som_core::{ImageSize, LabelMeasure, Segmentation};

/// The nine reference mask sets (`fixtures/masks/<set>.json`).
pub const SETS: [&str; 9] = [
    "synth_1024x768_n50",
    "synth_1024x768_n200",
    "synth_1024x768_n200_b",
    "synth_2048x1536_n200",
    "felz_astronaut",
    "felz_camera",
    "felz_chelsea",
    "felz_coffee",
    "felz_rocket",
];

/// The repository's `fixtures/` folder.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// A reference mask set as a segmentation (region `i` = mask `i`).
pub fn load_set(name: &str) -> Segmentation {
    let text =
        std::fs::read_to_string(fixtures().join("masks").join(format!("{name}.json"))).expect("fixture");
    som_core::json::read_regions(&text).expect("valid regions JSON").1
}

/// `fixtures/alloc/<set>.json` (tools/fixtures/gen_alloc.py).
pub fn load_reference(name: &str) -> serde_json::Value {
    let text =
        std::fs::read_to_string(fixtures().join("alloc").join(format!("{name}.json"))).expect("fixture");
    serde_json::from_str(&text).expect("valid JSON")
}

/// Label sizes like a bold sans font of `min(w, h) / 40` px (at least 8 px):
/// digits 0.62 em wide, 0.2 em padding around, 1 em of text height.
#[derive(Debug, Clone, Copy)]
pub struct TestMeasure;

impl LabelMeasure for TestMeasure {
    fn label_size(&self, text: &str, image: ImageSize, scale: f32) -> (u32, u32) {
        let em = (image.width.min(image.height) as f32 / 40.0).max(8.0) * scale;
        let pad = 0.2 * em;
        let w = text.chars().count() as f32 * 0.62 * em + 2.0 * pad;
        let h = em + 2.0 * pad;
        (w.ceil() as u32, h.ceil() as u32)
    }

    fn min_scale(&self, _image: ImageSize) -> f32 {
        0.6
    }
}
