//! `paper` mode: the SoM paper's Algorithm 1 with exclusion, collision-free
//! labels, in-image labels, off-region placement and flagged overlaps.
//!
//! Four phases:
//! 1. pack every mask into bits on the image's word grid (parallel);
//! 2. from the smallest region up, subtract the pixels of the regions
//!    visited before it — word operations against one whole-image bitmap
//!    (sequential, about one word per 64 box pixels);
//! 3. the exact-EDT maximum of each remainder (parallel, early-exit rows);
//! 4. labels, in the same smallest-first order: keep the maximum when its
//!    label box is free, else the best free pixel, else just outside the
//!    region; when a label fits nowhere, retry everything with smaller labels
//!    down to the minimum legible scale, where the fewest overlaps are
//!    accepted, conflicting labels are re-placed knowing the whole layout,
//!    and what remains is flagged afterwards.

use std::collections::BTreeMap;

use rayon::prelude::*;
use som_core::{BBox, ImageSize, LabelMeasure, Mark, Placement, Point, Segmentation, SomError};

use crate::MarksError;

use super::bits::{image_words, Packed};
use super::edt::{BinaryCrop, Edt, Rect};
use super::{clamp_size, filled_box_peak, label_box, label_box_at, par_with_edt, AllocatorConfig, Unit};

/// Rounds of moving conflicting labels once the whole layout is known.
const REPAIR_ROUNDS: usize = 3;
/// How many descending-distance candidates the overlap fallback tries.
const FALLBACK_CANDIDATES: usize = 256;
/// How far (in label sides) from its anchor a label may go when every spot
/// beside its region is taken.
const NEAREST_REACH: u32 = 5;
/// Label scales whose labels would cover more than this share of the image
/// are skipped (no layout keeps that many labels apart next to their regions).
const MAX_DENSITY: f64 = 0.4;
/// Each smaller label scale is this factor of the previous one.
const SCALE_STEP: f32 = 0.9;

/// Marks for `units` (in rank order).
pub(crate) fn allocate(
    seg: &Segmentation,
    units: &[Unit<'_>],
    config: &AllocatorConfig,
    labels: &dyn LabelMeasure,
) -> Result<Vec<Mark>, SomError> {
    let size = seg.size();
    let n = units.len();
    // Phase 1: bits.
    let mut packed: Vec<Packed> = units.par_iter().map(|u| Packed::from_mask(&u.mask)).collect();
    // Phase 2: exclusion, smallest first (units are in rank order, largest first).
    let iw = image_words(size);
    let mut covered = vec![0u64; iw * size.height as usize];
    let mut own = vec![(0u64, BBox::default()); n];
    for i in (0..n).rev() {
        own[i] = packed[i].subtract_and_cover(&mut covered, iw);
    }
    drop(covered);
    // Phase 3: the maximum of each remainder.
    let idx: Vec<usize> = (0..n).collect();
    let peaks: Vec<Option<(Point, u32)>> = par_with_edt(&idx, |&i, edt| {
        let (area, b) = own[i];
        if area == 0 {
            return Ok(None);
        }
        if area == b.area() {
            return Ok(Some(filled_box_peak(b)));
        }
        let m = &units[i].mask;
        if area == m.area() {
            // Nothing was taken away: the mask's own bytes, no unpacking.
            edt.compute(&BinaryCrop::from_mask(m)?)?;
        } else {
            edt.compute(&packed[i].crop(b)?)?;
        }
        Ok(edt.argmax().map(|p| (Point::new(b.x + p.x, b.y + p.y), p.d2)))
    })?;
    // Phase 4: labels.
    let ctx = Ctx {
        size,
        units,
        packed: &packed,
        own: &own,
        peaks: &peaks,
    };
    let min_scale = labels.min_scale(size);
    let min_scale = if min_scale.is_finite() {
        min_scale.clamp(0.05, 1.0)
    } else {
        1.0
    };
    let mut scales = vec![1.0f32];
    while scales[scales.len() - 1] * SCALE_STEP > min_scale {
        let s = scales[scales.len() - 1] * SCALE_STEP;
        scales.push(s);
    }
    if min_scale < 1.0 {
        scales.push(min_scale);
    }
    // Label sizes per scale; scales whose labels would cover more than
    // MAX_DENSITY of the image cannot be laid out apart and are not tried.
    type Texts = BTreeMap<usize, (String, (u32, u32))>;
    let image_area = size.pixels().max(1) as f64;
    let texts_at = |scale: f32| {
        let mut texts = Texts::new();
        for u in units {
            texts.entry(u.rank).or_insert_with(|| {
                let t = config.labels.text(u.rank);
                let s = clamp_size(labels.label_size(&t, size, scale), size);
                (t, s)
            });
        }
        texts
    };
    let density = |texts: &Texts| {
        units
            .iter()
            .map(|u| texts[&u.rank].1)
            .map(|(w, h)| w as f64 * h as f64)
            .sum::<f64>()
            / image_area
    };
    let mut cache: Option<Vec<Option<Edt>>> = None;
    let mut edt = Edt::new();
    let mut placed = None;
    for (k, &scale) in scales.iter().enumerate() {
        let last = k + 1 == scales.len();
        let texts = texts_at(scale);
        if !last && density(&texts) > MAX_DENSITY {
            continue;
        }
        if cache.is_none() {
            // The transforms the first attempt will need again (the units
            // whose best label box meets another's, and the fully covered
            // ones), computed in parallel now rather than one by one while
            // placing.
            let first: Vec<(u32, u32)> = units.iter().map(|u| texts[&u.rank].1).collect();
            let again = likely_conflicts(size, &own, &peaks, &first);
            let mut c: Vec<Option<Edt>> = (0..n).map(|_| None).collect();
            let computed = par_with_edt(&again, |&i, edt| {
                edt.compute(&ctx.anchor_crop(i)?.0)?;
                Ok(std::mem::take(edt))
            })?;
            for (&i, e) in again.iter().zip(computed) {
                c[i] = Some(e);
            }
            cache = Some(c);
        }
        let Some(cache) = cache.as_mut() else {
            return Err(SomError::allocate(MarksError::Layout(
                "transform cache missing".into(),
            )));
        };
        if let Some(p) = ctx.place_all(&texts, !last, &mut edt, cache)? {
            placed = Some((p, texts));
            break;
        }
    }
    let Some((placed, texts)) = placed else {
        return Err(SomError::allocate(MarksError::Layout(
            "no label scale produced a layout".into(),
        )));
    };
    Ok(units
        .iter()
        .zip(placed)
        .map(|(u, p)| Mark {
            id: config.labels.id(u.rank),
            text: texts[&u.rank].0.clone(),
            anchor: p.anchor,
            region: u.region,
            label_box: p.label_box,
            placement: p.placement,
            distance: (p.d2 as f64).sqrt(),
            overlaps: Vec::new(),
        })
        .collect())
}

/// Where one unit's mark went.
#[derive(Debug, Clone, Copy)]
struct Placed {
    anchor: Point,
    d2: u32,
    label_box: BBox,
    placement: Placement,
}

struct Ctx<'a, 's> {
    size: ImageSize,
    units: &'a [Unit<'s>],
    packed: &'a [Packed],
    own: &'a [(u64, BBox)],
    peaks: &'a [Option<(Point, u32)>],
}

