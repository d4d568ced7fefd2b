//! `som segment --segmenter sam` end to end with the tiny fixture model (its configuration
//! is what the checkpoint's shapes determine): the generator's records and the predictor's
//! masks as segment_anything gives them (fixtures from tools/fixtures/gen_sam.py), and bad
//! input as one-line errors.
#![cfg(feature = "torch")]

mod common;

use common::*;
use som_core::Segmentation;

fn regions_of(path: &std::path::Path) -> Segmentation {
    let text = std::fs::read_to_string(path).expect("regions file");
    som_core::json::read_regions(&text).expect("regions JSON").1
}

fn meta() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("sam/expected.json")).unwrap()).unwrap()
}

fn tiny() -> String {
    s(&fixture("sam/tiny.pth")).to_owned()
}

fn image() -> String {
    s(&fixture("sam/image.png")).to_owned()
}

#[test]
fn the_generator_gives_the_reference_records() {
    let dir = tmp("sam-amg");
    let out = dir.join("regions.json");
    let run = som(&[
        "segment",
        &image(),
        "-o",
        s(&out),
        "--segmenter",
        "sam",
        "--checkpoint",
        &tiny(),
        "--quiet",
        "--device",
        "auto",
    ]);
    assert_ok(&run);
    let meta = meta();
    let case = meta["amg"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "default")
        .expect("the default-settings case");
    let records = case["records"].as_array().unwrap();
    let seg = regions_of(&out);
    assert_eq!(seg.len(), records.len());
    assert!(!seg.is_empty());
    for (region, record) in seg.regions().iter().zip(records) {
        let rle = region.mask.as_ref().unwrap().to_rle().to_compressed();
        assert_eq!(rle, record["segmentation"]["counts"].as_str().unwrap());
        let iou = record["predicted_iou"].as_f64().unwrap();
        assert!((region.score.unwrap() - iou).abs() < 1e-5);
    }
}

