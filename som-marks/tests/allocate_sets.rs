//! `paper` mode on the reference mask sets: no overlapping labels on the
//! 200-mask sets; on the dense felzenszwalb sets (212–585 regions) overlaps
//! only where flagged, on under 2% of marks; every label inside the image;
//! every inside anchor on its region's exclusive part, at the exact distance
//! the mark reports.

mod allocate_support;

use allocate_support::{load_set, TestMeasure, SETS};
use som_core::{Mark, MarkAllocator, Placement, Segmentation};
use som_marks::allocate::Allocator;

/// Pairs of marks whose label boxes intersect, as each mark's sorted id list.
fn true_overlaps(marks: &[Mark]) -> Vec<Vec<u32>> {
    marks
        .iter()
        .map(|a| {
            let mut v: Vec<u32> = marks
                .iter()
                .filter(|b| b.id != a.id && a.label_box.intersects(&b.label_box))
                .map(|b| b.id)
                .collect();
            v.sort_unstable();
            v
        })
        .collect()
}

/// Checks the invariants every paper layout has; returns (flagged marks, outside marks).
fn check_layout(name: &str, seg: &Segmentation, marks: &[Mark]) -> (usize, usize) {
    assert_eq!(marks.len(), seg.len(), "{name}: one mark per region");
    let order = seg.order_by_area();
    let truth = true_overlaps(marks);
    for (k, m) in marks.iter().enumerate() {
        assert_eq!(m.id as usize, k + 1, "{name}: ordered by id");
        assert_eq!(
            m.region, order[k],
            "{name}: mark {} names the region of rank {k}",
            m.id
        );
        assert!(
            seg.size().full_box().contains_box(&m.label_box),
            "{name}: mark {} label {:?} leaves the image",
            m.id,
            m.label_box
        );
        assert_eq!(
            m.overlaps, truth[k],
            "{name}: mark {} overlaps must be flagged exactly",
            m.id
        );
        let mask = seg.regions()[m.region].mask.as_ref().expect("mask");
        if m.placement == Placement::Inside {
            assert!(
                mask.contains(m.anchor),
                "{name}: mark {} anchor outside its region",
                m.id
            );
            // Exclusive part: no smaller region (visited earlier) holds the anchor.
            for &j in &order[k + 1..] {
                let other = seg.regions()[j].mask.as_ref().expect("mask");
                assert!(
                    !other.contains(m.anchor),
                    "{name}: mark {} anchor lies on smaller region {j}",
                    m.id
                );
            }
        } else {
            assert!(
                mask.contains(m.anchor),
                "{name}: outside mark {} still points at its region",
                m.id
            );
            assert!(
                !m.label_box.contains(m.anchor) || !m.overlaps.is_empty(),
                "{name}: mark {}",
                m.id
            );
        }
        assert!(m.distance >= 1.0, "{name}: mark {} distance {}", m.id, m.distance);
    }
    let flagged = marks.iter().filter(|m| !m.overlaps.is_empty()).count();
    let outside = marks.iter().filter(|m| m.placement == Placement::Outside).count();
    (flagged, outside)
}

#[test]
fn paper_layouts_on_reference_sets() {
    let alloc = Allocator::default();
    for name in SETS {
        let seg = load_set(name);
        let marks = alloc.allocate(&seg, &TestMeasure).expect("allocation");
        let (flagged, outside) = check_layout(name, &seg, &marks);
        let scale = marks.iter().map(|m| m.label_box.height).min().unwrap_or(0);
        eprintln!(
            "{name}: {} marks, {flagged} with overlaps ({:.2}%), {outside} outside, smallest label height {scale}",
            marks.len(),
            100.0 * flagged as f64 / marks.len() as f64
        );
        if name.starts_with("synth") {
            assert_eq!(
                flagged, 0,
                "{name}: labels must not overlap on the synthetic sets"
            );
        } else {
            assert!(
                (flagged as f64) < 0.02 * marks.len() as f64,
                "{name}: {flagged} of {} marks overlap",
                marks.len()
            );
        }
    }
}
