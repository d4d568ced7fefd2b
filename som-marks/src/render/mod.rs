//! Rendering marks onto an image (DESIGN §4.2): translucent mask tints,
//! anti-aliased contours, boxes and labels.
//!
//! [`Renderer`] implements [`MarkRenderer`] and [`LabelMeasure`]: an allocator
//! measures labels with it, then it draws the marks the allocator placed.
//!
//! # What is drawn, and in which order
//! Only regions named by a mark are drawn; everything drawn for a region uses
//! its mark's palette colour ([`mark_colour`]; the smallest id when several
//! marks name one region). Layers, bottom to top:
//!
//! 1. **mask** — a tint of opacity `alpha` (default 0.4) over each mask, drawn
//!    *once per pixel*: where masks overlap, the pixel takes the tint of the
//!    smallest region covering it (equal areas: the larger mark id), so
//!    overlaps never darken or mix. The formula is [`blend`] with
//!    `a = alpha_256(alpha)`.
//! 2. **contour** — each mask's outline, anti-aliased, centred on the
//!    boundary, 1–2 px wide by image size; larger regions first, so small
//!    regions' outlines stay on top.
//! 3. **box** — each region's bounding box, opaque, as wide as the contours,
//!    inside the box.
//! 4. **mark** — each label: its [`Mark::label_box`] filled with the colour,
//!    with rounded corners, and the mark text fitted to the box and centred,
//!    in black or white by the colour's relative luminance ([`text_colour`]).
//!    Labels are drawn in id order. A mark with an empty label box gets a
//!    label of the default size centred on its anchor (moved inside the image).
//!
//! Box-only regions (no mask) get no tint; their box is drawn whenever any of
//! mask, contour or box is on, since the box is all there is of them.
//!
//! Everything is clipped to the image; output is byte-identical for the same
//! inputs and configuration, whatever the number of threads.
//!
//! # Labels and fonts
//! Labels are set in DejaVu Sans Bold, embedded in the crate (Bitstream Vera
//! licence, shipped as `assets/LICENSE-DejaVu`), so nothing depends on system
//! fonts. The default size scales with the image
//! ([`RenderConfig::font_px_for`]); [`LabelMeasure::label_size`] gives the box
//! a label needs at a scale, and [`LabelMeasure::min_scale`] the smallest
//! legible scale, so an allocator can shrink crowded labels. The renderer
//! fits each text into whatever box the allocator settled on.
//!
//! # Performance
//! Tints and outlines are composited in parallel bands of rows (rayon), each
//! touching only the regions whose boxes cross it; outlines are computed per
//! region in parallel and kept as sparse spans; glyphs are rasterised once
//! and cached in the renderer. 200 masks with tints and labels at 1024×768
//! render about 30× faster than supervision's `MaskAnnotator` +
//! `LabelAnnotator` (`tools/bench/compare_render.py`, bench
//! `render/synth_1024x768_n200`).
//!
//! # Example
//! ```
//! use image::{Rgb, RgbImage};
//! use som_core::{BBox, ImageSize, LabelMeasure, Mark, MarkRenderer, Mask, Point, Region, Segmentation};
//! use som_marks::render::{Draw, RenderConfig, Renderer};
//!
//! let size = ImageSize::new(120, 80);
//! let seg = Segmentation::new(size, vec![
//!     Region::from_mask(1, Mask::from_box(size, BBox::new(10, 10, 60, 50))),
//! ])?;
//! let renderer = Renderer::new(RenderConfig { draw: "mask,contour,mark".parse()?, ..RenderConfig::default() });
//! let (w, h) = renderer.label_size("1", size, 1.0);
//! let mark = Mark::new(1, "1", Point::new(40, 35), 0, BBox::new(40 - w / 2, 35 - h / 2, w, h));
//! let image = RgbImage::from_pixel(120, 80, Rgb([255, 255, 255]));
//! let marked = renderer.render(&image, &seg, &[mark])?;
//! assert_eq!(marked.dimensions(), (120, 80));
//! assert_eq!(marked.get_pixel(100, 70), &Rgb([255, 255, 255])); // outside every layer
//! assert_ne!(marked.get_pixel(15, 50), &Rgb([255, 255, 255])); // tinted
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod contour;
mod font;
mod label;
mod palette;

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use image::RgbImage;
use rayon::prelude::*;
use som_core::{BBox, ImageSize, LabelMeasure, Mark, MarkRenderer, Mask, Segmentation, SomError};

