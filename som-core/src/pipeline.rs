//! Composing a segmenter, an allocator and a renderer.

use std::time::Instant;

use image::DynamicImage;

use crate::error::SomError;
use crate::geometry::ImageSize;
use crate::marked::MarkedImage;
use crate::region::Segmentation;
use crate::traits::{MarkAllocator, MarkRenderer, Segmenter};

/// How long one pipeline stage took.
///
/// ```
/// use som_core::StageTiming;
/// let t = StageTiming { stage: "allocate".into(), ms: 1.5 };
/// assert_eq!(t.to_json_line(), r#"{"stage":"allocate","ms":1.5}"#);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct StageTiming {
    /// Stage name: `segment`, `allocate`, `render`…
    pub stage: String,
    /// Wall-clock milliseconds.
    pub ms: f64,
}

impl StageTiming {
    /// Times `f` as stage `stage`.
    pub fn measure<T>(stage: &str, f: impl FnOnce() -> T) -> (T, StageTiming) {
        let t0 = Instant::now();
        let out = f();
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        (
            out,
            StageTiming {
                stage: stage.to_string(),
                ms,
            },
        )
    }

    /// The `--timings` line: `{"stage":"allocate","ms":1.93}`.
    pub fn to_json_line(&self) -> String {
        // Written by hand so the keys keep this order (serde_json's map is sorted).
        let stage = serde_json::Value::String(self.stage.clone());
        let ms = serde_json::json!((self.ms * 1000.0).round() / 1000.0);
        format!("{{\"stage\":{stage},\"ms\":{ms}}}")
    }
}

/// A Set-of-Mark pipeline: segment → allocate marks → render.
///
/// Any three implementations compose; `som-marks` provides the default
/// allocator and renderer, `som-segment` the segmenters.
///
/// # Example
/// ```
/// use image::{DynamicImage, RgbImage};
/// use som_core::*;
///
/// struct Whole;
/// impl Segmenter for Whole {
///     fn segment(&self, image: &DynamicImage) -> Result<Segmentation, SomError> {
///         let size = ImageSize::new(image.width(), image.height());
///         Segmentation::new(size, vec![Region::from_box(1, size.full_box())])
///     }
/// }
/// struct Centre;
/// impl MarkAllocator for Centre {
///     fn allocate(&self, seg: &Segmentation, _: &dyn LabelMeasure) -> Result<Vec<Mark>, SomError> {
///         Ok(seg.regions.iter().enumerate()
///             .map(|(i, r)| Mark::new(i as u32 + 1, (i + 1).to_string(), r.bbox.center(), i, r.bbox))
///             .collect())
///     }
/// }
/// struct Plain;
/// impl LabelMeasure for Plain {
///     fn label_size(&self, _: &str, _: ImageSize, _: f32) -> (u32, u32) { (1, 1) }
/// }
/// impl MarkRenderer for Plain {
///     fn render(&self, image: &RgbImage, _: &Segmentation, _: &[Mark]) -> Result<RgbImage, SomError> {
///         Ok(image.clone())
///     }
/// }
///
/// let pipeline = SomPipeline::new(Whole, Centre, Plain);
/// let marked = pipeline.mark(&DynamicImage::new_rgb8(6, 4))?;
/// assert_eq!(marked.marks[0].anchor, Point::new(3, 2));
/// # Ok::<(), SomError>(())
/// ```
#[derive(Debug, Clone)]
pub struct SomPipeline<S, A, R> {
    /// The segmenter.
    pub segmenter: S,
    /// The mark allocator.
    pub allocator: A,
    /// The renderer.
    pub renderer: R,
}

impl<S: Segmenter, A: MarkAllocator, R: MarkRenderer> SomPipeline<S, A, R> {
    /// Composes the three stages.
    pub fn new(segmenter: S, allocator: A, renderer: R) -> Self {
        Self {
            segmenter,
            allocator,
            renderer,
        }
    }

    /// Segments, allocates and renders.
    ///
    /// # Errors
    /// The first stage's error.
    pub fn mark(&self, image: &DynamicImage) -> Result<MarkedImage, SomError> {
        self.mark_timed(image).map(|(m, _)| m)
    }

    /// Like [`SomPipeline::mark`], also returning each stage's time.
    ///
    /// # Errors
    /// The first stage's error.
    pub fn mark_timed(&self, image: &DynamicImage) -> Result<(MarkedImage, Vec<StageTiming>), SomError> {
        let (seg, t) = StageTiming::measure("segment", || self.segmenter.segment(image));
        let (marked, mut rest) = self.mark_regions(image, seg?)?;
        rest.insert(0, t);
        Ok((marked, rest))
    }

    /// Allocates and renders marks for regions that are already known
    /// (the segmenter is not used).
    ///
    /// # Errors
    /// [`SomError::MaskSize`] when the segmentation is not of the image's size,
    /// or the allocator's / renderer's error.
    pub fn mark_regions(
        &self,
        image: &DynamicImage,
        segmentation: Segmentation,
    ) -> Result<(MarkedImage, Vec<StageTiming>), SomError> {
        let size = ImageSize::new(image.width(), image.height());
        if segmentation.size != size {
            return Err(SomError::MaskSize {
                expected: size,
                found: format!("a segmentation of {}", segmentation.size),
            });
        }
        let (marks, t_alloc) = StageTiming::measure("allocate", || {
            self.allocator.allocate(&segmentation, &self.renderer)
        });
        let marks = marks?;
        let rgb = image.to_rgb8();
        let (rendered, t_render) =
            StageTiming::measure("render", || self.renderer.render(&rgb, &segmentation, &marks));
        let marked = MarkedImage::new(rendered?, marks, segmentation)?;
        Ok((marked, vec![t_alloc, t_render]))
    }
}
