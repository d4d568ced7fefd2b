//! Property tests for masks, RLE and the JSON reader.

use proptest::prelude::*;
use som_core::json::read_regions;
use som_core::polygon::{polygon_to_rle, polygons_to_rle};
use som_core::{BBox, ImageSize, Mask, Rle};

fn small_mask() -> impl Strategy<Value = Mask> {
    (1u32..24, 1u32..24).prop_flat_map(|(w, h)| {
        proptest::collection::vec(prop_oneof![3 => Just(0u8), 1 => Just(1u8)], (w * h) as usize)
            .prop_map(move |bytes| Mask::from_bytes(ImageSize::new(w, h), &bytes).unwrap())
    })
}

/// COCO's runs of a row-major byte mask, counted the plain way: pixel by
/// pixel in column-major order, zeros first.
fn runs(size: ImageSize, bytes: &[u8]) -> Vec<u32> {
    let (w, h) = (size.width as usize, size.height as usize);
    let mut counts = vec![0u32];
    let mut value = 0u8;
    for x in 0..w {
        for y in 0..h {
            let v = bytes[y * w + x].min(1);
            if v != value {
                counts.push(0);
                value = v;
            }
            *counts.last_mut().unwrap() += 1;
        }
    }
    if counts == [0] {
        counts.clear();
    }
    counts
}

/// A coordinate of a polygon: mostly in and around a small image, sometimes
/// far away (up to the ±1e8 the rasteriser accepts, and past it).
fn coordinate() -> impl Strategy<Value = f64> {
    prop_oneof![
        12 => -5.0..45.0f64,
        1 => prop_oneof![Just(1e5), Just(-1e5), Just(3e6), Just(1e8), Just(-1e8), Just(1.5e8), Just(1e300)],
        1 => prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY)],
    ]
}

proptest! {
    #[test]
    fn rle_round_trips(mask in small_mask()) {
        let rle = mask.to_rle();
        prop_assert_eq!(rle.counts(), &runs(mask.size(), &mask.to_bytes())[..]);
        prop_assert_eq!(rle.counts().iter().map(|&c| c as u64).sum::<u64>(), mask.size().pixels());
        prop_assert_eq!(rle.area(), mask.area());
        prop_assert_eq!(rle.bbox(), mask.bbox());
        let s = rle.to_compressed();
        let back = Rle::from_compressed(mask.size(), &s).unwrap();
        prop_assert_eq!(&back, &rle);
        prop_assert_eq!(back.to_mask(), mask);
    }

    #[test]
    fn bbox_is_tight_and_area_counts_pixels(mask in small_mask()) {
        let bytes = mask.to_bytes();
        prop_assert_eq!(bytes.iter().filter(|&&b| b != 0).count() as u64, mask.area());
        let w = mask.size().width as usize;
        for (i, &b) in bytes.iter().enumerate() {
            let p = som_core::Point::new((i % w) as u32, (i / w) as u32);
            prop_assert_eq!(b != 0, mask.contains(p));
            if b != 0 { prop_assert!(mask.bbox().contains(p)); }
        }
        prop_assert_eq!(Mask::from_array(mask.to_array().view()), mask);
    }

    #[test]
    fn compressed_parser_never_panics(s in "\\PC{0,40}", w in 0u32..20, h in 0u32..20) {
        let _ = Rle::from_compressed(ImageSize::new(w, h), &s);
    }

    #[test]
    fn compressed_parser_on_alphabet_never_panics(s in "[0-o]{0,60}", w in 0u32..50, h in 0u32..50) {
        if let Ok(rle) = Rle::from_compressed(ImageSize::new(w, h), &s) {
            prop_assert_eq!(rle.to_mask().area(), rle.area());
        }
    }

    #[test]
    fn regions_reader_never_panics(s in "\\PC{0,200}") {
        let _ = read_regions(&s);
    }

    #[test]
    fn box_geometry(a in (0u32..50, 0u32..50, 0u32..50, 0u32..50), b in (0u32..50, 0u32..50, 0u32..50, 0u32..50)) {
        let a = BBox::new(a.0, a.1, a.2, a.3);
        let b = BBox::new(b.0, b.1, b.2, b.3);
        let u = a.union(&b);
        if !a.is_empty() { prop_assert!(u.contains_box(&a)); }
        if !b.is_empty() { prop_assert!(u.contains_box(&b)); }
        match a.intersection(&b) {
            Some(i) => { prop_assert!(a.contains_box(&i) && b.contains_box(&i)); prop_assert!(!i.is_empty()); }
            None => prop_assert!(!a.intersects(&b)),
        }
        prop_assert_eq!(a.intersects(&b), b.intersects(&a));
    }

    /// Any coordinates, any size: a mask of the image's size or an error, never
    /// a panic, and never a walk past the outline limit.
    #[test]
    fn polygon_rasteriser_never_panics(pts in proptest::collection::vec(coordinate(), 0..20), w in 0u32..40, h in 0u32..40) {
        let size = ImageSize::new(w, h);
        if let Ok(rle) = polygon_to_rle(&pts, size) {
            prop_assert_eq!(rle.size(), size);
            prop_assert_eq!(rle.counts().iter().map(|&c| u64::from(c)).sum::<u64>(), size.pixels());
            prop_assert!(rle.counts().iter().skip(1).all(|&c| c > 0), "{:?}", rle.counts());
            prop_assert!(pts.iter().all(|v| v.abs() <= 1e8));
        }
    }

    /// Several polygons are the union of each: the runs merged without an
    /// image buffer hold the pixels of the masks OR-ed together.
    #[test]
    fn polygons_merge_into_their_union(
        polys in proptest::collection::vec(proptest::collection::vec(-5.0..45.0f64, 6..16), 1..4),
        w in 1u32..40, h in 1u32..40,
    ) {
        let polys: Vec<Vec<f64>> = polys.into_iter().map(|mut p| { p.truncate(p.len() / 2 * 2); p }).collect();
        let size = ImageSize::new(w, h);
        let merged = polygons_to_rle(&polys, size).unwrap();
        let mut or = vec![0u8; size.pixels() as usize];
        for p in &polys {
            for (o, b) in or.iter_mut().zip(polygon_to_rle(p, size).unwrap().to_mask().to_bytes()) {
                *o |= b;
            }
        }
        prop_assert_eq!(merged.counts(), &runs(size, &or)[..]);
    }

    /// `Rle::union` on any two masks: the OR of their pixels, in the canonical
    /// runs (`Mask::to_rle` of the OR), and symmetric.
    #[test]
    fn rle_union_is_the_or_of_the_pixels(a in small_mask(), bits in proptest::collection::vec(any::<bool>(), 576)) {
        let size = a.size();
        let b = Mask::from_fn(size, |x, y| bits[(y * size.width + x) as usize]);
        let u = a.to_rle().union(&b.to_rle()).unwrap();
        let or: Vec<u8> = a.to_bytes().iter().zip(b.to_bytes()).map(|(p, q)| p | q).collect();
        prop_assert_eq!(u.counts(), &runs(size, &or)[..]);
        prop_assert_eq!(&u, &b.to_rle().union(&a.to_rle()).unwrap());
        prop_assert!(a.to_rle().union(&Mask::empty(ImageSize::new(size.width + 1, size.height)).to_rle()).is_err());
    }
}