pub use palette::{alpha_256, blend, mark_colour, relative_luminance, text_colour, PALETTE};

use contour::Coverage;
use font::GlyphCache;

/// Which layers to draw: any subset of mark, mask, contour and box.
///
/// The default is `mark,mask,contour`, the look of the SoM paper's figures
/// (translucent masks with outlines and numbered labels); boxes are off.
///
/// Parses from and prints as a comma-separated list (`"mark,mask,contour,box"`;
/// `"bbox"` is accepted for `box`, `"all"` and `"none"` too).
///
/// # Example
/// ```
/// use som_marks::render::Draw;
/// let d: Draw = "mask, box".parse()?;
/// assert!(d.mask && d.bbox && !d.mark && !d.contour);
/// assert_eq!(d.to_string(), "mask,box");
/// assert_eq!(Draw::default().to_string(), "mark,mask,contour");
/// let err = "mark,glow".parse::<Draw>().unwrap_err();
/// assert_eq!(err.to_string(), "invalid draw: unknown item \"glow\" (expected mark, mask, contour, box, all or none)");
/// # Ok::<(), som_marks::MarksError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Draw {
    /// Labels: the mark text on a filled rounded box.
    pub mark: bool,
    /// Translucent mask tints.
    pub mask: bool,
    /// Anti-aliased region outlines.
    pub contour: bool,
    /// Bounding boxes.
    pub bbox: bool,
}

impl Default for Draw {
    fn default() -> Self {
        Self {
            mark: true,
            mask: true,
            contour: true,
            bbox: false,
        }
    }
}

impl Draw {
    /// Every layer.
    pub const ALL: Draw = Draw {
        mark: true,
        mask: true,
        contour: true,
        bbox: true,
    };
    /// No layer (the image comes back unchanged).
    pub const NONE: Draw = Draw {
        mark: false,
        mask: false,
        contour: false,
        bbox: false,
    };
}

impl FromStr for Draw {
    type Err = crate::MarksError;

    fn from_str(s: &str) -> Result<Self, crate::MarksError> {
        let mut d = Draw::NONE;
        if s.trim().is_empty() {
            return Err(crate::MarksError::option(
                "draw",
                "empty list (expected e.g. mark,mask,contour,box or none)",
            ));
        }
        for item in s.split(',') {
            match item.trim().to_ascii_lowercase().as_str() {
                "mark" | "marks" | "label" | "labels" => d.mark = true,
                "mask" | "masks" => d.mask = true,
                "contour" | "contours" => d.contour = true,
                "box" | "boxes" | "bbox" => d.bbox = true,
                "all" => d = Draw::ALL,
                "none" => {}
                other => {
                    return Err(crate::MarksError::option(
                        "draw",
                        format!("unknown item {other:?} (expected mark, mask, contour, box, all or none)"),
                    ))
                }
            }
        }
        Ok(d)
    }
}

impl fmt::Display for Draw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<&str> = [
            (self.mark, "mark"),
            (self.mask, "mask"),
            (self.contour, "contour"),
            (self.bbox, "box"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
        if items.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&items.join(","))
        }
    }
}

