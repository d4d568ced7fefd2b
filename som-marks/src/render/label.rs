//! Labels: a filled rounded box in the mark's colour with the mark text
//! centred on it, black or white by the box colour's luminance.

use som_core::BBox;

use super::font::{draw_text, layout, size_key, GlyphCache, TextLayout};
use super::palette::{blend, text_colour};

/// Padding around the text ink, as a fraction of the em size (at least 1 px).
const PAD_EM: f32 = 0.25;

/// Corner radius of the label box, as a fraction of its shorter side.
const RADIUS: f32 = 0.3;

/// Padding in pixels for an em size.
pub(crate) fn padding(em_px: f32) -> u32 {
    (em_px * PAD_EM).round().max(1.0) as u32
}

/// The label box size of `text` at em size `em_px`: the ink box plus padding.
pub(crate) fn label_dims(text: &str, em_px: f32, cache: &mut GlyphCache) -> (u32, u32) {
    let t = layout(text, em_px, cache);
    let p = padding(em_px);
    (t.width + 2 * p, t.height + 2 * p)
}

/// The largest text that fits `bbox` (its padded box within `bbox`), no larger
/// than `max_em`, on the 1/8 px size grid; never below 1 px.
///
/// For a box measured by [`label_dims`] at some size, this gives at least that
/// size (sizes whose rounded boxes tie with it may come out a little larger).
pub(crate) fn fit(text: &str, bbox: BBox, max_em: f32, cache: &mut GlyphCache) -> TextLayout {
    let fits = |key: u32, cache: &mut GlyphCache| {
        let (w, h) = label_dims(text, key as f32 / 8.0, cache);
        w <= bbox.width && h <= bbox.height
    };
    let floor = size_key(1.0);
    let top = size_key(max_em).max(floor);
    // box sizes round, so they are not strictly monotone in the font size:
    // start a little above the proportional estimate and walk down the grid
    let (w0, h0) = label_dims(text, top as f32 / 8.0, cache);
    let ratio = (bbox.width as f32 / w0.max(1) as f32).min(bbox.height as f32 / h0.max(1) as f32);
    let mut key = if ratio >= 1.0 {
        top
    } else {
        size_key(top as f32 / 8.0 * ratio * 1.15 + 1.0).min(top)
    };
    while key > floor && !fits(key, cache) {
        key -= 1;
    }
    layout(text, key as f32 / 8.0, cache)
}

/// Draws one label into the RGB canvas `buf` of `width` × `height`: the box
/// `bbox` filled in `colour` with anti-aliased rounded corners, and `text`
/// fitted into it (at most `max_em`) and centred. Clips to the box (text that
/// cannot fit even at 1 px is cut) and to the canvas.
#[allow(clippy::too_many_arguments)]
pub(crate) fn draw_label(
    buf: &mut [u8],
    width: u32,
    height: u32,
    bbox: BBox,
    text: &str,
    max_em: f32,
    colour: [u8; 3],
    cache: &mut GlyphCache,
) {
    if bbox.is_empty() {
        return;
    }
    fill_rounded(buf, width, height, bbox, colour);
    let t = fit(text, bbox, max_em, cache);
    let x = i64::from(bbox.x) + (i64::from(bbox.width) - i64::from(t.width)) / 2;
    let y = i64::from(bbox.y) + (i64::from(bbox.height) - i64::from(t.height)) / 2;
    draw_text(buf, width, height, bbox, &t, x, y, text_colour(colour), cache);
}

