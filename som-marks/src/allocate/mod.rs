//! Mark allocation: which pixel each region's mark names, and where its
//! label goes (DESIGN §4.1).
//!
//! Two modes, chosen by [`AllocationMode`]:
//!
//! - [`AllocationMode::Paper`] (the default): the SoM paper's Algorithm 1,
//!   made robust. Regions are visited from the smallest area up; each loses
//!   the pixels of the regions visited before it (the smaller ones), so a
//!   large region's mark never lands on a small region lying inside it; the
//!   mark goes to the exact-EDT maximum of what remains (its *exclusive
//!   part*). Label boxes — sized by the renderer's [`LabelMeasure`], centred
//!   on the anchor, moved the least needed to stay inside the image — never
//!   overlap an earlier label or cover another region's anchor. For each
//!   region, in order of preference:
//!   1. the exclusive part's maximum, when its label is free;
//!   2. the exclusive pixel of largest distance whose centred label is free
//!      (exact: an arg-max over the pixels outside the conflict rectangles);
//!   3. the same with the label shifted so the anchor sits at an edge or
//!      corner of it;
//!   4. outside ([`Placement::Outside`](som_core::Placement::Outside)): the
//!      label just beside the region's box, on the side with most room to
//!      the image edge, as close to the anchor as that side allows, or
//!      failing that the free spot nearest the anchor within five label
//!      sides (also the only choice for a region covered entirely by smaller
//!      ones).
//!
//!   When some label fits nowhere, every label shrinks (steps of 0.9, down
//!   to [`LabelMeasure::min_scale`]; scales whose labels would cover over
//!   40% of the image are skipped) and the layout is redone. Only at the
//!   minimum scale are overlaps accepted: a label that fits nowhere takes the
//!   candidate position (its region's best pixels, and the spots beside it)
//!   with the fewest conflicts; then, knowing the whole layout, each label
//!   still in conflict is placed again and moves wherever the steps above
//!   now find room. Every mark whose label box still intersects another
//!   lists the other's id in [`Mark::overlaps`] — never silently.
//! - [`AllocationMode::Independent`]: what the released SoM code does. Each
//!   mark goes to a pixel of maximal exact Euclidean distance to the outside
//!   of its own mask (the image border counts as outside), ignoring other
//!   regions and labels. Labels that happen to overlap are still flagged.
//!
//! In both modes marks are numbered largest region first
//! ([`Segmentation::order_by_area`]), so a mark's number does not depend on
//! the mode, and the distances are exact: integer squared distances from
//! [`edt`], Felzenszwalb–Huttenlocher on each region's bounding box plus a
//! one-pixel border, regions in parallel with rayon.
//!
//! # Example
//! ```
//! use som_core::{BBox, ImageSize, LabelMeasure, MarkAllocator, Mask, Placement, Region, Segmentation};
//! use som_marks::allocate::{AllocationMode, Allocator, AllocatorConfig};
//!
//! /// 8 px per character, 12 px high.
//! struct Fixed;
//! impl LabelMeasure for Fixed {
//!     fn label_size(&self, text: &str, _image: ImageSize, scale: f32) -> (u32, u32) {
//!         ((8.0 * scale) as u32 * text.len() as u32, (12.0 * scale) as u32)
//!     }
//! }
//!
//! let size = ImageSize::new(120, 80);
//! let seg = Segmentation::new(size, vec![
//!     Region::from_mask(10, Mask::from_box(size, BBox::new(0, 0, 120, 80))), // the background
//!     Region::from_mask(11, Mask::from_box(size, BBox::new(40, 20, 40, 40))), // a square on it
//! ])?;
//! let marks = Allocator::default().allocate(&seg, &Fixed)?;
//! assert_eq!(marks[0].text, "1"); // the background is the largest region
//! assert_eq!(marks[1].text, "2");
//! // The square's mark is at its centre; the background's avoids the square.
//! assert_eq!((marks[1].anchor.x, marks[1].anchor.y), (59, 39));
//! assert!(!BBox::new(40, 20, 40, 40).contains(marks[0].anchor));
//! assert_eq!(marks[0].distance, 20.0); // beside the square
//! assert!(marks.iter().all(|m| m.placement == Placement::Inside && m.overlaps.is_empty()));
//!
//! // The released SoM behaviour: each mark at its own mask's maximum, so
//! // the background's mark ignores the square (and may land on it).
//! let independent = Allocator::new(AllocatorConfig { mode: AllocationMode::Independent, ..Default::default() });
//! let marks = independent.allocate(&seg, &Fixed)?;
//! assert_eq!(marks[0].distance, 40.0);
//! # Ok::<(), som_core::SomError>(())
//! ```

use std::borrow::Cow;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use som_core::{
    BBox, ImageSize, LabelMeasure, LabelScheme, Mark, MarkAllocator, Mask, Point, Segmentation, SomError,
};

