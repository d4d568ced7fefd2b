//! Property tests for the renderer over arbitrary small scenes: it never
//! panics, keeps the image size, touches only the pixels of the layers it
//! draws, and tints each pixel exactly once.

use image::{Rgb, RgbImage};
use proptest::prelude::*;
use som_core::{BBox, ImageSize, Mark, MarkRenderer, Mask, Point, Region, Segmentation};
use som_marks::render::{alpha_256, blend, mark_colour, Draw, RenderConfig, Renderer};

/// A region shape, drawn from a few primitives so masks overlap, touch the
/// border, have holes and thin parts.
#[derive(Debug, Clone)]
enum Shape {
    Rect(u32, u32, u32, u32),
    Ellipse(u32, u32, u32, u32),
    Bits(u64),
    BoxOnly(u32, u32, u32, u32),
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        (0..40u32, 0..40u32, 1..40u32, 1..40u32).prop_map(|(x, y, w, h)| Shape::Rect(x, y, w, h)),
        (0..40u32, 0..40u32, 1..20u32, 1..20u32).prop_map(|(x, y, a, b)| Shape::Ellipse(x, y, a, b)),
        any::<u64>().prop_map(Shape::Bits),
        (0..40u32, 0..40u32, 1..40u32, 1..40u32).prop_map(|(x, y, w, h)| Shape::BoxOnly(x, y, w, h)),
    ]
}

fn region(id: u64, size: ImageSize, s: &Shape) -> Region {
    match *s {
        Shape::Rect(x, y, w, h) => Region::from_mask(id, Mask::from_box(size, BBox::new(x, y, w, h))),
        Shape::Ellipse(cx, cy, a, b) => Region::from_mask(
            id,
            Mask::from_fn(size, |x, y| {
                let dx = (x as f32 - cx as f32) / a as f32;
                let dy = (y as f32 - cy as f32) / b as f32;
                dx * dx + dy * dy <= 1.0
            }),
        ),
        Shape::Bits(seed) => Region::from_mask(
            id,
            Mask::from_fn(size, |x, y| {
                let h = ((u64::from(x) * 0x9E37_79B9) ^ (u64::from(y) * 0x85EB_CA6B) ^ seed)
                    .wrapping_mul(0x2545_F491_4F6C_DD1D);
                (h >> 61) < 3
            }),
        ),
        Shape::BoxOnly(x, y, w, h) => Region::from_box(id, BBox::new(x, y, w, h).clip_to(size)),
    }
}

#[derive(Debug, Clone)]
struct Scene {
    image: RgbImage,
    seg: Segmentation,
    marks: Vec<Mark>,
}

fn scene() -> impl Strategy<Value = Scene> {
    (
        1..48u32,
        1..40u32,
        any::<u64>(),
        prop::collection::vec(shape(), 0..6),
        prop::collection::vec(
            (0..8usize, 0..60u32, 0..50u32, 0..30u32, 0..20u32, "[0-9a-z]{0,3}"),
            0..8,
        ),
    )
        .prop_map(|(w, h, seed, shapes, mk)| {
            let size = ImageSize::new(w, h);
            let image = RgbImage::from_fn(w, h, |x, y| {
                let v = (u64::from(x) * 31 + u64::from(y) * 17 + seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                Rgb([(v >> 8) as u8, (v >> 24) as u8, (v >> 40) as u8])
            });
            let regions: Vec<Region> = shapes
                .iter()
                .enumerate()
                .map(|(i, s)| region(i as u64 + 1, size, s))
                .collect();
            let n = regions.len();
            let seg = Segmentation::new(size, regions).expect("generated regions are valid");
            let marks = if n == 0 {
                Vec::new()
            } else {
                mk.into_iter()
                    .enumerate()
                    .map(|(i, (r, x, y, lw, lh, text))| {
                        Mark::new(
                            i as u32 + 1,
                            text,
                            Point::new(x, y),
                            r % n,
                            BBox::new(x, y, lw, lh),
                        )
                    })
                    .collect()
            };
            Scene { image, seg, marks }
        })
}

fn draw() -> impl Strategy<Value = Draw> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(mark, mask, contour, bbox)| {
        Draw {
            mark,
            mask,
            contour,
            bbox,
        }
    })
}

/// The colour a region is drawn in: its smallest mark id's palette colour.
fn region_colour(scene: &Scene, region: usize) -> Option<[u8; 3]> {
    scene
        .marks
        .iter()
        .filter(|m| m.region == region)
        .map(|m| m.id)
        .min()
        .map(mark_colour)
}

/// `true` when (x, y) is within Chebyshev distance `r` of both an inside and an
/// outside pixel of `mask` (outside the image counts as outside).
fn near_boundary(mask: &Mask, x: u32, y: u32, r: i64) -> bool {
    let (mut inside, mut outside) = (false, false);
    let size = mask.size();
    for dy in -r..=r {
        for dx in -r..=r {
            let (px, py) = (i64::from(x) + dx, i64::from(y) + dy);
            let inb = px >= 0 && py >= 0 && px < i64::from(size.width) && py < i64::from(size.height);
            if inb && mask.contains(Point::new(px as u32, py as u32)) {
                inside = true;
            } else {
                outside = true;
            }
        }
    }
    inside && outside
}

