//! `remove_small_regions` (`segment_anything/utils/amg.py`): fills small holes or removes
//! small islands of a binary mask, with components labelled as OpenCV's
//! `connectedComponentsWithStats(…, 8)` labels them.
//!
//! Only the label *order* matters beyond the partition itself (when every island is small,
//! upstream keeps the first largest one). OpenCV's default 8-connectivity labelling
//! (Spaghetti / BBDT) scans 2 × 2 blocks in raster order and numbers components by the
//! first block they touch. The components come from [`som_core::Components`] (numbered by
//! first pixel, row-major); this file only renumbers them in OpenCV's order.

use som_core::{Components, Connectivity, ImageSize};

use super::SamError;

/// What to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegionMode {
    /// Fill background components smaller than the threshold.
    Holes,
    /// Drop foreground components smaller than the threshold.
    Islands,
}

/// 8-connected components of the non-zero pixels of a row-major `w × h` image: per pixel a
/// label (0 = background, components numbered from 1 in OpenCV's order) and the sizes
/// (index 0 the background).
///
/// The labelling itself is [`som_core::Components`]'s; only the numbering is OpenCV's,
/// which is why this renumbering stays here.
pub(crate) fn connected_components(
    bits: &[u8],
    w: usize,
    h: usize,
) -> Result<(Vec<u32>, Vec<u64>), SamError> {
    let size = ImageSize::new(w as u32, h as u32);
    let found = Components::of_binary(size, bits, Connectivity::Eight)
        .map_err(|e| SamError::Image(format!("cannot label the components of a mask: {e}")))?;
    let first_pixel = found.labels();
    // Renumber by the first 2x2 block (in raster order) each component touches.
    let mut cv = vec![0u32; found.count() as usize + 1];
    let mut next = 1u32;
    for by in (0..h).step_by(2) {
        for bx in (0..w).step_by(2) {
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let (y, x) = (by + dy, bx + dx);
                if y >= h || x >= w {
                    continue;
                }
                let l = first_pixel[y * w + x] as usize;
                if l != 0 && cv[l] == 0 {
                    cv[l] = next;
                    next += 1;
                }
            }
        }
    }
    let labels = first_pixel.iter().map(|&l| cv[l as usize]).collect();
    let mut sizes = vec![0u64; cv.len()];
    for (&to, &area) in cv.iter().zip(found.areas()) {
        sizes[to as usize] = area;
    }
    Ok((labels, sizes))
}

/// `remove_small_regions(mask, area_thresh, mode)`: returns the new mask and whether it
/// changed. `mask` is row-major `w × h` with 0/1 values.
///
/// # Errors
/// [`SamError::Image`] when `mask` does not hold `w × h` values.
pub(crate) fn remove_small_regions(
    mask: &[u8],
    w: usize,
    h: usize,
    area_thresh: f64,
    mode: RegionMode,
) -> Result<(Vec<u8>, bool), SamError> {
    let holes = mode == RegionMode::Holes;
    let working: Vec<u8> = mask.iter().map(|&m| u8::from((m != 0) != holes)).collect();
    let (labels, sizes) = connected_components(&working, w, h)?;
    let n_labels = sizes.len();
    let small: Vec<bool> = (0..n_labels)
        .map(|l| l > 0 && (sizes[l] as f64) < area_thresh)
        .collect();
    if !small.iter().any(|&s| s) {
        return Ok((mask.to_vec(), false));
    }
    // Labels whose pixels end up in the mask.
    let mut fill = vec![false; n_labels];
    if holes {
        fill[0] = true;
        fill[1..n_labels].copy_from_slice(&small[1..n_labels]);
    } else {
        for l in 1..n_labels {
            fill[l] = !small[l];
        }
        if !fill.iter().any(|&f| f) {
            // All islands are small: keep the first largest (np.argmax).
            let mut best = 1;
            for l in 2..n_labels {
                if sizes[l] > sizes[best] {
                    best = l;
                }
            }
            fill[best] = true;
        }
    }
    Ok((labels.iter().map(|&l| u8::from(fill[l as usize])).collect(), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_block_order_and_count_diagonals() {
        // Row 0: pixel at x=4; row 1: pixel at x=0 → block order puts (1,0) first.
        #[rustfmt::skip]
        let bits = [
            0, 0, 0, 0, 1, 0,
            1, 0, 0, 0, 0, 0,
            0, 1, 0, 0, 0, 1,
        ];
        let (labels, sizes) = connected_components(&bits, 6, 3).unwrap();
        assert_eq!(labels[6], 1);
        assert_eq!(labels[13], 1, "diagonal neighbours are connected");
        assert_eq!(labels[4], 2);
        assert_eq!(labels[17], 3);
        assert_eq!(sizes, vec![14, 2, 1, 1]);
    }

    #[test]
    fn fills_holes_and_drops_islands() {
        #[rustfmt::skip]
        let mask = [
            1, 1, 1, 0, 0,
            1, 0, 1, 0, 1,
            1, 1, 1, 0, 0,
        ];
        let (filled, changed) = remove_small_regions(&mask, 5, 3, 2.0, RegionMode::Holes).unwrap();
        assert!(changed);
        assert_eq!(filled[6], 1);
        let (kept, changed) = remove_small_regions(&mask, 5, 3, 2.0, RegionMode::Islands).unwrap();
        assert!(changed);
        assert_eq!(kept[9], 0);
        assert_eq!(kept[0], 1);
        let (same, changed) = remove_small_regions(&mask, 5, 3, 1.0, RegionMode::Islands).unwrap();
        assert!(!changed);
        assert_eq!(same, mask.to_vec());
    }
}

#[cfg(test)]
mod opencv_parity {
    use som_core::{ImageSize, Rle};

    use super::*;

    fn decode(v: &serde_json::Value) -> (Vec<u8>, usize, usize) {
        let h = v["size"][0].as_u64().unwrap() as u32;
        let w = v["size"][1].as_u64().unwrap() as u32;
        let rle = Rle::from_compressed(ImageSize::new(w, h), v["counts"].as_str().unwrap()).unwrap();
        let bytes = rle
            .to_mask()
            .to_bytes()
            .iter()
            .map(|&b| u8::from(b != 0))
            .collect();
        (bytes, w as usize, h as usize)
    }

    /// Fixtures from tools/fixtures/gen_sam.py: segment_anything's remove_small_regions on cv2.
    #[test]
    fn matches_remove_small_regions_on_opencv() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/sam/expected.json");
        let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let cases = meta["small_regions"].as_array().unwrap();
        assert!(cases.len() >= 20);
        for (i, case) in cases.iter().enumerate() {
            let (mask, w, h) = decode(&case["input"]);
            let (want, _, _) = decode(&case["output"]);
            let mode = if case["mode"] == "holes" {
                RegionMode::Holes
            } else {
                RegionMode::Islands
            };
            let thresh = case["area_thresh"].as_f64().unwrap();
            let (got, changed) = remove_small_regions(&mask, w, h, thresh, mode).unwrap();
            assert_eq!(changed, case["changed"].as_bool().unwrap(), "case {i}: changed");
            assert_eq!(got, want, "case {i} ({mode:?}, {thresh})");
        }
    }
}
