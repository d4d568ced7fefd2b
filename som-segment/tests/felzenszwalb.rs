//! Agreement with skimage: our Felzenszwalb partition of every bundled photo
//! is identical to the label map `tools/fixtures/gen_felzenszwalb.py` wrote
//! with scikit-image 0.26 (scale 100, sigma 0.5, min_size 50): the same
//! segments, pixel for pixel, after both labellings are renumbered in order
//! of first appearance, and the same numbering before that.
//!
//! Photos are decoded with `som_core::io::load_image`, so rocket.jpg gets
//! libjpeg-turbo's pixels (PIL's, which skimage was given). (With the `image`
//! crate's JPEG decoder the rocket partition differed: ARI about 0.96.)

use std::path::PathBuf;

use som_segment::{felzenszwalb, FelzenszwalbParams};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn reference_labels(stem: &str) -> anyhow::Result<(u32, u32, Vec<u32>)> {
    let img = image::open(fixtures().join(format!("segment/felz_{stem}.png")))?;
    let map = img
        .as_luma16()
        .ok_or_else(|| anyhow::anyhow!("felz_{stem}.png is not a 16-bit grayscale PNG"))?;
    Ok((
        map.width(),
        map.height(),
        map.as_raw().iter().map(|&v| v as u32).collect(),
    ))
}

/// The segment count the fixture script recorded for `photo`.
fn reference_count(photo: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(fixtures().join("segment/felz_manifest.json"))?;
    let manifest: serde_json::Value = serde_json::from_str(&text)?;
    manifest["photos"][photo]["segments"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("felz_manifest.json has no segment count for {photo}"))
}

/// The labelling renumbered `0..` in order of first appearance (row-major):
/// two labellings of one partition become equal, whatever their numbers.
fn canonical(labels: &[u32]) -> Vec<u32> {
    let mut names = std::collections::HashMap::new();
    labels
        .iter()
        .map(|&l| {
            let next = names.len() as u32;
            *names.entry(l).or_insert(next)
        })
        .collect()
}

/// Pixels whose segment in `a` is not exactly one segment of `b` (and back).
fn unmatched(a: &[u32], b: &[u32]) -> usize {
    use std::collections::HashMap;
    // For each label, the one label of the other side it meets, or None when several.
    let mut ab: HashMap<u32, Option<u32>> = HashMap::new();
    let mut ba: HashMap<u32, Option<u32>> = HashMap::new();
    for (&x, &y) in a.iter().zip(b) {
        let e = ab.entry(x).or_insert(Some(y));
        if *e != Some(y) {
            *e = None;
        }
        let e = ba.entry(y).or_insert(Some(x));
        if *e != Some(x) {
            *e = None;
        }
    }
    a.iter()
        .zip(b)
        .filter(|(x, y)| ab[x] != Some(**y) || ba[y] != Some(**x))
        .count()
}

fn check(photo: &str) -> anyhow::Result<()> {
    let stem = photo.split('.').next().unwrap_or(photo);
    let image = som_core::io::load_image(&fixtures().join("images").join(photo))?;
    let ours = felzenszwalb(&image, &FelzenszwalbParams::REFERENCE)?;
    let (w, h, theirs) = reference_labels(stem)?;
    assert_eq!((ours.size().width, ours.size().height), (w, h), "{photo}: size");
    let (a, b) = (canonical(ours.labels()), canonical(&theirs));
    if a != b {
        panic!(
            "{photo}: {} of {} pixels lie in segments that differ from skimage's ({} segments, skimage {})",
            unmatched(&a, &b),
            a.len(),
            ours.count(),
            b.iter().max().map_or(0, |m| m + 1)
        );
    }
    assert_eq!(
        u64::from(ours.count()),
        reference_count(photo)?,
        "{photo}: segment count"
    );
    // skimage numbers segments by first appearance too.
    assert!(
        ours.labels() == &theirs[..],
        "{photo}: same segments, other numbering"
    );
    Ok(())
}

#[test]
fn astronaut_matches_skimage() -> anyhow::Result<()> {
    check("astronaut.png")
}

#[test]
fn camera_matches_skimage() -> anyhow::Result<()> {
    check("camera.png")
}

#[test]
fn chelsea_matches_skimage() -> anyhow::Result<()> {
    check("chelsea.png")
}

#[test]
fn coffee_matches_skimage() -> anyhow::Result<()> {
    check("coffee.png")
}

#[test]
fn rocket_matches_skimage() -> anyhow::Result<()> {
    check("rocket.jpg")
}

#[test]
fn canonical_numbering_ignores_label_names() {
    assert_eq!(canonical(&[7, 7, 3, 9, 3]), vec![0, 0, 1, 2, 1]);
    assert_ne!(canonical(&[1, 1, 2]), canonical(&[1, 2, 2]));
    // Segments 3 and 9 merged into one: their three pixels are unmatched.
    assert_eq!(unmatched(&[7, 7, 3, 9, 3], &[0, 0, 1, 1, 1]), 3);
    assert_eq!(unmatched(&[7, 7, 3], &[5, 5, 4]), 0);
}
