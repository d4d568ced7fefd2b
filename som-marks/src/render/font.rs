//! The embedded label font: layout, measuring and a glyph bitmap cache.
//!
//! Labels are set in DejaVu Sans Bold (Bitstream Vera licence, shipped as
//! `assets/LICENSE-DejaVu`), compiled into the crate so rendering never depends
//! on system fonts. Glyphs are rasterised with `ab_glyph` at whole-pixel pen
//! positions, so one bitmap per (glyph, size) serves every label.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, GlyphId, PxScale, ScaleFont};
use som_core::BBox;

/// The embedded DejaVu Sans Bold TrueType file.
pub(crate) static FONT_DATA: &[u8] = include_bytes!("../../assets/DejaVuSans-Bold.ttf");

/// The embedded font, parsed once.
pub(crate) fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| match FontRef::try_from_slice(FONT_DATA) {
        Ok(f) => f,
        // The bytes are compiled in and checked by a unit test.
        Err(e) => panic!("embedded DejaVu Sans Bold does not parse: {e}"),
    })
}

/// Font sizes are quantised to 1/8 px so equal sizes share cached bitmaps.
const SIZE_STEPS: f32 = 8.0;

/// A font size key: the em size in 1/8 px.
pub(crate) fn size_key(em_px: f32) -> u32 {
    (em_px.clamp(1.0, 4096.0) * SIZE_STEPS).round() as u32
}

/// The em size a key stands for.
fn key_em(key: u32) -> f32 {
    key as f32 / SIZE_STEPS
}

/// `ab_glyph` scales by the font's full height (ascent − descent); convert an
/// em size in pixels to that.
fn px_scale(em_px: f32) -> PxScale {
    let f = font();
    let upem = f.units_per_em().unwrap_or(2048.0);
    PxScale::from(em_px * f.height_unscaled() / upem)
}

/// Cap height of the font as a fraction of the em (the height of digits and
/// capitals), read from the outline of `H`.
fn cap_height_em() -> f32 {
    static CAP: OnceLock<f32> = OnceLock::new();
    *CAP.get_or_init(|| {
        let f = font();
        let upem = f.units_per_em().unwrap_or(2048.0);
        f.outline(f.glyph_id('H'))
            .map(|o| o.bounds.min.y.abs().max(o.bounds.max.y.abs()) / upem)
            .unwrap_or(0.73)
    })
}

/// One rasterised glyph: coverage bytes of its pixel box, placed relative to
/// the pen position on the baseline.
#[derive(Debug, Clone, Default)]
pub(crate) struct GlyphBitmap {
    /// Left edge relative to the pen x.
    pub left: i32,
    /// Top edge relative to the baseline (negative = above).
    pub top: i32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Coverage, `0..=255`, row-major.
    pub coverage: Vec<u8>,
}

/// The pixel box of a glyph (`left`, `top`, `width`, `height`) without
/// rasterising it; identical to the box [`rasterise`] fills.
fn glyph_box(id: GlyphId, key: u32) -> (i32, i32, u32, u32) {
    let glyph = id.with_scale_and_position(px_scale(key_em(key)), point(0.0, 0.0));
    match font().outline_glyph(glyph) {
        Some(o) => {
            let b = o.px_bounds();
            (
                b.min.x as i32,
                b.min.y as i32,
                b.width().max(0.0) as u32,
                b.height().max(0.0) as u32,
            )
        }
        None => (0, 0, 0, 0),
    }
}

