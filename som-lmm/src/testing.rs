//! Helpers for the unit tests.

use som_core::{BBox, ImageSize, Mark, MarkedImage, Point, Region, Segmentation};

/// An 8×8 image whose marks read `texts` (ids 1, 2, …), one 2×2 box region each.
pub(crate) fn marked(texts: &[&str]) -> MarkedImage {
    let regions = (0..texts.len())
        .map(|i| Region::from_box(i as u64, BBox::new(0, 0, 2, 2)))
        .collect();
    let seg = Segmentation::new(ImageSize::new(8, 8), regions).expect("valid segmentation");
    let marks = texts
        .iter()
        .enumerate()
        .map(|(i, t)| Mark::new(i as u32 + 1, *t, Point::new(0, 0), i, BBox::new(0, 0, 1, 1)))
        .collect();
    MarkedImage::new(image::RgbImage::new(8, 8), marks, seg).expect("valid marked image")
}
