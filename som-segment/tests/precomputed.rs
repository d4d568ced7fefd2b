//! Precomputed regions, label maps, mask folders and boxes: good input is
//! read faithfully, bad input is a clear error (never a panic).

use std::path::{Path, PathBuf};

use image::{DynamicImage, GrayImage, ImageBuffer, Luma};
use som_core::json::{write_regions, ImageInfo};
use som_core::{BBox, ImageSize, Segmentation, Segmenter};
use som_segment::{BoxFormat, BoxOptions, Boxes, LabelMapOptions, Precomputed, SegmentError};

/// A fresh temporary folder for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("som-segment-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn save_gray16(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> u16) {
    let img: ImageBuffer<Luma<u16>, Vec<u16>> = ImageBuffer::from_fn(w, h, |x, y| Luma([f(x, y)]));
    img.save(path).expect("save png");
}

/// The error of a load that must fail (without printing a huge segmentation if it does not).
fn err_of(r: Result<Segmentation, SegmentError>, what: &str) -> SegmentError {
    match r {
        Ok(seg) => panic!("{what}: expected an error, read {} regions", seg.len()),
        Err(e) => e,
    }
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

#[test]
fn skimage_label_map_reads_as_its_segments() -> anyhow::Result<()> {
    // felz_chelsea.png: 212 segments (labels 0..212) of a 451x300 image.
    let path = fixtures().join("segment/felz_chelsea.png");
    let seg = Precomputed::label_map(&path, LabelMapOptions::default()).load(ImageSize::new(451, 300))?;
    assert_eq!(seg.regions().len(), 212);
    assert_eq!(seg.regions().iter().map(|r| r.area()).sum::<u64>(), 451 * 300);
    assert_eq!(seg.regions()[0].id, 0);
    // With 0 as background, label 0's pixels belong to no region.
    let opts = LabelMapOptions {
        background: Some(0),
        ..Default::default()
    };
    let seg0 = Precomputed::label_map(&path, opts).load(ImageSize::new(451, 300))?;
    assert_eq!(seg0.regions().len(), 211);
    assert_eq!(seg0.regions()[0].id, 1);
    Ok(())
}

#[test]
fn label_map_of_the_wrong_size_is_an_error() {
    let dir = temp_dir("wrong-size");
    let path = dir.join("map.png");
    save_gray16(&path, 10, 8, |x, _| x as u16);
    let err = err_of(
        Precomputed::label_map(&path, LabelMapOptions::default()).load(ImageSize::new(11, 8)),
        "size mismatch",
    );
    assert!(matches!(err, SegmentError::Size { .. }), "{err}");
    assert!(
        som_core::ErrorChain(&err).to_string().contains("11x8")
            && som_core::ErrorChain(&err).to_string().contains("10x8"),
        "{err}"
    );
}

#[test]
fn label_map_with_60000_ids_is_refused_or_read_without_panic() -> anyhow::Result<()> {
    let dir = temp_dir("many-ids");
    let path = dir.join("map.png");
    // 300x200 = 60,000 pixels, each its own id.
    save_gray16(&path, 300, 200, |x, y| (y * 300 + x) as u16);
    let size = ImageSize::new(300, 200);
    let err = err_of(
        Precomputed::label_map(&path, LabelMapOptions::default()).load(size),
        "too many ids",
    );
    assert!(
        som_core::ErrorChain(&err)
            .to_string()
            .contains("60000 distinct ids"),
        "{err}"
    );
    // With the limit raised, it is read: 60,000 one-pixel regions.
    let opts = LabelMapOptions {
        max_regions: 70_000,
        ..Default::default()
    };
    let seg = Precomputed::label_map(&path, opts).load(size)?;
    assert_eq!(seg.regions().len(), 60_000);
    assert!(seg.regions().iter().all(|r| r.area() == 1));
    Ok(())
}

#[test]
fn scattered_ids_that_would_need_gigabytes_are_refused() {
    let dir = temp_dir("scattered");
    let path = dir.join("map.png");
    // 4,000 ids spread on a lattice: every mask spans the whole image.
    save_gray16(&path, 1200, 1200, |x, y| ((x * 73 + y * 151) % 4000) as u16);
    let opts = LabelMapOptions {
        max_regions: 65_536,
        ..Default::default()
    };
    let err = err_of(
        Precomputed::label_map(&path, opts).load(ImageSize::new(1200, 1200)),
        "too scattered",
    );
    assert!(som_core::ErrorChain(&err).to_string().contains("MiB"), "{err}");
}

#[test]
fn non_png_and_non_label_images_are_errors() {
    let dir = temp_dir("non-png");
    let path = dir.join("map.png");
    std::fs::write(&path, b"definitely not a png").expect("write");
    let err = err_of(
        Precomputed::label_map(&path, LabelMapOptions::default()).load(ImageSize::new(4, 4)),
        "not png",
    );
    assert!(
        som_core::ErrorChain(&err).to_string().contains("not a PNG"),
        "{err}"
    );
    let jpg = dir.join("map.jpg");
    DynamicImage::new_rgb8(4, 4).save(&jpg).expect("save jpg");
    std::fs::copy(&jpg, &path).expect("copy");
    let err = err_of(
        Precomputed::label_map(&path, LabelMapOptions::default()).load(ImageSize::new(4, 4)),
        "jpeg",
    );
    assert!(
        som_core::ErrorChain(&err).to_string().contains("not a PNG"),
        "{err}"
    );
    let missing = Precomputed::label_map(dir.join("missing.png"), LabelMapOptions::default())
        .load(ImageSize::new(4, 4));
    assert!(matches!(missing, Err(SegmentError::Io { .. })), "missing file");
}

#[test]
fn mask_folder_reads_masks_in_order_and_rejects_strangers() -> anyhow::Result<()> {
    let dir = temp_dir("masks");
    let size = ImageSize::new(12, 9);
    for (i, (x0, x1)) in [(0u32, 4u32), (4, 12), (2, 3)].iter().enumerate() {
        let img = GrayImage::from_fn(12, 9, |x, y| {
            Luma([if (*x0..*x1).contains(&x) && y < 5 { 255 } else { 0 }])
        });
        img.save(dir.join(format!("{i:04}.png")))?;
    }
    // An empty mask is skipped; a dotfile is ignored.
    GrayImage::new(12, 9).save(dir.join("0003.png"))?;
    std::fs::write(dir.join(".DS_Store"), b"x")?;
    let seg = Precomputed::from_path(&dir).segment(&DynamicImage::new_rgb8(12, 9))?;
    assert_eq!(
        seg.regions().iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_eq!(seg.regions()[1].bbox, BBox::new(4, 0, 8, 5));
    assert_eq!(seg.regions()[2].source["file"], "0002.png");
    // Wrong size.
    let err = err_of(
        Precomputed::mask_folder(&dir).load(ImageSize::new(12, 10)),
        "size",
    );
    assert!(matches!(err, SegmentError::Size { .. }), "{err}");
    // A non-PNG file.
    std::fs::write(dir.join("notes.txt"), b"hello")?;
    let err = err_of(Precomputed::mask_folder(&dir).load(size), "non-png");
    assert!(
        som_core::ErrorChain(&err)
            .to_string()
            .contains("notes.txt is not a PNG file"),
        "{err}"
    );
    std::fs::remove_file(dir.join("notes.txt"))?;
    // A file named .png that is not one.
    std::fs::write(dir.join("0004.png"), b"fake")?;
    let err = err_of(Precomputed::mask_folder(&dir).load(size), "fake png");
    assert!(
        som_core::ErrorChain(&err).to_string().contains("0004.png"),
        "{err}"
    );
    // An empty folder.
    let empty = temp_dir("masks-empty");
    let err = err_of(Precomputed::mask_folder(&empty).load(size), "empty folder");
    assert!(
        som_core::ErrorChain(&err).to_string().contains("no PNG masks"),
        "{err}"
    );
    Ok(())
}

#[test]
fn regions_json_round_trips_and_checks_the_size() -> anyhow::Result<()> {
    let dir = temp_dir("json");
    let path = fixtures().join("segment/felz_coffee.png");
    let size = ImageSize::new(600, 400);
    let seg = Precomputed::label_map(&path, LabelMapOptions::default()).load(size)?;
    let json = dir.join("regions.json");
    std::fs::write(&json, write_regions(&ImageInfo::new(600, 400), &seg))?;
    let again = Precomputed::from_path(&json).load(size)?;
    assert_eq!(again, seg);
    let err = err_of(
        Precomputed::from_path(&json).load(ImageSize::new(400, 600)),
        "size",
    );
    assert!(
        som_core::ErrorChain(&err)
            .to_string()
            .contains("another image size"),
        "{err}"
    );
    // The committed reference mask sets read as well.
    let felz =
        Precomputed::json(fixtures().join("masks/felz_chelsea.json"), None).load(ImageSize::new(451, 300))?;
    assert_eq!(felz.regions().len(), 212);
    Ok(())
}

#[test]
fn boxes_clip_or_fail_with_the_index() -> anyhow::Result<()> {
    let dir = temp_dir("boxes");
    let path = dir.join("boxes.json");
    let size = ImageSize::new(100, 50);
    let img = DynamicImage::new_rgb8(100, 50);
    std::fs::write(
        &path,
        r#"{"format": "xywh", "boxes": [{"bbox": [-10, 5, 30, 10], "label": "left", "score": 0.5}, {"xyxy": [90.5, 40, 130, 70], "id": 7}]}"#,
    )?;
    let seg = Boxes::new(&path, BoxOptions::default()).segment(&img)?;
    assert_eq!(seg.regions()[0].bbox, BBox::new(0, 5, 20, 10));
    assert_eq!(seg.regions()[0].score, Some(0.5));
    assert_eq!(
        (seg.regions()[1].id, seg.regions()[1].bbox),
        (7, BBox::new(90, 40, 10, 10))
    );
    let strict = BoxOptions {
        clip: false,
        format: BoxFormat::Xyxy,
    };
    let err = err_of(Boxes::new(&path, strict).load(size), "no clipping");
    assert!(
        som_core::ErrorChain(&err).to_string().contains("boxes[0]")
            && som_core::ErrorChain(&err)
                .to_string()
                .contains("leaves the 100x50 image"),
        "{err}"
    );
    for (doc, needle) in [
        ("[[0, 0, -5, 10]]", "boxes[0]"),
        (r#"[{"xywh": [1, 1, -2, 3]}]"#, "negative width or height"),
        ("[[200, 200, 300, 300]]", "entirely outside"),
        ("[[1, 1, 1, 5]]", "empty"),
        ("[[1, 2, 3]]", "4 numbers"),
        (r#"[{"label": "x"}]"#, "no \"bbox\""),
        (r#"[[0, 0, 1e400, 5]]"#, "not valid JSON"),
        (
            r#"[{"box": [0,0,5,5], "id": 1}, {"box": [0,0,5,5], "id": 1}]"#,
            "used twice",
        ),
        (r#"{"format": "cxcywh", "boxes": []}"#, "format"),
        ("{", "not valid JSON"),
    ] {
        std::fs::write(&path, doc)?;
        let err = err_of(Boxes::new(&path, BoxOptions::default()).load(size), doc);
        assert!(
            som_core::ErrorChain(&err).to_string().contains(needle),
            "{doc}: {err}"
        );
    }
    Ok(())
}

#[test]
fn coco_files_pick_the_image_by_id_or_name() -> anyhow::Result<()> {
    use som_core::json::ImageSelector;
    let dir = temp_dir("coco");
    let path = dir.join("instances.json");
    std::fs::write(
        &path,
        r#"{"images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 8},
                      {"id": 2, "file_name": "dir/b.png", "width": 10, "height": 8}],
            "categories": [{"id": 3, "name": "cup"}],
            "annotations": [
              {"id": 11, "image_id": 1, "category_id": 3, "bbox": [1, 1, 4, 4],
               "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]], "area": 16, "iscrowd": 0},
              {"id": 12, "image_id": 2, "category_id": 3, "bbox": [0, 0, 2, 2],
               "segmentation": {"size": [8, 10], "counts": [0, 2, 6, 2, 70]}, "area": 4, "iscrowd": 1},
              {"id": 13, "image_id": 2, "bbox": [6, 2, 3, 3]}]}"#,
    )?;
    let size = ImageSize::new(10, 8);
    let by_id = Precomputed::json(&path, Some(ImageSelector::Id(2))).load(size)?;
    assert_eq!(
        by_id.regions().iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![12, 13]
    );
    assert_eq!(by_id.regions()[0].area(), 4);
    assert_eq!(by_id.regions()[0].label.as_deref(), Some("cup"));
    assert!(by_id.regions()[1].mask.is_none());
    let by_name = Precomputed::json(&path, Some(ImageSelector::FileName("a.png".into()))).load(size)?;
    assert_eq!(by_name.regions().len(), 1);
    assert_eq!(by_name.regions()[0].id, 11);
    let err = err_of(Precomputed::json(&path, None).load(size), "ambiguous");
    assert!(
        som_core::ErrorChain(&err).to_string().contains("2 images"),
        "{err}"
    );
    let err = err_of(
        Precomputed::json(&path, Some(ImageSelector::Id(9))).load(size),
        "missing image",
    );
    assert!(
        som_core::ErrorChain(&err)
            .to_string()
            .contains("no matching entry"),
        "{err}"
    );
    Ok(())
}

#[test]
fn sam_amg_records_read_with_their_scores() -> anyhow::Result<()> {
    let dir = temp_dir("amg");
    let path = dir.join("amg.json");
    // As segment_anything's SamAutomaticMaskGenerator(output_mode="coco_rle") writes them.
    std::fs::write(
        &path,
        r#"[{"segmentation": {"size": [4, 5], "counts": "44<"}, "area": 4, "bbox": [1, 0, 1, 4],
             "predicted_iou": 0.97, "point_coords": [[1.5, 2.0]], "stability_score": 0.96, "crop_box": [0, 0, 5, 4]},
            {"segmentation": {"size": [4, 5], "counts": [8, 8, 4]}, "area": 8, "bbox": [2, 0, 2, 4],
             "predicted_iou": 0.91, "point_coords": [[2.5, 1.0]], "stability_score": 0.99, "crop_box": [0, 0, 5, 4]}]"#,
    )?;
    let seg = Precomputed::from_path(&path).load(ImageSize::new(5, 4))?;
    assert_eq!(seg.regions().len(), 2);
    assert_eq!(seg.regions()[0].area(), 4);
    assert_eq!(seg.regions()[0].bbox, BBox::new(1, 0, 1, 4));
    assert_eq!(seg.regions()[1].bbox, BBox::new(2, 0, 2, 4));
    assert_eq!(seg.regions()[0].source["predicted_iou"], 0.97);
    let err = err_of(Precomputed::from_path(&path).load(ImageSize::new(4, 5)), "size");
    assert!(
        som_core::ErrorChain(&err)
            .to_string()
            .contains("another image size"),
        "{err}"
    );
    Ok(())
}
