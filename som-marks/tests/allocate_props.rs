//! Property tests of `paper` mode on small random scenes (proptest):
//! every label box inside the image; overlaps flagged exactly, never silently;
//! an inside anchor lies on its region's exclusive part at the exact distance
//! the mark reports; when a label can be centred on an exclusive pixel without
//! conflict it is, at the largest such distance; scenes with room have no
//! overlaps; overlaps appear only at the minimum label scale.

use proptest::prelude::*;
use som_core::{
    BBox, ImageSize, LabelMeasure, Mark, MarkAllocator, Mask, Placement, Point, Region, Segmentation,
};
use som_marks::allocate::{AllocationMode, Allocator, AllocatorConfig};

/// `cw` px per character, `lh` px high, scaled.
#[derive(Debug, Clone, Copy)]
struct Measure {
    cw: u32,
    lh: u32,
    min: f32,
}

impl LabelMeasure for Measure {
    fn label_size(&self, text: &str, _image: ImageSize, scale: f32) -> (u32, u32) {
        let w = (text.len() as f32 * self.cw as f32 * scale).ceil() as u32;
        let h = (self.lh as f32 * scale).ceil() as u32;
        (w.max(1), h.max(1))
    }
    fn min_scale(&self, _image: ImageSize) -> f32 {
        self.min
    }
}

#[derive(Debug, Clone)]
enum Shape {
    Rect(u32, u32, u32, u32),
    Ellipse(u32, u32, u32, u32),
    Ring(u32, u32, u32, u32),
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        (0u32..64, 0u32..64, 1u32..40, 1u32..40).prop_map(|(x, y, w, h)| Shape::Rect(x, y, w, h)),
        (0u32..64, 0u32..64, 1u32..25, 1u32..25).prop_map(|(x, y, a, b)| Shape::Ellipse(x, y, a, b)),
        (0u32..64, 0u32..64, 4u32..25, 1u32..4).prop_map(|(x, y, r, t)| Shape::Ring(x, y, r, t)),
    ]
}

fn inside(s: &Shape, x: u32, y: u32) -> bool {
    let (x, y) = (x as i64, y as i64);
    match *s {
        Shape::Rect(x0, y0, w, h) => {
            x >= x0 as i64 && y >= y0 as i64 && x < (x0 + w) as i64 && y < (y0 + h) as i64
        }
        Shape::Ellipse(cx, cy, a, b) => {
            let (dx, dy, a, b) = (x - cx as i64, y - cy as i64, a as i64, b as i64);
            dx * dx * b * b + dy * dy * a * a <= a * a * b * b
        }
        Shape::Ring(cx, cy, r, t) => {
            let d2 = (x - cx as i64).pow(2) + (y - cy as i64).pow(2);
            let (r, t) = (r as i64, t as i64);
            d2 <= r * r && d2 >= (r - t).max(0).pow(2)
        }
    }
}

/// A segmentation of the shapes that have at least one pixel in the image.
fn scene(size: ImageSize, shapes: &[Shape]) -> Segmentation {
    let regions: Vec<Region> = shapes
        .iter()
        .map(|s| Mask::from_fn(size, |x, y| inside(s, x, y)))
        .filter(|m| !m.is_empty())
        .enumerate()
        .map(|(i, m)| Region::from_mask(i as u64, m))
        .collect();
    Segmentation::new(size, regions).expect("valid scene")
}

/// Exact squared distance from `p` to the nearest pixel not in `set`
/// (beyond the image counts as outside).
fn brute_d2(size: ImageSize, p: Point, set: &dyn Fn(u32, u32) -> bool) -> u32 {
    let (x, y, w, h) = (p.x as i64, p.y as i64, size.width as i64, size.height as i64);
    let mut best = [(x + 1).pow(2), (w - x).pow(2), (y + 1).pow(2), (h - y).pow(2)]
        .into_iter()
        .min()
        .unwrap_or(0);
    for qy in 0..h {
        for qx in 0..w {
            if !set(qx as u32, qy as u32) {
                best = best.min((qx - x).pow(2) + (qy - y).pow(2));
            }
        }
    }
    best as u32
}

