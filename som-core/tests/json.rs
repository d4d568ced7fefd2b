//! The regions JSON reader on good and bad input.

use som_core::json::{
    read_regions, read_regions_with, write_marks, write_regions, ImageInfo, ImageSelector, ReadOptions,
};
use som_core::{BBox, ImageSize, Mark, SomError};

fn check_err(doc: &str, needle: &str) {
    match read_regions(doc) {
        Ok(_) => panic!("accepted {doc}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(needle), "{msg:?} does not mention {needle:?}");
            assert!(!msg.contains('\n'), "multi-line error {msg:?}");
        }
    }
}

#[test]
fn malformed_documents_name_the_problem() {
    check_err("not json", "not valid JSON");
    check_err("{\"image\": {\"width\": 4, \"height\": 4}}", "\"regions\"");
    check_err("{\"regions\": []}", "\"image\"");
    check_err(
        r#"{"image": {"width": 4, "height": 4}, "regions": [{"id": 1}]}"#,
        "regions[0] has neither",
    );
    check_err(
        r#"{"image": {"width": 4, "height": 4}, "regions": [{"segmentation": {"size": [5, 4], "counts": [20]}}]}"#,
        "expected 4x4",
    );
    check_err(
        r#"{"image": {"width": 4, "height": 4}, "regions": [{"segmentation": {"size": [4, 4], "counts": [3, 2]}}]}"#,
        "add up to 5",
    );
    check_err(
        r#"{"image": {"width": 4, "height": 4}, "regions": [{"segmentation": {"size": [4, 4], "counts": "\u00ff"}}]}"#,
        "alphabet",
    );
    check_err(
        r#"{"image": {"width": 4, "height": 4}, "regions": [{"bbox": [0, 0, -1, 2]}]}"#,
        "negative",
    );
    check_err(
        r#"{"image": {"width": 4, "height": 4}, "regions": [{"bbox": [2, 2, 5, 5]}]}"#,
        "outside",
    );
    check_err(
        r#"{"image": {"width": 4, "height": 4}, "regions": [{"bbox": [0, 0, 1, 1]}, {"id": 0, "bbox": [0, 0, 1, 1]}]}"#,
        "more than one",
    );
    check_err(r#"[{"bbox": [0, 0, 1, 1]}]"#, "image size");
    check_err("42", "expected an object");
}

#[test]
fn reads_coco_annotation_files() {
    let doc = r#"{"images": [{"id": 1, "width": 6, "height": 4, "file_name": "a/b.jpg"},
                             {"id": 2, "width": 3, "height": 3, "file_name": "c.jpg"}],
                  "categories": [{"id": 7, "name": "cup"}],
                  "annotations": [
                    {"id": 10, "image_id": 1, "category_id": 7, "bbox": [0, 0, 2, 2], "iscrowd": 0,
                     "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]},
                    {"id": 11, "image_id": 2, "category_id": 7, "bbox": [0, 0, 1, 1]}]}"#;
    assert!(read_regions(doc).unwrap_err().to_string().contains("choose one"));
    let opts = ReadOptions {
        image: Some(ImageSelector::FileName("b.jpg".into())),
        ..Default::default()
    };
    let (info, seg) = read_regions_with(doc, &opts).unwrap();
    assert_eq!(info.size(), ImageSize::new(6, 4));
    assert_eq!(seg.len(), 1);
    assert_eq!(seg.regions()[0].label.as_deref(), Some("cup"));
    assert_eq!(seg.regions()[0].source["iscrowd"], 0);
    let opts = ReadOptions {
        image: Some(ImageSelector::Id(2)),
        ..Default::default()
    };
    let (_, seg) = read_regions_with(doc, &opts).unwrap();
    assert_eq!(seg.regions()[0].id, 11);
    assert!(seg.regions()[0].mask.is_none());
}

#[test]
fn reads_sam_records_and_keeps_their_metadata() {
    let doc = r#"[{"segmentation": {"size": [2, 3], "counts": [1, 2, 3]}, "area": 2, "bbox": [0, 1, 1, 2],
                   "predicted_iou": 0.91, "stability_score": 0.97, "point_coords": [[0.5, 1.5]], "crop_box": [0, 0, 3, 2]}]"#;
    let (info, seg) = read_regions(doc).unwrap();
    assert_eq!(info.size(), ImageSize::new(3, 2));
    let r = &seg.regions()[0];
    assert_eq!(r.area(), 2);
    assert_eq!(r.bbox, BBox::new(0, 1, 1, 1).union(&BBox::new(1, 0, 1, 1)));
    assert_eq!(r.source["predicted_iou"], 0.91);
    let out = write_regions(&info, &seg);
    assert!(out.contains("\"stability_score\":0.97"));
    assert_eq!(read_regions(&out).unwrap().1, seg);
}

#[test]
fn reads_binary_arrays_and_uncompressed_counts() {
    let doc = r#"{"image": {"width": 3, "height": 2}, "regions": [
        {"id": 1, "segmentation": [[0, 1, 1], [0, 0, 1]]},
        {"id": 2, "segmentation": {"size": [2, 3], "counts": [0, 6]}, "label": "all"}]}"#;
    let (_, seg) = read_regions(doc).unwrap();
    assert_eq!(seg.regions()[0].area(), 3);
    assert_eq!(seg.regions()[1].area(), 6);
}

#[test]
fn marks_json_carries_the_region() {
    let doc = r#"{"image": {"width": 4, "height": 4, "file_name": "x.png"}, "regions": [
        {"id": 3, "segmentation": {"size": [4, 4], "counts": [5, 2, 2, 2, 5]}, "score": 0.5}]}"#;
    let (info, seg) = read_regions(doc).unwrap();
    let mut mark = Mark::new(1, "1", seg.regions()[0].bbox.center(), 0, BBox::new(0, 0, 2, 2));
    mark.overlaps = vec![2];
    let text = write_marks(&info, &seg, &[mark]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["image"]["file_name"], "x.png");
    assert_eq!(
        v["marks"][0]["region"]["segmentation"]["counts"],
        seg.regions()[0].mask.as_ref().unwrap().to_rle().to_compressed()
    );
    assert_eq!(v["marks"][0]["overlaps"][0], 2);
    assert_eq!(v["marks"][0]["label_box"], serde_json::json!([0, 0, 2, 2]));
}

#[test]
fn size_option_is_enforced() {
    let doc = r#"{"image": {"width": 4, "height": 4}, "regions": []}"#;
    let opts = ReadOptions {
        image_size: Some(ImageSize::new(5, 4)),
        ..Default::default()
    };
    assert!(matches!(
        read_regions_with(doc, &opts),
        Err(SomError::MaskSize { .. })
    ));
    let _ = ImageInfo::new(1, 1);
}
