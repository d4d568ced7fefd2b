//! # som-eval
//!
//! Evaluation for Set-of-Mark prompting: the metrics of the SoM paper, loaders for
//! the datasets it reports on, and a resumable runner that drives any
//! [`som_core::GroundingModel`] over a dataset.
//!
//! ## Should I be using this crate?
//!
//! Use it to measure a pipeline (segmenter + marks + model) the way the paper
//! does. This release holds the mask metrics that everything else is built
//! on ([`mask_iou`], [`mean_iou`]); dataset loaders (COCO, RefCOCOg, ADE20K,
//! Flickr30K Entities, DAVIS 2017, SoM-Bench), task metrics (REC Acc@0.5,
//! Recall@1, J&F, open-vocabulary precision) and the runner arrive with the
//! evaluation work.
//!
//! ## Crate features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | *(none)* | | `som-eval` has no optional features yet |
//!
//! **Architecture Invariant:** models are driven through `dyn GroundingModel`
//! from `som-core`; this crate never depends on `som-lmm`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use som_core::{Mask, SomError};

/// Intersection over union of two masks, as pycocotools' `iou` with
/// `iscrowd = 0` (0 when both are empty).
///
/// # Errors
/// [`SomError::MaskSize`] when the masks cover images of different sizes.
///
/// # Example
/// ```
/// use som_core::{BBox, ImageSize, Mask};
/// let size = ImageSize::new(10, 10);
/// let a = Mask::from_box(size, BBox::new(0, 0, 4, 4));
/// let b = Mask::from_box(size, BBox::new(0, 0, 4, 2));
/// assert_eq!(som_eval::mask_iou(&a, &b)?, 0.5);
/// # Ok::<(), som_core::SomError>(())
/// ```
pub fn mask_iou(a: &Mask, b: &Mask) -> Result<f64, SomError> {
    a.iou(b)
}

/// Mean IoU over pairs of (prediction, ground truth); `None` for no pairs.
///
/// # Errors
/// [`SomError::MaskSize`] for a pair of different sizes.
///
/// # Example
/// ```
/// use som_core::{BBox, ImageSize, Mask};
/// let size = ImageSize::new(10, 10);
/// let a = Mask::from_box(size, BBox::new(0, 0, 4, 4));
/// let pairs = [(a.clone(), a.clone()), (a, Mask::empty(size))];
/// assert_eq!(som_eval::mean_iou(&pairs)?, Some(0.5));
/// # Ok::<(), som_core::SomError>(())
/// ```
pub fn mean_iou(pairs: &[(Mask, Mask)]) -> Result<Option<f64>, SomError> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut sum = 0.0;
    for (p, g) in pairs {
        sum += p.iou(g)?;
    }
    Ok(Some(sum / pairs.len() as f64))
}