/// The labels and anchors placed so far, indexed by a grid of square cells
/// so that a query touches only what is near it.
struct Layout {
    boxes: Vec<BBox>,
    anchors: Vec<Point>,
    cols: i64,
    rows: i64,
    /// Per cell, the items meeting it: box `i` is `2i`, anchor `i` is `2i + 1`.
    cells: Vec<Vec<u32>>,
}

/// Side of a [`Layout`] grid cell in pixels.
const CELL: i64 = 32;

impl Ctx<'_, '_> {
    /// Places every unit at the label sizes in `texts`. With `strict`, gives
    /// up (`None`) at the first label that fits nowhere; otherwise such
    /// labels take the position with the fewest conflicts.
    fn place_all(
        &self,
        texts: &BTreeMap<usize, (String, (u32, u32))>,
        strict: bool,
        edt: &mut Edt,
        cache: &mut [Option<Edt>],
    ) -> Result<Option<Vec<Placed>>, SomError> {
        let n = self.units.len();
        let mut out: Vec<Option<Placed>> = vec![None; n];
        let mut layout = Layout::new(self.size);
        let mut forced = false;
        for i in (0..n).rev() {
            let lsize = texts[&self.units[i].rank].1;
            let p = match self.place_free(i, lsize, &layout, edt, &mut cache[i])? {
                Some(p) => p,
                None if strict => return Ok(None),
                None => {
                    forced = true;
                    self.place_fewest_conflicts(i, lsize, &layout, edt, &mut cache[i])?
                }
            };
            layout.push(p.label_box, p.anchor);
            out[i] = Some(p);
        }
        let mut out: Vec<Placed> = out.into_iter().flatten().collect();
        if forced {
            self.repair(&mut out, texts, edt, cache)?;
        }
        Ok(Some(out))
    }

