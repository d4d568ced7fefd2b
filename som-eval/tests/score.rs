//! Offline scoring of predictions in each benchmark's result format.

use std::path::PathBuf;

use serde_json::json;
use som_eval::data::{OpenOptions, Task};
use som_eval::report::ScoreOptions;
use som_eval::score::score;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("som-eval-score-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(task: Task, data: &str, pred: &std::path::Path) -> som_eval::Result<som_eval::report::Summary> {
    score(
        task,
        &fixtures().join(data),
        pred,
        &OpenOptions::default(),
        ScoreOptions::default(),
    )
}

#[test]
fn davis_result_folders_score_as_the_toolkit_does() {
    let s = run(Task::Davis, "eval/davis", &fixtures().join("eval/davis/pred")).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("eval/davis/expected.json")).unwrap())
            .unwrap();
    for (name, v) in &s.metrics {
        let want = expected["global"][name].as_f64().unwrap();
        assert!((v - want).abs() < 1e-12, "{name}: {v} vs {want}");
    }
    assert_eq!(s.metrics.len(), 7);
    let rows: Vec<&str> = s.per_sequence.iter().map(|r| r.sequence.as_str()).collect();
    let want: Vec<&str> = expected["per_object"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Sequence"].as_str().unwrap())
        .collect();
    assert_eq!(rows, want);
    let j = s.to_json();
    assert!(j["metrics"]["J&F-Mean"].is_number() && j["per_sequence"][0]["J-Mean"].is_number());
    assert!(
        s.table().contains("| DAVIS2017 J&F-Mean | DAVIS2017 J-Mean |")
            || s.table().contains("DAVIS2017 J&F-Mean")
    );

    // A missing frame names the file the toolkit would look for.
    let dir = tmp("davis-missing");
    for seq in ["bear-walk", "rocket-pair", "coffee-cup"] {
        let from = fixtures().join("eval/davis/pred").join(seq);
        std::fs::create_dir_all(dir.join(seq)).unwrap();
        for e in std::fs::read_dir(&from).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.join(seq).join(e.file_name())).unwrap();
        }
    }
    std::fs::remove_file(dir.join("rocket-pair/00003.png")).unwrap();
    let e = run(Task::Davis, "eval/davis", &dir).unwrap_err();
    assert!(e.to_string().contains("rocket-pair/00003.png: missing"), "{e}");
}

#[test]
fn refcocog_boxes_and_masks_score_acc_miou_ciou() {
    let dir = tmp("refcocog");
    let pred = dir.join("pred.json");
    // ref 0: its exact box; ref 1: a box off by a lot and no mask.
    std::fs::write(
        &pred,
        json!([
            {"ref_id": 0, "bbox": [0.0, 0.0, 1.0, 1.0]},
            {"ref_id": 1, "bbox": [0.0, 0.0, 2.0, 2.0]}
        ])
        .to_string(),
    )
    .unwrap();
    let s = run(Task::Refcocog, "eval/data/refcocog", &pred).unwrap();
    assert_eq!(s.metric("Acc@0.5"), Some(0.0));
    assert_eq!(s.metric("mIoU"), None, "no masks, no RES");

    // The annotated boxes of the fixture (from instances.json) are exact hits; a mask RLE scores RES.
    let inst: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("eval/data/refcocog/refcocog/instances.json")).unwrap(),
    )
    .unwrap();
    let ann = |id: u64| {
        inst["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .unwrap()
            .clone()
    };
    let a0 = ann(5818570);
    std::fs::write(
        &pred,
        json!([
            {"ref_id": 0, "sent_id": 1, "bbox": a0["bbox"], "segmentation": {"size": [60, 60], "counts": [0, 3600]}},
            {"ref_id": 1, "bbox": ann(5818571)["bbox"]}
        ])
        .to_string(),
    )
    .unwrap();
    let s = run(Task::Refcocog, "eval/data/refcocog", &pred).unwrap();
    assert_eq!(s.metric("Acc@0.5"), Some(1.0));
    let miou = s.metric("mIoU").unwrap();
    assert!(
        miou > 0.0 && miou < 0.3,
        "a full-image mask against a small object: {miou}"
    );
    assert_eq!(s.metric("cIoU"), Some(miou));

    for (bad, want) in [
        (
            json!([{"ref_id": 2, "bbox": [0, 0, 1, 1]}]),
            "[0] (ref_id 2): ref_id 2 is not a ref of the val split",
        ),
        (
            json!([{"ref_id": 0, "bbox": [0, 0, 1, 1]}, {"ref_id": 0, "bbox": [0, 0, 1, 1]}]),
            "[1] (ref_id 0): a second prediction",
        ),
        (
            json!([{"ref_id": 0}]),
            "[0] (ref_id 0): neither \"bbox\" nor \"segmentation\"",
        ),
        (
            json!([{"ref_id": 0, "segmentation": {"size": [10, 10], "counts": [100]}}]),
            "segmentation: mask size mismatch",
        ),
        (json!([{"bbox": [0, 0, 1, 1]}]), "[0]: missing key \"ref_id\""),
        (json!({"ref_id": 0}), "is not a JSON list"),
    ] {
        std::fs::write(&pred, bad.to_string()).unwrap();
        let e = run(Task::Refcocog, "eval/data/refcocog", &pred).unwrap_err();
        assert!(e.to_string().contains(want), "{e} / {want}");
    }
}

