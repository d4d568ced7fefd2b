//! Agreement with pycocotools on committed fixtures (tools/fixtures/gen_masksets.py,
//! tools/fixtures/gen_core.py).

use std::path::PathBuf;

use serde_json::Value;
use som_core::json::read_regions;
use som_core::polygon::polygons_to_rle;
use som_core::{ImageSize, Rle};

fn fixture(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A JSON list of numbers, as `f64`s.
fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// A box as pycocotools writes it: `[x, y, w, h]`.
fn xywh(b: som_core::BBox) -> Vec<f64> {
    b.to_xywh().map(f64::from).to_vec()
}

const SETS: &[&str] = &[
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

/// Every mask of every reference set: decode pycocotools' string, re-encode,
/// and get the same bytes back; area and bbox agree with pycocotools too.
#[test]
fn rle_strings_are_byte_identical_to_pycocotools() {
    for set in SETS {
        let text = fixture(&format!("masks/{set}.json"));
        let doc: Value = serde_json::from_str(&text).unwrap();
        let (info, seg) = read_regions(&text).unwrap();
        let regions = doc["regions"].as_array().unwrap();
        assert_eq!(seg.len(), regions.len());
        for (r, v) in seg.regions().iter().zip(regions) {
            let expected = v["segmentation"]["counts"].as_str().unwrap();
            let mask = r.mask.as_ref().unwrap();
            assert_eq!(mask.to_rle().to_compressed(), expected, "{set} region {}", r.id);
            assert_eq!(
                mask.area(),
                v["area"].as_u64().unwrap(),
                "{set} region {} area",
                r.id
            );
            assert_eq!(
                xywh(mask.bbox()),
                numbers(&v["bbox"]),
                "{set} region {} bbox",
                r.id
            );
            // The mask read back through the bytes API is the same mask.
            let again = som_core::Mask::from_bytes(info.size(), &mask.to_bytes()).unwrap();
            assert_eq!(&again, mask);
        }
    }
}

#[test]
fn felzenszwalb_sets_partition_the_image() {
    // Each felz set is a label map: every pixel in exactly one mask.
    for set in SETS.iter().filter(|s| s.starts_with("felz")) {
        let (info, seg) = read_regions(&fixture(&format!("masks/{set}.json"))).unwrap();
        let total: u64 = seg.regions().iter().map(|r| r.area()).sum();
        assert_eq!(total, info.size().pixels(), "{set}");
    }
}

#[test]
fn polygons_rasterise_like_pycocotools() {
    let cases: Value = serde_json::from_str(&fixture("core/polygons.json")).unwrap();
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 100);
    for (i, c) in cases.iter().enumerate() {
        let size = ImageSize::new(
            c["width"].as_u64().unwrap() as u32,
            c["height"].as_u64().unwrap() as u32,
        );
        let polys: Vec<Vec<f64>> = c["polygons"].as_array().unwrap().iter().map(numbers).collect();
        // pycocotools' merge(frPyObjects(...)) counts, string for string: the
        // rasteriser and the union on runs give the very same runs.
        let rle = polygons_to_rle(&polys, size).unwrap();
        assert_eq!(
            rle.to_compressed(),
            c["counts"].as_str().unwrap(),
            "case {i}: {polys:?} on {size}"
        );
        let expected = Rle::from_compressed(size, c["counts"].as_str().unwrap()).unwrap();
        assert_eq!(rle.to_mask(), expected.to_mask(), "case {i}");
        assert_eq!(rle.area(), c["area"].as_u64().unwrap(), "case {i}");
        assert_eq!(xywh(rle.bbox()), numbers(&c["bbox"]), "case {i} bbox");
    }
}