fn paper() -> Allocator {
    Allocator::default()
}

/// Checks the invariants of a paper layout; returns the marks in visiting order
/// (smallest region first) with each one's exclusive-part predicate.
fn check(seg: &Segmentation, marks: &[Mark], measure: &Measure) -> Result<(), TestCaseError> {
    let size = seg.size();
    let order = seg.order_by_area();
    prop_assert_eq!(marks.len(), seg.len());
    let min_h = (measure.lh as f32 * measure.min).ceil() as u32;
    let any_overlap = marks.iter().any(|m| !m.overlaps.is_empty());
    for (k, m) in marks.iter().enumerate() {
        prop_assert_eq!(m.id as usize, k + 1);
        prop_assert_eq!(m.region, order[k]);
        prop_assert!(
            size.full_box().contains_box(&m.label_box),
            "label {:?} leaves the image",
            m.label_box
        );
        let mut truth: Vec<u32> = marks
            .iter()
            .filter(|o| o.id != m.id && o.label_box.intersects(&m.label_box))
            .map(|o| o.id)
            .collect();
        truth.sort_unstable();
        prop_assert_eq!(&m.overlaps, &truth, "mark {} overlaps flagged exactly", m.id);
        if any_overlap {
            prop_assert_eq!(
                m.label_box.height,
                min_h.min(size.height),
                "overlaps only at the minimum scale"
            );
        }
    }
    // Visit order: smallest first. Exclusive part of rank k = region minus all higher ranks.
    let masks: Vec<&Mask> = order
        .iter()
        .map(|&i| seg.regions()[i].mask.as_ref().expect("mask"))
        .collect();
    for k in (0..marks.len()).rev() {
        let m = &marks[k];
        let excl = |x: u32, y: u32| {
            let p = Point::new(x, y);
            masks[k].contains(p) && masks[k + 1..].iter().all(|o| !o.contains(p))
        };
        let has_excl = (0..size.height).any(|y| (0..size.width).any(|x| excl(x, y)));
        prop_assert!(masks[k].contains(m.anchor), "mark {} anchor on its region", m.id);
        let d2 = if has_excl {
            prop_assert!(
                excl(m.anchor.x, m.anchor.y),
                "mark {} anchor on the exclusive part",
                m.id
            );
            brute_d2(size, m.anchor, &excl)
        } else {
            prop_assert_eq!(
                m.placement,
                Placement::Outside,
                "fully covered region {} goes outside",
                m.id
            );
            brute_d2(size, m.anchor, &|x, y| masks[k].contains(Point::new(x, y)))
        };
        prop_assert_eq!(m.distance, (d2 as f64).sqrt(), "mark {} distance is exact", m.id);
        // First choice: the best exclusive pixel whose centred label is free
        // of the labels and anchors placed before (higher ranks).
        let (lw, lh) = (m.label_box.width, m.label_box.height);
        let earlier = &marks[k + 1..];
        let mut best_free: Option<u32> = None;
        for y in 0..size.height {
            for x in 0..size.width {
                if !has_excl || !excl(x, y) {
                    continue;
                }
                let bx = (x as i64 - (lw / 2) as i64).clamp(0, (size.width - lw) as i64) as u32;
                let by = (y as i64 - (lh / 2) as i64).clamp(0, (size.height - lh) as i64) as u32;
                let b = BBox::new(bx, by, lw, lh);
                let free = earlier
                    .iter()
                    .all(|o| !o.label_box.intersects(&b) && !b.contains(o.anchor));
                if free {
                    let d = brute_d2(size, Point::new(x, y), &excl);
                    best_free = Some(best_free.map_or(d, |b: u32| b.max(d)));
                }
            }
        }
        // (At the minimum scale a forced layout may have been repaired:
        // labels moved after later ones were placed, so "free of the earlier
        // labels" no longer describes what this one saw.)
        let at_min = m.label_box.height == min_h.min(size.height);
        if let (Some(d), false) = (best_free, at_min) {
            prop_assert_eq!(
                m.placement,
                Placement::Inside,
                "mark {} could be centred inside",
                m.id
            );
            prop_assert_eq!(d2, d, "mark {} takes the best free exclusive pixel", m.id);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn paper_layouts_hold_their_invariants(
        w in 12u32..48, h in 12u32..48,
        shapes in prop::collection::vec(shape(), 1..9),
        cw in 2u32..6, lh in 3u32..9, min in prop_oneof![Just(0.5f32), Just(0.75), Just(1.0)],
    ) {
        let size = ImageSize::new(w, h);
        let seg = scene(size, &shapes);
        prop_assume!(!seg.is_empty());
        let measure = Measure { cw, lh, min };
        let marks = paper().allocate(&seg, &measure).expect("allocation");
        check(&seg, &marks, &measure)?;
    }

    #[test]
    fn scenes_with_room_have_no_overlaps(
        cols in 1u32..5, rows in 1u32..5, cw in 2u32..5, lh in 3u32..7,
        shrink in prop::collection::vec((0u32..3, 0u32..3), 16),
    ) {
        // Disjoint cells, each at least twice the widest label in both directions.
        let measure = Measure { cw, lh, min: 0.5 };
        let (cell_w, cell_h) = (2 * 2 * cw + 6, 2 * lh + 6);
        let size = ImageSize::new(cols * cell_w, rows * cell_h);
        let mut shapes = Vec::new();
        for r in 0..rows {
            for c in 0..cols {
                let (sx, sy) = shrink[(r * cols + c) as usize % shrink.len()];
                shapes.push(Shape::Rect(c * cell_w + sx, r * cell_h + sy, cell_w - 2 * sx, cell_h - 2 * sy));
            }
        }
        let seg = scene(size, &shapes);
        let marks = paper().allocate(&seg, &measure).expect("allocation");
        check(&seg, &marks, &measure)?;
        for m in &marks {
            prop_assert!(m.overlaps.is_empty(), "mark {} overlaps though there is room", m.id);
            prop_assert_eq!(m.placement, Placement::Inside);
            prop_assert_eq!(m.label_box.height, lh, "full-size labels when there is room");
        }
    }

    #[test]
    fn dense_scenes_flag_every_overlap(
        pts in prop::collection::vec((0u32..20, 0u32..14), 8..40), cw in 3u32..6, lh in 5u32..9,
    ) {
        // Many 1-2 px regions under labels far bigger than the image can hold apart.
        let size = ImageSize::new(20, 14);
        let shapes: Vec<Shape> = pts.iter().enumerate().map(|(i, &(x, y))| Shape::Rect(x, y, 1 + (i as u32 % 2), 1)).collect();
        let seg = scene(size, &shapes);
        let measure = Measure { cw, lh, min: 0.6 };
        let marks = paper().allocate(&seg, &measure).expect("allocation");
        check(&seg, &marks, &measure)?;
    }
}

#[test]
fn independent_mode_flags_overlaps_too() {
    // Both regions peak at (4, 4): independent mode puts both labels there.
    let size = ImageSize::new(20, 10);
    let seg = Segmentation::new(
        size,
        vec![
            Region::from_mask(1, Mask::from_box(size, BBox::new(0, 0, 10, 10))),
            Region::from_mask(2, Mask::from_box(size, BBox::new(4, 4, 2, 2))),
        ],
    )
    .expect("scene");
    let alloc = Allocator::new(AllocatorConfig {
        mode: AllocationMode::Independent,
        ..Default::default()
    });
    let marks = alloc
        .allocate(
            &seg,
            &Measure {
                cw: 4,
                lh: 6,
                min: 1.0,
            },
        )
        .expect("allocation");
    assert_eq!(marks[0].anchor, marks[1].anchor);
    assert_eq!(marks[0].overlaps, vec![2]);
    assert_eq!(marks[1].overlaps, vec![1]);
    // Paper mode keeps them apart.
    let marks = paper()
        .allocate(
            &seg,
            &Measure {
                cw: 4,
                lh: 6,
                min: 1.0,
            },
        )
        .expect("allocation");
    assert!(marks.iter().all(|m| m.overlaps.is_empty()));
}

#[test]
fn empty_regions_are_errors_naming_the_region() {
    let size = ImageSize::new(10, 10);
    let seg = Segmentation::new(size, vec![Region::from_mask(42, Mask::empty(size))]).expect("scene");
    let err = paper()
        .allocate(
            &seg,
            &Measure {
                cw: 2,
                lh: 3,
                min: 1.0,
            },
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "region 42: empty mask: there is no pixel to put a mark on"
    );
}

#[test]
fn no_regions_give_no_marks() {
    let size = ImageSize::new(10, 10);
    let none = Segmentation::empty(size);
    assert!(paper()
        .allocate(
            &none,
            &Measure {
                cw: 2,
                lh: 3,
                min: 1.0
            }
        )
        .expect("no regions")
        .is_empty());
}

#[test]
fn huge_and_degenerate_labels_stay_in_the_image() {
    let size = ImageSize::new(12, 9);
    let seg = Segmentation::new(
        size,
        vec![
            Region::from_box(1, BBox::new(0, 0, 12, 9)),
            Region::from_box(2, BBox::new(2, 2, 3, 3)),
            Region::from_box(3, BBox::new(8, 5, 2, 2)),
        ],
    )
    .expect("scene");
    for measure in [
        Measure {
            cw: 40,
            lh: 50,
            min: 0.5,
        },
        Measure {
            cw: 0,
            lh: 0,
            min: f32::NAN,
        },
    ] {
        let marks = paper().allocate(&seg, &measure).expect("allocation");
        assert_eq!(marks.len(), 3);
        for m in &marks {
            assert!(size.full_box().contains_box(&m.label_box), "{:?}", m.label_box);
            assert!(!m.label_box.is_empty());
        }
    }
}

#[test]
fn box_only_regions_are_filled_boxes() {
    let size = ImageSize::new(30, 20);
    let seg = Segmentation::new(size, vec![Region::from_box(5, BBox::new(4, 2, 11, 7))]).expect("scene");
    for mode in [AllocationMode::Paper, AllocationMode::Independent] {
        let alloc = Allocator::new(AllocatorConfig {
            mode,
            ..Default::default()
        });
        let m = &alloc
            .allocate(
                &seg,
                &Measure {
                    cw: 2,
                    lh: 3,
                    min: 1.0,
                },
            )
            .expect("allocation")[0];
        assert_eq!(m.distance, 4.0);
        assert_eq!(m.anchor.y, 5);
    }
}

#[test]
fn per_piece_marks_every_piece_with_the_region_text() {
    let size = ImageSize::new(60, 20);
    let two = Mask::from_fn(size, |x, y| {
        (2..12).contains(&x) && (2..12).contains(&y) || (40..50).contains(&x) && (5..15).contains(&y)
    });
    let seg = Segmentation::new(size, vec![Region::from_mask(1, two)]).expect("scene");
    for mode in [AllocationMode::Paper, AllocationMode::Independent] {
        let alloc = Allocator::new(AllocatorConfig {
            mode,
            per_piece: true,
            ..Default::default()
        });
        let marks = alloc
            .allocate(
                &seg,
                &Measure {
                    cw: 2,
                    lh: 3,
                    min: 1.0,
                },
            )
            .expect("allocation");
        assert_eq!(marks.len(), 2);
        assert!(marks.iter().all(|m| m.id == 1 && m.text == "1"));
        let mut xs: Vec<u32> = marks.iter().map(|m| m.anchor.x).collect();
        xs.sort_unstable();
        assert!(xs[0] < 12 && xs[1] >= 40, "{xs:?}");
        let one = Allocator::new(AllocatorConfig {
            mode,
            ..Default::default()
        });
        assert_eq!(
            one.allocate(
                &seg,
                &Measure {
                    cw: 2,
                    lh: 3,
                    min: 1.0
                }
            )
            .expect("allocation")
            .len(),
            1
        );
    }
}