fn rasterise(id: GlyphId, key: u32) -> GlyphBitmap {
    let f = font();
    let glyph = id.with_scale_and_position(px_scale(key_em(key)), point(0.0, 0.0));
    let Some(outlined) = f.outline_glyph(glyph) else {
        return GlyphBitmap::default(); // blank glyphs (space) draw nothing
    };
    let b = outlined.px_bounds();
    let (w, h) = (b.width().max(0.0) as u32, b.height().max(0.0) as u32);
    let mut coverage = vec![0u8; (w * h) as usize];
    outlined.draw(|x, y, c| {
        if x < w && y < h {
            coverage[(y * w + x) as usize] = (c.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    });
    GlyphBitmap {
        left: b.min.x as i32,
        top: b.min.y as i32,
        width: w,
        height: h,
        coverage,
    }
}

/// Glyph boxes and rasterised glyphs by (glyph id, size key). Boxes are
/// enough to measure a label; bitmaps are made the first time a glyph is drawn.
#[derive(Debug, Default)]
pub(crate) struct GlyphCache {
    boxes: BTreeMap<(u16, u32), (i32, i32, u32, u32)>,
    glyphs: BTreeMap<(u16, u32), GlyphBitmap>,
}

/// Entries a cache keeps before it starts afresh (a long-running process
/// rendering many image sizes would otherwise grow it without bound).
const CACHE_LIMIT: usize = 4096;

impl GlyphCache {
    fn bounds(&mut self, id: GlyphId, key: u32) -> (i32, i32, u32, u32) {
        if self.boxes.len() >= CACHE_LIMIT && !self.boxes.contains_key(&(id.0, key)) {
            self.boxes.clear();
        }
        *self
            .boxes
            .entry((id.0, key))
            .or_insert_with(|| glyph_box(id, key))
    }

    fn get(&mut self, id: GlyphId, key: u32) -> &GlyphBitmap {
        if self.glyphs.len() >= CACHE_LIMIT && !self.glyphs.contains_key(&(id.0, key)) {
            self.glyphs.clear();
        }
        self.glyphs
            .entry((id.0, key))
            .or_insert_with(|| rasterise(id, key))
    }
}

/// A line of text laid out at one size: pen positions on a whole-pixel grid
/// and the box that holds its ink.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TextLayout {
    /// The size key the text was laid out at.
    pub key: u32,
    /// (glyph id, pen x) per glyph, pen x relative to the layout's left ink edge.
    pub glyphs: Vec<(GlyphId, i32)>,
    /// Ink box width (union of the glyph boxes and the cap height band).
    pub width: u32,
    /// Ink box height.
    pub height: u32,
    /// Baseline y relative to the top of the ink box.
    pub baseline: i32,
}

/// Lays out `text` at em size `em_px`; glyph boxes come from `cache`.
///
/// The ink box always covers the band of the digit `0` (cap height plus
/// overshoots), so labels of one size share a height whatever their
/// characters (descenders extend it).
pub(crate) fn layout(text: &str, em_px: f32, cache: &mut GlyphCache) -> TextLayout {
    let key = size_key(em_px);
    let f = font();
    let scaled = f.as_scaled(px_scale(key_em(key)));
    // the band of the digit 0 (cap height plus its overshoots), at least 1 px
    let cap = (cap_height_em() * key_em(key)).round() as i32;
    let (_, zt, _, zh) = cache.bounds(f.glyph_id('0'), key);
    let band_top = zt.min(-cap.max(1));
    let band_bottom = (zt + zh as i32).max(0);
    let (mut x0, mut y0, mut x1, mut y1) = (i32::MAX, band_top, i32::MIN, band_bottom);
    let mut caret = 0.0f32;
    let mut prev: Option<GlyphId> = None;
    let mut glyphs = Vec::with_capacity(text.len());
    for ch in text.chars() {
        let id = f.glyph_id(ch);
        if let Some(p) = prev {
            caret += scaled.kern(p, id);
        }
        let pen = caret.round() as i32;
        let (left, top, w, h) = cache.bounds(id, key);
        if w > 0 && h > 0 {
            x0 = x0.min(pen + left);
            x1 = x1.max(pen + left + w as i32);
            y0 = y0.min(top);
            y1 = y1.max(top + h as i32);
        }
        glyphs.push((id, pen));
        caret += scaled.h_advance(id);
        prev = Some(id);
    }
    if x0 > x1 {
        // no ink at all (empty or blank text): an em-wide box
        x0 = 0;
        x1 = key_em(key).round().max(1.0) as i32;
    }
    for g in &mut glyphs {
        g.1 -= x0;
    }
    TextLayout {
        key,
        glyphs,
        width: (x1 - x0) as u32,
        height: (y1 - y0) as u32,
        baseline: -y0,
    }
}

/// Draws a laid-out text with its ink box's top-left at (`x`, `y`), blending
/// `colour` by glyph coverage; clips to `clip` and to the `width` × `height`
/// canvas `buf` (RGB, row-major).
#[allow(clippy::too_many_arguments)]
pub(crate) fn draw_text(
    buf: &mut [u8],
    width: u32,
    height: u32,
    clip: BBox,
    text: &TextLayout,
    x: i64,
    y: i64,
    colour: [u8; 3],
    cache: &mut GlyphCache,
) {
    let Some(clip) = clip.intersection(&BBox::new(0, 0, width, height)) else {
        return;
    };
    let (cx0, cy0, cx1, cy1) = (
        i64::from(clip.x),
        i64::from(clip.y),
        clip.right() as i64,
        clip.bottom() as i64,
    );
    for &(id, pen) in &text.glyphs {
        let g = cache.get(id, text.key);
        let gx = x + i64::from(pen) + i64::from(g.left);
        let gy = y + i64::from(text.baseline) + i64::from(g.top);
        for row in 0..g.height {
            let py = gy + i64::from(row);
            if py < cy0 || py >= cy1 {
                continue;
            }
            let cov_row = &g.coverage[(row * g.width) as usize..][..g.width as usize];
            for (col, &c) in cov_row.iter().enumerate() {
                let px = gx + col as i64;
                if c == 0 || px < cx0 || px >= cx1 {
                    continue;
                }
                let i = (py as usize * width as usize + px as usize) * 3;
                let p = [buf[i], buf[i + 1], buf[i + 2]];
                let out = super::palette::blend(p, colour, super::palette::coverage_256(c));
                buf[i..i + 3].copy_from_slice(&out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_font_parses_and_has_digits_and_letters() {
        let f = font();
        for ch in "0123456789abcdefghijklmnopqrstuvwxyz".chars() {
            assert_ne!(f.glyph_id(ch).0, 0, "no glyph for {ch:?}");
        }
        assert!((0.6..0.8).contains(&cap_height_em()));
    }

    #[test]
    fn layout_grows_with_size_and_length() {
        let mut c = GlyphCache::default();
        let a = layout("7", 16.0, &mut c);
        let b = layout("77", 16.0, &mut c);
        let big = layout("7", 32.0, &mut c);
        assert!(b.width > a.width);
        assert!(big.width > a.width && big.height > a.height);
        // digits fill the band of `0`, about the cap height
        let cap = cap_height_em() * 16.0;
        assert!((a.height as f32 - cap).abs() <= 2.0, "{} vs {cap}", a.height);
        assert_eq!(layout("10", 16.0, &mut c).height, a.height);
    }

    #[test]
    fn descenders_extend_the_box_and_letters_share_cap_height() {
        let mut c = GlyphCache::default();
        let a = layout("a", 20.0, &mut c);
        let g = layout("g", 20.0, &mut c);
        let one = layout("1", 20.0, &mut c);
        assert_eq!(a.height, one.height);
        assert!(g.height > a.height);
    }

    #[test]
    fn boxes_match_bitmaps() {
        let mut c = GlyphCache::default();
        for ch in "0123456789agjy".chars() {
            let id = font().glyph_id(ch);
            let k = size_key(17.0);
            let (l, t, w, h) = c.bounds(id, k);
            let g = c.get(id, k);
            assert_eq!((l, t, w, h), (g.left, g.top, g.width, g.height));
        }
    }

    #[test]
    fn the_cache_stays_bounded() {
        let mut c = GlyphCache::default();
        for k in 0..(CACHE_LIMIT as u32 + 10) {
            c.bounds(font().glyph_id('1'), 8 + k);
        }
        assert!(c.boxes.len() <= CACHE_LIMIT);
        let t = layout("17", 12.0, &mut c);
        assert_eq!(t, layout("17", 12.0, &mut GlyphCache::default()));
    }

    #[test]
    fn blank_text_still_has_a_box() {
        let mut c = GlyphCache::default();
        let t = layout("", 12.0, &mut c);
        assert!(t.width >= 1 && t.height >= 1);
        let s = layout(" ", 12.0, &mut c);
        assert!(s.width >= 1);
    }

    #[test]
    fn drawing_clips_to_the_canvas() {
        let mut c = GlyphCache::default();
        let t = layout("88", 30.0, &mut c);
        let mut buf = vec![255u8; 10 * 8 * 3];
        let all = BBox::new(0, 0, 100, 100);
        draw_text(&mut buf, 10, 8, all, &t, -5, -7, [0, 0, 0], &mut c);
        draw_text(&mut buf, 10, 8, all, &t, 8, 6, [0, 0, 0], &mut c);
        assert!(buf.iter().any(|&v| v < 255));
        let mut clipped = vec![255u8; 10 * 8 * 3];
        draw_text(
            &mut clipped,
            10,
            8,
            BBox::new(2, 2, 3, 3),
            &t,
            -5,
            -7,
            [0, 0, 0],
            &mut c,
        );
        for (i, px) in clipped.chunks(3).enumerate() {
            let (x, y) = (i % 10, i / 10);
            if !((2..5).contains(&x) && (2..5).contains(&y)) {
                assert_eq!(px, [255, 255, 255]);
            }
        }
    }
}