#[test]
fn flickr_predictions_score_recall_at_1_under_either_protocol() {
    let dir = tmp("flickr");
    let pred = dir.join("pred.json");
    // Sentence 0: phrase 1 exact, phrase 2 missing, phrase 3 on one of its two boxes; sentence 1: phrase 3 on the merged box.
    std::fs::write(
        &pred,
        json!([
            {"image_id": "1000092795", "sentence_id": 0, "phrase_id": "1", "bbox": [2, 3, 18, 27]},
            {"image_id": 1000092795, "sentence_id": 0, "phrase_id": 3, "bbox": [30, 5, 18, 15]},
            {"image_id": "1000092795", "sentence_id": 1, "phrase_id": "3", "bbox": [25, 5, 23, 33]}
        ])
        .to_string(),
    )
    .unwrap();
    let s = run(Task::Flickr30k, "eval/data/flickr30k", &pred).unwrap();
    assert_eq!(s.items, 4);
    assert_eq!(s.metric("R@1"), Some(0.75));
    let merged = score(
        Task::Flickr30k,
        &fixtures().join("eval/data/flickr30k"),
        &pred,
        &OpenOptions::default(),
        ScoreOptions {
            protocol: som_eval::metrics::grounding::BoxProtocol::MergedBox,
            ..ScoreOptions::default()
        },
    )
    .unwrap();
    assert_eq!(merged.metric("R@1"), Some(0.5));
    assert!(merged.to_json()["protocol"] == "merged-box");
    std::fs::write(
        &pred,
        json!([{"image_id": "1000092795", "sentence_id": 2, "phrase_id": "5", "bbox": [0, 0, 1, 1]}])
            .to_string(),
    )
    .unwrap();
    let e = run(Task::Flickr30k, "eval/data/flickr30k", &pred).unwrap_err();
    assert!(
        e.to_string()
            .contains("[0]: image 1000092795 sentence 2 has no boxed phrase 5"),
        "{e}"
    );
}

#[test]
fn open_vocabulary_regions_files_score_precision_and_miou() {
    let dir = tmp("coco");
    // Image 1: the ground truth itself, labelled right; image 2 left out.
    let inst: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("eval/data/coco/annotations/instances_val2017.json"))
            .unwrap(),
    )
    .unwrap();
    let regions: Vec<serde_json::Value> = inst["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["image_id"] == 1 && a["iscrowd"] == 0)
        .map(|a| json!({"segmentation": a["segmentation"], "label": if a["category_id"] == 1 { "Person" } else { "dog" }}))
        .collect();
    std::fs::write(
        dir.join("000000000001.json"),
        json!({"image": {"width": 64, "height": 48}, "regions": regions}).to_string(),
    )
    .unwrap();
    let s = run(Task::Coco, "eval/data/coco", &dir).unwrap();
    assert_eq!(s.items, 1);
    assert_eq!(s.metric("precision"), Some(1.0));
    assert_eq!(s.metric("mIoU"), Some(1.0));
    let e = run(Task::Coco, "eval/data/coco", &tmp("coco-empty")).unwrap_err();
    assert!(e.to_string().contains("holds no <image>.json"), "{e}");
}
