//! COCO mask metrics, equal to pycocotools (`pycocotools/common/maskApi.c`).
//!
//! [`iou`], [`area`], [`to_bbox`] and [`merge`] follow pycocotools' run-length
//! algorithms step for step, so they agree with it on every RLE, including
//! non-canonical ones (zero-length runs, an odd or even number of runs). Its
//! `toBbox` works in unsigned 32-bit arithmetic and [`to_bbox`] does too: an
//! RLE whose only runs of ones have length zero gets pycocotools' wrapped-around
//! box, not an empty one. For the tight box of the decoded mask use
//! [`som_core::Rle::bbox`].
//!
//! One deliberate difference: pycocotools writes `-1` into the IoU matrix for
//! a pair of masks of different sizes (when their boxes overlap) and merges
//! masks of different sizes into an empty 0×0 RLE; here both are an
//! [`EvalError::Size`].

use rayon::prelude::*;
use som_core::{ImageSize, Rle};

use crate::error::{EvalError, Result};

/// A box as pycocotools returns it: `[x, y, width, height]` in pixels.
pub type CocoBox = [f64; 4];

/// The number of pixels inside, as pycocotools' `area` (the sum of the odd runs).
///
/// ```
/// use som_core::{ImageSize, Rle};
/// let rle = Rle::from_counts(ImageSize::new(6, 4), vec![5, 3, 16])?;
/// assert_eq!(som_eval::metrics::coco::area(&rle), 3);
/// # Ok::<(), som_core::SomError>(())
/// ```
pub fn area(rle: &Rle) -> u64 {
    rle.area()
}

/// The bounding box pycocotools' `toBbox` computes from the runs, as
/// `[x, y, w, h]` (`[0, 0, 0, 0]` for a mask with no runs of ones).
///
/// ```
/// use som_core::{ImageSize, Rle};
/// // A 6x4 image (4 rows): pixels 5..8 in column-major order are column 1, rows 1-3.
/// let rle = Rle::from_counts(ImageSize::new(6, 4), vec![5, 3, 16])?;
/// assert_eq!(som_eval::metrics::coco::to_bbox(&rle), [1.0, 1.0, 1.0, 3.0]);
/// # Ok::<(), som_core::SomError>(())
/// ```
pub fn to_bbox(rle: &Rle) -> CocoBox {
    let h = rle.size().height;
    let w = rle.size().width;
    let counts = rle.counts();
    let m = counts.len() / 2 * 2;
    if m == 0 || h == 0 {
        return [0.0; 4];
    }
    let (mut xs, mut ys, mut xe, mut ye) = (w, h, 0u32, 0u32);
    let mut cc = 0u32;
    for (j, &c) in counts[..m].iter().enumerate() {
        let start = cc;
        cc = cc.wrapping_add(c);
        if j % 2 == 0 || c == 0 {
            continue;
        }
        let y_start = start % h;
        let x_start = (start - y_start) / h;
        let last = cc.wrapping_sub(1);
        let y_end = last % h;
        let x_end = (last - y_end) / h;
        xs = xs.min(x_start);
        xe = xe.max(x_end);
        if x_start < x_end {
            ys = 0;
            ye = h - 1;
        } else {
            ys = ys.min(y_start);
            ye = ye.max(y_end);
        }
    }
    [
        xs as f64,
        ys as f64,
        xe.wrapping_sub(xs).wrapping_add(1) as f64,
        ye.wrapping_sub(ys).wrapping_add(1) as f64,
    ]
}

