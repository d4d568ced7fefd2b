//! Semantic segmentation: mIoU from a confusion matrix, and the naming
//! precision of open-vocabulary segmentation.
//!
//! The confusion matrix follows mmsegmentation's `intersect_and_union`, the
//! implementation ADE20K-150 results are reported with: ground-truth pixels
//! equal to the ignore label do not count; with `reduce_zero_label` (the
//! ADE20K convention) the stored label 0 ("other") is ignored and stored label
//! `k` is class `k - 1`; a predicted value outside `0..num_classes` means "no
//! class" (a pixel no region covers), which is a miss for the ground-truth
//! class and a false positive for none. Areas are summed over all images before
//! dividing (dataset-level IoU, not a mean of per-image IoUs); a class that never
//! occurs in ground truth or prediction has no IoU and is left out of the mean.

use crate::error::{EvalError, Result};

/// How stored annotation values map to classes.
///
/// ```
/// use som_eval::metrics::semseg::LabelConvention;
/// let ade = LabelConvention::ADE20K;
/// assert_eq!((ade.class_of(0), ade.class_of(1), ade.class_of(150), ade.class_of(255)), (None, Some(0), Some(149), None));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelConvention {
    /// Number of classes.
    pub num_classes: u32,
    /// The stored value that marks pixels to ignore.
    pub ignore_index: u32,
    /// Stored 0 is ignored and stored `k` is class `k - 1` (ADE20K).
    pub reduce_zero_label: bool,
}

impl LabelConvention {
    /// ADE20K scene parsing, 150 classes: 0 = "other" (ignored), 1..=150 the classes.
    pub const ADE20K: LabelConvention = LabelConvention {
        num_classes: 150,
        ignore_index: 255,
        reduce_zero_label: true,
    };

    /// `num_classes` classes stored as `0..num_classes`, 255 ignored.
    pub fn plain(num_classes: u32) -> Self {
        Self {
            num_classes,
            ignore_index: 255,
            reduce_zero_label: false,
        }
    }

    /// The class of a stored ground-truth value, `None` for ignored pixels;
    /// values that are neither give `Some(v)` with `v >= num_classes`.
    pub fn class_of(&self, stored: u32) -> Option<u32> {
        if stored == self.ignore_index || (self.reduce_zero_label && stored == 0) {
            return None;
        }
        Some(if self.reduce_zero_label {
            stored - 1
        } else {
            stored
        })
    }
}

/// Pixel counts by (ground-truth class, predicted class); predictions outside
/// the classes go to one extra "no class" column.
///
/// ```
/// use som_eval::metrics::semseg::{ConfusionMatrix, LabelConvention};
/// let mut cm = ConfusionMatrix::new(2);
/// // ground truth (stored values) and prediction (class indices; 255 = no class)
/// cm.add(&LabelConvention::plain(2), &[0, 0, 1, 1, 255], &[0, 1, 1, 255, 0], "image 1")?;
/// assert_eq!(cm.iou(), vec![Some(0.5), Some(1.0 / 3.0)]);
/// assert_eq!(cm.mean_iou(), Some((0.5 + 1.0 / 3.0) / 2.0));
/// # Ok::<(), som_eval::EvalError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    num_classes: usize,
    /// Row-major, `num_classes` rows of `num_classes + 1` columns.
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An empty matrix for `num_classes` classes.
    pub fn new(num_classes: u32) -> Self {
        let n = num_classes as usize;
        Self {
            num_classes: n,
            counts: vec![0; n * (n + 1)],
        }
    }

    /// Number of classes.
    pub fn num_classes(&self) -> u32 {
        self.num_classes as u32
    }

    /// Adds one image: `gt` holds stored annotation values, `pred` class
    /// indices (anything `>= num_classes` is "no class"), both row-major.
    ///
    /// # Errors
    /// [`EvalError::Invalid`] when the two have different lengths or the
    /// convention has another number of classes; [`EvalError::Dataset`] naming
    /// `what` and the pixel when a ground-truth value is neither ignored nor a
    /// class.
    pub fn add(&mut self, convention: &LabelConvention, gt: &[u32], pred: &[u32], what: &str) -> Result<()> {
        if convention.num_classes as usize != self.num_classes {
            return Err(EvalError::invalid(
                "label convention",
                format!(
                    "{} classes for a matrix of {}",
                    convention.num_classes, self.num_classes
                ),
            ));
        }
        if gt.len() != pred.len() {
            return Err(EvalError::invalid(
                "prediction",
                format!(
                    "{what}: {} predicted pixels for {} annotated",
                    pred.len(),
                    gt.len()
                ),
            ));
        }
        let n = self.num_classes;
        for (i, (&g, &p)) in gt.iter().zip(pred).enumerate() {
            let Some(c) = convention.class_of(g) else {
                continue;
            };
            if c as usize >= n {
                return Err(EvalError::dataset(
                    what,
                    format!("pixel {i}"),
                    format!("annotation value {g} is neither ignored nor one of the {n} classes"),
                ));
            }
            let col = (p as usize).min(n);
            self.counts[c as usize * (n + 1) + col] += 1;
        }
        Ok(())
    }

    /// Adds another matrix's counts (same number of classes).
    ///
    /// # Errors
    /// [`EvalError::Invalid`] when the class counts differ.
    pub fn merge(&mut self, other: &ConfusionMatrix) -> Result<()> {
        if other.num_classes != self.num_classes {
            return Err(EvalError::invalid(
                "confusion matrix",
                format!("{} classes merged into {}", other.num_classes, self.num_classes),
            ));
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        Ok(())
    }

    /// Pixels of ground-truth class `gt` predicted as `pred` (`None`: no class).
    pub fn count(&self, gt: u32, pred: Option<u32>) -> u64 {
        let n = self.num_classes;
        let col = pred.map_or(n, |p| (p as usize).min(n));
        self.counts.get(gt as usize * (n + 1) + col).copied().unwrap_or(0)
    }

    fn per_class(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        let n = self.num_classes;
        (0..n).map(move |c| {
            let tp = self.counts[c * (n + 1) + c];
            let label: u64 = self.counts[c * (n + 1)..(c + 1) * (n + 1)].iter().sum();
            let pred: u64 = (0..n).map(|r| self.counts[r * (n + 1) + c]).sum();
            (tp, pred, label)
        })
    }

    /// IoU per class: intersection over union of the pixels; `None` where the
    /// class is in neither ground truth nor prediction.
    pub fn iou(&self) -> Vec<Option<f64>> {
        self.per_class()
            .map(|(tp, pred, label)| {
                let union = pred + label - tp;
                (union > 0).then(|| tp as f64 / union as f64)
            })
            .collect()
    }

    /// Mean of the defined per-class IoUs (mmsegmentation's `mIoU`); `None` if none is.
    pub fn mean_iou(&self) -> Option<f64> {
        mean_defined(&self.iou())
    }

    /// Per-class accuracy (recall): correct pixels over ground-truth pixels.
    pub fn accuracy(&self) -> Vec<Option<f64>> {
        self.per_class()
            .map(|(tp, _, label)| (label > 0).then(|| tp as f64 / label as f64))
            .collect()
    }

    /// Mean of the defined per-class accuracies (`mAcc`).
    pub fn mean_accuracy(&self) -> Option<f64> {
        mean_defined(&self.accuracy())
    }

    /// Correct pixels over all counted pixels (`aAcc`).
    pub fn pixel_accuracy(&self) -> Option<f64> {
        let (tp, total) = self
            .per_class()
            .fold((0u64, 0u64), |(a, b), (tp, _, label)| (a + tp, b + label));
        (total > 0).then(|| tp as f64 / total as f64)
    }
}

