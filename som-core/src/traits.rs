//! The pipeline stages as traits: segment, allocate marks, render.

use image::{DynamicImage, RgbImage};

use crate::error::SomError;
use crate::geometry::ImageSize;
use crate::mark::Mark;
use crate::region::Segmentation;
use crate::timing::StageTiming;

/// Splits an image into regions.
///
/// Implemented by the pure-Rust segmenters, precomputed-region readers and the
/// LibTorch models in `som-segment`, and by anything else that yields masks or
/// boxes.
///
/// # Example
/// ```
/// use image::DynamicImage;
/// use som_core::{BBox, ImageSize, Region, Segmentation, Segmenter, SomError};
///
/// /// One region: the whole image.
/// struct Whole;
/// impl Segmenter for Whole {
///     fn segment(&self, image: &DynamicImage) -> Result<Segmentation, SomError> {
///         let size = ImageSize::new(image.width(), image.height());
///         Segmentation::new(size, vec![Region::from_box(1, size.full_box())])
///     }
/// }
/// let seg = Whole.segment(&DynamicImage::new_rgb8(4, 3))?;
/// assert_eq!(seg.regions()[0].bbox, BBox::new(0, 0, 4, 3));
/// # Ok::<(), SomError>(())
/// ```
pub trait Segmenter {
    /// Segments `image`. The returned segmentation has the image's size.
    ///
    /// # Errors
    /// Whatever stops the segmenter; never panics on a valid image.
    fn segment(&self, image: &DynamicImage) -> Result<Segmentation, SomError>;

    /// Segments `image` and reports the segmenter's own sub-stages (e.g. SAM's
    /// image encoder, mask decoder and post-processing) as [`StageTiming`]s.
    /// The default runs [`Segmenter::segment`] and reports none.
    ///
    /// # Errors
    /// As [`Segmenter::segment`].
    fn segment_timed(&self, image: &DynamicImage) -> Result<(Segmentation, Vec<StageTiming>), SomError> {
        self.segment(image).map(|s| (s, Vec::new()))
    }

    /// A short name for logs and timings.
    fn name(&self) -> &str {
        "segmenter"
    }
}

/// Measures rendered labels, so an allocator can keep label boxes apart.
///
/// # Example
/// ```
/// use som_core::{ImageSize, LabelMeasure};
/// struct Fixed;
/// impl LabelMeasure for Fixed {
///     fn label_size(&self, text: &str, _image: ImageSize, scale: f32) -> (u32, u32) {
///         ((8.0 * scale) as u32 * text.len() as u32, (12.0 * scale) as u32)
///     }
/// }
/// assert_eq!(Fixed.label_size("12", ImageSize::new(100, 100), 1.0), (16, 12));
/// ```
pub trait LabelMeasure {
    /// Width and height in pixels of the label box for `text` on an image of
    /// `image` size, at `scale` times the default label size.
    fn label_size(&self, text: &str, image: ImageSize, scale: f32) -> (u32, u32);

    /// The smallest scale at which labels stay legible (allocators shrink
    /// labels down to this before accepting overlaps).
    fn min_scale(&self, _image: ImageSize) -> f32 {
        0.6
    }
}

/// Chooses one mark per region: its number or letter, the anchor pixel and
/// where the label goes.
///
/// Marks are returned ordered by id; mark ids number regions largest first
/// (see [`Segmentation::order_by_area`]).
pub trait MarkAllocator {
    /// Allocates marks for `segmentation`, measuring labels with `labels`.
    ///
    /// # Errors
    /// [`SomError::Region`] for regions that cannot carry a mark (empty ones).
    fn allocate(&self, segmentation: &Segmentation, labels: &dyn LabelMeasure)
        -> Result<Vec<Mark>, SomError>;
}

/// Draws marks (and optionally tints, contours and boxes) onto an image.
pub trait MarkRenderer: LabelMeasure {
    /// Renders `marks` for `segmentation` onto a copy of `image`.
    ///
    /// # Errors
    /// [`SomError::MaskSize`] when the image and segmentation sizes differ.
    fn render(
        &self,
        image: &RgbImage,
        segmentation: &Segmentation,
        marks: &[Mark],
    ) -> Result<RgbImage, SomError>;
}

macro_rules! forward_impls {
    ($($wrapper:ty),*) => {$(
        impl<T: Segmenter + ?Sized> Segmenter for $wrapper {
            fn segment(&self, image: &DynamicImage) -> Result<Segmentation, SomError> {
                (**self).segment(image)
            }
            fn segment_timed(&self, image: &DynamicImage) -> Result<(Segmentation, Vec<StageTiming>), SomError> {
                (**self).segment_timed(image)
            }
            fn name(&self) -> &str {
                (**self).name()
            }
        }
        impl<T: LabelMeasure + ?Sized> LabelMeasure for $wrapper {
            fn label_size(&self, text: &str, image: ImageSize, scale: f32) -> (u32, u32) {
                (**self).label_size(text, image, scale)
            }
            fn min_scale(&self, image: ImageSize) -> f32 {
                (**self).min_scale(image)
            }
        }
        impl<T: MarkAllocator + ?Sized> MarkAllocator for $wrapper {
            fn allocate(&self, segmentation: &Segmentation, labels: &dyn LabelMeasure) -> Result<Vec<Mark>, SomError> {
                (**self).allocate(segmentation, labels)
            }
        }
        impl<T: MarkRenderer + ?Sized> MarkRenderer for $wrapper {
            fn render(&self, image: &RgbImage, segmentation: &Segmentation, marks: &[Mark]) -> Result<RgbImage, SomError> {
                (**self).render(image, segmentation, marks)
            }
        }
    )*};
}

forward_impls!(&T, Box<T>, std::sync::Arc<T>);