/// pycocotools' `bbIou` for one pair: IoU of two `[x, y, w, h]` boxes, or
/// intersection over the detection's area when the ground truth is a crowd.
///
/// ```
/// let iou = som_eval::metrics::coco::bbox_iou([0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 2.0, 2.0], false);
/// assert!((iou - 2.0 / 6.0).abs() < 1e-12);
/// ```
pub fn bbox_iou(dt: CocoBox, gt: CocoBox, crowd: bool) -> f64 {
    let da = dt[2] * dt[3];
    let ga = gt[2] * gt[3];
    let w = (dt[2] + dt[0]).min(gt[2] + gt[0]) - dt[0].max(gt[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (dt[3] + dt[1]).min(gt[3] + gt[1]) - dt[1].max(gt[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    let u = if crowd { da } else { da + ga - i };
    i / u
}

/// IoU matrix of detections against ground truths, as pycocotools'
/// `mask.iou(dt, gt, iscrowd)`: `out[d][g]`. For a crowd ground truth the
/// "IoU" is the intersection over the detection's area.
///
/// # Errors
/// [`EvalError::Invalid`] when `iscrowd` does not have one flag per ground
/// truth; [`EvalError::Size`] for a pair of masks of different sizes whose
/// boxes overlap (pycocotools writes `-1` there).
///
/// ```
/// use som_core::{BBox, ImageSize, Mask};
/// let s = ImageSize::new(10, 10);
/// let dt = [Mask::from_box(s, BBox::new(0, 0, 4, 4)).to_rle()];
/// let gt = [Mask::from_box(s, BBox::new(0, 0, 4, 2)).to_rle()];
/// assert_eq!(som_eval::metrics::coco::iou(&dt, &gt, &[false])?, vec![vec![0.5]]);
/// assert_eq!(som_eval::metrics::coco::iou(&dt, &gt, &[true])?, vec![vec![0.5]]);
/// assert_eq!(som_eval::metrics::coco::iou(&gt, &dt, &[true])?, vec![vec![1.0]]);
/// # Ok::<(), som_eval::EvalError>(())
/// ```
pub fn iou(dt: &[Rle], gt: &[Rle], iscrowd: &[bool]) -> Result<Vec<Vec<f64>>> {
    if iscrowd.len() != gt.len() {
        return Err(EvalError::invalid(
            "iscrowd",
            format!("{} flags for {} ground truths", iscrowd.len(), gt.len()),
        ));
    }
    let db: Vec<CocoBox> = dt.iter().map(to_bbox).collect();
    let gb: Vec<CocoBox> = gt.iter().map(to_bbox).collect();
    let gt_ones: Vec<Ones> = gt.iter().map(Ones::of).collect();
    // One row per detection, rows in parallel; each entry as pycocotools computes it.
    dt.par_iter()
        .zip(&db)
        .enumerate()
        .map(|(d, (dr, dbox))| {
            let d_ones = Ones::of(dr);
            let mut row = vec![0.0; gt.len()];
            for (g, ((gr, gbox), &crowd)) in gt.iter().zip(&gb).zip(iscrowd).enumerate() {
                if bbox_iou(*dbox, *gbox, crowd) <= 0.0 {
                    continue;
                }
                if dr.size() != gr.size() {
                    return Err(EvalError::Size {
                        what: format!("detection {d} against ground truth {g}"),
                        expected: gr.size(),
                        found: dr.size(),
                    });
                }
                row[g] = run_iou(&d_ones, &gt_ones[g], crowd);
            }
            Ok(row)
        })
        .collect()
}

/// Walks two run lists side by side as pycocotools' `rleIou` and `rleMerge` do: each
/// step covers the next stretch of pixels where neither mask changes value.
/// A zero-length run advances only one list per step, as in C.
struct RunPair<'a> {
    a: &'a [u32],
    b: &'a [u32],
    ca: u32,
    cb: u32,
    ia: usize,
    ib: usize,
    va: bool,
    vb: bool,
    done: bool,
}

/// One step of [`RunPair`]: `len` pixels with values `va`, `vb` before the
/// step's run switches; `last` when both lists are exhausted after it.
struct RunStep {
    len: u32,
    va: bool,
    vb: bool,
    last: bool,
}

impl<'a> RunPair<'a> {
    fn new(a: &'a [u32], b: &'a [u32]) -> Self {
        Self {
            a,
            b,
            ca: first(a),
            cb: first(b),
            ia: 1,
            ib: 1,
            va: false,
            vb: false,
            done: false,
        }
    }
}

impl Iterator for RunPair<'_> {
    /// The step's length, the values during it, the values after it, and whether it is the last.
    type Item = (RunStep, (bool, bool));

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let c = self.ca.min(self.cb);
        let during = (self.va, self.vb);
        self.ca -= c;
        if self.ca == 0 && self.ia < self.a.len() {
            self.ca = self.a[self.ia];
            self.ia += 1;
            self.va = !self.va;
        }
        self.cb -= c;
        if self.cb == 0 && self.ib < self.b.len() {
            self.cb = self.b[self.ib];
            self.ib += 1;
            self.vb = !self.vb;
        }
        self.done = self.ca.wrapping_add(self.cb) == 0;
        Some((
            RunStep {
                len: c,
                va: during.0,
                vb: during.1,
                last: self.done,
            },
            (self.va, self.vb),
        ))
    }
}

/// A mask as its runs of ones: half-open pixel intervals in column-major
/// order, with its area.
struct Ones<'a> {
    rle: &'a Rle,
    runs: Vec<(u64, u64)>,
    area: u64,
    /// No zero-length run after the first count (what pycocotools' encoder writes).
    canonical: bool,
}

