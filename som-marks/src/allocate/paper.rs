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
use super::edt::{BinaryCrop, Edt};
use super::layout::{beside_positions, Layout};
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
