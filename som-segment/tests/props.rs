//! Property tests: the label-map and boxes parsers never panic and either
//! fail cleanly or return valid segmentations; the segmenters always return
//! a partition of the image within their bounds.

use image::{DynamicImage, GrayImage, ImageBuffer, Luma, Rgb, RgbImage};
use proptest::prelude::*;
use som_core::{ImageSize, Segmenter};
use som_segment::{
    adjusted_rand_index, decode_label_png, felzenszwalb, parse_boxes, regions_from_values, BoxFormat,
    BoxOptions, Classic, ClassicParams, FelzenszwalbParams, LabelMapOptions,
};

fn png_bytes(img: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("encode png");
    out
}

/// Every pixel lies in exactly one region.
fn assert_partition(seg: &som_core::Segmentation) {
    let mut cover = vec![0u32; seg.size().pixels() as usize];
    for r in seg.regions() {
        for (i, &v) in r.mask.as_ref().expect("mask").to_bytes().iter().enumerate() {
            cover[i] += v as u32;
        }
    }
    assert!(cover.iter().all(|&c| c == 1));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// 16-bit label maps: one region per distinct value, areas add up, ids are the values.
    #[test]
    fn label_maps_read_back(w in 1u32..24, h in 1u32..24, seed in any::<u64>(), ids in 1u16..2000, bg in proptest::option::of(0u32..3)) {
        let img: ImageBuffer<Luma<u16>, Vec<u16>> = ImageBuffer::from_fn(w, h, |x, y| {
            let v = (seed ^ (x as u64 * 0x9E37_79B9) ^ (y as u64 * 0x85EB_CA6B)).wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
            Luma([(v % ids as u64) as u16])
        });
        let bytes = png_bytes(&DynamicImage::ImageLuma16(img.clone()));
        let (size, values) = decode_label_png(&bytes, "map").expect("decodes");
        prop_assert_eq!(size, ImageSize::new(w, h));
        prop_assert_eq!(values.iter().map(|&v| v as u16).collect::<Vec<_>>(), img.as_raw().clone());
        let opts = LabelMapOptions { background: bg, ..LabelMapOptions::default() };
        let seg = regions_from_values(size, &values, &opts, "map").expect("valid map");
        let mut distinct = values.clone();
        distinct.sort_unstable();
        distinct.dedup();
        distinct.retain(|&v| Some(v) != bg);
        prop_assert_eq!(seg.regions().iter().map(|r| r.id as u32).collect::<Vec<_>>(), distinct);
        let background = values.iter().filter(|&&v| Some(v) == bg).count() as u64;
        prop_assert_eq!(seg.regions().iter().map(|r| r.area()).sum::<u64>() + background, size.pixels());
        for r in seg.regions() {
            let mask = r.mask.as_ref().expect("mask");
            for (i, &v) in values.iter().enumerate() {
                let p = som_core::Point::new(i as u32 % w, i as u32 / w);
                prop_assert_eq!(mask.contains(p), v as u64 == r.id);
            }
        }
    }

    /// Arbitrary bytes as a label map: an error or a map, never a panic.
    #[test]
    fn label_map_decoder_survives_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..200), png_prefix in any::<bool>()) {
        let mut data = Vec::new();
        if png_prefix {
            data.extend_from_slice(b"\x89PNG\r\n\x1a\n");
        }
        data.extend_from_slice(&bytes);
        let _ = decode_label_png(&data, "garbage");
    }

    /// Truncated real PNGs are errors (or, when only trailing chunks are
    /// cut, the same pixels), never panics.
    #[test]
    fn truncated_label_maps_fail_cleanly(cut in 0usize..400) {
        let img = GrayImage::from_fn(17, 9, |x, y| Luma([(x * 3 + y) as u8]));
        let want: Vec<u32> = img.as_raw().iter().map(|&v| v as u32).collect();
        let bytes = png_bytes(&DynamicImage::ImageLuma8(img));
        let cut = cut.min(bytes.len().saturating_sub(1));
        if let Ok((_, values)) = decode_label_png(&bytes[..cut], "cut") {
            prop_assert!(cut > bytes.len() - 16, "decoded with {} of {} bytes", cut, bytes.len());
            prop_assert_eq!(values, want);
        }
    }

    /// Boxes: valid ones come back inside the image; invalid ones are errors naming the box.
    #[test]
    fn boxes_are_clipped_or_rejected(
        boxes in proptest::collection::vec((-50.0f64..150.0, -50.0f64..150.0, -20.0f64..120.0, -20.0f64..120.0), 0..12),
        xywh in any::<bool>(),
        clip in any::<bool>(),
    ) {
        let size = ImageSize::new(100, 60);
        let doc = serde_json::to_string(&boxes.iter().map(|b| [b.0, b.1, b.2, b.3]).collect::<Vec<_>>()).expect("json");
        let options = BoxOptions { format: if xywh { BoxFormat::Xywh } else { BoxFormat::Xyxy }, clip };
        match parse_boxes(&doc, size, &options) {
            Ok(seg) => {
                prop_assert_eq!(seg.regions().len(), boxes.len());
                for (r, b) in seg.regions().iter().zip(&boxes) {
                    prop_assert!(size.full_box().contains_box(&r.bbox));
                    prop_assert!(r.bbox.area() > 0);
                    prop_assert!(r.mask.is_none());
                    let (x0, y0, x1, y1) = if xywh { (b.0, b.1, b.0 + b.2, b.1 + b.3) } else { (b.0, b.1, b.2, b.3) };
                    // The pixel box covers the clipped float box.
                    prop_assert!(r.bbox.x as f64 <= x0.max(0.0) && (r.bbox.x + r.bbox.width) as f64 >= x1.min(100.0));
                    prop_assert!(r.bbox.y as f64 <= y0.max(0.0) && (r.bbox.y + r.bbox.height) as f64 >= y1.min(60.0));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.contains("boxes["), "{}", msg);
            }
        }
    }

    /// Arbitrary JSON-ish text never panics the boxes parser.
    #[test]
    fn boxes_parser_survives_garbage(text in "[\\[\\]{}\",:0-9a-z.eE+-]{0,60}") {
        let _ = parse_boxes(&text, ImageSize::new(10, 10), &BoxOptions::default());
    }

    /// Felzenszwalb: a partition with labels numbered by first appearance,
    /// every segment at least min_size (unless the image is smaller).
    #[test]
    fn felzenszwalb_is_a_partition(w in 1u32..40, h in 1u32..40, seed in any::<u64>(), scale in 0.0f64..500.0, sigma in 0.0f64..2.0, min_size in 0usize..30, gray in any::<bool>()) {
        let f = |x: u32, y: u32, c: u64| ((seed ^ (c * 0x51ED)).wrapping_add(x as u64 * 0x9E37 + y as u64 * 0x85EB).wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8;
        let img = if gray {
            DynamicImage::ImageLuma8(GrayImage::from_fn(w, h, |x, y| Luma([f(x, y, 0)])))
        } else {
            DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| Rgb([f(x, y, 1), f(x, y, 2), f(x / 4, y / 4, 3)])))
        };
        let map = felzenszwalb(&img, &FelzenszwalbParams { scale, sigma, min_size }).expect("segments");
        prop_assert_eq!(map.labels().len() as u32, w * h);
        let mut next = 0;
        for &l in map.labels() {
            prop_assert!(l <= next);
            if l == next { next += 1; }
        }
        prop_assert_eq!(next, map.count());
        let areas = map.areas();
        if map.count() > 1 {
            prop_assert!(areas.iter().all(|&a| a as usize >= min_size.min((w * h) as usize)));
        }
        // A partition is its own best match.
        prop_assert_eq!(adjusted_rand_index(map.labels(), map.labels()).expect("same length"), 1.0);
    }

    /// Classic: a partition into at most max_regions regions (and at least one).
    #[test]
    fn classic_is_a_bounded_partition(w in 2u32..48, h in 2u32..48, seed in any::<u64>(), max_regions in 1usize..20, min_area in 0.0f64..0.05) {
        let f = |x: u32, y: u32, c: u64| ((seed ^ (c * 0x51ED)).wrapping_add((x / 5) as u64 * 0x9E37 + (y / 7) as u64 * 0x85EB).wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8;
        let img = DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| Rgb([f(x, y, 1), f(x, y, 2), f(x, y, 3)])));
        let params = ClassicParams { max_regions, min_regions: max_regions.min(3), min_area, ..ClassicParams::default() };
        let seg = Classic::new(params).segment(&img).expect("segments");
        prop_assert!(!seg.is_empty() && seg.len() <= max_regions, "{} regions", seg.len());
        assert_partition(&seg);
    }
}
