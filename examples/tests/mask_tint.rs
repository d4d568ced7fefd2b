//! The look SoM needs: with the mask layer alone and every other setting at
//! its default (what `som mark --draw mask` does), the marked photo stays
//! within 15 grey levels (mean absolute difference over all channels, 0–255)
//! of the original, on every bundled photo, segmented by the default
//! segmenter. The tint must still show (above 3 levels), so a renderer that
//! draws nothing does not pass.

use std::path::PathBuf;

use som_core::{MarkAllocator, MarkRenderer, Segmenter};
use som_marks::MarkStyle;
use som_segment::Classic;

/// Largest mean absolute difference the mask tint may make.
const MAX_MEAN_ABS_DIFF: f64 = 15.0;
/// Smallest: the tint is there at all.
const MIN_MEAN_ABS_DIFF: f64 = 3.0;

#[test]
fn mask_tint_keeps_the_photo_visible() -> anyhow::Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images");
    let mut photos: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    photos.retain(|p| {
        matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("png" | "jpg" | "jpeg")
        )
    });
    photos.sort();
    assert!(photos.len() >= 5, "bundled photos: {photos:?}");
    let mut style = MarkStyle::default();
    style.set("draw", "mask")?;
    let (allocator, renderer) = (style.allocator(), style.renderer());
    let segmenter = Classic::default();
    let mut failures = Vec::new();
    for path in &photos {
        let image = som_core::io::load_image(path)?;
        let original = image.to_rgb8();
        let seg = segmenter.segment(&image)?;
        let marks = allocator.allocate(&seg, &renderer)?;
        let marked = renderer.render(&original, &seg, &marks)?;
        let total: u64 = marked
            .as_raw()
            .iter()
            .zip(original.as_raw())
            .map(|(&a, &b)| u64::from(a.abs_diff(b)))
            .sum();
        let mad = total as f64 / original.as_raw().len() as f64;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        println!(
            "{name}: mean absolute difference {mad:.2} ({} regions)",
            seg.len()
        );
        if mad > MAX_MEAN_ABS_DIFF {
            failures.push(format!(
                "{name}: the default tint changes the photo by {mad:.2} levels on average (at most {MAX_MEAN_ABS_DIFF})"
            ));
        }
        if mad < MIN_MEAN_ABS_DIFF {
            failures.push(format!(
                "{name}: the tint hardly shows ({mad:.2} levels on average, at least {MIN_MEAN_ABS_DIFF})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}
