//! `som_core::jpeg` against PIL: every fixture written by
//! `tools/fixtures/gen_jpeg.py` decodes to exactly the pixels of
//! `np.asarray(PIL.Image.open(path).convert("RGB"))` (Pillow 13.0.0,
//! libjpeg-turbo 3.2.0), stored next to it as a PNG. Also through
//! `som_core::io`, which must route JPEGs to this decoder.

#![cfg(feature = "exact-jpeg")]

use std::path::{Path, PathBuf};

use image::{DynamicImage, RgbImage};
use serde_json::Value;
use som_core::jpeg::{decode, Limits};

const LIMITS: Limits = Limits {
    max_side: som_core::io::MAX_IMAGE_SIDE,
    max_bytes: som_core::io::MAX_DECODE_BYTES,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn manifest() -> Vec<Value> {
    let text = std::fs::read_to_string(root().join("fixtures/jpeg/manifest.json")).expect("manifest");
    let doc: Value = serde_json::from_str(&text).expect("manifest JSON");
    doc["fixtures"].as_array().expect("fixtures list").clone()
}

fn entry(name: &str) -> Value {
    manifest()
        .into_iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("fixture {name} is not in fixtures/jpeg/manifest.json"))
}

fn path_of(f: &Value, key: &str) -> PathBuf {
    root().join(f[key].as_str().unwrap_or_else(|| panic!("{key} of {f}")))
}

fn reference(f: &Value) -> RgbImage {
    let png = image::open(path_of(f, "pixels")).expect("reference PNG");
    png.as_rgb8().expect("an RGB PNG").clone()
}

/// Where two images differ: the number of differing values and the first
/// differing pixel with both values.
fn differences(ours: &RgbImage, pil: &RgbImage) -> Option<String> {
    assert_eq!(ours.dimensions(), pil.dimensions(), "size");
    let count = ours
        .as_raw()
        .iter()
        .zip(pil.as_raw())
        .filter(|(a, b)| a != b)
        .count();
    let (x, y, a) = ours
        .enumerate_pixels()
        .find(|&(x, y, p)| p != pil.get_pixel(x, y))?;
    Some(format!(
        "{count} values differ; first at ({x}, {y}): decoded {:?}, PIL {:?}",
        a.0,
        pil.get_pixel(x, y).0
    ))
}

/// Decodes fixture `name` both ways and compares every pixel with PIL's.
fn check(name: &str) {
    let f = entry(name);
    let bytes = std::fs::read(path_of(&f, "jpeg")).expect("fixture");
    let pil = reference(&f);
    let ours = decode(&bytes, &LIMITS).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        matches!(ours, DynamicImage::ImageLuma8(_)),
        f["mode"] == "L",
        "{name}: grayscale files decode to Luma8 (PIL mode L), others to Rgb8"
    );
    if let Some(diff) = differences(&ours.to_rgb8(), &pil) {
        panic!("{name} ({}): {diff}", f["what"]);
    }
    let via_io = som_core::io::decode_image(&bytes).expect("io::decode_image");
    assert_eq!(
        via_io.to_rgb8(),
        pil,
        "{name}: io::decode_image must use this decoder"
    );
}

#[test]
fn baseline_420_matches_pil() {
    check("baseline_420");
}

#[test]
fn baseline_422_matches_pil() {
    check("baseline_422");
}

#[test]
fn baseline_444_matches_pil() {
    check("baseline_444");
}

#[test]
fn grayscale_matches_pil() {
    check("grayscale");
}

#[test]
fn progressive_matches_pil() {
    check("progressive_420");
    check("progressive_444_optimized");
    check("progressive_grayscale");
}

#[test]
fn restart_markers_match_pil() {
    check("restart_blocks");
    check("restart_rows_progressive");
    check("cv2_420_progressive_restart");
}

#[test]
fn bundled_rocket_matches_pil() {
    check("rocket");
    let f = entry("rocket");
    assert_eq!(f["jpeg"], "fixtures/images/rocket.jpg");
    let loaded = som_core::io::load_image(&path_of(&f, "jpeg")).expect("rocket.jpg");
    assert_eq!(loaded.to_rgb8(), reference(&f));
}

#[test]
fn other_sampling_factors_match_pil() {
    check("cv2_411");
    check("cv2_440");
    check("narrow_2x33");
    check("tiny_1x1");
}

#[test]
fn colour_spaces_match_pil() {
    check("cmyk");
    check("rgb_no_transform");
}

#[test]
fn extreme_qualities_match_pil() {
    check("quality_100");
    check("quality_5");
    check("quant_16bit");
}

#[test]
fn missing_tables_and_damage_are_handled_as_libjpeg_does() {
    check("no_huffman_tables");
    check("damaged_premature_eoi");
    check("damaged_progressive_eoi");
    check("damaged_restart");
}