/// Rendering options.
///
/// # Example
/// ```
/// use som_marks::render::{Draw, RenderConfig};
/// let c = RenderConfig { alpha: 0.5, font_px: Some(14.0), ..RenderConfig::default() };
/// assert_eq!(c.draw, Draw::default());
/// assert_eq!(RenderConfig::default().alpha, 0.4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RenderConfig {
    /// Which layers to draw (default mark, mask, contour).
    pub draw: Draw,
    /// Mask tint opacity, 0–1 (default 0.4; clamped, NaN = 0).
    pub alpha: f32,
    /// Label font em size in pixels at scale 1. Default (`None`): 2% of the
    /// geometric mean of the image sides, clamped to 10–64 px (about 18 px at
    /// 1024×768, 12 px at 640×427).
    pub font_px: Option<f32>,
    /// Contour and box line width in pixels. Default (`None`): the shorter
    /// image side / 400, clamped to 1–2 px.
    pub line_width: Option<f32>,
}

impl Default for RenderConfig {
    fn default() -> Self {
        Self {
            draw: Draw::default(),
            alpha: 0.4,
            font_px: None,
            line_width: None,
        }
    }
}

/// The smallest label em size, in pixels, that stays legible (digits about
/// 6 px tall): allocators may shrink crowded labels down to it.
pub const MIN_LEGIBLE_FONT_PX: f32 = 8.0;

/// The smallest default label em size, in pixels (small images still get
/// labels of this size before any shrinking).
pub const MIN_DEFAULT_FONT_PX: f32 = 10.0;

impl RenderConfig {
    /// The label em size at scale 1 for an image of `size`.
    ///
    /// ```
    /// use som_core::ImageSize;
    /// use som_marks::render::RenderConfig;
    /// let c = RenderConfig::default();
    /// assert!((c.font_px_for(ImageSize::new(1024, 768)) - 17.7).abs() < 0.1);
    /// assert_eq!(c.font_px_for(ImageSize::new(50, 50)), 10.0);
    /// ```
    pub fn font_px_for(&self, size: ImageSize) -> f32 {
        match self.font_px {
            Some(px) if px.is_finite() && px > 0.0 => px.clamp(1.0, 1024.0),
            _ => (0.02 * (size.pixels() as f64).sqrt() as f32).clamp(MIN_DEFAULT_FONT_PX, 64.0),
        }
    }

    /// The contour and box line width for an image of `size`.
    ///
    /// ```
    /// use som_core::ImageSize;
    /// use som_marks::render::RenderConfig;
    /// let c = RenderConfig::default();
    /// assert_eq!(c.line_width_for(ImageSize::new(1024, 768)), 1.92);
    /// assert_eq!(c.line_width_for(ImageSize::new(200, 100)), 1.0);
    /// ```
    pub fn line_width_for(&self, size: ImageSize) -> f32 {
        match self.line_width {
            Some(w) if w.is_finite() && w > 0.0 => w.min(64.0),
            _ => (size.width.min(size.height) as f32 / 400.0).clamp(1.0, 2.0),
        }
    }
}

/// The SoM mark renderer: tints, contours, boxes and labels in pure Rust,
/// with the embedded DejaVu Sans Bold font.
///
/// It measures labels for allocators ([`LabelMeasure`]) with the same layout
/// it draws them with, and keeps the glyph boxes and bitmaps it has made, so
/// repeated renders do not rasterise again. See the [module docs](self) for
/// what is drawn.
///
/// # Example
/// Measure labels, place them (here by hand; normally a
/// [`MarkAllocator`](som_core::MarkAllocator) does it), render, encode:
/// ```
/// use image::RgbImage;
/// use som_core::{BBox, ImageSize, LabelMeasure, Mark, MarkRenderer, Mask, Point, Region, Segmentation};
/// use som_core::io::OutputFormat;
/// use som_marks::render::Renderer;
///
/// let size = ImageSize::new(64, 48);
/// let seg = Segmentation::new(size, vec![
///     Region::from_mask(1, Mask::from_box(size, BBox::new(4, 4, 30, 30))),
///     Region::from_box(2, BBox::new(40, 10, 20, 30)), // a box-only region
/// ])?;
/// let renderer = Renderer::default();
/// let marks: Vec<Mark> = [(0, Point::new(18, 18)), (1, Point::new(50, 25))]
///     .into_iter()
///     .enumerate()
///     .map(|(i, (region, at))| {
///         let text = (i + 1).to_string();
///         let (w, h) = renderer.label_size(&text, size, 1.0);
///         let label_box = BBox::new(at.x - w / 2, at.y - h / 2, w, h);
///         Mark::new(i as u32 + 1, text, at, region, label_box)
///     })
///     .collect();
/// let marked = renderer.render(&RgbImage::new(64, 48), &seg, &marks)?;
/// let png = OutputFormat::from_path("marked.png")?.encode(&marked)?;
/// assert!(!png.is_empty());
/// # Ok::<(), som_core::SomError>(())
/// ```
pub struct Renderer {
    config: RenderConfig,
    glyphs: Mutex<GlyphCache>,
}