/// Fills `bbox` with `colour`, rounding its corners with anti-aliased
/// quarter circles of radius `RADIUS` × the shorter side.
fn fill_rounded(buf: &mut [u8], width: u32, height: u32, bbox: BBox, colour: [u8; 3]) {
    let Some(clip) = bbox.intersection(&BBox::new(0, 0, width, height)) else {
        return;
    };
    let (bw, bh) = (bbox.width as f32, bbox.height as f32);
    let r = (bw.min(bh) * RADIUS).max(0.0);
    let (cx, cy) = (bbox.x as f32 + bw / 2.0, bbox.y as f32 + bh / 2.0);
    let (hx, hy) = (bw / 2.0 - r, bh / 2.0 - r);
    for y in clip.y..clip.bottom() as u32 {
        let row = &mut buf[(y as usize * width as usize) * 3..][..width as usize * 3];
        let qy = (y as f32 + 0.5 - cy).abs() - hy;
        for x in clip.x..clip.right() as u32 {
            let qx = (x as f32 + 0.5 - cx).abs() - hx;
            let i = x as usize * 3;
            if qx <= 0.0 || qy <= 0.0 {
                row[i..i + 3].copy_from_slice(&colour);
                continue;
            }
            // signed distance to the corner arc
            let d = (qx * qx + qy * qy).sqrt() - r;
            let cov = (0.5 - d).clamp(0.0, 1.0);
            let a = (cov * 256.0).round() as u32;
            if a > 0 {
                let out = blend([row[i], row[i + 1], row[i + 2]], colour, a);
                row[i..i + 3].copy_from_slice(&out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_the_size_when_the_box_holds_it() {
        let mut c = GlyphCache::default();
        let (w, h) = label_dims("12", 16.0, &mut c);
        let t = fit("12", BBox::new(0, 0, w, h), 16.0, &mut c);
        assert_eq!(t, layout("12", 16.0, &mut c));
    }

    #[test]
    fn fit_shrinks_into_a_smaller_box() {
        let mut c = GlyphCache::default();
        let (w, h) = label_dims("123", 20.0, &mut c);
        let b = BBox::new(0, 0, w * 2 / 3, h * 2 / 3);
        let t = fit("123", b, 20.0, &mut c);
        // The padded text fits the box at the size chosen...
        let em = t.key as f32 / 8.0;
        let (fw, fh) = label_dims("123", em, &mut c);
        assert!(fw <= b.width && fh <= b.height, "{fw}x{fh} in {b:?}");
        assert!(t.width < w && t.height < h);
        // ...and is the largest on the 1/8 px grid that does.
        let (nw, nh) = label_dims("123", (t.key + 1) as f32 / 8.0, &mut c);
        assert!(
            nw > b.width || nh > b.height,
            "{} px would fit too",
            (t.key + 1) as f32 / 8.0
        );
    }

    #[test]
    fn fit_recovers_the_size_a_box_was_measured_at() {
        // an allocator measures at scale s; the renderer must draw about that size
        let mut c = GlyphCache::default();
        let base = 17.7;
        for text in ["1", "42", "199", "a", "zz", "aag"] {
            for s in [0.3f32, 0.5, 0.565, 0.7, 0.85, 1.0] {
                let em = base * s;
                let (w, h) = label_dims(text, em, &mut c);
                let t = fit(text, BBox::new(0, 0, w, h), base, &mut c);
                let p = padding(t.key as f32 / 8.0);
                assert!(t.width + 2 * p <= w && t.height + 2 * p <= h, "{text} at {s}");
                let got = t.key as f32 / 8.0;
                // at least the measured size (up to the 1/8 px grid); larger only where it still fits
                assert!(
                    got >= em - 0.125 && got <= size_key(base) as f32 / 8.0,
                    "{text} at {s}: {got} vs {em}"
                );
            }
        }
    }

    #[test]
    fn label_corners_are_rounded_and_centre_is_filled() {
        let (w, h) = (40u32, 30u32);
        let mut buf = vec![0u8; (w * h * 3) as usize];
        let mut c = GlyphCache::default();
        draw_label(
            &mut buf,
            w,
            h,
            BBox::new(5, 5, 30, 20),
            "8",
            14.0,
            [255, 255, 0],
            &mut c,
        );
        let px = |x: u32, y: u32| {
            let i = ((y * w + x) * 3) as usize;
            [buf[i], buf[i + 1], buf[i + 2]]
        };
        assert_eq!(px(5, 5), [0, 0, 0], "corner stays clear");
        assert_eq!(px(6, 15), [255, 255, 0], "left edge middle is filled");
        assert_eq!(px(4, 15), [0, 0, 0], "outside the box is untouched");
        // black text on yellow: some dark pixel near the middle
        let dark = (10..30)
            .flat_map(|x| (8..22).map(move |y| (x, y)))
            .any(|(x, y)| px(x, y)[0] < 64);
        assert!(dark);
    }

    #[test]
    fn labels_clip_at_the_image_border() {
        let (w, h) = (10u32, 10u32);
        let mut buf = vec![0u8; (w * h * 3) as usize];
        let mut c = GlyphCache::default();
        draw_label(
            &mut buf,
            w,
            h,
            BBox::new(6, 7, 30, 20),
            "42",
            14.0,
            [0, 0, 255],
            &mut c,
        );
        assert_eq!(&buf[((9 * w + 9) * 3) as usize..], &[0, 0, 255]);
    }
}