#[test]
fn every_fixture_in_the_manifest_matches_pil() {
    let fixtures = manifest();
    assert!(fixtures.len() >= 20, "{} fixtures", fixtures.len());
    for f in &fixtures {
        check(f["name"].as_str().expect("name"));
    }
}

#[test]
fn the_image_crates_decoder_differs_from_pil() {
    // Why this decoder exists: the fixtures tell the two decoders apart.
    let f = entry("rocket");
    let bytes = std::fs::read(path_of(&f, "jpeg")).expect("rocket.jpg");
    let theirs = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).expect("decodes");
    let diff = differences(&theirs.to_rgb8(), &reference(&f)).expect("the image crate differs from PIL");
    println!("image crate vs PIL on rocket.jpg: {diff}");
}

#[test]
fn opencv_decodes_the_same_pixels_except_cmyk() {
    // Recorded by the generator: OpenCV's libjpeg-turbo gives PIL's pixels,
    // so matching PIL matches OpenCV (it converts CMYK its own way).
    for f in manifest() {
        assert_eq!(f["opencv_equal"], f["mode"] != "CMYK", "{}", f["name"]);
    }
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(path_of(&entry(name), "jpeg")).expect("fixture")
}

/// A minimal header: SOI, then `marker` with a frame header body.
fn frame_header(marker: u8, precision: u8, width: u16, height: u16, components: &[(u8, u8)]) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, marker];
    let len = 8 + 3 * components.len() as u16;
    v.extend_from_slice(&len.to_be_bytes());
    v.push(precision);
    v.extend_from_slice(&height.to_be_bytes());
    v.extend_from_slice(&width.to_be_bytes());
    v.push(components.len() as u8);
    for &(id, sampling) in components {
        v.extend_from_slice(&[id, sampling, 0]);
    }
    v
}

fn one_line_error(bytes: &[u8]) -> String {
    let e = som_core::io::decode_image(bytes)
        .expect_err("must fail")
        .to_string();
    assert!(!e.contains('\n'), "{e}");
    e
}

#[test]
fn unsupported_variants_give_one_clear_line() {
    let rgb = [(1, 0x11), (2, 0x11), (3, 0x11)];
    let arithmetic = frame_header(0xC9, 8, 16, 16, &rgb);
    assert_eq!(one_line_error(&arithmetic), "unsupported JPEG: arithmetic coding");
    let lossless = frame_header(0xC3, 8, 16, 16, &rgb);
    assert_eq!(one_line_error(&lossless), "unsupported JPEG: lossless JPEG");
    let twelve_bit = frame_header(0xC0, 12, 16, 16, &rgb);
    assert!(one_line_error(&twelve_bit).contains("12-bit samples"));
    let two = frame_header(0xC0, 8, 16, 16, &[(1, 0x11), (2, 0x11)]);
    assert!(one_line_error(&two).contains("2 components"));
}

#[test]
fn limits_are_checked_before_allocating() {
    let huge = frame_header(0xC0, 8, 20_000, 100, &[(1, 0x11)]);
    assert_eq!(
        one_line_error(&huge),
        "the JPEG is 20000x100 pixels, more than the limit of 16384 pixels a side"
    );
    // 16384 x 16384 x 3 components at full resolution needs several GiB.
    let big = frame_header(0xC0, 8, 16_384, 16_384, &[(1, 0x11), (2, 0x11), (3, 0x11)]);
    let e = one_line_error(&big);
    assert!(e.contains("more than the limit of 1073741824 bytes"), "{e}");
    // A smaller memory limit applies to a real file too.
    let tight = Limits {
        max_side: 16_384,
        max_bytes: 10_000,
    };
    let e = decode(&fixture_bytes("baseline_420"), &tight).unwrap_err();
    assert!(
        matches!(e, som_core::jpeg::JpegError::TooMuchMemory { .. }),
        "{e}"
    );
}

#[test]
fn the_number_of_scans_is_limited() {
    // The last scan of a progressive file, repeated: each repetition is a
    // valid (if pointless) scan that visits every block.
    let bytes = fixture_bytes("progressive_grayscale");
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]).expect("a scan");
    let body = &bytes[last_scan..bytes.len() - 2];
    let mut file = bytes[..bytes.len() - 2].to_vec();
    for _ in 0..300 {
        file.extend_from_slice(body);
    }
    file.extend_from_slice(&[0xFF, 0xD9]);
    let e = one_line_error(&file);
    assert_eq!(e, "unsupported JPEG: more than 256 scans");
    // A few repetitions are fine.
    let mut few = bytes[..bytes.len() - 2].to_vec();
    few.extend_from_slice(body);
    few.extend_from_slice(&[0xFF, 0xD9]);
    assert!(decode(&few, &LIMITS).is_ok());
}

