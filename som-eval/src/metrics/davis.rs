//! DAVIS 2017 semi-supervised video object segmentation: region similarity J,
//! boundary accuracy F, their per-object statistics and the global J&F table.
//!
//! This is the method of the DAVIS 2017 toolkit
//! (<https://github.com/davisvideochallenge/davis2017-evaluation>,
//! `davis2017/metrics.py`, `utils.py`, `evaluation.py`), proven equal to it
//! (within 1e-12) by `tests/metrics_parity.rs`:
//!
//! - **J** is the IoU of the object's ground-truth and predicted masks, 1 when
//!   both are empty.
//! - **F** is the F-measure of boundary precision and recall. Boundaries are
//!   the toolkit's `seg2bmap` (a pixel is on the boundary when it differs from
//!   its east, south or south-east neighbour; the last row and column compare
//!   with one neighbour only, the corner never is); a boundary pixel matches
//!   when the other mask's boundary has a pixel inside a disk of radius
//!   `ceil(0.008 × image diagonal)` around it (skimage `disk`, OpenCV
//!   `dilate`). No boundary on either side counts as a perfect match, a
//!   boundary on one side only as precision or recall 0.
//! - Per object: **Mean** over frames, **Recall** (fraction of frames above
//!   0.5) and **Decay** (mean of the first quarter of the frames minus mean of
//!   the last, with the toolkit's overlapping quarter bins).
//! - A sequence is scored on its frames except the first (given) and the last;
//!   the number of objects is the largest label in the first ground-truth frame;
//!   void pixels (255) count as background; a result with fewer objects is
//!   padded with empty masks, one with more is an error.
//! - The global table averages over objects, not sequences:
//!   `J&F-Mean = (J-Mean + F-Mean) / 2`.
//!
//! The toolkit casts the quarter-bin indices to `uint8`, so it breaks on
//! sequences of more than 257 frames; here they are exact for any length.

use som_core::{ImageSize, Mask};

use crate::error::{EvalError, Result};
use crate::labelmap::LabelMap;

/// The toolkit's boundary tolerance: a fraction of the image diagonal.
pub const BOUND_TH: f64 = 0.008;

/// The void label of DAVIS annotations.
pub const VOID: u32 = 255;

/// Region similarity J: IoU, 1 when both masks are empty.
///
/// # Errors
/// [`EvalError::Core`] when the masks have different sizes.
///
/// ```
/// use som_core::{BBox, ImageSize, Mask};
/// use som_eval::metrics::davis::region_similarity;
/// let s = ImageSize::new(8, 8);
/// assert_eq!(region_similarity(&Mask::empty(s), &Mask::empty(s))?, 1.0);
/// assert_eq!(region_similarity(&Mask::from_box(s, BBox::new(0, 0, 4, 4)), &Mask::from_box(s, BBox::new(0, 0, 4, 2)))?, 0.5);
/// # Ok::<(), som_eval::EvalError>(())
/// ```
pub fn region_similarity(gt: &Mask, pred: &Mask) -> Result<f64> {
    let inter = gt.intersection_area(pred)?;
    let union = gt.area() + pred.area() - inter;
    Ok(if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    })
}

/// The boundary tolerance in pixels for an image: `ceil(bound_th × diagonal)`
/// for `bound_th < 1`, else `bound_th` itself (it must then be a whole number).
///
/// # Errors
/// [`EvalError::Invalid`] for a threshold that is not positive and finite, or
/// a pixel count that is not whole.
///
/// ```
/// use som_core::ImageSize;
/// use som_eval::metrics::davis::{bound_pixels, BOUND_TH};
/// assert_eq!(bound_pixels(ImageSize::new(854, 480), BOUND_TH)?, 8);
/// # Ok::<(), som_eval::EvalError>(())
/// ```
pub fn bound_pixels(size: ImageSize, bound_th: f64) -> Result<u32> {
    if !(bound_th.is_finite() && bound_th > 0.0) {
        return Err(EvalError::invalid(
            "boundary threshold",
            format!("{bound_th} is not positive"),
        ));
    }
    if bound_th >= 1.0 {
        if bound_th.fract() != 0.0 || bound_th > 4096.0 {
            return Err(EvalError::invalid(
                "boundary threshold",
                format!("{bound_th} pixels is not a whole number up to 4096"),
            ));
        }
        return Ok(bound_th as u32);
    }
    let (h, w) = (size.height as f64, size.width as f64);
    Ok((bound_th * (h * h + w * w).sqrt()).ceil() as u32)
}

