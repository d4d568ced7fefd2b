//! Property tests for masks, RLE and the JSON reader.

use proptest::prelude::*;
use som_core::json::read_regions;
use som_core::{BBox, ImageSize, Mask, Rle};

fn small_mask() -> impl Strategy<Value = Mask> {
    (1u32..24, 1u32..24).prop_flat_map(|(w, h)| {
        proptest::collection::vec(prop_oneof![3 => Just(0u8), 1 => Just(1u8)], (w * h) as usize)
            .prop_map(move |bytes| Mask::from_bytes(ImageSize::new(w, h), &bytes).unwrap())
    })
}

proptest! {
    #[test]
    fn rle_round_trips(mask in small_mask()) {
        let rle = mask.to_rle();
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

    #[test]
    fn polygon_rasteriser_never_panics(pts in proptest::collection::vec(-1e3f64..1e3, 0..20), w in 0u32..40, h in 0u32..40) {
        let _ = som_core::polygon::polygon_to_rle(&pts, ImageSize::new(w, h));
    }
}