impl<'a> Ones<'a> {
    fn of(rle: &'a Rle) -> Self {
        let mut runs = Vec::with_capacity(rle.counts().len() / 2);
        let mut pos = 0u64;
        for (k, &c) in rle.counts().iter().enumerate() {
            let end = pos + c as u64;
            if k % 2 == 1 && c > 0 {
                runs.push((pos, end));
            }
            pos = end;
        }
        Self {
            rle,
            area: rle.area(),
            runs,
            canonical: !rle.counts().iter().skip(1).any(|&c| c == 0),
        }
    }

    /// Pixels inside both: a merge of the runs where both masks have pixels.
    fn intersection(&self, other: &Ones) -> u64 {
        let (a, b) = (&self.runs, &other.runs);
        let (Some(fa), Some(fb), Some(la), Some(lb)) = (a.first(), b.first(), a.last(), b.last()) else {
            return 0;
        };
        let (lo, hi) = (fa.0.max(fb.0), la.1.min(lb.1));
        let mut i = a.partition_point(|&(_, e)| e <= lo);
        let mut j = b.partition_point(|&(_, e)| e <= lo);
        let mut n = 0;
        while i < a.len() && j < b.len() && a[i].0 < hi && b[j].0 < hi {
            let (s, e) = (a[i].0.max(b[j].0), a[i].1.min(b[j].1));
            n += e.saturating_sub(s);
            if a[i].1 < b[j].1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        n
    }
}

/// `rleIou` for one pair: intersection over union, or over the detection's
/// area for a crowd, 0 without intersection. pycocotools walks every run of
/// both masks; on canonical RLEs the intersection and union it counts are
/// exactly the pixel intersection and `area(dt) + area(gt) - intersection`,
/// computed here from the runs where both masks have pixels only. Where both
/// masks have zero-length runs its walk can stop early (when both reach one at
/// once), so those pairs are walked exactly as pycocotools walks them.
fn run_iou(dt: &Ones, gt: &Ones, crowd: bool) -> f64 {
    if !(dt.canonical || gt.canonical) {
        let (mut inter, mut union) = (0u32, 0u32);
        for (step, _) in RunPair::new(dt.rle.counts(), gt.rle.counts()) {
            if step.va || step.vb {
                union = union.wrapping_add(step.len);
                if step.va && step.vb {
                    inter = inter.wrapping_add(step.len);
                }
            }
        }
        if inter == 0 {
            union = 1;
        } else if crowd {
            union = dt.area as u32;
        }
        return inter as f64 / union as f64;
    }
    let inter = dt.intersection(gt);
    let union = if inter == 0 {
        1
    } else if crowd {
        dt.area
    } else {
        dt.area + gt.area - inter
    };
    inter as f64 / union as f64
}

fn first(counts: &[u32]) -> u32 {
    counts.first().copied().unwrap_or(0)
}

/// Union (`intersect = false`) or intersection (`true`) of masks, as
/// pycocotools' `mask.merge`, run for run (its output for non-canonical
/// inputs included). One mask is returned as it is.
///
/// # Errors
/// [`EvalError::Invalid`] for no masks, or for non-canonical inputs on which
/// pycocotools' merge stops before the end of the image (it returns a
/// truncated RLE there); [`EvalError::Size`] when the masks cover images of
/// different sizes.
///
/// ```
/// use som_core::{BBox, ImageSize, Mask};
/// use som_eval::metrics::coco::merge;
/// let s = ImageSize::new(8, 8);
/// let a = Mask::from_box(s, BBox::new(0, 0, 4, 4)).to_rle();
/// let b = Mask::from_box(s, BBox::new(2, 2, 4, 4)).to_rle();
/// assert_eq!(merge(&[a.clone(), b.clone()], false)?.area(), 28);
/// assert_eq!(merge(&[a, b], true)?.area(), 4);
/// # Ok::<(), som_eval::EvalError>(())
/// ```
pub fn merge(rles: &[Rle], intersect: bool) -> Result<Rle> {
    let Some(head) = rles.first() else {
        return Err(EvalError::invalid("merge", "no masks to merge"));
    };
    let size: ImageSize = head.size();
    let mut cnts: Vec<u32> = head.counts().to_vec();
    for (k, b) in rles.iter().enumerate().skip(1) {
        if b.size() != size {
            return Err(EvalError::Size {
                what: format!("mask {k} of the merge"),
                expected: size,
                found: b.size(),
            });
        }
        let a = std::mem::take(&mut cnts);
        let mut v = false;
        let mut cc = 0u32;
        for (step, (va, vb)) in RunPair::new(&a, b.counts()) {
            cc = cc.wrapping_add(step.len);
            let vp = v;
            v = if intersect { va && vb } else { va || vb };
            if v != vp || step.last {
                cnts.push(cc);
                cc = 0;
            }
        }
    }
    let covered: u64 = cnts.iter().map(|&c| c as u64).sum();
    if covered != size.pixels() {
        return Err(EvalError::invalid(
            "merge",
            format!(
                "the run merge stops after {covered} of {} pixels: zero-length runs end both masks' runs \
                 at once (pycocotools returns a truncated RLE here); re-encode the masks first",
                size.pixels()
            ),
        ));
    }
    Ok(Rle::from_counts(size, cnts)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use som_core::{BBox, Mask};

    #[test]
    fn merge_matches_mask_union_on_canonical_input() {
        let s = ImageSize::new(9, 7);
        let a = Mask::from_fn(s, |x, y| (x + y) % 3 == 0);
        let b = Mask::from_box(s, BBox::new(2, 1, 5, 4));
        let u = Mask::from_fn(s, |x, y| {
            a.contains(som_core::Point::new(x, y)) || b.contains(som_core::Point::new(x, y))
        });
        let i = Mask::from_fn(s, |x, y| {
            a.contains(som_core::Point::new(x, y)) && b.contains(som_core::Point::new(x, y))
        });
        assert_eq!(merge(&[a.to_rle(), b.to_rle()], false).unwrap(), u.to_rle());
        assert_eq!(merge(&[a.to_rle(), b.to_rle()], true).unwrap(), i.to_rle());
    }

    #[test]
    fn size_mismatch_and_bad_flags_are_errors() {
        let a = Mask::from_box(ImageSize::new(4, 4), BBox::new(0, 0, 2, 2)).to_rle();
        let b = Mask::from_box(ImageSize::new(5, 4), BBox::new(0, 0, 2, 2)).to_rle();
        assert!(matches!(
            iou(std::slice::from_ref(&a), std::slice::from_ref(&b), &[false]),
            Err(EvalError::Size { .. })
        ));
        assert!(matches!(
            merge(&[a.clone(), b], true),
            Err(EvalError::Size { .. })
        ));
        assert!(matches!(
            iou(std::slice::from_ref(&a), std::slice::from_ref(&a), &[]),
            Err(EvalError::Invalid { .. })
        ));
        assert!(merge(&[], false).is_err());
    }

    #[test]
    fn empty_images_do_not_divide_by_zero() {
        let e = Rle::from_counts(ImageSize::new(0, 0), vec![]).unwrap();
        assert_eq!(to_bbox(&e), [0.0; 4]);
        assert_eq!(
            iou(std::slice::from_ref(&e), std::slice::from_ref(&e), &[true]).unwrap(),
            vec![vec![0.0]]
        );
        assert_eq!(merge(&[e.clone(), e.clone()], false).unwrap().area(), 0);
    }
}