/// Boundary accuracy F of a predicted mask against the ground truth.
///
/// # Errors
/// [`EvalError::Size`] when the masks have different sizes; see
/// [`bound_pixels`] for the threshold.
///
/// ```
/// use som_core::{BBox, ImageSize, Mask};
/// use som_eval::metrics::davis::{boundary_measure, BOUND_TH};
/// let s = ImageSize::new(64, 48);
/// let gt = Mask::from_box(s, BBox::new(10, 10, 20, 20));
/// assert_eq!(boundary_measure(&gt, &gt, BOUND_TH)?, 1.0);
/// assert_eq!(boundary_measure(&gt, &Mask::empty(s), BOUND_TH)?, 0.0);
/// assert!(boundary_measure(&gt, &Mask::from_box(s, BBox::new(11, 10, 20, 20)), BOUND_TH)? == 1.0); // within 1 px
/// # Ok::<(), som_eval::EvalError>(())
/// ```
pub fn boundary_measure(gt: &Mask, pred: &Mask, bound_th: f64) -> Result<f64> {
    let size = gt.size();
    if pred.size() != size {
        return Err(EvalError::Size {
            what: "predicted mask".into(),
            expected: size,
            found: pred.size(),
        });
    }
    let r = bound_pixels(size, bound_th)? as i64;
    // Every boundary pixel lies in the union of the boxes, grown one pixel up and left.
    let boxes: Vec<_> = [gt.bbox(), pred.bbox()]
        .into_iter()
        .filter(|b| !b.is_empty())
        .collect();
    let Some(window) = boxes.iter().copied().reduce(|a, b| a.union(&b)) else {
        return Ok(1.0); // no boundary on either side
    };
    let win = Window::around(window, size);
    let gt_b = win.boundary(gt);
    let fg_b = win.boundary(pred);
    let n_gt = gt_b.iter().filter(|&&v| v).count();
    let n_fg = fg_b.iter().filter(|&&v| v).count();
    let (precision, recall) = match (n_fg, n_gt) {
        (0, 0) => (1.0, 1.0),
        (0, _) => (1.0, 0.0),
        (_, 0) => (0.0, 1.0),
        _ => {
            let fg_match = win.matched(&fg_b, &gt_b, r);
            let gt_match = win.matched(&gt_b, &fg_b, r);
            (fg_match as f64 / n_fg as f64, gt_match as f64 / n_gt as f64)
        }
    };
    Ok(if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    })
}

/// The toolkit's `seg2bmap` boundary map of a mask, as a mask.
///
/// ```
/// use som_core::{BBox, ImageSize, Mask, Point};
/// let m = Mask::from_box(ImageSize::new(6, 6), BBox::new(2, 2, 2, 2));
/// let b = som_eval::metrics::davis::boundary_map(&m);
/// // The boundary is offset half a pixel towards the origin: it starts at (1, 1).
/// assert_eq!(b.bbox(), BBox::new(1, 1, 3, 3));
/// assert!(!b.contains(Point::new(2, 2)));
/// ```
pub fn boundary_map(mask: &Mask) -> Mask {
    let size = mask.size();
    let b = mask.bbox();
    if b.is_empty() {
        return Mask::empty(size);
    }
    let x0 = b.x.saturating_sub(1);
    let y0 = b.y.saturating_sub(1);
    let win = Window {
        x0,
        y0,
        w: (b.x + b.width - x0) as usize,
        h: (b.y + b.height - y0) as usize,
        size,
    };
    let bits = win.boundary(mask);
    let crop: Vec<u8> = bits.iter().map(|&v| v as u8).collect();
    Mask::from_crop(
        size,
        som_core::BBox::new(x0, y0, win.w as u32, win.h as u32),
        &crop,
    )
    .unwrap_or_else(|_| Mask::empty(size))
}

/// A window of the image that holds every boundary pixel of interest.
struct Window {
    x0: u32,
    y0: u32,
    w: usize,
    h: usize,
    size: ImageSize,
}

impl Window {
    /// The window holding every boundary pixel of masks inside `b`: `b` grown
    /// one pixel up and left (a boundary sits half a pixel towards the origin).
    fn around(b: som_core::BBox, size: ImageSize) -> Self {
        let x0 = b.x.saturating_sub(1);
        let y0 = b.y.saturating_sub(1);
        Window {
            x0,
            y0,
            w: (b.x + b.width - x0) as usize,
            h: (b.y + b.height - y0) as usize,
            size,
        }
    }

