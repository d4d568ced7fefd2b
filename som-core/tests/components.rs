//! Connected components against a plain flood fill (proptest): the same
//! labels, numbered alike (first pixel in row-major order), for binary grids
//! and label maps, with 4- and 8-connectivity; areas, boxes and masks agree.

use proptest::prelude::*;
use som_core::{BBox, Components, Connectivity, ImageSize, Mask, Point};

/// The reference: seeds in row-major order, each flooding its component with
/// a stack; `joins(a, b)` says whether neighbouring pixels `a` and `b` connect.
fn flood(
    w: usize,
    h: usize,
    conn: Connectivity,
    member: &dyn Fn(usize) -> bool,
    joins: &dyn Fn(usize, usize) -> bool,
) -> Vec<u32> {
    let steps: &[(i64, i64)] = match conn {
        Connectivity::Four => &[(-1, 0), (1, 0), (0, -1), (0, 1)],
        Connectivity::Eight => &[
            (-1, -1),
            (0, -1),
            (1, -1),
            (-1, 0),
            (1, 0),
            (-1, 1),
            (0, 1),
            (1, 1),
        ],
    };
    let mut labels = vec![0u32; w * h];
    let mut next = 0;
    for seed in 0..w * h {
        if labels[seed] != 0 || !member(seed) {
            continue;
        }
        next += 1;
        labels[seed] = next;
        let mut stack = vec![seed];
        while let Some(i) = stack.pop() {
            let (x, y) = ((i % w) as i64, (i / w) as i64);
            for &(dx, dy) in steps {
                let (nx, ny) = (x + dx, y + dy);
                if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                    continue;
                }
                let j = ny as usize * w + nx as usize;
                if labels[j] == 0 && member(j) && joins(i, j) {
                    labels[j] = next;
                    stack.push(j);
                }
            }
        }
    }
    labels
}

fn connectivity() -> impl Strategy<Value = Connectivity> {
    prop_oneof![Just(Connectivity::Four), Just(Connectivity::Eight)]
}

/// Grids with few values, so that equal neighbours (and long runs) are common.
fn grid(values: u8) -> impl Strategy<Value = (usize, usize, Vec<u8>)> {
    (0usize..40, 0usize..24)
        .prop_flat_map(move |(w, h)| proptest::collection::vec(0..values, w * h).prop_map(move |v| (w, h, v)))
}

/// Areas and boxes recomputed from the labels.
fn check_stats(c: &Components) -> Result<(), TestCaseError> {
    let (w, h) = (c.size().width as usize, c.size().height as usize);
    let n = c.count() as usize;
    let mut areas = vec![0u64; n + 1];
    let mut boxes = vec![(usize::MAX, usize::MAX, 0usize, 0usize); n + 1];
    for (i, &l) in c.labels().iter().enumerate() {
        let (x, y) = (i % w, i / w);
        areas[l as usize] += 1;
        let b = &mut boxes[l as usize];
        *b = (b.0.min(x), b.1.min(y), b.2.max(x + 1), b.3.max(y + 1));
    }
    prop_assert_eq!(c.areas(), &areas[..]);
    prop_assert_eq!(c.labels().len(), w * h);
    for (k, b) in boxes.iter().enumerate().skip(1) {
        let want = BBox::from_xyxy(b.0 as u32, b.1 as u32, b.2 as u32, b.3 as u32);
        prop_assert_eq!(c.bbox(k as u32), Some(want));
    }
    prop_assert_eq!(c.bbox(n as u32 + 1), None);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn binary_components_match_flood_fill((w, h, v) in grid(2), conn in connectivity()) {
        let size = ImageSize::new(w as u32, h as u32);
        let c = Components::of_binary(size, &v, conn).unwrap();
        let want = flood(w, h, conn, &|i| v[i] != 0, &|_, _| true);
        prop_assert_eq!(c.labels(), &want[..]);
        prop_assert_eq!(c.count(), want.iter().copied().max().unwrap_or(0));
        check_stats(&c)?;
        // One mask per component, exactly its pixels.
        let masks = c.masks().unwrap();
        prop_assert_eq!(masks.len(), c.count() as usize);
        for (k, m) in masks.iter().enumerate() {
            prop_assert_eq!(m.area(), c.areas()[k + 1]);
            prop_assert_eq!(Some(m.bbox()), c.bbox(k as u32 + 1));
            for (i, &l) in want.iter().enumerate() {
                let p = Point::new((i % w) as u32, (i / w) as u32);
                prop_assert_eq!(m.contains(p), l == k as u32 + 1);
            }
        }
    }

    #[test]
    fn value_components_match_flood_fill((w, h, v) in grid(4), conn in connectivity()) {
        let size = ImageSize::new(w as u32, h as u32);
        let c = Components::of_values(size, &v, conn).unwrap();
        let want = flood(w, h, conn, &|_| true, &|i, j| v[i] == v[j]);
        prop_assert_eq!(c.labels(), &want[..]);
        prop_assert_eq!(c.areas()[0], 0);
        check_stats(&c)?;
    }

    #[test]
    fn mask_components_are_in_image_coordinates((w, h, v) in grid(2), conn in connectivity(), dx in 0u32..9, dy in 0u32..9) {
        // The grid placed at (dx, dy) in a larger image.
        let size = ImageSize::new(w as u32 + dx + 3, h as u32 + dy + 2);
        let mask = Mask::from_fn(size, |x, y| {
            x >= dx && y >= dy && ((x - dx) as usize) < w && ((y - dy) as usize) < h
                && v[(y - dy) as usize * w + (x - dx) as usize] != 0
        });
        let c = Components::of_mask(&mask, conn).unwrap();
        let whole = Components::of_binary(size, &mask.to_bytes(), conn).unwrap();
        prop_assert_eq!(c.count(), whole.count());
        prop_assert_eq!(c.masks().unwrap(), whole.masks().unwrap());
        let b = mask.bbox();
        prop_assert_eq!(c.size(), ImageSize::new(b.width, b.height));
    }
}

#[test]
fn label_maps_split_where_a_value_is_disconnected() {
    // Value 1 forms a ring around value 2, value 3 touches the ring only at a corner.
    #[rustfmt::skip]
    let v: [u32; 20] = [
        1, 1, 1, 0, 0,
        1, 2, 1, 0, 0,
        1, 1, 1, 0, 0,
        0, 0, 0, 3, 3,
    ];
    let size = ImageSize::new(5, 4);
    let four = Components::of_values(size, &v, Connectivity::Four).unwrap();
    #[rustfmt::skip]
    assert_eq!(four.labels(), &[
        1, 1, 1, 2, 2,
        1, 3, 1, 2, 2,
        1, 1, 1, 2, 2,
        4, 4, 4, 5, 5,
    ]);
    // 8-connectivity joins the two zeros across the ring's corner.
    let eight = Components::of_values(size, &v, Connectivity::Eight).unwrap();
    assert_eq!(eight.count(), 4);
    assert_eq!(eight.labels()[15], eight.labels()[3]);
}