proptest! {
    // 256 cases by default; PROPTEST_CASES=5000 for a longer search
    #[test]
    fn never_panics_and_keeps_size(s in scene(), d in draw(), alpha in -0.5f32..1.5, font in prop::option::of(1.0f32..40.0)) {
        let r = Renderer::new(RenderConfig { draw: d, alpha, font_px: font, line_width: None });
        let out = r.render(&s.image, &s.seg, &s.marks).unwrap();
        prop_assert_eq!(out.dimensions(), s.image.dimensions());
        // deterministic
        prop_assert_eq!(out, r.render(&s.image, &s.seg, &s.marks).unwrap());
    }

    #[test]
    fn only_drawn_layers_change_pixels(s in scene(), d in draw(), lw in prop::option::of(0.3f32..6.0)) {
        let r = Renderer::new(RenderConfig { draw: d, line_width: lw, ..RenderConfig::default() });
        let out = r.render(&s.image, &s.seg, &s.marks).unwrap();
        let size = s.seg.size();
        let lw = r.config().line_width_for(size);
        let reach = (lw / 2.0).ceil() as i64 + 1;
        let t = lw.round().max(1.0) as u32;
        let drawn: Vec<usize> = (0..s.seg.regions().len()).filter(|&i| region_colour(&s, i).is_some()).collect();
        for (x, y, p) in out.enumerate_pixels() {
            if p == s.image.get_pixel(x, y) {
                continue;
            }
            let pt = Point::new(x, y);
            let allowed = drawn.iter().any(|&i| {
                let reg = &s.seg.regions()[i];
                let in_mask = reg.mask.as_ref().is_some_and(|m| m.contains(pt));
                let near = reg.mask.as_ref().is_some_and(|m| near_boundary(m, x, y, reach));
                let b = reg.bbox.clip_to(size);
                let on_box = b.contains(pt)
                    && (x < b.x + t || y < b.y + t || u64::from(x) + u64::from(t) >= b.right() || u64::from(y) + u64::from(t) >= b.bottom());
                (d.mask && in_mask) || (d.contour && near) || ((d.bbox || ((d.mask || d.contour) && reg.mask.is_none())) && on_box)
            }) || (d.mark && s.marks.iter().any(|m| {
                // labels draw in their box; a mark without one gets a box around its anchor
                m.label_box.contains(pt) || (m.label_box.is_empty() && m.anchor.x.abs_diff(x) < 80 && m.anchor.y.abs_diff(y) < 80)
            }));
            prop_assert!(allowed, "pixel ({}, {}) changed outside every drawn layer ({})", x, y, d);
        }
    }

    #[test]
    fn tint_is_applied_once_per_pixel(s in scene(), alpha in 0.0f32..=1.0) {
        let r = Renderer::new(RenderConfig { draw: "mask".parse().unwrap(), alpha, ..RenderConfig::default() });
        let out = r.render(&s.image, &s.seg, &s.marks).unwrap();
        let a = alpha_256(alpha);
        let t = r.config().line_width_for(s.seg.size()).round().max(1.0) as u32;
        for (x, y, p) in out.enumerate_pixels() {
            let pt = Point::new(x, y);
            // box-only regions have no tint; their outline is drawn instead (checked elsewhere)
            let on_box_only = (0..s.seg.regions().len()).any(|i| {
                let reg = &s.seg.regions()[i];
                let b = reg.bbox;
                reg.mask.is_none() && region_colour(&s, i).is_some() && b.contains(pt)
                    && (x < b.x + t || y < b.y + t || u64::from(x) + u64::from(t) >= b.right() || u64::from(y) + u64::from(t) >= b.bottom())
            });
            if on_box_only {
                continue;
            }
            // the owner: the smallest drawn region with a mask covering the pixel; ties -> larger mark id
            let owner = (0..s.seg.regions().len())
                .filter_map(|i| {
                    let reg = &s.seg.regions()[i];
                    let c = s.marks.iter().filter(|m| m.region == i).map(|m| m.id).min()?;
                    reg.mask.as_ref().filter(|m| m.contains(pt)).map(|m| (m.area(), std::cmp::Reverse(c)))
                })
                .min()
                .map(|(_, std::cmp::Reverse(c))| c);
            let orig = s.image.get_pixel(x, y).0;
            let expected = match owner {
                Some(id) => blend(orig, mark_colour(id), a),
                None => orig,
            };
            prop_assert_eq!(p.0, expected, "pixel ({}, {}) owner {:?}", x, y, owner);
        }
    }
}

#[test]
fn two_overlapping_masks_give_the_single_tint_formula() {
    let size = ImageSize::new(20, 10);
    let big = Region::from_mask(1, Mask::from_box(size, BBox::new(0, 0, 15, 10)));
    let small = Region::from_mask(2, Mask::from_box(size, BBox::new(5, 2, 10, 6)));
    let seg = Segmentation::new(size, vec![big, small]).unwrap();
    let marks = vec![
        Mark::new(1, "1", Point::new(1, 1), 0, BBox::default()),
        Mark::new(2, "2", Point::new(7, 4), 1, BBox::default()),
    ];
    let image = RgbImage::from_pixel(20, 10, Rgb([10, 200, 90]));
    let r = Renderer::new(RenderConfig {
        draw: "mask".parse().unwrap(),
        ..RenderConfig::default()
    });
    let out = r.render(&image, &seg, &marks).unwrap();
    let once = |id| blend([10, 200, 90], mark_colour(id), alpha_256(0.4));
    assert_eq!(
        out.get_pixel(8, 4).0,
        once(2),
        "overlap: only the smaller region's tint"
    );
    assert_eq!(out.get_pixel(1, 1).0, once(1));
    assert_eq!(out.get_pixel(17, 4).0, [10, 200, 90]);
    // and it is not the stacked result
    assert_ne!(
        out.get_pixel(8, 4).0,
        blend(once(1), mark_colour(2), alpha_256(0.4))
    );
}

#[test]
fn mismatched_sizes_are_errors_not_panics() {
    let size = ImageSize::new(8, 8);
    let r = Renderer::default();
    let e = r
        .render(&RgbImage::new(9, 8), &Segmentation::empty(size), &[])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "mask size mismatch: expected 9x8, found a segmentation of a 8x8 image"
    );
}