fn mean_defined(values: &[Option<f64>]) -> Option<f64> {
    let defined: Vec<f64> = values.iter().flatten().copied().collect();
    (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64)
}

/// A class name as compared: lowercase, single spaces, no surrounding
/// punctuation or quotes.
///
/// ```
/// assert_eq!(som_eval::metrics::semseg::normalize_name("  Traffic   Light. "), "traffic light");
/// ```
pub fn normalize_name(name: &str) -> String {
    let lower = name.to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    words
        .join(" ")
        .trim_matches(|c: char| c.is_ascii_punctuation() || c == '“' || c == '”' || c == '‘' || c == '’')
        .trim()
        .to_string()
}

/// Open-vocabulary naming of marked regions: how many marks the model named,
/// and how many of those names are right.
///
/// `precision` (the SoM paper's metric for COCO and ADE20K open-vocabulary
/// segmentation) is correct names over named marks; `accuracy` counts marks
/// the model left unnamed as wrong. A name is right when it equals, after
/// [`normalize_name`], one of the ground-truth class's names (ADE20K classes
/// have synonyms: `"building, edifice"`).
///
/// ```
/// use som_eval::metrics::semseg::NamingScore;
/// let mut s = NamingScore::default();
/// s.add(&["building", "edifice"], Some("Edifice"));
/// s.add(&["dog"], Some("cat"));
/// s.add(&["sky"], None);
/// assert_eq!((s.marks, s.named, s.correct), (3, 2, 1));
/// assert_eq!(s.precision(), Some(0.5));
/// assert_eq!(s.accuracy(), Some(1.0 / 3.0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NamingScore {
    /// Marks scored.
    pub marks: u64,
    /// Marks the model gave a name.
    pub named: u64,
    /// Names that were right.
    pub correct: u64,
}

impl NamingScore {
    /// Scores one mark whose ground truth has the names `truth`.
    pub fn add<S: AsRef<str>>(&mut self, truth: &[S], named: Option<&str>) {
        self.marks += 1;
        if let Some(name) = named {
            self.named += 1;
            let n = normalize_name(name);
            if truth.iter().any(|t| normalize_name(t.as_ref()) == n) {
                self.correct += 1;
            }
        }
    }

    /// Correct names over named marks.
    pub fn precision(&self) -> Option<f64> {
        (self.named > 0).then(|| self.correct as f64 / self.named as f64)
    }

    /// Correct names over all marks.
    pub fn accuracy(&self) -> Option<f64> {
        (self.marks > 0).then(|| self.correct as f64 / self.marks as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_ground_truth_is_an_error_naming_the_pixel() {
        let mut cm = ConfusionMatrix::new(3);
        let e = cm
            .add(&LabelConvention::plain(3), &[0, 7], &[0, 0], "a.png")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.png: pixel 1: annotation value 7 is neither ignored nor one of the 3 classes"
        );
        assert!(cm.add(&LabelConvention::plain(3), &[0], &[0, 1], "a").is_err());
        assert!(cm.add(&LabelConvention::ADE20K, &[0], &[0], "a").is_err());
    }

    #[test]
    fn empty_matrix_has_no_means() {
        let cm = ConfusionMatrix::new(4);
        assert_eq!(cm.mean_iou(), None);
        assert_eq!(cm.pixel_accuracy(), None);
        assert_eq!(NamingScore::default().precision(), None);
    }
}