    /// After a forced layout: every label that still conflicts is placed
    /// again, now knowing all the other labels (not just the earlier ones),
    /// and moves when a free spot turns up. A few rounds; each move removes
    /// at least one conflict and adds none.
    fn repair(
        &self,
        out: &mut [Placed],
        texts: &BTreeMap<usize, (String, (u32, u32))>,
        edt: &mut Edt,
        cache: &mut [Option<Edt>],
    ) -> Result<(), SomError> {
        let n = out.len();
        for _ in 0..REPAIR_ROUNDS {
            let mut all = Layout::new(self.size);
            for p in out.iter() {
                all.push(p.label_box, p.anchor);
            }
            // A label conflicts when it meets another label or covers another anchor.
            let conflicting: Vec<usize> = (0..n)
                .rev()
                .filter(|&i| {
                    // `all` holds the label itself (and its anchor, when under it).
                    let own = 1 + out[i].label_box.contains(out[i].anchor) as usize;
                    all.conflicts(&out[i].label_box) > own
                })
                .collect();
            if conflicting.is_empty() {
                break;
            }
            let mut moved = false;
            for i in conflicting {
                let mut others = Layout::new(self.size);
                for (j, p) in out.iter().enumerate() {
                    if j != i {
                        others.push(p.label_box, p.anchor);
                    }
                }
                if others.is_free(&out[i].label_box) {
                    continue; // freed by an earlier move
                }
                let lsize = texts[&self.units[i].rank].1;
                if let Some(p) = self.place_free(i, lsize, &others, edt, &mut cache[i])? {
                    out[i] = p;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        Ok(())
    }

    /// The crop the unit's anchor is chosen from: what is left of it after
    /// exclusion, or the whole unit when nothing is left.
    fn anchor_crop(&self, i: usize) -> Result<(BinaryCrop<'_>, BBox), SomError> {
        let (area, b) = self.own[i];
        let m = &self.units[i].mask;
        if area == m.area() {
            // Nothing was taken away: the mask's own bytes, no unpacking.
            Ok((BinaryCrop::from_mask(m)?, m.bbox()))
        } else if area > 0 {
            Ok((self.packed[i].crop(b)?, b))
        } else {
            Ok((BinaryCrop::from_mask(m)?, m.bbox()))
        }
    }

    /// The transform of the unit's anchor crop: the cached one, or `scratch`
    /// computed now; and the crop's window.
    fn transform<'e>(
        &self,
        i: usize,
        scratch: &'e mut Edt,
        cached: &'e mut Option<Edt>,
    ) -> Result<(&'e mut Edt, BBox), SomError> {
        let (crop, window) = self.anchor_crop(i)?;
        match cached {
            Some(e) => Ok((e, window)),
            None => {
                scratch.compute(&crop)?;
                Ok((scratch, window))
            }
        }
    }

    /// A collision-free placement, inside the region when possible.
    fn place_free(
        &self,
        i: usize,
        lsize: (u32, u32),
        layout: &Layout,
        scratch: &mut Edt,
        cached: &mut Option<Edt>,
    ) -> Result<Option<Placed>, SomError> {
        let size = self.size;
        let (area, _) = self.own[i];
        if area > 0 {
            if let Some((anchor, d2)) = self.peaks[i] {
                let b = label_box(anchor, lsize, size);
                if layout.is_free(&b) {
                    return Ok(Some(Placed {
                        anchor,
                        d2,
                        label_box: b,
                        placement: Placement::Inside,
                    }));
                }
            }
        }
        let (edt, window) = self.transform(i, scratch, cached)?;
        if area > 0 {
            // The best free pixel for a centred label; failing that, for a
            // label that merely covers its anchor (anchor at an edge or corner).
            let (lw, lh) = lsize;
            let offsets = [
                (lw / 2, lh / 2),
                (0, lh / 2),
                (lw - 1, lh / 2),
                (lw / 2, 0),
                (lw / 2, lh - 1),
                (0, 0),
                (lw - 1, 0),
                (0, lh - 1),
                (lw - 1, lh - 1),
            ];
            let mut best: Option<Placed> = None;
            for (k, &off) in offsets.iter().enumerate() {
                let rects = layout.anchor_conflicts(lsize, size, window, off);
                if let Some(p) = edt.argmax_excluding(&rects) {
                    if best.is_none_or(|b| p.d2 > b.d2) {
                        let anchor = Point::new(window.x + p.x, window.y + p.y);
                        best = Some(Placed {
                            anchor,
                            d2: p.d2,
                            label_box: label_box_at(anchor, lsize, size, off),
                            placement: Placement::Inside,
                        });
                    }
                }
                if k == 0 && best.is_some() {
                    break;
                }
            }
            if best.is_some() {
                return Ok(best);
            }
        }
        // Outside: the anchor is the best pixel no label covers.
        let rects = layout.covered_pixels(window);
        let Some(p) = edt.argmax_excluding(&rects).or_else(|| edt.argmax()) else {
            return Ok(None);
        };
        let anchor = Point::new(window.x + p.x, window.y + p.y);
        let region_box = self.units[i].mask.bbox();
        let b = layout.beside(region_box, anchor, lsize, size).or_else(|| {
            // Crowded all round: the free spot nearest the anchor, a few labels away at most.
            layout.nearest_free_box(anchor, lsize, size, NEAREST_REACH * lsize.0.max(lsize.1))
        });
        Ok(b.map(|b| Placed {
            anchor,
            d2: p.d2,
            label_box: b,
            // A label that ended up over its anchor anyway counts as inside,
            // unless the region is fully covered by smaller ones.
            placement: if area > 0 && b.contains(anchor) {
                Placement::Inside
            } else {
                Placement::Outside
            },
        }))
    }

    /// The placement with the fewest conflicts (label boxes overlapped plus
    /// anchors covered): the best of the unit's top candidates inside, and of
    /// the positions beside its box; inside wins ties.
    fn place_fewest_conflicts(
        &self,
        i: usize,
        lsize: (u32, u32),
        layout: &Layout,
        scratch: &mut Edt,
        cached: &mut Option<Edt>,
    ) -> Result<Placed, SomError> {
        let size = self.size;
        let (edt, window) = self.transform(i, scratch, cached)?;
        let inside = if self.own[i].0 > 0 {
            Placement::Inside
        } else {
            Placement::Outside
        };
        let mut best: Option<(usize, Placed)> = None;
        let mut top: Option<(Point, u32)> = None;
        for p in edt.candidates().take(FALLBACK_CANDIDATES) {
            let anchor = Point::new(window.x + p.x, window.y + p.y);
            top.get_or_insert((anchor, p.d2));
            let b = label_box(anchor, lsize, size);
            let c = layout.conflicts(&b);
            if best.as_ref().is_none_or(|(bc, _)| c < *bc) {
                best = Some((
                    c,
                    Placed {
                        anchor,
                        d2: p.d2,
                        label_box: b,
                        placement: inside,
                    },
                ));
                if c <= 1 {
                    break;
                }
            }
        }
        let Some((anchor, d2)) = top else {
            // Unreachable for the non-empty masks `allocate` accepts.
            return Err(SomError::allocate(MarksError::Layout(format!(
                "region at index {} has no pixel left to put a mark on",
                self.units[i].region
            ))));
        };
        let rb = self.units[i].mask.bbox();
        for b in beside_positions(rb, anchor, lsize, size) {
            let c = layout.conflicts(&b);
            if best.as_ref().is_none_or(|(bc, _)| c < *bc) {
                best = Some((
                    c,
                    Placed {
                        anchor,
                        d2,
                        label_box: b,
                        placement: Placement::Outside,
                    },
                ));
            }
        }
        Ok(best.map(|(_, p)| p).unwrap_or(Placed {
            anchor,
            d2,
            label_box: label_box(anchor, lsize, size),
            placement: Placement::Inside,
        }))
    }
}

/// The units placement will most likely need a transform for: a quick
/// rehearsal of the first attempt that places, smallest first, every
/// first-choice label (centred on the remainder's maximum) that is free and
/// reports the units whose label is not, plus those with no remainder.
/// Ascending.
fn likely_conflicts(
    size: ImageSize,
    own: &[(u64, BBox)],
    peaks: &[Option<(Point, u32)>],
    sizes: &[(u32, u32)],
) -> Vec<usize> {
    let mut layout = Layout::new(size);
    let mut hit = Vec::new();
    for i in (0..peaks.len()).rev() {
        match peaks[i] {
            Some((a, _)) if own[i].0 > 0 => {
                let b = label_box(a, sizes[i], size);
                if layout.is_free(&b) {
                    layout.push(b, a);
                } else {
                    hit.push(i);
                }
            }
            _ => hit.push(i),
        }
    }
    hit.reverse();
    hit
}

/// The half-open range of anchor coordinates on one axis whose label
/// (`len` long, its pixel `off` on the anchor, then clamped into `0..img`)
/// overlaps `b0..b1`.
fn anchor_range(b0: i64, b1: i64, len: i64, img: i64, off: i64) -> Option<(i64, i64)> {
    let a = (b0 - len + 1).max(0);
    let b = (b1 - 1).min(img - len);
    if a > b {
        return None;
    }
    let lo = if a == 0 { 0 } else { a + off };
    let hi = if b == img - len { img - 1 } else { b + off };
    Some((lo, hi + 1))
}

/// The rectangle `x0..x1 × y0..y1` (image coordinates) in `window`
/// coordinates, or `None` when they do not meet.
fn to_window(x0: i64, x1: i64, y0: i64, y1: i64, window: BBox) -> Option<Rect> {
    let (wx, wy) = (window.x as i64, window.y as i64);
    let (ax0, ax1) = (x0.max(wx), x1.min(window.right() as i64));
    let (ay0, ay1) = (y0.max(wy), y1.min(window.bottom() as i64));
    (ax0 < ax1 && ay0 < ay1).then(|| Rect {
        x0: (ax0 - wx) as u32,
        y0: (ay0 - wy) as u32,
        x1: (ax1 - wx) as u32,
        y1: (ay1 - wy) as u32,
    })
}

impl Layout {
    fn new(size: ImageSize) -> Layout {
        let cols = (size.width as i64 + CELL - 1) / CELL;
        let rows = (size.height as i64 + CELL - 1) / CELL;
        Layout {
            boxes: Vec::new(),
            anchors: Vec::new(),
            cols,
            rows,
            cells: vec![Vec::new(); (cols * rows) as usize],
        }
    }

    /// The cells meeting `x0..x1 × y0..y1` (clipped to the grid).
    fn cell_range(&self, x0: i64, x1: i64, y0: i64, y1: i64) -> Option<(i64, i64, i64, i64)> {
        let (cx0, cx1) = ((x0 / CELL).max(0), ((x1 - 1).div_euclid(CELL)).min(self.cols - 1));
        let (cy0, cy1) = ((y0 / CELL).max(0), ((y1 - 1).div_euclid(CELL)).min(self.rows - 1));
        (x0 < x1 && y0 < y1 && cx0 <= cx1 && cy0 <= cy1).then_some((cx0, cx1, cy0, cy1))
    }

    /// Records a placed label and its anchor.
    fn push(&mut self, b: BBox, a: Point) {
        let id = self.boxes.len() as u32;
        self.boxes.push(b);
        self.anchors.push(a);
        let items = [
            (
                b.x as i64,
                b.right() as i64,
                b.y as i64,
                b.bottom() as i64,
                2 * id,
            ),
            (a.x as i64, a.x as i64 + 1, a.y as i64, a.y as i64 + 1, 2 * id + 1),
        ];
        for (x0, x1, y0, y1, item) in items {
            if let Some((cx0, cx1, cy0, cy1)) = self.cell_range(x0, x1, y0, y1) {
                for cy in cy0..=cy1 {
                    for cx in cx0..=cx1 {
                        self.cells[(cy * self.cols + cx) as usize].push(item);
                    }
                }
            }
        }
    }

    /// Calls `f` once for every placed label (`Ok`) and anchor (`Err`) in the
    /// cells meeting `x0..x1 × y0..y1` (a superset of those meeting the
    /// rectangle), without allocating: an item spanning several cells is
    /// reported only from the first cell it shares with the query.
    fn visit(&self, x0: i64, x1: i64, y0: i64, y1: i64, mut f: impl FnMut(Result<BBox, Point>)) {
        let Some((qx0, qx1, qy0, qy1)) = self.cell_range(x0, x1, y0, y1) else {
            return;
        };
        for cy in qy0..=qy1 {
            for cx in qx0..=qx1 {
                for &id in &self.cells[(cy * self.cols + cx) as usize] {
                    if id % 2 == 1 {
                        // Anchors live in exactly one cell.
                        f(Err(self.anchors[id as usize / 2]));
                        continue;
                    }
                    let b = self.boxes[id as usize / 2];
                    let (bx0, by0) = (b.x as i64 / CELL, b.y as i64 / CELL);
                    if cx == bx0.max(qx0) && cy == by0.max(qy0) {
                        f(Ok(b));
                    }
                }
            }
        }
    }

    /// The placed labels and anchors near `x0..x1 × y0..y1` (see [`Layout::visit`]).
    fn near(&self, x0: i64, x1: i64, y0: i64, y1: i64) -> (Vec<BBox>, Vec<Point>) {
        let (mut boxes, mut anchors) = (Vec::new(), Vec::new());
        self.visit(x0, x1, y0, y1, |item| match item {
            Ok(b) => boxes.push(b),
            Err(a) => anchors.push(a),
        });
        (boxes, anchors)
    }

    fn near_box(&self, b: &BBox) -> (Vec<BBox>, Vec<Point>) {
        self.near(b.x as i64, b.right() as i64, b.y as i64, b.bottom() as i64)
    }

    /// `true` when `b` overlaps no placed label and covers no placed anchor.
    fn is_free(&self, b: &BBox) -> bool {
        let Some((cx0, cx1, cy0, cy1)) =
            self.cell_range(b.x as i64, b.right() as i64, b.y as i64, b.bottom() as i64)
        else {
            return true;
        };
        for cy in cy0..=cy1 {
            for cx in cx0..=cx1 {
                for &id in &self.cells[(cy * self.cols + cx) as usize] {
                    let hit = if id % 2 == 0 {
                        self.boxes[id as usize / 2].intersects(b)
                    } else {
                        b.contains(self.anchors[id as usize / 2])
                    };
                    if hit {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Placed labels `b` overlaps plus placed anchors it covers.
    fn conflicts(&self, b: &BBox) -> usize {
        let mut n = 0;
        self.visit(
            b.x as i64,
            b.right() as i64,
            b.y as i64,
            b.bottom() as i64,
            |item| {
                n += match item {
                    Ok(o) => o.intersects(b) as usize,
                    Err(a) => b.contains(a) as usize,
                }
            },
        );
        n
    }

    /// The anchor positions in `window` whose label of `lsize` (its pixel
    /// `off` on the anchor) would conflict, as rectangles in window coordinates.
    fn anchor_conflicts(
        &self,
        (lw, lh): (u32, u32),
        size: ImageSize,
        window: BBox,
        off: (u32, u32),
    ) -> Vec<Rect> {
        let (w, h) = (size.width as i64, size.height as i64);
        // A label whose anchor is in the window lies within a label's size of it.
        let (near_boxes, near_anchors) = self.near(
            window.x as i64 - lw as i64,
            window.right() as i64 + lw as i64,
            window.y as i64 - lh as i64,
            window.bottom() as i64 + lh as i64,
        );
        let boxes = near_boxes
            .into_iter()
            .map(|b| (b.x as i64, b.right() as i64, b.y as i64, b.bottom() as i64));
        let points = near_anchors
            .into_iter()
            .map(|a| (a.x as i64, a.x as i64 + 1, a.y as i64, a.y as i64 + 1));
        boxes
            .chain(points)
            .filter_map(|(x0, x1, y0, y1)| {
                let (ax0, ax1) = anchor_range(x0, x1, lw as i64, w, off.0 as i64)?;
                let (ay0, ay1) = anchor_range(y0, y1, lh as i64, h, off.1 as i64)?;
                to_window(ax0, ax1, ay0, ay1, window)
            })
            .collect()
    }

    /// The pixels of `window` under a placed label, as rectangles in window
    /// coordinates.
    fn covered_pixels(&self, window: BBox) -> Vec<Rect> {
        self.near_box(&window)
            .0
            .iter()
            .filter_map(|b| {
                to_window(
                    b.x as i64,
                    b.right() as i64,
                    b.y as i64,
                    b.bottom() as i64,
                    window,
                )
            })
            .collect()
    }

    /// The free label box nearest `anchor` (smallest gap between box and
    /// anchor; ties: topmost, then leftmost) among those within `reach`
    /// pixels of it, trying top-left corners on a lattice of a sixth of the
    /// label's smaller side.
    fn nearest_free_box(
        &self,
        anchor: Point,
        (lw, lh): (u32, u32),
        size: ImageSize,
        reach: u32,
    ) -> Option<BBox> {
        let (lw, lh) = (lw as i64, lh as i64);
        let (ax, ay, r) = (anchor.x as i64, anchor.y as i64, reach as i64);
        // Top-left corners considered: the box within `reach` of the anchor, inside the image.
        let x0 = (ax - r - lw + 1).max(0);
        let x1 = (ax + r).min(size.width as i64 - lw);
        let y0 = (ay - r - lh + 1).max(0);
        let y1 = (ay + r).min(size.height as i64 - lh);
        if x0 > x1 || y0 > y1 {
            return None;
        }
        let st = (lw.min(lh) / 6).max(1);
        let (nx, ny) = (((x1 - x0) / st + 1) as usize, ((y1 - y0) / st + 1) as usize);
        // Blocked corners as a 2-D difference array: O(1) per placed item,
        // then one prefix-sum pass.
        let stride = nx + 1;
        let mut diff = vec![0i32; stride * (ny + 1)];
        let mut paint = |bx0: i64, bx1: i64, by0: i64, by1: i64| {
            // Corners whose box meets [bx0, bx1) × [by0, by1).
            let (cx0, cx1) = ((bx0 - lw + 1).max(x0), (bx1 - 1).min(x1));
            let (cy0, cy1) = ((by0 - lh + 1).max(y0), (by1 - 1).min(y1));
            if cx0 > cx1 || cy0 > cy1 {
                return;
            }
            // Lattice points k with x0 + k·st in cx0..=cx1 (likewise for rows).
            let (a, b) = (((cx0 - x0) + st - 1) / st, (cx1 - x0) / st + 1);
            let (c, d) = (((cy0 - y0) + st - 1) / st, (cy1 - y0) / st + 1);
            if a >= b || c >= d {
                return;
            }
            let (a, b, c, d) = (a as usize, b as usize, c as usize, d as usize);
            diff[c * stride + a] += 1;
            diff[c * stride + b] -= 1;
            diff[d * stride + a] -= 1;
            diff[d * stride + b] += 1;
        };
        let (near_boxes, near_anchors) = self.near(x0, x1 + lw, y0, y1 + lh);
        for b in &near_boxes {
            paint(b.x as i64, b.right() as i64, b.y as i64, b.bottom() as i64);
        }
        for a in &near_anchors {
            paint(a.x as i64, a.x as i64 + 1, a.y as i64, a.y as i64 + 1);
        }
        let mut blocked = vec![false; nx * ny];
        let mut above = vec![0i32; nx];
        for row in 0..ny {
            let mut run = 0i32;
            for col in 0..nx {
                run += diff[row * stride + col];
                above[col] += run;
                blocked[row * nx + col] = above[col] > 0;
            }
        }
        let mut best: Option<(i64, i64, i64)> = None;
        for row in 0..ny {
            let cy = y0 + row as i64 * st;
            let dy = (cy - ay).max(ay - (cy + lh - 1)).max(0);
            for col in 0..nx {
                let cx = x0 + col as i64 * st;
                if blocked[row * nx + col] {
                    continue;
                }
                let dx = (cx - ax).max(ax - (cx + lw - 1)).max(0);
                let d = dx * dx + dy * dy;
                if best.is_none_or(|(bd, _, _)| d < bd) {
                    best = Some((d, cx, cy));
                }
            }
        }
        best.filter(|&(d, _, _)| d <= r * r)
            .map(|(_, cx, cy)| BBox::new(cx as u32, cy as u32, lw as u32, lh as u32))
    }

    /// A free label box just outside `region` (its bounding box), on the side
    /// with most room first, as close to `anchor` as the side allows; farther
    /// out only when every side is taken.
    fn beside(&self, region: BBox, anchor: Point, (lw, lh): (u32, u32), size: ImageSize) -> Option<BBox> {
        let (w, h) = (size.width as i64, size.height as i64);
        let (lw, lh) = (lw as i64, lh as i64);
        let (rx0, rx1, ry0, ry1) = (
            region.x as i64,
            region.right() as i64,
            region.y as i64,
            region.bottom() as i64,
        );
        let (ax, ay) = (anchor.x as i64, anchor.y as i64);
        let step = lw.min(lh).max(2) / 2;
        for gap in [0, step, 2 * step] {
            for side in sides_by_room(region, size) {
                // The fixed coordinate, the free axis' range, and the preferred spot on it.
                let (horizontal, fixed) = match side {
                    Side::Top => (true, ry0 - gap - lh),
                    Side::Bottom => (true, ry1 + gap),
                    Side::Left => (false, rx0 - gap - lw),
                    Side::Right => (false, rx1 + gap),
                };
                let (flen, fimg, len, lo, hi, pref) = if horizontal {
                    (
                        lh,
                        h,
                        lw,
                        (rx0 - lw + 1).max(0),
                        (rx1 - 1).min(w - lw),
                        ax - lw / 2,
                    )
                } else {
                    (
                        lw,
                        w,
                        lh,
                        (ry0 - lh + 1).max(0),
                        (ry1 - 1).min(h - lh),
                        ay - lh / 2,
                    )
                };
                if fixed < 0 || fixed + flen > fimg || lo > hi {
                    continue;
                }
                // Blocked start positions on the free axis.
                let mut blocked: Vec<(i64, i64)> = Vec::new();
                let (near_boxes, near_anchors) = if horizontal {
                    self.near(lo, hi + len, fixed, fixed + flen)
                } else {
                    self.near(fixed, fixed + flen, lo, hi + len)
                };
                for b in &near_boxes {
                    let (f0, f1, m0, m1) = if horizontal {
                        (b.y as i64, b.bottom() as i64, b.x as i64, b.right() as i64)
                    } else {
                        (b.x as i64, b.right() as i64, b.y as i64, b.bottom() as i64)
                    };
                    if f0 < fixed + flen && fixed < f1 {
                        blocked.push((m0 - len + 1, m1 - 1));
                    }
                }
                for a in &near_anchors {
                    let (f, m) = if horizontal {
                        (a.y as i64, a.x as i64)
                    } else {
                        (a.x as i64, a.y as i64)
                    };
                    if fixed <= f && f < fixed + flen {
                        blocked.push((m - len + 1, m));
                    }
                }
                if let Some(pos) = nearest_free(lo, hi, pref.clamp(lo, hi), &mut blocked) {
                    let b = if horizontal {
                        BBox::new(pos as u32, fixed as u32, lw as u32, lh as u32)
                    } else {
                        BBox::new(fixed as u32, pos as u32, lw as u32, lh as u32)
                    };
                    return Some(b);
                }
            }
        }
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Top,
    Bottom,
    Left,
    Right,
}

/// The four sides of `region`, most room to the image edge first (ties:
/// top, bottom, left, right).
fn sides_by_room(region: BBox, size: ImageSize) -> [Side; 4] {
    let mut s = [
        (region.y as u64, Side::Top),
        (size.height as u64 - region.bottom(), Side::Bottom),
        (region.x as u64, Side::Left),
        (size.width as u64 - region.right(), Side::Right),
    ];
    s.sort_by_key(|&(room, _)| std::cmp::Reverse(room));
    s.map(|(_, side)| side)
}

/// Label boxes touching `region` from outside on each side that has room,
/// centred on `anchor` along the side (for the overlap fallback).
fn beside_positions(region: BBox, anchor: Point, (lw, lh): (u32, u32), size: ImageSize) -> Vec<BBox> {
    let (w, h) = (size.width as i64, size.height as i64);
    let (lw, lh) = (lw as i64, lh as i64);
    let px = (anchor.x as i64 - lw / 2).clamp(0, w - lw);
    let py = (anchor.y as i64 - lh / 2).clamp(0, h - lh);
    let mut out = Vec::new();
    for side in sides_by_room(region, size) {
        let (x, y) = match side {
            Side::Top => (px, region.y as i64 - lh),
            Side::Bottom => (px, region.bottom() as i64),
            Side::Left => (region.x as i64 - lw, py),
            Side::Right => (region.right() as i64, py),
        };
        if x >= 0 && y >= 0 && x + lw <= w && y + lh <= h {
            out.push(BBox::new(x as u32, y as u32, lw as u32, lh as u32));
        }
    }
    out
}

/// The value in `lo..=hi` nearest `pref` outside every closed interval of
/// `blocked` (ties: the smaller value).
fn nearest_free(lo: i64, hi: i64, pref: i64, blocked: &mut [(i64, i64)]) -> Option<i64> {
    blocked.sort_unstable();
    // Merge into disjoint, non-adjacent intervals.
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(blocked.len());
    for &(a, b) in blocked.iter() {
        if a > b {
            continue;
        }
        match merged.last_mut() {
            Some(last) if a <= last.1 + 1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let Some(&(a, b)) = merged.iter().find(|&&(a, b)| a <= pref && pref <= b) else {
        return Some(pref);
    };
    // Free neighbours of the blocking interval, then of every interval.
    let free = |v: i64| v >= lo && v <= hi && merged.iter().all(|&(a, b)| v < a || v > b);
    let pick = |best: Option<i64>, v: i64| -> Option<i64> {
        if !free(v) {
            return best;
        }
        match best {
            Some(c)
                if (c - pref).abs() < (v - pref).abs() || ((c - pref).abs() == (v - pref).abs() && c < v) =>
            {
                Some(c)
            }
            _ => Some(v),
        }
    };
    let mut best = pick(pick(None, a - 1), b + 1);
    if best.is_none() {
        // Both neighbours fell outside lo..=hi: any free value is next to
        // another interval or at an end of the range.
        for &(a, b) in &merged {
            best = pick(pick(best, a - 1), b + 1);
        }
        best = pick(pick(best, lo), hi);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_range_is_the_preimage_of_overlap() {
        // Brute force: for every anchor, is the clamped label overlapping b0..b1?
        for img in 1..30i64 {
            for (len, off) in (1..=img).flat_map(|len| [(len, len / 2), (len, 0), (len, len - 1)]) {
                for b0 in 0..img {
                    for b1 in b0 + 1..=img {
                        let want: Vec<i64> = (0..img)
                            .filter(|&p| {
                                let x = (p - off).clamp(0, img - len);
                                x < b1 && b0 < x + len
                            })
                            .collect();
                        let got: Vec<i64> = match anchor_range(b0, b1, len, img, off) {
                            Some((lo, hi)) => (lo..hi).collect(),
                            None => vec![],
                        };
                        assert_eq!(got, want, "img {img} len {len} b {b0}..{b1}");
                    }
                }
            }
        }
    }

    #[test]
    fn nearest_free_skips_blocked_values() {
        assert_eq!(nearest_free(0, 10, 5, &mut [(3, 6)]), Some(7));
        assert_eq!(nearest_free(0, 10, 4, &mut [(3, 6)]), Some(2));
        assert_eq!(nearest_free(0, 10, 4, &mut [(0, 6), (7, 10)]), None);
        assert_eq!(nearest_free(0, 10, 4, &mut [(0, 6), (8, 10)]), Some(7));
        assert_eq!(nearest_free(2, 10, 4, &mut [(0, 6)]), Some(7));
        assert_eq!(nearest_free(0, 10, 9, &mut []), Some(9));
    }
}
