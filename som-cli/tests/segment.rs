//! `som segment` end to end: every segmenter on the bundled photos, the
//! regions JSON it writes, `--timings`, and bad input (one-line errors,
//! never a panic).

mod common;

use std::path::Path;

use common::{assert_fails, assert_ok, fixture, s, som, tmp};

use image::{GrayImage, ImageBuffer, Luma};
use som_core::json::read_regions;

fn regions_of(path: &Path) -> som_core::Segmentation {
    let text = std::fs::read_to_string(path).expect("regions file");
    read_regions(&text).expect("valid regions JSON").1
}

#[test]
fn classic_is_the_default_and_gives_8_to_80_regions() {
    let dir = tmp("classic");
    for photo in [
        "astronaut.png",
        "camera.png",
        "chelsea.png",
        "coffee.png",
        "rocket.jpg",
    ] {
        let out_path = dir.join(format!("{photo}.json"));
        let out = som(&[
            "segment",
            s(&fixture(&format!("images/{photo}"))),
            "-o",
            s(&out_path),
        ]);
        assert_ok(&out);
        let seg = regions_of(&out_path);
        assert!((8..=80).contains(&seg.len()), "{photo}: {} regions", seg.len());
        let total: u64 = seg.regions().iter().map(|r| r.area()).sum();
        assert_eq!(
            total,
            seg.size().pixels(),
            "{photo}: regions do not tile the image"
        );
    }
}

#[test]
fn felzenszwalb_gives_the_raw_partition_with_timings() {
    let dir = tmp("felz");
    let out_path = dir.join("chelsea.json");
    let out = som(&[
        "segment",
        s(&fixture("images/chelsea.png")),
        "-o",
        s(&out_path),
        "--segmenter",
        "felzenszwalb",
        "--timings",
    ]);
    assert_ok(&out);
    // skimage gives 212 segments for this photo with these (default) parameters.
    assert_eq!(regions_of(&out_path).len(), 212);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stages: Vec<String> = stderr
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON timing line");
            assert!(v["ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{l}");
            v["stage"].as_str().expect("stage").to_string()
        })
        .collect();
    assert!(stages.contains(&"segment".to_string()), "{stages:?}");
    // Larger scale, fewer segments.
    let out = som(&[
        "segment",
        s(&fixture("images/chelsea.png")),
        "-o",
        s(&out_path),
        "--segmenter",
        "felzenszwalb",
        "--scale",
        "400",
    ]);
    assert_ok(&out);
    assert!(regions_of(&out_path).len() < 212);
}

#[test]
fn max_regions_caps_the_classic_count() {
    let dir = tmp("max");
    let out_path = dir.join("coffee.json");
    let out = som(&[
        "segment",
        s(&fixture("images/coffee.png")),
        "-o",
        s(&out_path),
        "--max-regions",
        "12",
    ]);
    assert_ok(&out);
    let n = regions_of(&out_path).len();
    assert!((1..=12).contains(&n), "{n}");
}

