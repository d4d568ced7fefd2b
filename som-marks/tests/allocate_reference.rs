//! `independent` mode against the reference: on all nine reference mask sets, every
//! anchor is a pixel of maximal exact distance to its mask's outside (squared
//! distances from scipy, cross-checked with ../shared/ref/som_ref.py, in
//! fixtures/alloc/ by tools/fixtures/gen_alloc.py), and mark ids follow the
//! reference's numbering (largest mask first, stable).

mod allocate_support;

use allocate_support::{load_reference, load_set, TestMeasure, SETS};
use som_core::{ImageSize, MarkAllocator, Mask, Point};
use som_marks::allocate::{AllocationMode, Allocator, AllocatorConfig};

/// Exact squared distance from `p` to the nearest pixel outside `mask`
/// (beyond the image counts as outside), by searching square rings.
fn brute_d2(mask: &Mask, size: ImageSize, p: Point) -> u64 {
    let (x, y) = (p.x as i64, p.y as i64);
    let (w, h) = (size.width as i64, size.height as i64);
    let mut best = [(x + 1).pow(2), (w - x).pow(2), (y + 1).pow(2), (h - y).pow(2)]
        .into_iter()
        .min()
        .unwrap_or(0);
    let mut r = 0i64;
    while r * r < best {
        for dy in -r..=r {
            for dx in -r..=r {
                if dx.abs() != r && dy.abs() != r {
                    continue;
                }
                let (qx, qy) = (x + dx, y + dy);
                if qx < 0 || qy < 0 || qx >= w || qy >= h {
                    continue;
                }
                if !mask.contains(Point::new(qx as u32, qy as u32)) {
                    best = best.min(dx * dx + dy * dy);
                }
            }
        }
        r += 1;
    }
    best as u64
}

#[test]
fn independent_anchors_have_maximal_distance_on_every_reference_set() {
    let alloc = Allocator::new(AllocatorConfig {
        mode: AllocationMode::Independent,
        ..Default::default()
    });
    for name in SETS {
        let seg = load_set(name);
        let reference = load_reference(name);
        let max_d2: Vec<u64> = serde_json::from_value(reference["max_d2"].clone()).expect("max_d2");
        let ids: Vec<u32> = serde_json::from_value(reference["ref_ids"].clone()).expect("ref_ids");
        assert_eq!(max_d2.len(), seg.len(), "{name}");
        let marks = alloc.allocate(&seg, &TestMeasure).expect("allocation");
        assert_eq!(marks.len(), seg.len(), "{name}: one mark per region");
        for (k, m) in marks.iter().enumerate() {
            assert_eq!(m.id as usize, k + 1, "{name}: marks ordered by id");
            let i = m.region;
            assert_eq!(m.id, ids[i], "{name}: region {i} numbered like the reference");
            let mask = seg.regions()[i].mask.as_ref().expect("mask");
            assert!(
                mask.contains(m.anchor),
                "{name}: mark {} anchor {:?} outside its mask",
                m.id,
                m.anchor
            );
            let d2 = brute_d2(mask, seg.size(), m.anchor);
            assert_eq!(
                d2, max_d2[i],
                "{name}: mark {} at {:?} is not at a maximum",
                m.id, m.anchor
            );
            assert_eq!(m.distance, (d2 as f64).sqrt(), "{name}: mark {} distance", m.id);
            assert!(
                seg.size().full_box().contains_box(&m.label_box),
                "{name}: label box in the image"
            );
        }
    }
}

#[test]
fn paper_mode_numbers_marks_like_independent_mode() {
    for name in ["synth_1024x768_n50", "felz_chelsea"] {
        let seg = load_set(name);
        let ids: Vec<u32> = serde_json::from_value(load_reference(name)["ref_ids"].clone()).expect("ref_ids");
        let marks = Allocator::default()
            .allocate(&seg, &TestMeasure)
            .expect("allocation");
        for m in &marks {
            assert_eq!(m.id, ids[m.region], "{name}");
        }
    }
}