mod bits;
pub mod edt;
mod independent;
mod paper;

use edt::{BinaryCrop, Edt, Peak};

/// How marks are placed; see the [module docs](self).
///
/// ```
/// use som_marks::allocate::AllocationMode;
/// assert_eq!("paper".parse::<AllocationMode>()?, AllocationMode::Paper);
/// assert_eq!(AllocationMode::default(), AllocationMode::Paper);
/// assert_eq!(AllocationMode::Independent.to_string(), "independent");
/// assert!("middle".parse::<AllocationMode>().is_err());
/// # Ok::<(), som_marks::MarksError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllocationMode {
    /// Smallest region first, minus smaller regions, collision-free labels.
    #[default]
    Paper,
    /// Each mark at its own mask's distance maximum (released SoM code).
    Independent,
}

impl std::str::FromStr for AllocationMode {
    type Err = crate::MarksError;

    fn from_str(s: &str) -> Result<Self, crate::MarksError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "paper" => Ok(AllocationMode::Paper),
            "independent" => Ok(AllocationMode::Independent),
            other => Err(crate::MarksError::option(
                "allocation",
                format!("unknown mode {other:?} (expected paper or independent)"),
            )),
        }
    }
}

impl std::fmt::Display for AllocationMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AllocationMode::Paper => "paper",
            AllocationMode::Independent => "independent",
        })
    }
}

/// Settings of an [`Allocator`].
///
/// ```
/// use som_core::LabelScheme;
/// use som_marks::allocate::{AllocationMode, AllocatorConfig};
/// let c = AllocatorConfig { labels: LabelScheme::Letter, ..Default::default() };
/// assert_eq!(c.mode, AllocationMode::Paper);
/// assert!(!c.per_piece);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AllocatorConfig {
    /// Placement mode (default [`AllocationMode::Paper`]).
    pub mode: AllocationMode,
    /// How mark texts are formed (default: numbers from 1).
    pub labels: LabelScheme,
    /// One mark per 8-connected piece of a mask (all with the region's id
    /// and text, largest piece first) instead of one per region.
    pub per_piece: bool,
}

/// The mark allocator of this crate; see the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct Allocator {
    config: AllocatorConfig,
}

impl Allocator {
    /// An allocator with `config`.
    pub fn new(config: AllocatorConfig) -> Self {
        Self { config }
    }

    /// The configuration.
    pub fn config(&self) -> &AllocatorConfig {
        &self.config
    }
}

impl MarkAllocator for Allocator {
    fn allocate(
        &self,
        segmentation: &Segmentation,
        labels: &dyn LabelMeasure,
    ) -> Result<Vec<Mark>, SomError> {
        if segmentation.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(r) = segmentation.first_empty() {
            return Err(SomError::Region {
                id: r.id,
                message: "empty mask: there is no pixel to put a mark on".into(),
            });
        }
        let units = Unit::build(segmentation, self.config.per_piece)?;
        let mut marks = match self.config.mode {
            AllocationMode::Independent => independent::allocate(segmentation, &units, &self.config, labels)?,
            AllocationMode::Paper => paper::allocate(segmentation, &units, &self.config, labels)?,
        };
        flag_overlaps(&mut marks);
        Ok(marks)
    }
}

/// What gets one mark: a region, or one piece of it.
pub(crate) struct Unit<'s> {
    /// Index of the region in the segmentation.
    pub region: usize,
    /// Position in [`Segmentation::order_by_area`] (0 = largest).
    pub rank: usize,
    /// The pixels.
    pub mask: Cow<'s, Mask>,
}

impl<'s> Unit<'s> {
    /// The units of a segmentation ordered by rank (largest region first),
    /// pieces of one region largest first.
    fn build(seg: &'s Segmentation, per_piece: bool) -> Result<Vec<Unit<'s>>, SomError> {
        let order = seg.order_by_area();
        let mut units = Vec::with_capacity(order.len());
        for (rank, &i) in order.iter().enumerate() {
            let r = &seg.regions()[i];
            let mask: Cow<'s, Mask> = match &r.mask {
                Some(m) => Cow::Borrowed(m),
                None => Cow::Owned(Mask::from_box(seg.size(), r.bbox)),
            };
            let b = mask.bbox();
            if b.width as usize > edt::MAX_SIDE || b.height as usize > edt::MAX_SIDE {
                return Err(SomError::Region {
                    id: r.id,
                    message: format!(
                        "a {}x{} box exceeds the allocator's limit of {} px per side",
                        b.width,
                        b.height,
                        edt::MAX_SIDE
                    ),
                });
            }
            if per_piece {
                for p in bits::pieces(&mask) {
                    units.push(Unit {
                        region: i,
                        rank,
                        mask: Cow::Owned(p),
                    });
                }
            } else {
                units.push(Unit {
                    region: i,
                    rank,
                    mask,
                });
            }
        }
        Ok(units)
    }
}