    /// `seg2bmap` of `mask` inside the window (image edges as the toolkit treats them).
    fn boundary(&self, mask: &Mask) -> Vec<bool> {
        let (iw, ih) = (self.size.width, self.size.height);
        // The mask in the window plus one column and row beyond (clipped to the image).
        let (ww, wh) = (self.w + 1, self.h + 1);
        let mut seg = vec![false; ww * wh];
        let mb = mask.bbox();
        for (dy, row) in mask.crop_rows().enumerate() {
            let y = mb.y as usize + dy;
            if y < self.y0 as usize || y >= self.y0 as usize + wh {
                continue;
            }
            for (dx, &v) in row.iter().enumerate() {
                let x = mb.x as usize + dx;
                if v != 0 && x >= self.x0 as usize && x < self.x0 as usize + ww {
                    seg[(y - self.y0 as usize) * ww + (x - self.x0 as usize)] = true;
                }
            }
        }
        let at = |x: usize, y: usize| seg[y * ww + x];
        let mut out = vec![false; self.w * self.h];
        for wy in 0..self.h {
            let y = self.y0 + wy as u32;
            for wx in 0..self.w {
                let x = self.x0 + wx as u32;
                let s = at(wx, wy);
                let last_col = x + 1 == iw;
                let last_row = y + 1 == ih;
                let e = !last_col && at(wx + 1, wy);
                let so = !last_row && at(wx, wy + 1);
                let se = !last_col && !last_row && at(wx + 1, wy + 1);
                out[wy * self.w + wx] = match (last_col, last_row) {
                    (true, true) => false,
                    (true, false) => s ^ so,
                    (false, true) => s ^ e,
                    (false, false) => (s ^ e) | (s ^ so) | (s ^ se),
                };
            }
        }
        out
    }

    /// How many pixels of `a` have a pixel of `b` within the disk of radius `r`.
    fn matched(&self, a: &[bool], b: &[bool], r: i64) -> usize {
        let (w, h) = (self.w, self.h);
        // Row prefix sums of b.
        let mut pre = vec![0u32; h * (w + 1)];
        for y in 0..h {
            let row = &mut pre[y * (w + 1)..(y + 1) * (w + 1)];
            for x in 0..w {
                row[x + 1] = row[x] + b[y * w + x] as u32;
            }
        }
        let half: Vec<i64> = (0..=r).map(|dy| isqrt(r * r - dy * dy)).collect();
        let mut n = 0;
        for y in 0..h as i64 {
            for x in 0..w as i64 {
                if !a[y as usize * w + x as usize] {
                    continue;
                }
                let hit = (-r..=r).any(|dy| {
                    let yy = y + dy;
                    if yy < 0 || yy >= h as i64 {
                        return false;
                    }
                    let hw = half[dy.unsigned_abs() as usize];
                    let lo = (x - hw).max(0) as usize;
                    let hi = ((x + hw).min(w as i64 - 1) + 1) as usize;
                    let row = &pre[yy as usize * (w + 1)..];
                    row[hi] > row[lo]
                });
                n += hit as usize;
            }
        }
        n
    }
}

fn isqrt(v: i64) -> i64 {
    let mut s = (v as f64).sqrt() as i64;
    while s * s > v {
        s -= 1;
    }
    while (s + 1) * (s + 1) <= v {
        s += 1;
    }
    s
}

/// Mean, recall and decay of one object's per-frame values (`db_statistics`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Statistics {
    /// Mean over frames.
    pub mean: f64,
    /// Fraction of frames whose value is above 0.5.
    pub recall: f64,
    /// Mean of the first quarter of frames minus mean of the last quarter.
    pub decay: f64,
}

