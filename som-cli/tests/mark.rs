//! `som mark` end to end: the reference photos with the reference regions, and bad input.

mod common;

use common::{assert_fails, assert_usage_error, fixture, s, som, tmp};
use serde_json::Value;

const PHOTOS: &[(&str, &str)] = &[
    ("astronaut.png", "felz_astronaut"),
    ("camera.png", "felz_camera"),
    ("chelsea.png", "felz_chelsea"),
    ("coffee.png", "felz_coffee"),
    ("rocket.jpg", "felz_rocket"),
];

/// Every photo with its reference felzenszwalb regions: a marked PNG and a
/// marks JSON whose regions carry the input masks unchanged (the same
/// pycocotools strings), every label box inside the image, overlaps flagged
/// on under 2% of marks.
#[test]
fn marks_every_reference_photo() {
    let dir = tmp("photos");
    for (photo, set) in PHOTOS {
        let out_png = dir.join(format!("{set}.png"));
        let out_json = dir.join(format!("{set}.json"));
        let regions = fixture(&format!("masks/{set}.json"));
        let out = som(&[
            "mark",
            s(&fixture(&format!("images/{photo}"))),
            "--regions",
            s(&regions),
            "-o",
            s(&out_png),
            "--json",
            s(&out_json),
            "--timings",
        ]);
        assert!(
            out.status.success(),
            "{photo}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stages: Vec<String> = stderr
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["stage"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        for want in ["decode", "segment", "allocate", "render", "encode"] {
            assert!(
                stages.iter().any(|s| s == want),
                "{photo}: no {want} timing in {stderr}"
            );
        }

        let img = image::open(&out_png).unwrap();
        let input: Value = serde_json::from_str(&std::fs::read_to_string(&regions).unwrap()).unwrap();
        let (w, h) = (
            input["image"]["width"].as_u64().unwrap(),
            input["image"]["height"].as_u64().unwrap(),
        );
        assert_eq!((img.width() as u64, img.height() as u64), (w, h));

        let marks: Value = serde_json::from_str(&std::fs::read_to_string(&out_json).unwrap()).unwrap();
        let marks = marks["marks"].as_array().unwrap();
        let in_regions = input["regions"].as_array().unwrap();
        assert_eq!(marks.len(), in_regions.len(), "{photo}");
        let mut flagged = 0;
        for m in marks {
            let r = &m["region"];
            let id = r["id"].as_u64().unwrap() as usize;
            assert_eq!(
                r["segmentation"]["counts"], in_regions[id]["segmentation"]["counts"],
                "{photo}: region {id} mask changed"
            );
            let b: Vec<u64> = m["label_box"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert!(
                b[0] + b[2] <= w && b[1] + b[3] <= h,
                "{photo}: label box {b:?} leaves the image"
            );
            if m.get("overlaps").is_some() {
                flagged += 1;
            }
        }
        assert!(
            (flagged as f64) < 0.02 * marks.len() as f64,
            "{photo}: {flagged} of {} marks overlap",
            marks.len()
        );
    }
}

#[test]
fn independent_mode_and_letters() {
    let dir = tmp("independent");
    let json = dir.join("m.json");
    let out = som(&[
        "mark",
        s(&fixture("images/chelsea.png")),
        "--regions",
        s(&fixture("masks/felz_chelsea.json")),
        "--allocation",
        "independent",
        "--labels",
        "letter",
        "--draw",
        "mark,box",
        "-o",
        s(&dir.join("m.jpg")),
        "--json",
        s(&json),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let marks: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(marks["marks"][0]["text"], "a");
    assert_eq!(marks["marks"][26]["text"], "aa");
    assert!(image::open(dir.join("m.jpg")).is_ok());
}

#[test]
fn output_is_deterministic() {
    let dir = tmp("determinism");
    let run = |n: &str| {
        let png = dir.join(format!("{n}.png"));
        let json = dir.join(format!("{n}.json"));
        let out = som(&[
            "mark",
            s(&fixture("images/coffee.png")),
            "--regions",
            s(&fixture("masks/felz_coffee.json")),
            "-o",
            s(&png),
            "--json",
            s(&json),
        ]);
        assert!(out.status.success());
        (std::fs::read(png).unwrap(), std::fs::read(json).unwrap())
    };
    assert_eq!(run("a"), run("b"));
}

#[test]
fn regions_of_the_wrong_size_are_refused() {
    // The chelsea regions (451x300) on the coffee photo (600x400).
    let out = som(&[
        "mark",
        s(&fixture("images/coffee.png")),
        "--regions",
        s(&fixture("masks/felz_chelsea.json")),
    ]);
    assert_fails(&out, "600x400");
}

#[test]
fn empty_masks_are_refused() {
    let dir = tmp("empty");
    let regions = dir.join("r.json");
    std::fs::write(
        &regions,
        r#"{"image": {"width": 451, "height": 300}, "regions": [
            {"id": 1, "segmentation": {"size": [300, 451], "counts": [135300]}}]}"#,
    )
    .unwrap();
    let out = som(&[
        "mark",
        s(&fixture("images/chelsea.png")),
        "--regions",
        s(&regions),
        "-o",
        s(&dir.join("o.png")),
    ]);
    assert_fails(&out, "region 1");
    assert!(!dir.join("o.png").exists());
}

#[test]
fn five_thousand_regions_are_marked() {
    let dir = tmp("many");
    let regions = dir.join("r.json");
    // 5,000 box regions of 6x4 pixels on a 600x400 image (a 100x100 grid, then half of it).
    let mut items = Vec::new();
    for i in 0..5000u32 {
        let (x, y) = ((i % 100) * 6, (i / 100) * 4);
        items.push(format!(r#"{{"id": {i}, "bbox": [{x}, {y}, 6, 4]}}"#));
    }
    std::fs::write(
        &regions,
        format!(
            r#"{{"image": {{"width": 600, "height": 400}}, "regions": [{}]}}"#,
            items.join(",")
        ),
    )
    .unwrap();
    let json = dir.join("m.json");
    let out = som(&[
        "mark",
        s(&fixture("images/coffee.png")),
        "--regions",
        s(&regions),
        "-o",
        s(&dir.join("o.png")),
        "--json",
        s(&json),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let marks: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let marks = marks["marks"].as_array().unwrap();
    assert_eq!(marks.len(), 5000);
    // No room for 5,000 labels apart: the overlaps must be flagged, not hidden.
    // Every pair of intersecting label boxes is listed in both marks' `overlaps`.
    let boxes: Vec<(u64, [u64; 4])> = marks
        .iter()
        .map(|m| {
            let b: Vec<u64> = m["label_box"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            (m["id"].as_u64().unwrap(), [b[0], b[1], b[0] + b[2], b[1] + b[3]])
        })
        .collect();
    let flagged = |m: &Value| -> Vec<u64> {
        m.get("overlaps")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|v| v.as_u64().unwrap()).collect())
            .unwrap_or_default()
    };
    let mut pairs = 0usize;
    for (i, (id_a, a)) in boxes.iter().enumerate() {
        for (j, (id_b, b)) in boxes.iter().enumerate().skip(i + 1) {
            if a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3] {
                pairs += 1;
                assert!(
                    flagged(&marks[i]).contains(id_b),
                    "marks {id_a} and {id_b} overlap unflagged"
                );
                assert!(
                    flagged(&marks[j]).contains(id_a),
                    "marks {id_b} and {id_a} overlap unflagged"
                );
            }
        }
    }
    assert!(pairs > 0, "5,000 labels on 600x400 pixels cannot all stand apart");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("5000 marks"), "{stdout}");
    assert!(stdout.contains("labels overlap"), "{stdout}");
}

#[test]
fn bad_inputs_give_one_line_errors() {
    let dir = tmp("bad");
    let not_json = dir.join("regions.json");
    std::fs::write(&not_json, "this is not json").unwrap();
    assert_fails(
        &som(&[
            "mark",
            s(&fixture("images/chelsea.png")),
            "--regions",
            s(&not_json),
        ]),
        "not valid JSON",
    );
    assert_fails(
        &som(&[
            "mark",
            s(&dir.join("missing.png")),
            "--regions",
            s(&fixture("masks/felz_chelsea.json")),
        ]),
        "missing.png",
    );
    let png = std::fs::read(fixture("images/chelsea.png")).unwrap();
    let truncated = dir.join("truncated.png");
    std::fs::write(&truncated, &png[..png.len() / 3]).unwrap();
    assert_fails(
        &som(&[
            "mark",
            s(&truncated),
            "--regions",
            s(&fixture("masks/felz_chelsea.json")),
        ]),
        "truncated.png",
    );
    let garbage = dir.join("garbage.png");
    std::fs::write(&garbage, b"GIF89a not really").unwrap();
    assert_fails(
        &som(&[
            "mark",
            s(&garbage),
            "--regions",
            s(&fixture("masks/felz_chelsea.json")),
        ]),
        "garbage.png",
    );
    // A well-formed PNG header (valid IHDR checksum) that claims 100000 x 100000
    // pixels: refused by the size limit, before any pixel is decoded.
    let huge_path = dir.join("huge.png");
    std::fs::write(&huge_path, png_header(100_000, 100_000)).unwrap();
    let out = som(&[
        "mark",
        s(&huge_path),
        "--regions",
        s(&fixture("masks/felz_chelsea.json")),
    ]);
    assert_fails(&out, "huge.png");
    assert_fails(&out, "100000x100000 pixels, more than the 16384 px a side");
    // Just inside the limit on one side, beyond it on the other.
    std::fs::write(&huge_path, png_header(16_384, 16_385)).unwrap();
    assert_fails(
        &som(&[
            "mark",
            s(&huge_path),
            "--regions",
            s(&fixture("masks/felz_chelsea.json")),
        ]),
        "16384x16385",
    );
    assert_fails(
        &som(&[
            "mark",
            s(&fixture("images/chelsea.png")),
            "--regions",
            s(&dir.join("nope.json")),
        ]),
        "nope.json",
    );
    assert_usage_error(
        &som(&[
            "mark",
            s(&fixture("images/chelsea.png")),
            "--regions",
            s(&fixture("masks/felz_chelsea.json")),
            "--alpha",
            "3",
        ]),
        "--alpha",
    );
    assert_usage_error(
        &som(&[
            "mark",
            s(&fixture("images/chelsea.png")),
            "--regions",
            s(&fixture("masks/felz_chelsea.json")),
            "--draw",
            "mark,sparkles",
        ]),
        "sparkles",
    );
    assert_fails(
        &som(&[
            "mark",
            s(&fixture("images/chelsea.png")),
            "--regions",
            s(&fixture("masks/felz_chelsea.json")),
            "-o",
            s(&dir.join("x.gif")),
        ]),
        "extension",
    );
}

#[test]
fn marks_a_folder_of_images_into_an_output_folder() {
    let dir = tmp("batch");
    let input = dir.join("in");
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&input).unwrap();
    for name in ["chelsea.png", "rocket.jpg"] {
        std::fs::copy(fixture(&format!("images/{name}")), input.join(name)).unwrap();
    }
    std::fs::write(input.join("notes.txt"), "not an image").unwrap();
    let out = som(&[
        "mark",
        s(&input),
        s(&fixture("images/coffee.png")),
        "--out-dir",
        s(&out_dir),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(
        progress.contains("[1/3]") && progress.contains("[3/3]"),
        "{progress}"
    );
    for stem in ["chelsea", "rocket", "coffee"] {
        assert!(
            image::open(out_dir.join(format!("{stem}.marked.png"))).is_ok(),
            "{stem}"
        );
        let marks: Value = serde_json::from_str(
            &std::fs::read_to_string(out_dir.join(format!("{stem}.marks.json"))).unwrap(),
        )
        .unwrap();
        let n = marks["marks"].as_array().unwrap().len();
        assert!((8..=80).contains(&n), "{stem}: {n} marks");
    }
    // -o names one file: refused with several images.
    assert_fails(
        &som(&["mark", s(&input), "-o", s(&dir.join("x.png"))]),
        "--out-dir",
    );
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert_fails(&som(&["mark", s(&empty), "--out-dir", s(&out_dir)]), "no .png");
}

/// An 8-bit RGB PNG that says it is `w` x `h`: signature, IHDR, the start of
/// an IDAT (a zlib header) and IEND, every chunk with its CRC.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (&b"IHDR"[..], &ihdr[..]),
        (b"IDAT", &[0x78, 0x9c]),
        (b"IEND", &[]),
    ] {
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(data);
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(&chunk);
        out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    out
}

/// CRC-32 (ISO 3309, as PNG uses it).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_batch_keeps_going_past_a_failing_image() {
    let dir = tmp("batch-fail");
    let input = dir.join("in");
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(fixture("images/chelsea.png"), input.join("a.png")).unwrap();
    std::fs::write(input.join("b.png"), b"\x89PNG\r\n\x1a\n broken").unwrap();
    std::fs::copy(fixture("images/camera.png"), input.join("c.png")).unwrap();
    let out = som(&["mark", s(&input), "--out-dir", s(&out_dir)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // One line for the failure (naming the image), one summary line, and the
    // images on either side of it marked.
    let failures: Vec<&str> = err.lines().filter(|l| l.starts_with("som: error: ")).collect();
    assert_eq!(failures.len(), 2, "{err}");
    assert!(
        failures[0].contains("b.png") && failures[0].contains("cannot decode"),
        "{err}"
    );
    assert!(failures[1].contains("1 of 3 images failed"), "{err}");
    for line in &failures {
        common::assert_said_once(line);
    }
    for stem in ["a", "c"] {
        assert!(
            out_dir.join(format!("{stem}.marked.png")).exists(),
            "{stem}: {err}"
        );
        assert!(
            out_dir.join(format!("{stem}.marks.json")).exists(),
            "{stem}: {err}"
        );
    }
    assert!(!out_dir.join("b.marked.png").exists());
}

#[test]
fn an_image_without_regions_is_written_unmarked_with_a_warning() {
    let dir = tmp("no-regions");
    let regions = dir.join("none.json");
    std::fs::write(
        &regions,
        r#"{"image": {"width": 451, "height": 300}, "regions": []}"#,
    )
    .unwrap();
    let (png, json) = (dir.join("o.png"), dir.join("o.json"));
    let out = som(&[
        "mark",
        s(&fixture("images/chelsea.png")),
        "--regions",
        s(&regions),
        "-o",
        s(&png),
        "--json",
        s(&json),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("som: warning:") && err.contains("no regions"),
        "{err}"
    );
    let original = image::open(fixture("images/chelsea.png")).unwrap().to_rgb8();
    assert_eq!(
        image::open(&png).unwrap().to_rgb8(),
        original,
        "the image must stay as it is"
    );
    let marks: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(marks["marks"], serde_json::json!([]));
    assert_eq!(marks["image"]["width"], 451);
}

#[test]
fn model_options_without_a_model_are_refused() {
    assert_fails(
        &som(&["mark", s(&fixture("images/chelsea.png")), "--checkpoint", "x.pth"]),
        "--checkpoint is for segmenters with weights",
    );
}

#[test]
fn timings_name_every_stage_once_per_image() {
    let dir = tmp("timings");
    let out = som(&[
        "mark",
        s(&fixture("images/chelsea.png")),
        s(&fixture("images/camera.png")),
        "--out-dir",
        s(&dir),
        "--timings",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stages: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["stage"].as_str().unwrap().to_string())
        .collect();
    let one = ["decode", "segment", "allocate", "render", "encode", "write"];
    let expected: Vec<&str> = one.iter().chain(one.iter()).copied().collect();
    assert_eq!(stages, expected, "no load_model: classic has no weights");
}
