//! Referring expressions (RefCOCOg): comprehension accuracy on boxes (REC
//! Acc@0.5) and segmentation IoU on masks (RES mIoU and cIoU), and the box IoU
//! phrase grounding shares.
//!
//! Boxes are continuous `[x, y, w, h]`: the box covers `[x, x + w) × [y, y + h)`
//! and IoU is area over area with no `+1` (torchvision's `box_iou`, which MDETR,
//! GLIP and their successors evaluate RefCOCOg and Flickr30K with). A box of a
//! mask is the tight box of its pixels (`[x0, y0, x1 - x0, y1 - y0]`).

use som_core::{BBox, Mask};

use crate::error::Result;

/// A continuous box `[x, y, width, height]`.
pub type BoxXywh = [f64; 4];

/// The continuous box of a pixel box.
///
/// ```
/// use som_core::BBox;
/// assert_eq!(som_eval::metrics::refer::to_xywh(BBox::new(2, 3, 4, 5)), [2.0, 3.0, 4.0, 5.0]);
/// ```
pub fn to_xywh(b: BBox) -> BoxXywh {
    [b.x as f64, b.y as f64, b.width as f64, b.height as f64]
}

/// IoU of two continuous boxes; 0 when their union has no area.
///
/// ```
/// use som_eval::metrics::refer::box_iou;
/// assert_eq!(box_iou([0.0, 0.0, 4.0, 4.0], [2.0, 0.0, 4.0, 4.0]), 8.0 / 24.0);
/// assert_eq!(box_iou([0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 1.0, 1.0]), 0.0);
/// ```
pub fn box_iou(a: BoxXywh, b: BoxXywh) -> f64 {
    let (ax1, ay1) = (a[0] + a[2], a[1] + a[3]);
    let (bx1, by1) = (b[0] + b[2], b[1] + b[3]);
    let w = (ax1.min(bx1) - a[0].max(b[0])).max(0.0);
    let h = (ay1.min(by1) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// The smallest box enclosing all `boxes` (`None` for none).
///
/// ```
/// use som_eval::metrics::refer::enclosing;
/// assert_eq!(enclosing(&[[0.0, 0.0, 2.0, 2.0], [5.0, 1.0, 1.0, 4.0]]), Some([0.0, 0.0, 6.0, 5.0]));
/// ```
pub fn enclosing(boxes: &[BoxXywh]) -> Option<BoxXywh> {
    let first = boxes.first()?;
    let (mut x0, mut y0, mut x1, mut y1) = (first[0], first[1], first[0] + first[2], first[1] + first[3]);
    for b in &boxes[1..] {
        x0 = x0.min(b[0]);
        y0 = y0.min(b[1]);
        x1 = x1.max(b[0] + b[2]);
        y1 = y1.max(b[1] + b[3]);
    }
    Some([x0, y0, x1 - x0, y1 - y0])
}

/// The IoU threshold of Acc@0.5 and Recall@1: a hit is IoU `>=` this.
pub const HIT_IOU: f64 = 0.5;

/// Referring expression comprehension: Acc@0.5 over expressions.
///
/// ```
/// use som_eval::metrics::refer::RecScore;
/// let mut s = RecScore::default();
/// s.add(Some([0.0, 0.0, 10.0, 10.0]), [0.0, 0.0, 10.0, 8.0]);
/// s.add(None, [0.0, 0.0, 10.0, 8.0]); // no prediction: a miss
/// assert_eq!(s.accuracy(), Some(0.5));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RecScore {
    /// Expressions scored.
    pub count: u64,
    /// Expressions whose box has IoU >= 0.5 with the ground truth.
    pub hits: u64,
}

impl RecScore {
    /// Scores one expression; returns its IoU (0 without a prediction).
    pub fn add(&mut self, pred: Option<BoxXywh>, gt: BoxXywh) -> f64 {
        let iou = pred.map_or(0.0, |p| box_iou(p, gt));
        self.count += 1;
        if iou >= HIT_IOU {
            self.hits += 1;
        }
        iou
    }

    /// Acc@0.5.
    pub fn accuracy(&self) -> Option<f64> {
        (self.count > 0).then(|| self.hits as f64 / self.count as f64)
    }
}

/// Referring expression segmentation: mean IoU over expressions (mIoU) and
/// cumulative intersection over cumulative union (cIoU, "overall IoU").
///
/// An expression whose prediction and ground truth are both empty has IoU 0
/// (RefCOCOg ground truths are never empty), as LAVT's evaluation counts it.
///
/// ```
/// use som_core::{BBox, ImageSize, Mask};
/// use som_eval::metrics::refer::ResScore;
/// let s = ImageSize::new(10, 10);
/// let gt = Mask::from_box(s, BBox::new(0, 0, 4, 4));
/// let mut score = ResScore::default();
/// score.add(&Mask::from_box(s, BBox::new(0, 0, 4, 2)), &gt)?;
/// score.add(&Mask::empty(s), &gt)?;
/// assert_eq!(score.mean_iou(), Some(0.25));
/// assert_eq!(score.cumulative_iou(), Some(8.0 / 32.0));
/// # Ok::<(), som_eval::EvalError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ResScore {
    /// Expressions scored.
    pub count: u64,
    /// Sum of the per-expression IoUs.
    pub iou_sum: f64,
    /// Cumulative intersection (pixels).
    pub intersection: u64,
    /// Cumulative union (pixels).
    pub union: u64,
}

impl ResScore {
    /// Scores one expression; returns its IoU.
    ///
    /// # Errors
    /// [`crate::EvalError::Core`] when the masks have different sizes.
    pub fn add(&mut self, pred: &Mask, gt: &Mask) -> Result<f64> {
        let inter = pred.intersection_area(gt)?;
        let union = pred.area() + gt.area() - inter;
        let iou = if union > 0 {
            inter as f64 / union as f64
        } else {
            0.0
        };
        self.count += 1;
        self.iou_sum += iou;
        self.intersection += inter;
        self.union += union;
        Ok(iou)
    }

    /// mIoU.
    pub fn mean_iou(&self) -> Option<f64> {
        (self.count > 0).then(|| self.iou_sum / self.count as f64)
    }

    /// cIoU.
    pub fn cumulative_iou(&self) -> Option<f64> {
        (self.union > 0).then(|| self.intersection as f64 / self.union as f64)
    }
}