#[test]
fn regions_label_maps_folders_and_boxes() {
    let dir = tmp("sources");
    let out_path = dir.join("out.json");
    let chelsea = fixture("images/chelsea.png");
    // A regions JSON (the committed reference felz set).
    let out = som(&[
        "segment",
        s(&chelsea),
        "-o",
        s(&out_path),
        "--regions",
        s(&fixture("masks/felz_chelsea.json")),
    ]);
    assert_ok(&out);
    assert_eq!(regions_of(&out_path).len(), 212);
    // A 16-bit label map, with 0 as background.
    let out = som(&[
        "segment",
        s(&chelsea),
        "-o",
        s(&out_path),
        "--regions",
        s(&fixture("segment/felz_chelsea.png")),
        "--background",
        "0",
    ]);
    assert_ok(&out);
    assert_eq!(regions_of(&out_path).len(), 211);
    // A folder of masks.
    let masks = dir.join("masks");
    std::fs::create_dir_all(&masks).expect("mkdir");
    GrayImage::from_fn(451, 300, |x, _| Luma([(x < 100) as u8 * 255]))
        .save(masks.join("a.png"))
        .expect("save");
    GrayImage::from_fn(451, 300, |_, y| Luma([(y > 200) as u8]))
        .save(masks.join("b.png"))
        .expect("save");
    let out = som(&["segment", s(&chelsea), "-o", s(&out_path), "--regions", s(&masks)]);
    assert_ok(&out);
    let seg = regions_of(&out_path);
    assert_eq!(
        seg.regions().iter().map(|r| (r.id, r.area())).collect::<Vec<_>>(),
        vec![(1, 30_000), (2, 451 * 99)]
    );
    // Boxes, xywh, one clipped.
    let boxes = dir.join("boxes.json");
    std::fs::write(
        &boxes,
        r#"[{"bbox": [10, 10, 50, 20], "label": "ear"}, {"bbox": [400, 250, 100, 100]}]"#,
    )
    .expect("write");
    let out = som(&[
        "segment",
        s(&chelsea),
        "-o",
        s(&out_path),
        "--boxes",
        s(&boxes),
        "--box-format",
        "xywh",
    ]);
    assert_ok(&out);
    let seg = regions_of(&out_path);
    assert_eq!(seg.regions()[0].label.as_deref(), Some("ear"));
    assert_eq!(seg.regions()[1].bbox.to_xywh(), [400, 250, 51, 50]);
    assert!(seg.regions().iter().all(|r| r.mask.is_none()));
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = tmp("bad");
    let out_path = dir.join("out.json");
    let chelsea = fixture("images/chelsea.png");
    // A label map of the wrong size.
    let out = som(&[
        "segment",
        s(&chelsea),
        "-o",
        s(&out_path),
        "--regions",
        s(&fixture("segment/felz_camera.png")),
    ]);
    assert_fails(&out, "512x512");
    // A 16-bit map with 60,000 ids (over the default limit of 10,000 regions).
    let many = dir.join("many.png");
    let img: ImageBuffer<Luma<u16>, Vec<u16>> =
        ImageBuffer::from_fn(451, 300, |x, y| Luma([((y * 451 + x) % 60_000) as u16]));
    img.save(&many).expect("save");
    let out = som(&["segment", s(&chelsea), "-o", s(&out_path), "--regions", s(&many)]);
    assert_fails(&out, "60000 distinct ids");
    // A folder with a non-PNG file.
    let folder = dir.join("masks");
    std::fs::create_dir_all(&folder).expect("mkdir");
    GrayImage::new(451, 300).save(folder.join("0.png")).expect("save");
    std::fs::write(folder.join("readme.txt"), "hi").expect("write");
    let out = som(&[
        "segment",
        s(&chelsea),
        "-o",
        s(&out_path),
        "--regions",
        s(&folder),
    ]);
    assert_fails(&out, "readme.txt is not a PNG file");
    // Boxes outside the image, negative sizes, no clipping.
    let boxes = dir.join("boxes.json");
    for (doc, extra, needle) in [
        ("[[500, 400, 600, 450]]", None, "entirely outside"),
        ("[[10, 10, 5, 40]]", None, "negative size"),
        (r#"[{"xywh": [0, 0, -1, 5]}]"#, None, "negative width"),
        ("[[-5, 0, 10, 10]]", Some("--no-clip"), "leaves the 451x300 image"),
    ] {
        std::fs::write(&boxes, doc).expect("write");
        let mut args = vec!["segment", s(&chelsea), "-o", s(&out_path), "--boxes", s(&boxes)];
        args.extend(extra);
        assert_fails(&som(&args), needle);
    }
    // Contradictory or out-of-range options.
    assert_fails(
        &som(&[
            "segment",
            s(&chelsea),
            "-o",
            s(&out_path),
            "--segmenter",
            "regions",
        ]),
        "--regions FILE",
    );
    assert_fails(
        &som(&[
            "segment",
            s(&chelsea),
            "-o",
            s(&out_path),
            "--segmenter",
            "classic",
            "--boxes",
            s(&boxes),
        ]),
        "drop --regions",
    );
    assert_fails(
        &som(&["segment", s(&chelsea), "-o", s(&out_path), "--sigma=-1"]),
        "sigma",
    );
    assert_fails(
        &som(&["segment", s(&chelsea), "-o", s(&out_path), "--max-regions", "0"]),
        "max_regions",
    );
    // A missing image.
    assert_fails(
        &som(&["segment", s(&dir.join("nope.png")), "-o", s(&out_path)]),
        "nope.png",
    );
}
