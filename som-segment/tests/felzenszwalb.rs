//! Agreement with skimage: our Felzenszwalb partition of every bundled photo
//! against the label maps written by `tools/fixtures/gen_felzenszwalb.py`
//! (scikit-image 0.26, scale 100, sigma 0.5, min_size 50).
//!
//! Photos are decoded with `som_core::io::load_image`, so rocket.jpg gets
//! libjpeg-turbo's pixels (PIL's, which skimage was given): with them every
//! photo's partition is identical (ARI 1.0, every label equal). With the
//! `image` crate's JPEG decoder rocket.jpg scored about 0.96.

use std::path::PathBuf;

use som_segment::{adjusted_rand_index, felzenszwalb, FelzenszwalbParams};

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

fn check(photo: &str) -> anyhow::Result<()> {
    let stem = photo.split('.').next().unwrap_or(photo);
    let image = som_core::io::load_image(&fixtures().join("images").join(photo))?;
    let ours = felzenszwalb(&image, &FelzenszwalbParams::REFERENCE)?;
    let (w, h, theirs) = reference_labels(stem)?;
    assert_eq!((ours.size().width, ours.size().height), (w, h), "{photo}: size");
    let ari = adjusted_rand_index(ours.labels(), &theirs)?;
    let their_count = theirs.iter().max().map_or(0, |m| m + 1);
    let exact =
        ours.labels().iter().zip(&theirs).filter(|(a, b)| a == b).count() as f64 / theirs.len() as f64;
    println!(
        "{photo}: ARI {ari:.4}, segments {} (skimage {their_count}), identical labels on {:.2}% of pixels",
        ours.count(),
        exact * 100.0
    );
    assert!(ari >= 0.9, "{photo}: ARI {ari} < 0.9");
    if photo.ends_with(".png") {
        // Lossless input: the same pixels, so the same partition.
        assert!(ari > 0.999, "{photo}: ARI {ari} on lossless input");
    }
    let ratio = ours.count() as f64 / their_count as f64;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "{photo}: {} segments vs skimage's {their_count}",
        ours.count()
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
