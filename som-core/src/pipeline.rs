//! Composing a segmenter, an allocator and a renderer.

use image::DynamicImage;

use crate::error::SomError;
use crate::geometry::ImageSize;
use crate::marked::MarkedImage;
use crate::region::Segmentation;
use crate::timing::StageTiming;
use crate::traits::{MarkAllocator, MarkRenderer, Segmenter};

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
///         Ok(seg.regions().iter().enumerate()
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
/// assert_eq!(marked.marks()[0].anchor, Point::new(3, 2));
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
    /// Composes the three stages. Build them once and run every image through
    /// the same pipeline: a segmenter that loads model weights loads them once.
    pub fn new(segmenter: S, allocator: A, renderer: R) -> Self {
        Self {
            segmenter,
            allocator,
            renderer,
        }
    }

    /// Segments, allocates and renders.
    ///
    /// An image in which the segmenter finds no regions is a valid result: no
    /// marks, and the image rendered unmarked.
    ///
    /// # Errors
    /// The first stage's error.
    pub fn mark(&self, image: &DynamicImage) -> Result<MarkedImage, SomError> {
        self.mark_timed(image).map(|(m, _)| m)
    }

    /// Like [`SomPipeline::mark`], also returning each stage's time: `segment`
    /// (followed by the segmenter's own sub-stages, if it reports any),
    /// `allocate`, `render`.
    ///
    /// # Errors
    /// The first stage's error.
    pub fn mark_timed(&self, image: &DynamicImage) -> Result<(MarkedImage, Vec<StageTiming>), SomError> {
        let (segmentation, mut timings) = self.segment_timed(image)?;
        let (marked, rest) = self.mark_regions(image, segmentation)?;
        timings.extend(rest);
        Ok((marked, timings))
    }

    /// Runs only the segmenter, timed as the `segment` stage followed by the
    /// segmenter's own sub-stages (see [`Segmenter::segment_timed`]).
    ///
    /// # Errors
    /// The segmenter's error, or [`SomError::MaskSize`] when it returns a
    /// segmentation of another size than the image's.
    pub fn segment_timed(&self, image: &DynamicImage) -> Result<(Segmentation, Vec<StageTiming>), SomError> {
        let (result, t) = StageTiming::measure("segment", || self.segmenter.segment_timed(image));
        let (segmentation, sub_stages) = result?;
        check_size(image, &segmentation)?;
        let mut timings = vec![t];
        timings.extend(sub_stages);
        Ok((segmentation, timings))
    }

    /// Allocates and renders marks for regions that are already known
    /// (the segmenter is not used); timed as `allocate` and `render`.
    ///
    /// # Errors
    /// [`SomError::MaskSize`] when the segmentation is not of the image's size,
    /// or the allocator's / renderer's error.
    pub fn mark_regions(
        &self,
        image: &DynamicImage,
        segmentation: Segmentation,
    ) -> Result<(MarkedImage, Vec<StageTiming>), SomError> {
        check_size(image, &segmentation)?;
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

fn check_size(image: &DynamicImage, segmentation: &Segmentation) -> Result<(), SomError> {
    let size = ImageSize::new(image.width(), image.height());
    if segmentation.size() != size {
        return Err(SomError::MaskSize {
            expected: size,
            found: format!("a segmentation of {}", segmentation.size()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BBox, LabelMeasure, Mark, Region};
    use image::RgbImage;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Regions from a fixed list, counting how often it runs.
    struct Fixed(Vec<BBox>, AtomicUsize);
    impl Segmenter for Fixed {
        fn segment(&self, image: &DynamicImage) -> Result<Segmentation, SomError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            let size = ImageSize::new(image.width(), image.height());
            let regions = self
                .0
                .iter()
                .enumerate()
                .map(|(i, b)| Region::from_box(i as u64 + 1, *b));
            Segmentation::new(size, regions.collect())
        }
        fn segment_timed(&self, image: &DynamicImage) -> Result<(Segmentation, Vec<StageTiming>), SomError> {
            let seg = self.segment(image)?;
            Ok((
                seg,
                vec![StageTiming {
                    stage: "inner".into(),
                    ms: 0.0,
                }],
            ))
        }
    }
    struct Centre;
    impl MarkAllocator for Centre {
        fn allocate(&self, seg: &Segmentation, _: &dyn LabelMeasure) -> Result<Vec<Mark>, SomError> {
            Ok(seg
                .regions()
                .iter()
                .enumerate()
                .map(|(i, r)| Mark::new(i as u32 + 1, (i + 1).to_string(), r.bbox.center(), i, r.bbox))
                .collect())
        }
    }
    /// Paints every marked region's box white.
    struct Paint;
    impl LabelMeasure for Paint {
        fn label_size(&self, _: &str, _: ImageSize, _: f32) -> (u32, u32) {
            (1, 1)
        }
    }
    impl MarkRenderer for Paint {
        fn render(&self, image: &RgbImage, seg: &Segmentation, marks: &[Mark]) -> Result<RgbImage, SomError> {
            let mut out = image.clone();
            for m in marks {
                let b = seg.regions()[m.region].bbox;
                for y in b.y..b.y + b.height {
                    for x in b.x..b.x + b.width {
                        out.put_pixel(x, y, image::Rgb([255, 255, 255]));
                    }
                }
            }
            Ok(out)
        }
    }

    #[test]
    fn stages_are_timed_in_order_with_sub_stages_after_segment() {
        let p = SomPipeline::new(
            Fixed(vec![BBox::new(0, 0, 2, 2)], AtomicUsize::new(0)),
            Centre,
            Paint,
        );
        let (marked, timings) = p.mark_timed(&DynamicImage::new_rgb8(4, 4)).unwrap();
        let stages: Vec<&str> = timings.iter().map(|t| t.stage.as_str()).collect();
        assert_eq!(stages, ["segment", "inner", "allocate", "render"]);
        assert_eq!(marked.marks().len(), 1);
        assert_eq!(marked.image().get_pixel(1, 1).0, [255, 255, 255]);
        assert_eq!(marked.image().get_pixel(3, 3).0, [0, 0, 0]);
    }

    #[test]
    fn one_segmenter_serves_every_image() {
        let p = SomPipeline::new(
            Fixed(vec![BBox::new(0, 0, 1, 1)], AtomicUsize::new(0)),
            Centre,
            Paint,
        );
        for _ in 0..3 {
            p.mark(&DynamicImage::new_rgb8(3, 3)).unwrap();
        }
        assert_eq!(p.segmenter.1.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn no_regions_gives_no_marks_and_the_image_unmarked() {
        let p = SomPipeline::new(Fixed(vec![], AtomicUsize::new(0)), Centre, Paint);
        let image = DynamicImage::ImageRgb8(RgbImage::from_pixel(5, 4, image::Rgb([7, 8, 9])));
        let marked = p.mark(&image).unwrap();
        assert!(marked.marks().is_empty() && marked.segmentation().is_empty());
        assert_eq!(marked.image(), &image.to_rgb8());
    }

    #[test]
    fn a_segmentation_of_another_size_is_refused() {
        let p = SomPipeline::new(Fixed(vec![], AtomicUsize::new(0)), Centre, Paint);
        let seg = Segmentation::empty(ImageSize::new(9, 9));
        let e = p.mark_regions(&DynamicImage::new_rgb8(4, 4), seg).unwrap_err();
        assert!(matches!(e, SomError::MaskSize { .. }), "{e}");
    }
}
