//! Mask IoU against pycocotools (fixture: tools/fixtures/gen_eval.py).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use som_core::json::read_regions;

fn load(rel: &str) -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures")
            .join(rel),
    )
    .unwrap()
}

#[test]
fn iou_matrix_equals_pycocotools() {
    let (_, dt) = read_regions(&load("masks/synth_1024x768_n200_b.json")).unwrap();
    let (_, gt) = read_regions(&load("masks/synth_1024x768_n200.json")).unwrap();
    let reference: Value = serde_json::from_str(&load("eval/iou_n200_vs_b.json")).unwrap();
    let expected: BTreeMap<(usize, usize), f64> = reference["nonzero"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                (t[0].as_u64().unwrap() as usize, t[1].as_u64().unwrap() as usize),
                t[2].as_f64().unwrap(),
            )
        })
        .collect();
    assert!(expected.len() > 4000);
    for (i, d) in dt.regions().iter().enumerate() {
        for (j, g) in gt.regions().iter().enumerate() {
            let ours = som_eval::mask_iou(d.mask.as_ref().unwrap(), g.mask.as_ref().unwrap()).unwrap();
            let theirs = expected.get(&(i, j)).copied().unwrap_or(0.0);
            assert!((ours - theirs).abs() < 1e-12, "({i}, {j}): {ours} vs {theirs}");
        }
    }
}