// Edge cases the properties rarely reach.

/// COCO counts are 32-bit: an image of exactly `u32::MAX` pixels is the
/// largest an RLE can describe (65537 x 65535; nothing is decoded here).
#[test]
fn rle_addresses_at_most_u32_max_pixels() {
    let largest = ImageSize::new(65_537, 65_535);
    assert_eq!(largest.pixels(), u64::from(u32::MAX));
    let rle = Rle::from_counts(largest, vec![u32::MAX]).unwrap();
    assert_eq!((rle.area(), rle.bbox()), (0, BBox::default()));
    let msg = Rle::from_counts(ImageSize::new(65_537, 65_536), vec![u32::MAX, 65_537])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("more pixels than COCO RLE can address"), "{msg}");
    assert!(Rle::from_compressed(ImageSize::new(65_536, 65_536), "0").is_err());
}

/// A compressed count longer than 7 characters (35 bits) is refused, however
/// long the run of continuation characters.
#[test]
fn compressed_counts_longer_than_seven_characters_are_refused() {
    for n in [7, 8, 14, 40] {
        let s = format!("{}0", "o".repeat(n));
        let msg = Rle::from_compressed(ImageSize::new(4, 4), &s)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("too long"), "{n}: {msg}");
    }
    let msg = Rle::from_compressed(ImageSize::new(4, 4), "o")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("end in the middle of a value at byte 1"), "{msg}");
}

/// `union` writes canonical runs even when its inputs have empty runs of ones.
#[test]
fn union_drops_empty_runs() {
    let size = ImageSize::new(2, 3);
    let a = Rle::from_counts(size, vec![1, 0, 2, 0, 3]).unwrap();
    let b = Rle::from_counts(size, vec![3, 2, 1]).unwrap();
    assert_eq!(a.union(&b).unwrap().counts(), &[3, 2, 1]);
    assert_eq!(a.union(&a).unwrap().counts(), &[6]);
    assert_eq!(b.union(&a).unwrap().counts(), &[3, 2, 1]);
}

/// The outline limit is exact: a polygon that walks `MAX_OUTLINE_POINTS`
/// points is rasterised, one that walks two more is not.
#[test]
fn polygon_outline_limit_is_exact() {
    use som_core::polygon::MAX_OUTLINE_POINTS;
    // (0, 0), (a / 5, 0), (0, 1) at 5x: edges of a + 1, a + 1 and 6 points.
    let a = (MAX_OUTLINE_POINTS - 8) / 2;
    let triangle = |a: u64| [0.0, 0.0, a as f64 / 5.0, 0.0, 0.0, 1.0];
    let rle = polygon_to_rle(&triangle(a), ImageSize::new(3, 2)).unwrap();
    assert_eq!(rle.area(), 3);
    let msg = polygon_to_rle(&triangle(a + 1), ImageSize::new(3, 2))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&format!("the outline walks {} points", MAX_OUTLINE_POINTS + 2)),
        "{msg}"
    );
}

/// Coordinates up to ±1e8 are numbers like any other (a small polygon that
/// far out is an empty mask); past that they are refused.
#[test]
fn polygon_coordinates_up_to_1e8() {
    let size = ImageSize::new(4, 4);
    for c in [1e8_f64, -1e8] {
        let d = c - 2.0 * c.signum();
        let rle = polygon_to_rle(&[c, c, d, c, c, d], size).unwrap();
        assert_eq!(rle.counts(), &[16]);
    }
    for c in [1.5e8, -1.5e8, f64::NAN, f64::INFINITY] {
        let msg = polygon_to_rle(&[c, 0.0, 1.0, 0.0, 1.0, 1.0], size)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("is not a usable number"), "{c}: {msg}");
    }
    let msg = polygon_to_rle(&[0.0, 0.0, 1.0, 0.0, 1.0], size)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("5 coordinates is an odd number"), "{msg}");
    let msg = polygon_to_rle(&[0.0, 0.0, 1.0, 0.0], size)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("at least 3 points, got 2"), "{msg}");
    assert!(polygons_to_rle(&[], size)
        .unwrap_err()
        .to_string()
        .contains("empty list"));
}