/// [`Statistics`] of per-frame values, with the toolkit's four overlapping
/// quarter bins (`ids = round(linspace(1, n, 5)) - 1`, bin i = `ids[i]..=ids[i+1]`).
///
/// # Errors
/// [`EvalError::Invalid`] for no values.
///
/// ```
/// use som_eval::metrics::davis::statistics;
/// let s = statistics(&[1.0, 1.0, 0.5, 0.0, 0.0])?;
/// assert_eq!((s.mean, s.recall, s.decay), (0.5, 0.4, 1.0));
/// # Ok::<(), som_eval::EvalError>(())
/// ```
pub fn statistics(values: &[f64]) -> Result<Statistics> {
    let n = values.len();
    if n == 0 {
        return Err(EvalError::invalid("frames", "no frames to take statistics of"));
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let recall = values.iter().filter(|&&v| v > 0.5).count() as f64 / n as f64;
    // round(1 + i (n - 1) / 4 + 1e-10) - 1, i = 0..=4; the quarter steps are exact
    // in binary, and the 1e-10 rounds halves up.
    let ids: Vec<usize> = (0..=4).map(|i| (4 + i * (n - 1) + 2) / 4 - 1).collect();
    let bin_mean = |i: usize| {
        let bin = &values[ids[i]..=ids[i + 1].min(n - 1)];
        bin.iter().sum::<f64>() / bin.len() as f64
    };
    Ok(Statistics {
        mean,
        recall,
        decay: bin_mean(0) - bin_mean(3),
    })
}

/// The scores of one object of one sequence.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ObjectScores {
    /// The sequence.
    pub sequence: String,
    /// The object's label (1-based).
    pub object: u32,
    /// J per evaluated frame.
    pub j_frames: Vec<f64>,
    /// F per evaluated frame.
    pub f_frames: Vec<f64>,
    /// J statistics.
    pub j: Statistics,
    /// F statistics.
    pub f: Statistics,
}

impl ObjectScores {
    /// The row name the toolkit uses: `<sequence>_<object>`.
    pub fn name(&self) -> String {
        format!("{}_{}", self.sequence, self.object)
    }
}

/// The global J&F row of the DAVIS 2017 table.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GlobalScores {
    /// `(J-Mean + F-Mean) / 2`.
    pub jf_mean: f64,
    /// Mean of the objects' J means.
    pub j_mean: f64,
    /// Mean of the objects' J recalls.
    pub j_recall: f64,
    /// Mean of the objects' J decays.
    pub j_decay: f64,
    /// Mean of the objects' F means.
    pub f_mean: f64,
    /// Mean of the objects' F recalls.
    pub f_recall: f64,
    /// Mean of the objects' F decays.
    pub f_decay: f64,
}

