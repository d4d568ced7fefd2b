//! # som-eval
//!
//! Evaluation for Set-of-Mark prompting: the metrics of the SoM paper, loaders for
//! the datasets it reports on, and a resumable runner that drives any
//! [`som_core::GroundingModel`] over a dataset.
//!
//! ## Should I be using this crate?
//!
//! Use it to measure a pipeline (segmenter + marks + model) the way the paper
//! does, or to score predictions you already have with the metric each
//! benchmark is reported with.
//!
//! - [`metrics`]: COCO mask IoU/area/box/merge equal to pycocotools; mIoU and
//!   open-vocabulary precision; REC Acc@0.5, RES mIoU/cIoU; Flickr30K Recall@1
//!   (any-box or merged-box); DAVIS 2017 J, F and the J&F table equal to the
//!   DAVIS toolkit.
//! - [`data`]: loaders for COCO (instances, panoptic), RefCOCOg (umd; the
//!   refs pickle read in Rust), ADE20K, Flickr30K Entities, DAVIS 2017 and
//!   SoM-Bench, each reading the benchmark's own files and naming the file and
//!   item of anything malformed; where to download each is in [`data`].
//! - [`runner`]: any `GroundingModel` with any segmenter, allocator and
//!   renderer over a seeded sample, with bounded concurrency, a request rate
//!   limit and a dry run; [`records`] appends one JSON line per finished item
//!   and resumes a killed run with nothing lost and nothing repeated.
//! - [`report`]: re-scores recorded answers with no network (the rule for
//!   answers naming several marks is selectable) into the paper's table;
//!   [`score`]: scores predictions already on disk in each benchmark's format.
//! - [`LabelMap`]: label maps read from indexed, grayscale and RGB-id PNGs.
//!
//! ## Example
//!
//! Score DAVIS 2017 results (a folder of indexed PNGs per sequence), as the
//! DAVIS toolkit does:
//!
//! ```
//! use som_eval::{data::{OpenOptions, Task}, report::ScoreOptions, score::score};
//! let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/eval/davis"));
//! let summary = score(Task::Davis, root, &root.join("pred"), &OpenOptions::default(), ScoreOptions::default())?;
//! let jf = summary.metric("J&F-Mean").unwrap();
//! assert!(jf > 0.5 && jf < 0.52);
//! println!("{}", summary.table());
//! # Ok::<(), som_eval::EvalError>(())
//! ```
//!
//! ## Crate features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | *(none)* | | `som-eval` has no optional features yet |
//!
//! **Architecture Invariant:** models are driven through `dyn GroundingModel`
//! from `som-core`, prompts and answer splitting through the caller's
//! [`runner::Prompter`]; this crate never depends on `som-lmm` (only its tests
//! do, for the mock model and the answer parser).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod data;
pub mod error;
pub mod labelmap;
pub mod metrics;
pub mod records;
pub mod report;
pub mod runner;
pub mod score;

pub use error::{EvalError, Result};
pub use labelmap::LabelMap;

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