/// Best of the three masks by predicted IoU (the first on ties), from a fixture prompt.
fn best_mask(meta: &serde_json::Value, name: &str) -> String {
    let expected = som_segment::sam::Weights::from_file(fixture("sam/expected.safetensors")).unwrap();
    let iou = Vec::<f32>::try_from(expected.get(&format!("prompt.{name}.iou")).unwrap()).unwrap();
    assert_eq!(iou.len(), 3, "{name} is a three-mask prompt");
    let best = (0..3).fold(0, |b, k| if iou[k] > iou[b] { k } else { b });
    let prompt = meta["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap();
    prompt["masks"][best]["counts"].as_str().unwrap().to_owned()
}

#[test]
fn points_and_boxes_prompt_the_predictor() {
    let dir = tmp("sam-prompts");
    let out = dir.join("regions.json");
    let boxes = dir.join("boxes.json");
    std::fs::write(&boxes, r#"[{"bbox": [20, 15, 140, 110], "label": "thing"}]"#).unwrap();
    let run = som(&[
        "segment",
        &image(),
        "-o",
        s(&out),
        "--segmenter",
        "sam",
        "--checkpoint",
        &tiny(),
        "--quiet",
        "--points",
        "60,40; 150.5,90,0",
        "--prompt-boxes",
        s(&boxes),
    ]);
    assert_ok(&run);
    let seg = regions_of(&out);
    assert_eq!(seg.len(), 2, "one region per prompt");
    let meta = meta();
    let rle = |i: usize| seg.regions()[i].mask.as_ref().unwrap().to_rle().to_compressed();
    assert_eq!(rle(0), best_mask(&meta, "points"));
    assert_eq!(rle(1), best_mask(&meta, "box_multi"));
    assert_eq!(seg.regions()[1].label.as_deref(), Some("thing"));
}

#[test]
fn bad_model_input_is_a_one_line_error() {
    let dir = tmp("sam-bad");
    let out = dir.join("r.json");
    let base = |extra: &[&str]| {
        let mut args = vec!["segment", "IMAGE", "-o", "OUT", "--segmenter", "sam", "--quiet"];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<String>>()
    };
    let run = |extra: &[&str]| {
        let args: Vec<String> = base(extra)
            .into_iter()
            .map(|a| match a.as_str() {
                "IMAGE" => image(),
                "OUT" => s(&out).to_owned(),
                _ => a,
            })
            .collect();
        som(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let tiny = tiny();
    let mobile = s(&fixture("sam/mobile_tiny.pth")).to_owned();
    // No GPU here: a typed error, not a LibTorch abort (skipped on a machine with one).
    if som_segment::Device::Cuda(0).resolve().is_err() {
        assert_fails(
            &run(&["--checkpoint", &tiny, "--device", "cuda"]),
            "device cuda:0 is not available",
        );
    }
    assert_fails(
        &run(&["--checkpoint", &tiny, "--device", "tpu"]),
        "unknown device 'tpu'",
    );
    // The other model family.
    assert_fails(
        &run(&["--checkpoint", &mobile, "--sam-model", "vit_b"]),
        "holds a vit_t model",
    );
    assert_fails(
        &run(&["--checkpoint", &tiny, "--sam-model", "vit_t"]),
        "image_encoder.patch_embed.seq.0.c.weight",
    );
    // A truncated checkpoint.
    let bytes = std::fs::read(fixture("sam/tiny.pth")).unwrap();
    let cut = dir.join("cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    assert_fails(&run(&["--checkpoint", s(&cut)]), "not a usable checkpoint");
    // Prompts outside the image, malformed, empty, or without an object.
    assert_fails(
        &run(&["--checkpoint", &tiny, "--points", "500,20"]),
        "is outside the 200x133 image",
    );
    assert_fails(
        &run(&["--checkpoint", &tiny, "--points", "10;20"]),
        "'10' is not x,y",
    );
    assert_fails(&run(&["--checkpoint", &tiny, "--points", ""]), "no points given");
    assert_fails(
        &run(&["--checkpoint", &tiny, "--points", "5,5,0"]),
        "no foreground point",
    );
    let far = dir.join("far.json");
    std::fs::write(&far, "[[10, 10, 400, 90]]").unwrap();
    assert_fails(&run(&["--checkpoint", &tiny, "--prompt-boxes", s(&far)]), "box");
    // Prompts without SAM.
    let classic = som(&["segment", &image(), "-o", s(&out), "--points", "5,5"]);
    assert_fails(&classic, "--points prompts SAM");
}

/// The `stage` names of the `--timings` lines on stderr, in order.
fn stages_of(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["stage"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_model_loads_once_per_command() {
    let dir = tmp("sam-load-once");
    let images = dir.join("in");
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&images).unwrap();
    let names = ["a", "b", "c"];
    for name in names {
        std::fs::copy(fixture("sam/image.png"), images.join(format!("{name}.png"))).unwrap();
    }
    let paths: Vec<String> = names
        .iter()
        .map(|n| s(&images.join(format!("{n}.png"))).to_owned())
        .collect();
    let mut args = vec!["mark"];
    args.extend(paths.iter().map(String::as_str));
    let tiny = tiny();
    args.extend([
        "--out-dir",
        s(&out_dir),
        "--segmenter",
        "sam",
        "--checkpoint",
        &tiny,
        "--quiet",
        "--timings",
    ]);
    let run = som(&args);
    assert_ok(&run);
    let stages = stages_of(&run.stderr);
    let count = |name: &str| stages.iter().filter(|s| *s == name).count();
    assert_eq!(count("load_model"), 1, "one load for three images: {stages:?}");
    assert_eq!(
        stages.first().map(String::as_str),
        Some("load_model"),
        "{stages:?}"
    );
    assert_eq!(count("segment"), 3, "{stages:?}");
    for name in names {
        assert!(
            out_dir.join(format!("{name}.marked.png")).is_file(),
            "{name} not marked"
        );
        assert!(
            out_dir.join(format!("{name}.marks.json")).is_file(),
            "{name} has no marks"
        );
    }

    // `som segment` builds its segmenter once too.
    let out = dir.join("regions.json");
    let run = som(&[
        "segment",
        &paths[0],
        "-o",
        s(&out),
        "--segmenter",
        "sam",
        "--checkpoint",
        &tiny,
        "--quiet",
        "--timings",
    ]);
    assert_ok(&run);
    let stages = stages_of(&run.stderr);
    assert_eq!(
        stages.iter().filter(|s| *s == "load_model").count(),
        1,
        "{stages:?}"
    );
    assert_eq!(
        stages.first().map(String::as_str),
        Some("load_model"),
        "{stages:?}"
    );
    assert!(out.is_file());
}