impl Renderer {
    /// A renderer with `config`.
    pub fn new(config: RenderConfig) -> Self {
        Self {
            config,
            glyphs: Mutex::new(GlyphCache::default()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RenderConfig {
        &self.config
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, GlyphCache> {
        // the cache holds only derived data, so a poisoned lock is still usable
        self.glyphs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Draws `marks` for `segmentation` into `canvas` in place (the `_mut`
    /// twin of [`MarkRenderer::render`]).
    ///
    /// # Errors
    /// [`SomError::MaskSize`] when the canvas, the segmentation and its masks
    /// do not all have one size; [`SomError::Render`] when a mark names a
    /// region the segmentation does not have. The canvas is untouched on error.
    pub fn render_mut(
        &self,
        canvas: &mut RgbImage,
        segmentation: &Segmentation,
        marks: &[Mark],
    ) -> Result<(), SomError> {
        let size = ImageSize::new(canvas.width(), canvas.height());
        check_sizes(size, segmentation)?;
        let n = segmentation.regions().len();
        let mut colour_id: Vec<Option<u32>> = vec![None; n];
        for m in marks {
            let slot = colour_id.get_mut(m.region).ok_or_else(|| {
                SomError::render(crate::MarksError::NoSuchRegion {
                    id: m.id,
                    region: m.region,
                    regions: n,
                })
            })?;
            *slot = Some(slot.map_or(m.id, |c| c.min(m.id)));
        }
        if size.is_empty() {
            return Ok(());
        }
        let draw = self.config.draw;
        let line_w = self.config.line_width_for(size);

        // regions to draw, in paint order: larger areas first, then mark id
        let mut order: Vec<(usize, u32)> = colour_id
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.map(|c| (i, c)))
            .collect();
        order.sort_by_key(|&(i, c)| (std::cmp::Reverse(segmentation.regions()[i].area()), c));

        let masks: Vec<(&Mask, [u8; 3])> = order
            .iter()
            .filter_map(|&(i, c)| {
                segmentation.regions()[i]
                    .mask
                    .as_ref()
                    .map(|m| (m, mark_colour(c)))
            })
            .filter(|(m, _)| !m.is_empty())
            .collect();

        let outlines: Vec<(Coverage, [u8; 3])> = match contour::Pen::new(line_w) {
            Some(pen) if draw.contour => masks
                .par_iter()
                .filter_map(|&(m, c)| contour::outline_coverage(m, &pen).map(|cov| (cov, c)))
                .collect(),
            _ => Vec::new(),
        };

        let a = alpha_256(self.config.alpha);
        if (draw.mask && a > 0 && !masks.is_empty()) || !outlines.is_empty() {
            let tints: &[(&Mask, [u8; 3])] = if draw.mask && a > 0 { &masks } else { &[] };
            paint_bands(canvas, tints, a, &outlines);
        }

        let box_lines = draw.bbox || draw.mask || draw.contour;
        if box_lines {
            let t = line_w.round().max(1.0) as u32;
            for &(i, c) in &order {
                let r = &segmentation.regions()[i];
                if draw.bbox || r.mask.is_none() {
                    draw_box(canvas, r.bbox, t, mark_colour(c));
                }
            }
        }

        if draw.mark {
            let base = self.config.font_px_for(size);
            let mut sorted: Vec<&Mark> = marks.iter().collect();
            sorted.sort_by_key(|m| m.id);
            let mut cache = self.cache();
            let (w, h) = (canvas.width(), canvas.height());
            let buf: &mut [u8] = canvas;
            for m in sorted {
                let bbox = if m.label_box.is_empty() {
                    let (lw, lh) = label::label_dims(&m.text, base, &mut cache);
                    centred_box(m.anchor.x, m.anchor.y, lw, lh, size)
                } else {
                    m.label_box
                };
                // the region's colour, so every label of a region matches its tint
                let colour = mark_colour(colour_id[m.region].unwrap_or(m.id));
                label::draw_label(buf, w, h, bbox, &m.text, base, colour, &mut cache);
            }
        }
        Ok(())
    }
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new(RenderConfig::default())
    }
}

impl Clone for Renderer {
    fn clone(&self) -> Self {
        Self::new(self.config)
    }
}

impl fmt::Debug for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renderer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl LabelMeasure for Renderer {
    /// The label box of `text` at `scale` × the default font size
    /// ([`RenderConfig::font_px_for`]): the text's ink box (at least the cap
    /// height tall) plus a padding of a quarter em on every side.
    fn label_size(&self, text: &str, image: ImageSize, scale: f32) -> (u32, u32) {
        let scale = if scale.is_finite() && scale > 0.0 {
            scale.min(16.0)
        } else {
            1.0
        };
        let em = self.config.font_px_for(image) * scale;
        label::label_dims(text, em, &mut self.cache())
    }

    /// [`MIN_LEGIBLE_FONT_PX`] relative to the default size (1 when the
    /// default is already that small).
    fn min_scale(&self, image: ImageSize) -> f32 {
        (MIN_LEGIBLE_FONT_PX / self.config.font_px_for(image)).min(1.0)
    }
}

impl MarkRenderer for Renderer {
    fn render(
        &self,
        image: &RgbImage,
        segmentation: &Segmentation,
        marks: &[Mark],
    ) -> Result<RgbImage, SomError> {
        let mut canvas = image.clone();
        self.render_mut(&mut canvas, segmentation, marks)?;
        Ok(canvas)
    }
}

/// The canvas must have the segmentation's size (its masks have it: a
/// `Segmentation` is always valid).
fn check_sizes(size: ImageSize, seg: &Segmentation) -> Result<(), SomError> {
    if seg.size() != size {
        return Err(SomError::MaskSize {
            expected: size,
            found: format!("a segmentation of a {} image", seg.size()),
        });
    }
    Ok(())
}

/// A `w` × `h` box centred on (`x`, `y`), moved inside the image where it fits.
fn centred_box(x: u32, y: u32, w: u32, h: u32, size: ImageSize) -> BBox {
    let fit = |c: u32, len: u32, side: u32| -> u32 {
        let start = c.saturating_sub(len / 2);
        start.min(side.saturating_sub(len))
    };
    BBox::new(fit(x, w, size.width), fit(y, h, size.height), w, h)
}

/// Rows per parallel band of the tint/contour pass.
const BAND_ROWS: usize = 32;

/// Tints (once per pixel, smallest region on top) and composites outlines,
/// band by band in parallel. `tints` are in paint order (last wins).
fn paint_bands(canvas: &mut RgbImage, tints: &[(&Mask, [u8; 3])], a: u32, outlines: &[(Coverage, [u8; 3])]) {
    let w = canvas.width() as usize;
    let inv = 256 - a;
    // colour · a + 128 per tint, so a pixel costs three multiply-adds
    let terms: Vec<[u32; 3]> = tints
        .iter()
        .map(|(_, c)| {
            [
                c[0] as u32 * a + 128,
                c[1] as u32 * a + 128,
                c[2] as u32 * a + 128,
            ]
        })
        .collect();
    let buf: &mut [u8] = canvas;
    buf.par_chunks_mut(BAND_ROWS * w * 3)
        .enumerate()
        .for_each(|(bi, band)| {
            let y0 = bi * BAND_ROWS;
            let rows = band.len() / (w * 3);
            let y1 = y0 + rows;
            if !tints.is_empty() {
                let mut owner = vec![u32::MAX; rows * w];
                for (k, (m, _)) in tints.iter().enumerate() {
                    let b = m.bbox();
                    let (by0, by1) = (b.y as usize, b.bottom() as usize);
                    if by1 <= y0 || by0 >= y1 {
                        continue;
                    }
                    let (bx, bw) = (b.x as usize, b.width as usize);
                    let crop = m.crop_data();
                    for y in by0.max(y0)..by1.min(y1) {
                        let src = &crop[(y - by0) * bw..][..bw];
                        let dst = &mut owner[(y - y0) * w + bx..][..bw];
                        claim_row(dst, src, k as u32);
                    }
                }
                for (px, &o) in band.chunks_exact_mut(3).zip(&owner) {
                    if o != u32::MAX {
                        let t = &terms[o as usize];
                        px[0] = ((px[0] as u32 * inv + t[0]) >> 8) as u8;
                        px[1] = ((px[1] as u32 * inv + t[1]) >> 8) as u8;
                        px[2] = ((px[2] as u32 * inv + t[2]) >> 8) as u8;
                    }
                }
            }
            for (cov, colour) in outlines {
                for span in cov.rows(y0 as u32, y1 as u32) {
                    let (y, x) = (span.y as usize, span.x as usize);
                    let row = &mut band[((y - y0) * w + x) * 3..((y - y0) * w + x + span.len as usize) * 3];
                    composite_row(row, cov.bytes(span), *colour);
                }
            }
        });
}

/// Marks the pixels of `dst` whose mask byte in `src` is set as owned by `k`,
/// eight at a time where the mask is uniform.
fn claim_row(dst: &mut [u32], src: &[u8], k: u32) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut dst_chunks = dst.chunks_exact_mut(8);
    let mut src_chunks = src.chunks_exact(8);
    for (d, s) in (&mut dst_chunks).zip(&mut src_chunks) {
        let mut b = [0u8; 8];
        b.copy_from_slice(s);
        match u64::from_le_bytes(b) {
            0 => {}
            ONES => d.fill(k),
            _ => {
                for (o, &v) in d.iter_mut().zip(s) {
                    if v != 0 {
                        *o = k;
                    }
                }
            }
        }
    }
    for (o, &v) in dst_chunks.into_remainder().iter_mut().zip(src_chunks.remainder()) {
        if v != 0 {
            *o = k;
        }
    }
}

/// Blends `colour` into the RGB `row` by the coverage bytes `src` (one per
/// pixel), skipping uncovered stretches 32 pixels at a time.
fn composite_row(row: &mut [u8], src: &[u8], colour: [u8; 3]) {
    let mut x = 0;
    while x < src.len() {
        if x + 32 <= src.len() {
            let mut any = 0u64;
            for c in src[x..x + 32].chunks_exact(8) {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                any |= u64::from_le_bytes(b);
            }
            if any == 0 {
                x += 32;
                continue;
            }
        }
        let c = src[x];
        if c != 0 {
            let px = &mut row[x * 3..x * 3 + 3];
            let out = blend([px[0], px[1], px[2]], colour, palette::coverage_256(c));
            px.copy_from_slice(&out);
        }
        x += 1;
    }
}

/// Draws the outline of `bbox` (clipped to the canvas) `t` pixels wide,
/// inside the box, in `colour`.
fn draw_box(canvas: &mut RgbImage, bbox: BBox, t: u32, colour: [u8; 3]) {
    let size = ImageSize::new(canvas.width(), canvas.height());
    let b = bbox.clip_to(size);
    if b.is_empty() {
        return;
    }
    let t = t.min(b.width).min(b.height).max(1);
    let w = size.width as usize;
    let buf: &mut [u8] = canvas;
    let mut fill = |x0: u32, y0: u32, x1: u32, y1: u32| {
        for y in y0..y1 {
            let row = &mut buf[(y as usize * w + x0 as usize) * 3..(y as usize * w + x1 as usize) * 3];
            for px in row.chunks_exact_mut(3) {
                px.copy_from_slice(&colour);
            }
        }
    };
    let (x0, y0, x1, y1) = (b.x, b.y, b.right() as u32, b.bottom() as u32);
    fill(x0, y0, x1, y0 + t);
    fill(x0, y1 - t, x1, y1);
    fill(x0, y0, x0 + t, y1);
    fill(x1 - t, y0, x1, y1);
}

#[cfg(test)]
mod tests {
    use som_core::{Point, Region};

    use super::*;

    #[test]
    fn draw_parses_subsets_and_rejects_unknown_items() {
        assert_eq!(
            "mark".parse::<Draw>().unwrap(),
            Draw {
                mark: true,
                ..Draw::NONE
            }
        );
        assert_eq!(
            " BOX , Contour ".parse::<Draw>().unwrap(),
            Draw {
                bbox: true,
                contour: true,
                ..Draw::NONE
            }
        );
        assert_eq!("all".parse::<Draw>().unwrap(), Draw::ALL);
        assert_eq!("none".parse::<Draw>().unwrap(), Draw::NONE);
        assert!("".parse::<Draw>().is_err());
        assert!("mark,,mask".parse::<Draw>().is_err());
        for d in ["mark", "mask,box", "mark,mask,contour,box", "none"] {
            assert_eq!(d.parse::<Draw>().unwrap().to_string(), d);
        }
    }

    #[test]
    fn min_scale_is_the_legible_size() {
        let r = Renderer::default();
        let size = ImageSize::new(1024, 768);
        let s = r.min_scale(size);
        assert!((r.config().font_px_for(size) * s - MIN_LEGIBLE_FONT_PX).abs() < 1e-4);
        assert_eq!(r.min_scale(ImageSize::new(64, 64)), 0.8);
        let tiny = Renderer::new(RenderConfig {
            font_px: Some(6.0),
            ..RenderConfig::default()
        });
        assert_eq!(tiny.min_scale(ImageSize::new(64, 64)), 1.0);
    }

    #[test]
    fn label_size_grows_with_scale_and_text() {
        let r = Renderer::default();
        let size = ImageSize::new(800, 600);
        let (w1, h1) = r.label_size("1", size, 1.0);
        let (w2, _) = r.label_size("12", size, 1.0);
        let (w3, h3) = r.label_size("1", size, 0.6);
        assert!(w2 > w1 && w3 < w1 && h3 < h1);
        // nonsense scales fall back to 1
        assert_eq!(r.label_size("1", size, f32::NAN), (w1, h1));
    }

    #[test]
    fn size_mismatch_and_bad_mark_are_errors() {
        let size = ImageSize::new(10, 10);
        let seg = Segmentation::new(size, vec![Region::from_box(1, BBox::new(0, 0, 3, 3))]).unwrap();
        let r = Renderer::default();
        let img = RgbImage::new(11, 10);
        assert!(matches!(
            r.render(&img, &seg, &[]),
            Err(SomError::MaskSize { .. })
        ));
        let img = RgbImage::new(10, 10);
        let bad = Mark::new(1, "1", Point::new(1, 1), 3, BBox::new(0, 0, 4, 4));
        let e = r.render(&img, &seg, &[bad]).unwrap_err();
        assert!(matches!(
            e.find::<crate::MarksError>(),
            Some(crate::MarksError::NoSuchRegion {
                id: 1,
                region: 3,
                regions: 1
            })
        ));
        assert_eq!(
            som_core::ErrorChain(&e).to_string(),
            "rendering failed: mark 1 names region index 3 but the segmentation has 1 regions"
        );
    }

    #[test]
    fn centred_boxes_stay_inside() {
        let s = ImageSize::new(20, 10);
        assert_eq!(centred_box(0, 0, 6, 4, s), BBox::new(0, 0, 6, 4));
        assert_eq!(centred_box(19, 9, 6, 4, s), BBox::new(14, 6, 6, 4));
        assert_eq!(centred_box(10, 5, 6, 4, s), BBox::new(7, 3, 6, 4));
    }
}
