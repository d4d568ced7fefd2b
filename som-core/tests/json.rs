//! The regions JSON reader and the JSON writers on good and bad input.
//!
//! Expected RLE strings, areas and boxes are pycocotools' (2.0.11, the pin of
//! tools/fixtures/requirements.txt), computed once and written here as
//! literals; each says how it was obtained. Never compare our encoder with
//! itself.

use serde_json::json;
use som_core::json::{
    read_regions, read_regions_with, write_marks, write_regions, ImageInfo, ImageSelector, ReadOptions,
    MAX_MASK_PIXELS,
};
use som_core::json::{write_answer, AnswerMeta};
use som_core::{
    BBox, GroundingAnswer, ImageScale, ImageSize, Mark, MarkRef, MarkedImage, Point, Region, Segmentation,
    SomError, Usage,
};

/// The error of reading `doc` with `options`, checked to be one line.
fn error_with(doc: &str, options: &ReadOptions) -> String {
    match read_regions_with(doc, options) {
        Ok(_) => panic!("accepted {doc}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "multi-line error {msg:?}");
            msg
        }
    }
}

fn check_err(doc: &str, needle: &str) {
    let msg = error_with(doc, &ReadOptions::default());
    assert!(msg.contains(needle), "{msg:?} does not mention {needle:?}");
}