#[test]
fn truncated_and_foreign_data_are_errors() {
    let bytes = fixture_bytes("progressive_420");
    for cut in [
        0,
        1,
        2,
        3,
        10,
        200,
        bytes.len() / 2,
        bytes.len() - 2,
        bytes.len() - 1,
    ] {
        assert!(decode(&bytes[..cut], &LIMITS).is_err(), "cut at {cut}");
    }
    assert!(matches!(
        decode(b"\x89PNG\r\n\x1a\n", &LIMITS),
        Err(som_core::jpeg::JpegError::NotJpeg)
    ));
    let e = one_line_error(&bytes[..bytes.len() - 1]);
    assert!(e.contains("truncated JPEG"), "{e}");
}

#[test]
fn damage_is_decoded_like_libjpeg_not_refused() {
    // The damaged fixtures decode (PIL decodes them too); their pixels are
    // checked above. Here: the damage really is there.
    let clean = fixture_bytes("restart_blocks");
    let damaged = fixture_bytes("damaged_restart");
    assert_eq!(clean.len(), damaged.len());
    assert_ne!(clean, damaged);
    let a = decode(&clean, &LIMITS).unwrap().to_rgb8();
    let b = decode(&damaged, &LIMITS).unwrap().to_rgb8();
    assert_ne!(a, b);
}

fn assert_sane(result: Result<DynamicImage, som_core::jpeg::JpegError>) {
    match result {
        Ok(img) => assert!(img.width() >= 1 && img.height() >= 1),
        Err(e) => {
            let s = e.to_string();
            assert!(!s.is_empty() && !s.contains('\n'), "{s}");
        }
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    const NAMES: [&str; 8] = [
        "baseline_420",
        "baseline_422",
        "grayscale",
        "progressive_420",
        "restart_rows_progressive",
        "cv2_411",
        "cmyk",
        "progressive_grayscale",
    ];

    fn fixtures() -> &'static [Vec<u8>] {
        static CACHE: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
        CACHE.get_or_init(|| NAMES.iter().map(|n| fixture_bytes(n)).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_truncation_is_an_error(which in 0..NAMES.len(), frac in 0.0f64..1.0) {
            let bytes = &fixtures()[which];
            let cut = (frac * bytes.len() as f64) as usize;
            prop_assert!(decode(&bytes[..cut], &LIMITS).is_err(), "{} cut at {}", NAMES[which], cut);
        }

        #[test]
        fn mutated_files_never_panic(
            which in 0..NAMES.len(),
            edits in proptest::collection::vec((0.0f64..1.0, any::<u8>(), 0u8..4), 1..8),
        ) {
            let mut bytes = fixtures()[which].clone();
            for (at, value, kind) in edits {
                let i = ((at * bytes.len() as f64) as usize).min(bytes.len() - 1);
                match kind {
                    0 => bytes[i] = value,
                    1 => bytes[i] ^= 1 << (value % 8),
                    2 => bytes.insert(i, value),
                    _ => { bytes.remove(i); }
                }
            }
            assert_sane(decode(&bytes, &LIMITS));
        }

        #[test]
        fn headers_with_random_fields_never_panic(
            marker in prop_oneof![Just(0xC0u8), Just(0xC1), Just(0xC2)],
            width in 0u16..64, height in 0u16..64,
            sampling in proptest::collection::vec(any::<u8>(), 1..5),
            tail in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let comps: Vec<(u8, u8)> = sampling.iter().enumerate().map(|(i, &s)| (i as u8 + 1, s)).collect();
            let mut bytes = frame_header(marker, 8, width, height, &comps);
            bytes.extend_from_slice(&tail);
            assert_sane(decode(&bytes, &LIMITS));
        }

        #[test]
        fn arbitrary_bytes_after_soi_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut bytes = vec![0xFF, 0xD8, 0xFF];
            bytes.extend_from_slice(&tail);
            assert_sane(decode(&bytes, &LIMITS));
        }
    }

    #[test]
    fn fixture_names_exist() {
        for name in NAMES {
            assert!(Path::new(&path_of(&entry(name), "jpeg")).exists());
        }
    }
}

/// The frame header's size without decoding, on every fixture: the size the decoder gives.
#[test]
fn dimensions_are_the_decoded_size() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/jpeg");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jpg") {
            let bytes = std::fs::read(&path).unwrap();
            let limits = som_core::jpeg::Limits {
                max_side: 16_384,
                max_bytes: 1 << 30,
            };
            let image = som_core::jpeg::decode(&bytes, &limits).unwrap();
            let dims = som_core::jpeg::dimensions(&bytes).unwrap();
            assert_eq!(dims, (image.width(), image.height()), "{}", path.display());
            // Cut before the frame header ends: an error, not a size.
            let sof = bytes
                .windows(2)
                .position(|w| w[0] == 0xFF && matches!(w[1], 0xC0..=0xC2))
                .unwrap();
            assert!(
                som_core::jpeg::dimensions(&bytes[..sof + 6]).is_err(),
                "{}",
                path.display()
            );
            seen += 1;
        }
    }
    assert!(seen >= 20, "only {seen} JPEG fixtures");
}