impl GlobalScores {
    /// The toolkit's column names and values, in its order.
    pub fn columns(&self) -> [(&'static str, f64); 7] {
        [
            ("J&F-Mean", self.jf_mean),
            ("J-Mean", self.j_mean),
            ("J-Recall", self.j_recall),
            ("J-Decay", self.j_decay),
            ("F-Mean", self.f_mean),
            ("F-Recall", self.f_recall),
            ("F-Decay", self.f_decay),
        ]
    }
}

/// The global row over `objects` (`None` for none).
pub fn global(objects: &[ObjectScores]) -> Option<GlobalScores> {
    if objects.is_empty() {
        return None;
    }
    let n = objects.len() as f64;
    let avg = |f: &dyn Fn(&ObjectScores) -> f64| objects.iter().map(f).sum::<f64>() / n;
    let j_mean = avg(&|o| o.j.mean);
    let f_mean = avg(&|o| o.f.mean);
    Some(GlobalScores {
        jf_mean: (j_mean + f_mean) / 2.0,
        j_mean,
        j_recall: avg(&|o| o.j.recall),
        j_decay: avg(&|o| o.j.decay),
        f_mean,
        f_recall: avg(&|o| o.f.recall),
        f_decay: avg(&|o| o.f.decay),
    })
}

/// The number of objects of a sequence: the largest label of its first
/// annotation frame, void excluded.
///
/// ```
/// use som_core::ImageSize;
/// use som_eval::{metrics::davis::object_count, LabelMap};
/// let first = LabelMap::new(ImageSize::new(4, 1), vec![0, 2, 255, 1])?;
/// assert_eq!(object_count(&first), 2);
/// # Ok::<(), som_eval::EvalError>(())
/// ```
pub fn object_count(first: &LabelMap) -> u32 {
    first
        .labels()
        .iter()
        .filter(|&&v| v != VOID)
        .max()
        .copied()
        .unwrap_or(0)
}

/// Scores one sequence as the toolkit does (semi-supervised).
///
/// `gt` holds every annotation frame of the sequence in order (the first
/// defines the objects); `pred` the results for frames `1..gt.len() - 1`
/// (those the toolkit evaluates), in order. `frame_names` name frames in
/// errors (e.g. `00003`), indexed like `gt`.
///
/// # Errors
/// [`EvalError::Dataset`] naming the sequence and frame for fewer than 3
/// frames, a result frame of another size, or a result with more objects than
/// the first annotation frame.
pub fn score_sequence(
    sequence: &str,
    gt: &[LabelMap],
    pred: &[LabelMap],
    frame_names: &[String],
) -> Result<Vec<ObjectScores>> {
    if gt.len() < 3 {
        return Err(EvalError::dataset(
            sequence,
            "",
            format!(
                "{} annotation frames; scoring needs at least 3 (the first and last are not scored)",
                gt.len()
            ),
        ));
    }
    let evaluated = gt.len() - 2;
    if pred.len() != evaluated {
        return Err(EvalError::dataset(
            sequence,
            "",
            format!("{} result frames for {evaluated} scored frames", pred.len()),
        ));
    }
    let name = |i: usize| frame_names.get(i).cloned().unwrap_or_else(|| format!("{i:05}"));
    let objects = object_count(&gt[0]);
    let size = gt[0].size();
    let mut pred_objects = 0;
    for (k, p) in pred.iter().enumerate() {
        if p.size() != size {
            return Err(EvalError::dataset(
                sequence,
                format!("frame {}", name(k + 1)),
                format!("result is {}, the annotation {size}", p.size()),
            ));
        }
        pred_objects = pred_objects.max(p.max().unwrap_or(0));
    }
    if pred_objects > objects {
        return Err(EvalError::dataset(
            sequence,
            "",
            format!(
                "the results name object {pred_objects} but the first annotation frame has {objects} objects"
            ),
        ));
    }
    for (k, g) in gt.iter().enumerate() {
        if g.size() != size {
            return Err(EvalError::dataset(
                sequence,
                format!("frame {}", name(k)),
                format!("annotation is {}, the first frame {size}", g.size()),
            ));
        }
    }
    let mut out = Vec::with_capacity(objects as usize);
    for object in 1..=objects {
        let mut j_frames = Vec::with_capacity(evaluated);
        let mut f_frames = Vec::with_capacity(evaluated);
        for (g, p) in gt[1..gt.len() - 1].iter().zip(pred) {
            let gm = g.mask(object);
            let pm = p.mask(object);
            j_frames.push(region_similarity(&gm, &pm)?);
            f_frames.push(boundary_measure(&gm, &pm, BOUND_TH)?);
        }
        out.push(ObjectScores {
            sequence: sequence.to_string(),
            object,
            j: statistics(&j_frames)?,
            f: statistics(&f_frames)?,
            j_frames,
            f_frames,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use som_core::BBox;

    #[test]
    fn quarter_bins_match_the_toolkit_for_small_lengths() {
        // ids from numpy: np.round(np.linspace(1, n, 5) + 1e-10) - 1
        let expect: [(usize, [usize; 5]); 6] = [
            (1, [0, 0, 0, 0, 0]),
            (2, [0, 0, 1, 1, 1]),
            (3, [0, 1, 1, 2, 2]),
            (4, [0, 1, 2, 2, 3]),
            (6, [0, 1, 3, 4, 5]),
            (10, [0, 2, 5, 7, 9]),
        ];
        for (n, ids) in expect {
            let got: Vec<usize> = (0..=4).map(|i| (4 + i * (n - 1) + 2) / 4 - 1).collect();
            assert_eq!(got, ids, "n = {n}");
        }
    }

    #[test]
    fn boundary_map_marks_the_edges_the_toolkit_marks() {
        // A mask touching the bottom-right corner: the last row and column compare
        // with one neighbour, the corner pixel is never a boundary.
        let s = ImageSize::new(4, 3);
        let m = Mask::from_box(s, BBox::new(2, 1, 2, 2));
        let b = boundary_map(&m);
        let got: Vec<u8> = b.to_bytes();
        #[rustfmt::skip]
        let want = [
            0, 1, 1, 1,
            0, 1, 0, 0,
            0, 1, 0, 0,
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn too_few_frames_and_extra_objects_are_errors() {
        let s = ImageSize::new(4, 4);
        let gt = vec![LabelMap::filled(s, 1), LabelMap::filled(s, 1)];
        assert!(score_sequence("a", &gt, &[], &[]).is_err());
        let gt = vec![LabelMap::filled(s, 1); 3];
        let e = score_sequence("a", &gt, &[LabelMap::filled(s, 2)], &[]).unwrap_err();
        assert!(e.to_string().contains("name object 2"), "{e}");
        let e = score_sequence("a", &gt, &[LabelMap::filled(ImageSize::new(3, 4), 1)], &[]).unwrap_err();
        assert!(e.to_string().contains("frame 00001"), "{e}");
        assert!(bound_pixels(s, 2.5).is_err() && bound_pixels(s, -1.0).is_err());
    }
}
