//! `remove_small_regions` (`segment_anything/utils/amg.py`): fills small holes or removes
//! small islands of a binary mask, with components labelled as OpenCV's
//! `connectedComponentsWithStats(…, 8)` labels them.
//!
//! Only the label *order* matters beyond the partition itself (when every island is small,
//! upstream keeps the first largest one). OpenCV's default 8-connectivity labelling
//! (Spaghetti / BBDT) scans 2 × 2 blocks in raster order and numbers components by the
//! first block they touch, which is the order used here.

/// What to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegionMode {
    /// Fill background components smaller than the threshold.
    Holes,
    /// Drop foreground components smaller than the threshold.
    Islands,
}

fn find(parent: &mut [u32], mut i: u32) -> u32 {
    while parent[i as usize] != i {
        let p = parent[i as usize];
        parent[i as usize] = parent[p as usize];
        i = p;
    }
    i
}

fn union(parent: &mut [u32], a: u32, b: u32) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        parent[hi as usize] = lo;
    }
}

/// 8-connected components of the non-zero pixels of a row-major `w × h` image: per pixel a
/// label (0 = background, components numbered from 1 in OpenCV's order) and the sizes.
pub(crate) fn connected_components(bits: &[u8], w: usize, h: usize) -> (Vec<u32>, Vec<u64>) {
    let n = w * h;
    let mut parent: Vec<u32> = (0..n as u32).collect();
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if bits[i] == 0 {
                continue;
            }
            if x > 0 && bits[i - 1] != 0 {
                union(&mut parent, i as u32, (i - 1) as u32);
            }
            if y > 0 {
                let up = i - w;
                if bits[up] != 0 {
                    union(&mut parent, i as u32, up as u32);
                }
                if x > 0 && bits[up - 1] != 0 {
                    union(&mut parent, i as u32, (up - 1) as u32);
                }
                if x + 1 < w && bits[up + 1] != 0 {
                    union(&mut parent, i as u32, (up + 1) as u32);
                }
            }
        }
    }
    // Number roots in 2x2-block raster order.
    let mut root_label = vec![0u32; n];
    let mut next = 1u32;
    for by in (0..h).step_by(2) {
        for bx in (0..w).step_by(2) {
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let (y, x) = (by + dy, bx + dx);
                if y >= h || x >= w || bits[y * w + x] == 0 {
                    continue;
                }
                let r = find(&mut parent, (y * w + x) as u32) as usize;
                if root_label[r] == 0 {
                    root_label[r] = next;
                    next += 1;
                }
            }
        }
    }
    let mut labels = vec![0u32; n];
    let mut sizes = vec![0u64; next as usize];
    for i in 0..n {
        if bits[i] != 0 {
            let r = find(&mut parent, i as u32) as usize;
            let l = root_label[r];
            labels[i] = l;
            sizes[l as usize] += 1;
        }
    }
    sizes[0] = (n as u64) - sizes.iter().sum::<u64>();
    (labels, sizes)
}

/// `remove_small_regions(mask, area_thresh, mode)`: returns the new mask and whether it
/// changed. `mask` is row-major `w × h` with 0/1 values.
pub(crate) fn remove_small_regions(
    mask: &[u8],
    w: usize,
    h: usize,
    area_thresh: f64,
    mode: RegionMode,
) -> (Vec<u8>, bool) {
    let holes = mode == RegionMode::Holes;
    let working: Vec<u8> = mask.iter().map(|&m| u8::from((m != 0) != holes)).collect();
    let (labels, sizes) = connected_components(&working, w, h);
    let n_labels = sizes.len();
    let small: Vec<bool> = (0..n_labels)
        .map(|l| l > 0 && (sizes[l] as f64) < area_thresh)
        .collect();
    if !small.iter().any(|&s| s) {
        return (mask.to_vec(), false);
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
    (labels.iter().map(|&l| u8::from(fill[l as usize])).collect(), true)
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
        let (labels, sizes) = connected_components(&bits, 6, 3);
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
        let (filled, changed) = remove_small_regions(&mask, 5, 3, 2.0, RegionMode::Holes);
        assert!(changed);
        assert_eq!(filled[6], 1);
        let (kept, changed) = remove_small_regions(&mask, 5, 3, 2.0, RegionMode::Islands);
        assert!(changed);
        assert_eq!(kept[9], 0);
        assert_eq!(kept[0], 1);
        let (same, changed) = remove_small_regions(&mask, 5, 3, 1.0, RegionMode::Islands);
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
            let (got, changed) = remove_small_regions(&mask, w, h, thresh, mode);
            assert_eq!(changed, case["changed"].as_bool().unwrap(), "case {i}: changed");
            assert_eq!(got, want, "case {i} ({mode:?}, {thresh})");
        }
    }
}
