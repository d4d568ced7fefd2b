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