#[test]
fn malformed_documents_name_the_problem() {
    for (doc, needle) in [
        ("not json", "not valid JSON"),
        (
            r#"{"image": {"width": 4, "height": 4}}"#,
            "missing the \"regions\" list",
        ),
        (r#"{"regions": []}"#, "missing the \"image\" object"),
        (
            r#"{"image": {"width": 4, "height": -4}, "regions": []}"#,
            "image.height must be a non-negative integer",
        ),
        (
            r#"{"image": {"width": 4.5, "height": 4}, "regions": []}"#,
            "image.width must be a non-negative integer",
        ),
        (r#"[{"bbox": [0, 0, 1, 1]}]"#, "does not say the image size"),
        ("42", "expected an object"),
    ] {
        check_err(doc, needle);
    }
    // Regions of a 4x4 image.
    let not_a_mask = "regions[0].segmentation must be an RLE object, a list of polygons or a binary array";
    let not_hw = "regions[0].segmentation.size must be [height, width]";
    let not_xywh = "regions[0].bbox must be [x, y, w, h]";
    for (regions, needle) in [
        (
            r#"[{"id": 1}]"#,
            "regions[0] has neither a segmentation nor a bbox",
        ),
        (
            r#"[{"segmentation": {"size": [5, 4], "counts": [20]}}]"#,
            "expected 4x4",
        ),
        (
            r#"[{"segmentation": {"size": [4, 4], "counts": [3, 2]}}]"#,
            "add up to 5",
        ),
        (
            r#"[{"segmentation": {"size": [4, 4], "counts": "\u00ff"}}]"#,
            "alphabet",
        ),
        (
            r#"[{"segmentation": {"size": [4, 4]}}]"#,
            "regions[0].segmentation: invalid RLE: missing counts",
        ),
        (
            r#"[{"segmentation": {"size": [4, 4], "counts": [8, -1, 9]}}]"#,
            "counts must be non-negative integers",
        ),
        (r#"[{"segmentation": {"size": [4, -4], "counts": [16]}}]"#, not_hw),
        (
            r#"[{"segmentation": {"size": [4, 4, 4], "counts": [16]}}]"#,
            not_hw,
        ),
        (r#"[{"segmentation": []}]"#, not_a_mask),
        (r#"[{"segmentation": 5}]"#, not_a_mask),
        (r#"[{"segmentation": [5, [0, 0, 1, 0, 1, 1]]}]"#, not_a_mask),
        (
            r#"[{"segmentation": [["a", 0, 1, 0, 1, 1]]}]"#,
            "regions[0].segmentation must hold polygons",
        ),
        (
            r#"[{"segmentation": [[0, 0, 1, 0, 1, 1], [0, 0, 1, "0", 1, 1]]}]"#,
            "regions[0].segmentation[1] must be a list of numbers",
        ),
        (r#"[{"bbox": [0, 0, -1, 2]}]"#, "negative"),
        (r#"[{"bbox": [0, 0, 1]}]"#, not_xywh),
        (r#"[{"bbox": [0, 0, 1, "1"]}]"#, not_xywh),
        (
            r#"[{"bbox": [1, 1, 0, 2]}]"#,
            "regions[0].bbox [1, 1, 0, 2] is empty",
        ),
        (
            r#"[{"bbox": [2, 2, 5, 5]}]"#,
            "regions[0].bbox [2, 2, 5, 5] is empty or lies outside the 4x4 image",
        ),
        (
            r#"[{"bbox": [0, 0, 1, 1]}, {"id": 0, "bbox": [0, 0, 1, 1]}]"#,
            "regions[1].id 0 is also the id of regions[0]",
        ),
        (
            r#"[{"bbox": [0, 0, 1, 1]}, {"id": 1.5, "bbox": [0, 0, 1, 1]}]"#,
            "regions[1].id must be a non-negative integer",
        ),
        (
            r#"[{"bbox": [0, 0, 1, 1], "label": 7}]"#,
            "regions[0].label must be a string",
        ),
        (
            r#"[{"bbox": [0, 0, 1, 1], "score": "high"}]"#,
            "regions[0].score must be a number",
        ),
    ] {
        check_err(
            &format!(r#"{{"image": {{"width": 4, "height": 4}}, "regions": {regions}}}"#),
            needle,
        );
    }
}

/// Regions without an id are numbered by position; when an explicit id takes
/// that number, the error says so instead of blaming an id nobody wrote twice.
#[test]
fn implicit_ids_come_from_the_position() {
    let (_, seg) = read_regions(
        r#"{"image": {"width": 4, "height": 4}, "regions": [{"id": 9, "bbox": [0, 0, 1, 1]}, {"bbox": [0, 0, 2, 2]}]}"#,
    )
    .unwrap();
    let ids: Vec<u64> = seg.regions().iter().map(|r| r.id).collect();
    assert_eq!(ids, [9, 1]);
    check_err(
        r#"{"image": {"width": 4, "height": 4}, "regions": [{"id": 1, "bbox": [0, 0, 1, 1]}, {"bbox": [0, 0, 1, 1]}]}"#,
        "regions[1] has no id, and its position gives it 1, the id of regions[0]",
    );
}

#[test]
fn reads_coco_annotation_files() {
    let doc = r#"{"images": [{"id": 1, "width": 6, "height": 4, "file_name": "a/b.jpg"},
                             {"id": 2, "width": 3, "height": 3, "file_name": "c.jpg"}],
                  "categories": [{"id": 7, "name": "cup"}],
                  "annotations": [
                    {"id": 10, "image_id": 1, "category_id": 7, "bbox": [0, 0, 2, 2], "iscrowd": 0,
                     "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]},
                    {"id": 11, "image_id": 2, "category_id": 7, "bbox": [0, 0, 1, 1]},
                    {"id": 12, "image_id": 2, "bbox": [2, 2, 5, 5]}]}"#;
    assert!(read_regions(doc).unwrap_err().to_string().contains("choose one"));
    let opts = ReadOptions {
        image: Some(ImageSelector::FileName("b.jpg".into())),
        ..Default::default()
    };
    let (info, seg) = read_regions_with(doc, &opts).unwrap();
    assert_eq!(info.size(), ImageSize::new(6, 4));
    assert_eq!(info.file_name.as_deref(), Some("a/b.jpg"));
    assert_eq!(seg.len(), 1);
    let r = &seg.regions()[0];
    assert_eq!(r.label.as_deref(), Some("cup"));
    assert_eq!(r.source["iscrowd"], 0);
    // pycocotools: merge(frPyObjects([[0, 0, 2, 0, 2, 2, 0, 2]], 4, 6)) is
    // {'counts': b'0220`0'}, area 4, toBbox [0, 0, 2, 2].
    let mask = r.mask.as_ref().unwrap();
    assert_eq!(mask.to_rle().to_compressed(), "0220`0");
    assert_eq!((r.area(), r.bbox), (4, BBox::new(0, 0, 2, 2)));
    // The other image; its bad box is annotations[2] in the file, though it is
    // the second annotation of that image.
    let opts = ReadOptions {
        image: Some(ImageSelector::Id(2)),
        ..Default::default()
    };
    let msg = error_with(doc, &opts);
    assert!(msg.contains("annotations[2].bbox"), "{msg}");
    let doc = doc.replace(r#", "bbox": [2, 2, 5, 5]"#, r#", "bbox": [2, 2, 1, 1]"#);
    let (_, seg) = read_regions_with(&doc, &opts).unwrap();
    assert_eq!(seg.regions()[0].id, 11);
    assert!(seg.regions()[0].mask.is_none());
    assert_eq!(seg.regions()[1].bbox, BBox::new(2, 2, 1, 1));
}

/// `file_name` picks the image whose name is the one given, ends with it as a
/// path component, or is the last component of the path given.
#[test]
fn coco_images_are_chosen_by_file_name() {
    let doc = r#"{"images": [{"id": 1, "width": 6, "height": 4, "file_name": "a/b.jpg"},
                             {"id": 2, "width": 3, "height": 3, "file_name": "c.jpg"},
                             {"id": 3, "width": 2, "height": 2, "file_name": "xb.jpg"}],
                  "annotations": []}"#;
    let size_for = |name: &str| {
        let opts = ReadOptions {
            image: Some(ImageSelector::FileName(name.into())),
            ..Default::default()
        };
        read_regions_with(doc, &opts).map(|(info, _)| info.size())
    };
    assert_eq!(size_for("c.jpg").unwrap(), ImageSize::new(3, 3));
    assert_eq!(size_for("b.jpg").unwrap(), ImageSize::new(6, 4));
    assert_eq!(size_for("photos/c.jpg").unwrap(), ImageSize::new(3, 3));
    assert_eq!(size_for("xb.jpg").unwrap(), ImageSize::new(2, 2));
    assert!(size_for("d.jpg")
        .unwrap_err()
        .to_string()
        .contains("no matching entry"));
}

/// A list of polygons with as many entries as the image has rows, made of 0s
/// and 1s, is still polygons unless every row is as long as the image is wide.
/// pycocotools: merge(frPyObjects([[0, 0, 1, 0, 1, 1, 0, 1]], 1, 3)) is
/// {'counts': b'012'}, area 1; merge(frPyObjects([[0, 0, 4, 0, 4, 1, 0, 1],
/// [5, 0, 6, 0, 6, 2, 5, 2]], 2, 6)) is {'counts': b'0110000021'}, area 6.
#[test]
fn polygons_that_look_like_rows_are_polygons() {
    for (w, h, polygons, counts, area) in [
        (3, 1, "[[0, 0, 1, 0, 1, 1, 0, 1]]", "012", 1),
        (
            6,
            2,
            "[[0, 0, 4, 0, 4, 1, 0, 1], [5, 0, 6, 0, 6, 2, 5, 2]]",
            "0110000021",
            6,
        ),
    ] {
        let doc = format!(
            r#"{{"image": {{"width": {w}, "height": {h}}}, "regions": [{{"segmentation": {polygons}}}]}}"#
        );
        let (_, seg) = read_regions(&doc).unwrap();
        let mask = seg.regions()[0].mask.as_ref().unwrap();
        assert_eq!(mask.to_rle().to_compressed(), counts, "{polygons}");
        assert_eq!(mask.area(), area);
    }
}

/// Counts with empty runs of ones in the middle (pycocotools writes none, but
/// other tools may) decode to the same pixels, and are written back canonical.
#[test]
fn counts_with_empty_runs_read_as_their_pixels() {
    let doc = r#"{"image": {"width": 2, "height": 2}, "regions": [
        {"segmentation": {"size": [2, 2], "counts": [1, 0, 1, 2]}}]}"#;
    let (info, seg) = read_regions(doc).unwrap();
    let r = &seg.regions()[0];
    assert_eq!((r.bbox, r.area()), (BBox::new(1, 0, 1, 2), 2));
    assert_eq!(r.mask.as_ref().unwrap().to_bytes(), [0, 1, 0, 1]);
    let written: serde_json::Value = serde_json::from_str(&write_regions(&info, &seg)).unwrap();
    assert_eq!(written["regions"][0]["segmentation"]["counts"], "22");
}

#[test]
fn reads_sam_records_and_keeps_their_metadata() {
    let doc = r#"[{"segmentation": {"size": [2, 3], "counts": [1, 2, 3]}, "area": 2, "bbox": [0, 1, 1, 2],
                   "predicted_iou": 0.91, "stability_score": 0.97, "point_coords": [[0.5, 1.5]], "crop_box": [0, 0, 3, 2]}]"#;
    let (info, seg) = read_regions(doc).unwrap();
    assert_eq!(info.size(), ImageSize::new(3, 2));
    let r = &seg.regions()[0];
    // pycocotools: frPyObjects({'size': [2, 3], 'counts': [1, 2, 3]}, 2, 3) has
    // area 2 and toBbox [0, 0, 2, 2] (the record's own bbox is not trusted).
    assert_eq!(r.area(), 2);
    assert_eq!(r.bbox, BBox::new(0, 0, 2, 2));
    assert!(r.mask.as_ref().unwrap().contains(Point::new(0, 1)));
    assert!(r.mask.as_ref().unwrap().contains(Point::new(1, 0)));
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
    // Rows are rows: read column-major, the same numbers would also give 3
    // pixels, but other ones. pycocotools: encode of that array is
    // {'counts': b'2111'}, toBbox [1, 0, 2, 2].
    let m = seg.regions()[0].mask.as_ref().unwrap();
    assert_eq!(m.to_bytes(), [0, 1, 1, 0, 0, 1]);
    assert_eq!(m.to_rle().to_compressed(), "2111");
    assert_eq!(m.bbox(), BBox::new(1, 0, 2, 2));
    assert_eq!(seg.regions()[1].area(), 6);
    assert_eq!(seg.regions()[1].label.as_deref(), Some("all"));
}

/// A region whose counts exercise every branch of the compressed codec: a
/// leading empty run, values of one, two and three characters, and negative
/// differences. pycocotools: frPyObjects({'size': [30, 40], 'counts': [0, 37,
/// 2, 600, 1, 15, 545]}, 30, 40) is {'counts': b'0U12ca0Og]OPa0'}, area 652,
/// toBbox [0, 0, 22, 30].
const RUNS_DOC: &str = r#"{"image": {"width": 40, "height": 30, "file_name": "x.png"}, "regions": [
    {"id": 3, "segmentation": {"size": [30, 40], "counts": [0, 37, 2, 600, 1, 15, 545]},
     "score": 0.5, "label": "cup", "predicted_iou": 0.91},
    {"id": 4, "bbox": [1, 2, 3, 4]}]}"#;
const RUNS_COUNTS: &str = "0U12ca0Og]OPa0";

#[test]
fn canonical_writer_writes_pycocotools_counts() {
    let (info, seg) = read_regions(RUNS_DOC).unwrap();
    let written: serde_json::Value = serde_json::from_str(&write_regions(&info, &seg)).unwrap();
    assert_eq!(
        written,
        json!({"image": {"width": 40, "height": 30, "file_name": "x.png"}, "regions": [
            {"id": 3, "bbox": [0, 0, 22, 30], "area": 652,
             "segmentation": {"size": [30, 40], "counts": RUNS_COUNTS},
             "score": 0.5, "label": "cup", "predicted_iou": 0.91},
            {"id": 4, "bbox": [1, 2, 3, 4], "area": 12}]})
    );
    // pycocotools' string reads back to the counts it came from.
    let doc = RUNS_DOC.replace("[0, 37, 2, 600, 1, 15, 545]", &format!("{RUNS_COUNTS:?}"));
    let (_, again) = read_regions(&doc).unwrap();
    assert_eq!(again, seg);
    assert_eq!(
        again.regions()[0].mask.as_ref().unwrap().to_rle().counts(),
        [0, 37, 2, 600, 1, 15, 545]
    );
}

#[test]
fn marks_json_carries_the_region() {
    let (info, seg) = read_regions(RUNS_DOC).unwrap();
    let mut mark = Mark::new(1, "1", Point::new(5, 9), 0, BBox::new(0, 0, 2, 2));
    mark.overlaps = vec![2];
    mark.distance = 1.234_567;
    let box_mark = Mark::new(2, "B", Point::new(2, 4), 1, BBox::new(1, 2, 3, 4));
    let v: serde_json::Value = serde_json::from_str(&write_marks(&info, &seg, &[mark, box_mark])).unwrap();
    assert_eq!(
        v,
        json!({"image": {"width": 40, "height": 30, "file_name": "x.png"}, "marks": [
            {"id": 1, "text": "1", "x": 5, "y": 9, "label_box": [0, 0, 2, 2], "placement": "inside",
             "distance": 1.2346, "overlaps": [2],
             "region": {"id": 3, "bbox": [0, 0, 22, 30], "area": 652,
                        "segmentation": {"size": [30, 40], "counts": RUNS_COUNTS},
                        "score": 0.5, "label": "cup", "predicted_iou": 0.91}},
            {"id": 2, "text": "B", "x": 2, "y": 4, "label_box": [1, 2, 3, 4], "placement": "inside",
             "distance": 0.0, "region": {"id": 4, "bbox": [1, 2, 3, 4], "area": 12}}]})
    );
}

#[test]
fn size_option_is_enforced() {
    let doc = r#"{"image": {"width": 4, "height": 4}, "regions": [{"bbox": [0, 0, 4, 4]}]}"#;
    let opts = |w, h| ReadOptions {
        image_size: Some(ImageSize::new(w, h)),
        ..Default::default()
    };
    assert!(matches!(
        read_regions_with(doc, &opts(5, 4)),
        Err(SomError::MaskSize { .. })
    ));
    assert!(matches!(
        read_regions_with(doc, &opts(4, 5)),
        Err(SomError::MaskSize { .. })
    ));
    let (info, seg) = read_regions_with(doc, &opts(4, 4)).unwrap();
    assert_eq!(info, ImageInfo::new(4, 4));
    assert_eq!(seg.size(), ImageSize::new(4, 4));
    // A document without an image object is read for the size given.
    let (info, _) = read_regions_with(r#"{"regions": []}"#, &opts(7, 2)).unwrap();
    assert_eq!(info, ImageInfo::new(7, 2));
    // A COCO image entry of another size.
    let coco = r#"{"images": [{"id": 1, "width": 4, "height": 4}], "annotations": []}"#;
    assert!(matches!(
        read_regions_with(coco, &opts(4, 3)),
        Err(SomError::MaskSize { .. })
    ));
    // A bare list of RLE masks says its size; the option must agree with it.
    let list = r#"[{"segmentation": {"size": [2, 3], "counts": [6]}}]"#;
    assert!(matches!(
        read_regions_with(list, &opts(2, 3)),
        Err(SomError::MaskSize { .. })
    ));
    assert_eq!(
        read_regions_with(list, &opts(3, 2)).unwrap().0,
        ImageInfo::new(3, 2)
    );
}

/// A few bytes must not describe gigabytes of masks: an image side past
/// `MAX_IMAGE_SIDE` is refused before anything is decoded, wherever the size
/// comes from, and the error names the JSON path.
#[test]
fn huge_images_are_refused_by_their_size() {
    let side = som_core::io::MAX_IMAGE_SIDE;
    let all_ones = |w: u64, h: u64| format!(r#"{{"size": [{h}, {w}], "counts": [0, {}]}}"#, w * h);
    let doc = format!(
        r#"{{"image": {{"width": 50000, "height": 50000}}, "regions": [{{"segmentation": {}}}]}}"#,
        all_ones(50_000, 50_000)
    );
    check_err(
        &doc,
        &format!("image is 50000x50000, more than the {side} px a side som reads"),
    );
    check_err(
        &format!("[{{\"segmentation\": {}}}]", all_ones(1, u64::from(side) + 1)),
        &format!("[0].segmentation.size is 1x{}", side + 1),
    );
    check_err(
        r#"{"images": [{"id": 5, "width": 100000, "height": 100000}], "annotations": []}"#,
        "images[0] is 100000x100000",
    );
    let opts = ReadOptions {
        image_size: Some(ImageSize::new(side + 1, 1)),
        ..Default::default()
    };
    let msg = error_with(r#"[{"bbox": [0, 0, 1, 1]}]"#, &opts);
    assert!(msg.contains("the image size given is"), "{msg}");
    // The largest size is fine, and a region in its far corner is found.
    let doc = format!(
        r#"{{"image": {{"width": {side}, "height": {side}}}, "regions": [{{"segmentation": {{"size": [{side}, {side}], "counts": [{}, 1]}}}}]}}"#,
        u64::from(side) * u64::from(side) - 1
    );
    let (_, seg) = read_regions(&doc).unwrap();
    assert_eq!(seg.regions()[0].bbox, BBox::new(side - 1, side - 1, 1, 1));
}

/// The masks of one document decode to at most `max_mask_pixels` pixels
/// (their boxes together); the mask that would go past it is refused before it
/// is decoded, by path.
#[test]
fn masks_of_a_document_share_a_pixel_budget() {
    assert_eq!(ReadOptions::default().max_mask_pixels, MAX_MASK_PIXELS);
    assert_eq!(MAX_MASK_PIXELS, 1 << 30);
    // Three 10x10 masks: an RLE, a polygon, a binary array with one pixel in
    // two corners (its box is the whole image: 100 pixels).
    let mut corners = vec![vec![0u8; 10]; 10];
    corners[0][0] = 1;
    corners[9][9] = 1;
    let doc = json!({"image": {"width": 10, "height": 10}, "regions": [
        {"segmentation": {"size": [10, 10], "counts": [0, 100]}},
        {"segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]},
        {"segmentation": corners},
    ]})
    .to_string();
    let budget = |pixels| ReadOptions {
        max_mask_pixels: pixels,
        ..Default::default()
    };
    assert_eq!(read_regions_with(&doc, &budget(300)).unwrap().1.len(), 3);
    for (pixels, path) in [(299, "regions[2]"), (199, "regions[1]"), (99, "regions[0]")] {
        let msg = error_with(&doc, &budget(pixels));
        assert!(
            msg.contains(&format!(
                "{path}.segmentation: this mask's box of 100 pixels takes the document's masks past {pixels} pixels"
            )),
            "{msg}"
        );
    }
    // Boxes without masks decode nothing.
    let boxes = r#"{"image": {"width": 10, "height": 10}, "regions": [{"bbox": [0, 0, 10, 10]}]}"#;
    assert!(read_regions_with(boxes, &budget(0)).is_ok());
}

/// Polygons far outside the image make the rasteriser walk a long outline; one
/// document may walk `MAX_OUTLINE_POINTS` points in all.
#[test]
fn polygon_outlines_share_a_walking_budget() {
    let limit = som_core::polygon::MAX_OUTLINE_POINTS as f64;
    // The triangle (0, 0), (x, 0), (0, 1) walks 10x + 8 points (5x + 1 along
    // each long edge, 6 along the short one).
    let triangle = |x: f64| json!({"segmentation": [[0.0, 0.0, x, 0.0, 0.0, 1.0]]});
    let doc = |regions: &[serde_json::Value]| {
        json!({"image": {"width": 4, "height": 4}, "regions": regions}).to_string()
    };
    let msg = error_with(&doc(&[triangle(limit * 0.12)]), &ReadOptions::default());
    assert!(
        msg.contains("regions[0].segmentation: invalid polygon: the outline walks"),
        "{msg}"
    );
    // 40 % of the limit is fine twice, but not three times in one document.
    let (_, seg) = read_regions(&doc(&[triangle(limit * 0.04), triangle(limit * 0.04)])).unwrap();
    assert_eq!(seg.regions()[1].bbox, BBox::new(0, 0, 4, 1));
    let t = triangle(limit * 0.04);
    let msg = error_with(&doc(&[t.clone(), t.clone(), t]), &ReadOptions::default());
    assert!(
        msg.contains("regions[2].segmentation: invalid polygon: the outline walks"),
        "{msg}"
    );
}

/// Metadata in `Region::source` under a key the writer owns (`id`, `bbox`…)
/// does not override the region's own fields.
#[test]
fn source_metadata_never_overrides_the_region() {
    let mut r = Region::from_box(5, BBox::new(1, 1, 2, 2)).with_label("cup");
    for (k, v) in [
        ("id", json!(99)),
        ("bbox", json!([0, 0, 1, 1])),
        ("label", json!("mug")),
        ("note", json!("x")),
    ] {
        r.source.insert(k.into(), v);
    }
    let seg = Segmentation::new(ImageSize::new(4, 4), vec![r]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&write_regions(&ImageInfo::new(4, 4), &seg)).unwrap();
    assert_eq!(
        v["regions"][0],
        json!({"id": 5, "bbox": [1, 1, 2, 2], "area": 4, "label": "cup", "note": "x"})
    );
}

/// The answer JSON of `som ask`: request, answer, image, the marks named (as
/// in the marks JSON), unknown labels, usage.
#[test]
fn answer_json_carries_request_answer_and_marks() {
    let (info, seg) = read_regions(RUNS_DOC).unwrap();
    let marks = vec![
        Mark::new(1, "1", Point::new(5, 9), 0, BBox::new(0, 0, 2, 2)),
        Mark::new(2, "2", Point::new(2, 4), 1, BBox::new(1, 2, 3, 4)),
    ];
    let marked = MarkedImage::new(image::RgbImage::new(40, 30), marks, seg).unwrap();
    let mut answer = GroundingAnswer::new("The cup is [2].");
    answer.marks.push(MarkRef {
        id: 2,
        text: "2".into(),
        region: 1,
    });
    answer.unknown.push("7".into());
    answer.usage = Some(Usage {
        input_tokens: 10,
        output_tokens: 4,
    });
    answer.finish_reason = Some("stop".into());
    answer.model = Some("gpt-4.1-2025".into());
    answer.image_scale = Some(ImageScale {
        original: ImageSize::new(40, 30),
        sent: ImageSize::new(20, 15),
    });
    let meta = AnswerMeta {
        provider: "openai".into(),
        model: "gpt-4.1".into(),
        task: "question".into(),
        prompt: "Where is the cup?".into(),
    };
    let text = write_answer(&meta, &info, &answer, &marked);
    assert!(text.ends_with("}\n") && text.lines().count() > 10, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        json!({
            "provider": "openai", "model": "gpt-4.1", "answered_by": "gpt-4.1-2025", "task": "question",
            "prompt": "Where is the cup?", "text": "The cup is [2].", "finish_reason": "stop", "refusal": null,
            "image": {"width": 40, "height": 30, "file_name": "x.png"}, "sent_size": [20, 15],
            "marks": [{"id": 2, "text": "2", "x": 2, "y": 4, "label_box": [1, 2, 3, 4], "placement": "inside",
                       "distance": 0.0, "region": {"id": 4, "bbox": [1, 2, 3, 4], "area": 12}}],
            "unknown": ["7"],
            "usage": {"input_tokens": 10, "output_tokens": 4, "total_tokens": 14},
        })
    );
}

/// The writer's `image` object has a file name only when there is one, and a
/// document read back is the same document.
#[test]
fn image_info_round_trips() {
    let seg = Segmentation::new(
        ImageSize::new(5, 4),
        vec![Region::from_box(2, BBox::new(1, 1, 2, 2))],
    )
    .unwrap();
    for info in [
        ImageInfo::new(5, 4),
        ImageInfo::new(5, 4).with_file_name("a b.png"),
    ] {
        let text = write_regions(&info, &seg);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["image"].as_object().unwrap().len(),
            2 + info.file_name.is_some() as usize
        );
        assert_eq!(read_regions(&text).unwrap(), (info, seg.clone()));
    }
    let info = ImageInfo::for_file("photos/a b.png".as_ref(), ImageSize::new(5, 4));
    assert_eq!(info, ImageInfo::new(5, 4).with_file_name("a b.png"));
    assert_eq!(
        ImageInfo::for_file("/".as_ref(), ImageSize::new(5, 4)),
        ImageInfo::new(5, 4)
    );
    // An empty file name is no file name.
    let (info, _) =
        read_regions(r#"{"image": {"width": 1, "height": 1, "file_name": ""}, "regions": []}"#).unwrap();
    assert_eq!(info, ImageInfo::new(1, 1));
}

/// Numbers read back bit for bit: the writer prints the shortest text that
/// names a float, and the reader must parse it to that float again (serde_json
/// needs its `float_roundtrip` feature for that; without it this score comes
/// back one unit in the last place off, found by tests/regions_props.rs).
#[test]
fn scores_and_metadata_read_back_bit_for_bit() {
    let score = -7.651_062_629_114_754e-194_f64;
    let mut region = Region::from_box(1, BBox::new(0, 0, 1, 1)).with_score(score);
    region
        .source
        .insert("predicted_iou".into(), json!(0.123_456_789_012_345_68));
    let seg = Segmentation::new(ImageSize::new(1, 1), vec![region]).unwrap();
    let (_, back) = read_regions(&write_regions(&ImageInfo::new(1, 1), &seg)).unwrap();
    let r = &back.regions()[0];
    assert_eq!(r.score.map(f64::to_bits), Some(score.to_bits()));
    assert_eq!(back, seg);
}
