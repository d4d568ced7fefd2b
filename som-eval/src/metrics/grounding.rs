//! Phrase grounding (Flickr30K Entities): Recall@1.
//!
//! A phrase is grounded when the one predicted box has IoU >= 0.5 with its
//! ground truth. Phrases with several ground-truth boxes are scored one of two
//! ways, both in the literature (MDETR's `flickr_eval.py` implements both):
//!
//! - [`BoxProtocol::AnyBox`]: the prediction must match any one of the boxes.
//!   GLIP, GLIPv2 and MDETR's headline numbers use it; the SoM paper compares
//!   with GLIPv2 (87.7 R@1) and does not say otherwise, so it is the default.
//! - [`BoxProtocol::MergedBox`]: the boxes are replaced by the smallest box
//!   enclosing them all, and the prediction must match that.
//!
//! Boxes are continuous; Flickr30K's `[xmin, ymin, xmax, ymax]` corners are
//! read as MDETR reads them (`w = xmax - xmin`).

use crate::metrics::refer::{box_iou, enclosing, BoxXywh, HIT_IOU};

/// How a phrase with several ground-truth boxes is scored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BoxProtocol {
    /// A hit when the prediction matches any ground-truth box.
    #[default]
    AnyBox,
    /// A hit when the prediction matches the box enclosing all ground-truth boxes.
    MergedBox,
}

impl BoxProtocol {
    /// `"any-box"` or `"merged-box"`.
    pub fn name(self) -> &'static str {
        match self {
            BoxProtocol::AnyBox => "any-box",
            BoxProtocol::MergedBox => "merged-box",
        }
    }
}

impl std::str::FromStr for BoxProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "any-box" => Ok(BoxProtocol::AnyBox),
            "merged-box" => Ok(BoxProtocol::MergedBox),
            other => Err(format!("unknown box protocol {other:?} (any-box or merged-box)")),
        }
    }
}

/// Whether `pred` grounds a phrase whose ground truth is `gt` (no prediction
/// or no ground truth: not grounded).
///
/// ```
/// use som_eval::metrics::grounding::{is_hit, BoxProtocol};
/// let gt = [[0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 10.0, 10.0]];
/// assert!(is_hit(Some([0.0, 0.0, 10.0, 10.0]), &gt, BoxProtocol::AnyBox));
/// assert!(!is_hit(Some([0.0, 0.0, 10.0, 10.0]), &gt, BoxProtocol::MergedBox));
/// ```
pub fn is_hit(pred: Option<BoxXywh>, gt: &[BoxXywh], protocol: BoxProtocol) -> bool {
    let Some(p) = pred else {
        return false;
    };
    match protocol {
        BoxProtocol::AnyBox => gt.iter().any(|g| box_iou(p, *g) >= HIT_IOU),
        BoxProtocol::MergedBox => enclosing(gt).is_some_and(|g| box_iou(p, g) >= HIT_IOU),
    }
}

/// Recall@1 over phrases.
///
/// ```
/// use som_eval::metrics::grounding::{BoxProtocol, RecallAt1};
/// let mut r = RecallAt1::new(BoxProtocol::AnyBox);
/// r.add(Some([0.0, 0.0, 10.0, 10.0]), &[[1.0, 1.0, 10.0, 10.0]]);
/// r.add(None, &[[1.0, 1.0, 10.0, 10.0]]);
/// assert_eq!(r.recall(), Some(0.5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecallAt1 {
    /// How multi-box phrases are scored.
    pub protocol: BoxProtocol,
    /// Phrases scored.
    pub phrases: u64,
    /// Phrases grounded.
    pub hits: u64,
}

impl RecallAt1 {
    /// An empty score under `protocol`.
    pub fn new(protocol: BoxProtocol) -> Self {
        Self {
            protocol,
            phrases: 0,
            hits: 0,
        }
    }

    /// Scores one phrase; returns whether it was grounded.
    pub fn add(&mut self, pred: Option<BoxXywh>, gt: &[BoxXywh]) -> bool {
        let hit = is_hit(pred, gt, self.protocol);
        self.phrases += 1;
        self.hits += hit as u64;
        hit
    }

    /// R@1.
    pub fn recall(&self) -> Option<f64> {
        (self.phrases > 0).then(|| self.hits as f64 / self.phrases as f64)
    }
}