/// A pixel of maximal exact distance in `mask` (image coordinates) and its
/// squared distance; `None` for an empty mask.
pub(crate) fn mask_peak(mask: &Mask, edt: &mut Edt) -> Result<Option<(Point, u32)>, SomError> {
    if mask.is_empty() {
        return Ok(None);
    }
    let b = mask.bbox();
    if mask.area() == b.area() {
        return Ok(Some(filled_box_peak(b)));
    }
    edt.compute(&BinaryCrop::from_mask(mask)?)?;
    Ok(edt
        .argmax()
        .map(|p: Peak| (Point::new(b.x + p.x, b.y + p.y), p.d2)))
}

/// The maximum of the transform of a completely filled box (no transform
/// needed): pixel (`x`, `y`) of a `w` × `h` box is `min(x + 1, w - x, y + 1,
/// h - y)` from the outside, largest at the centre.
///
/// ```text
/// 6×3 box: 1 1 1 1 1 1
///          1 2 2 2 2 1   -> (2, 1) at distance 2
///          1 1 1 1 1 1
/// ```
pub(crate) fn filled_box_peak(b: BBox) -> (Point, u32) {
    let (x, y) = ((b.width - 1) / 2, (b.height - 1) / 2);
    let d = (x + 1).min(b.width - x).min(y + 1).min(b.height - y);
    (Point::new(b.x + x, b.y + y), d * d)
}

/// A label of `size` (clamped to the image) centred on `anchor`, moved the
/// least needed to lie inside the image.
pub(crate) fn label_box(anchor: Point, size: (u32, u32), image: ImageSize) -> BBox {
    let (w, h) = clamp_size(size, image);
    label_box_at(anchor, (w, h), image, (w / 2, h / 2))
}

/// A label of `size` (already clamped to the image) whose pixel `offset`
/// (from its top-left corner) is on `anchor`, moved the least needed to lie
/// inside the image.
pub(crate) fn label_box_at(anchor: Point, (w, h): (u32, u32), image: ImageSize, offset: (u32, u32)) -> BBox {
    let x = (anchor.x as i64 - offset.0 as i64).clamp(0, (image.width - w) as i64) as u32;
    let y = (anchor.y as i64 - offset.1 as i64).clamp(0, (image.height - h) as i64) as u32;
    BBox::new(x, y, w, h)
}

/// A label size no larger than the image and at least 1×1.
pub(crate) fn clamp_size((w, h): (u32, u32), image: ImageSize) -> (u32, u32) {
    (w.clamp(1, image.width.max(1)), h.clamp(1, image.height.max(1)))
}

/// Fills every mark's `overlaps` with the ids of the marks whose label boxes
/// intersect its own (sorted, no duplicates).
pub(crate) fn flag_overlaps(marks: &mut [Mark]) {
    let mut by_x: Vec<usize> = (0..marks.len()).collect();
    by_x.sort_by_key(|&i| (marks[i].label_box.x, i));
    let mut found: Vec<Vec<u32>> = vec![Vec::new(); marks.len()];
    for (k, &i) in by_x.iter().enumerate() {
        let a = marks[i].label_box;
        for &j in &by_x[k + 1..] {
            let b = marks[j].label_box;
            if b.x as u64 >= a.right() {
                break;
            }
            if a.intersects(&b) && marks[i].id != marks[j].id {
                found[i].push(marks[j].id);
                found[j].push(marks[i].id);
            }
        }
    }
    for (m, mut f) in marks.iter_mut().zip(found) {
        f.sort_unstable();
        f.dedup();
        m.overlaps = f;
    }
}

/// Runs `f` over `items` in parallel with one reusable [`Edt`] per rayon job.
pub(crate) fn par_with_edt<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T, &mut Edt) -> Result<R, SomError> + Sync + Send,
) -> Result<Vec<R>, SomError> {
    items
        .par_iter()
        .with_min_len(4)
        .map_init(Edt::new, |edt, item| f(item, edt))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filled_box_peak_matches_the_transform() {
        let mut edt = Edt::new();
        for w in 1..12u32 {
            for h in 1..12u32 {
                let ones = vec![1u8; (w * h) as usize];
                edt.compute(&BinaryCrop::from_bytes(w as usize, h as usize, &ones).unwrap())
                    .unwrap();
                let full = edt.transform();
                let (p, d2) = filled_box_peak(BBox::new(3, 4, w, h));
                assert_eq!(d2, full.iter().copied().max().unwrap());
                assert_eq!(full[((p.y - 4) * w + (p.x - 3)) as usize], d2, "{w}x{h}");
            }
        }
    }
}
