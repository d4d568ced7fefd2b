//! `som segment|mark --segmenter maskdino` end to end, on the reduced MaskDINO checkpoint
//! of the parity fixtures (fixtures/maskdino, written by tools/fixtures/gen_maskdino.py).
#![cfg(feature = "torch")]

mod common;

use common::*;

/// The fixture's reduced config (a panoptic one) as a JSON file `--maskdino-config` reads.
fn tiny_config(dir: &std::path::Path) -> std::path::PathBuf {
    tiny_config_variant(dir, "no", true)
}

/// The fixture's reduced config of box initialisation `variant`, with or without its
/// panoptic and semantic outputs.
fn tiny_config_variant(dir: &std::path::Path, variant: &str, panoptic: bool) -> std::path::PathBuf {
    let text = std::fs::read_to_string(fixture("maskdino/tiny_config.json")).unwrap();
    let all: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut config = all[variant].clone();
    config["test"]["panoptic_on"] = serde_json::json!(panoptic);
    config["test"]["semantic_on"] = serde_json::json!(panoptic);
    let path = dir.join(format!("tiny-{variant}.json"));
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

#[test]
fn segment_writes_labelled_panoptic_regions_with_the_models_stages() {
    let dir = tmp("maskdino-segment");
    let config = tiny_config(&dir);
    let out_path = dir.join("regions.json");
    let out = som(&[
        "segment",
        s(&fixture("maskdino/image.png")),
        "-o",
        s(&out_path),
        "--segmenter",
        "maskdino",
        "--checkpoint",
        s(&fixture("maskdino/tiny.pth")),
        "--maskdino-config",
        s(&config),
        "--threads",
        "2",
        "--timings",
        "--device",
        "auto",
    ]);
    assert_ok(&out);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    let regions = json["regions"].as_array().unwrap();
    assert!(!regions.is_empty());
    for r in regions {
        // A COCO panoptic class name and the segment's score.
        assert!(r["label"].as_str().is_some_and(|l| !l.is_empty()), "{r}");
        assert!(r["score"].as_f64().is_some(), "{r}");
    }
    let err = String::from_utf8_lossy(&out.stderr);
    for stage in [
        "load_model",
        "maskdino_backbone",
        "maskdino_encoder",
        "maskdino_decoder",
        "maskdino_postprocess",
    ] {
        assert!(
            err.contains(&format!("\"stage\":\"{stage}\"")),
            "{stage} missing in {err}"
        );
    }
    // Progress on stderr unless --quiet.
    assert!(err.contains("maskdino: "), "{err}");

    // An instance config, threshold 0, quietly.
    let config = tiny_config_variant(&dir, "mask2box", false);
    let out = som(&[
        "segment",
        s(&fixture("maskdino/image.png")),
        "-o",
        s(&out_path),
        "--segmenter",
        "maskdino",
        "--checkpoint",
        s(&fixture("maskdino/tiny.safetensors")),
        "--maskdino-config",
        s(&config),
        "--confidence-threshold",
        "0",
        "--quiet",
    ]);
    assert_ok(&out);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("maskdino: "));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    // Threshold 0 keeps the model's top-k (12 in the reduced config).
    assert_eq!(json["regions"].as_array().unwrap().len(), 12);
}

#[test]
fn bad_checkpoints_configs_and_flags_are_one_line_errors() {
    let dir = tmp("maskdino-errors");
    let image = fixture("maskdino/image.png");
    let run = |extra: &[&str]| {
        let out_path = dir.join("r.json");
        let mut args = vec!["segment", s(&image), "-o", s(&out_path)];
        args.extend_from_slice(extra);
        som(&args)
    };
    // A SAM checkpoint.
    let out = run(&[
        "--segmenter",
        "maskdino",
        "--checkpoint",
        s(&fixture("sam/tiny.pth")),
    ]);
    assert_fails(&out, "not a maskdino model");
    // The reduced checkpoint under a published config: the shapes do not fit.
    let out = run(&[
        "--segmenter",
        "maskdino",
        "--checkpoint",
        s(&fixture("maskdino/tiny.pth")),
        "--maskdino-config",
        "r50_panoptic",
    ]);
    assert_fails(&out, "backbone.stem.conv1.weight");
    let out = run(&[
        "--segmenter",
        "maskdino",
        "--checkpoint",
        s(&fixture("maskdino/tiny.pth")),
        "--maskdino-config",
        "r50_instance",
    ]);
    assert_fails(&out, "r50_panoptic");
    let out = run(&[
        "--segmenter",
        "maskdino",
        "--checkpoint",
        s(&fixture("maskdino/tiny.pth")),
        "--maskdino-config",
        "r101",
    ]);
    assert_fails(&out, "r101");
    // A truncated checkpoint.
    let bytes = std::fs::read(fixture("maskdino/tiny.pth")).unwrap();
    let cut = dir.join("cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let out = run(&["--segmenter", "maskdino", "--checkpoint", s(&cut)]);
    assert_fails(&out, "cut.pth");
    // No checkpoint; MaskDINO flags with another segmenter.
    assert_fails(&run(&["--segmenter", "maskdino"]), "--checkpoint");
    assert_fails(
        &run(&["--segmenter", "classic", "--confidence-threshold", "0.3"]),
        "--confidence-threshold is for --segmenter maskdino",
    );
    let config = tiny_config(&dir);
    let out = run(&[
        "--segmenter",
        "maskdino",
        "--checkpoint",
        s(&fixture("maskdino/tiny.pth")),
        "--maskdino-config",
        s(&config),
        "--confidence-threshold",
        "2",
    ]);
    assert_fails(&out, "confidence_threshold");
    // Devices: no GPU here is a typed one-line error (skipped on a machine with one), and
    // so is a device LibTorch has no name for.
    let device = |d: &str| {
        run(&[
            "--segmenter",
            "maskdino",
            "--checkpoint",
            s(&fixture("maskdino/tiny.pth")),
            "--maskdino-config",
            s(&config),
            "--device",
            d,
        ])
    };
    if som_segment::Device::Cuda(0).resolve().is_err() {
        assert_fails(&device("cuda"), "device cuda:0 is not available");
    }
    assert_fails(&device("tpu"), "unknown device 'tpu'");
}
