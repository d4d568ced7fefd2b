//! The result of marking an image.

use image::RgbImage;

use crate::mark::Mark;
use crate::region::{Region, Segmentation};

/// A rendered image together with its marks and the regions they name.
///
/// Every mark names a region of the segmentation ([`MarkedImage::new`] checks
/// it and the fields are private), so looking a mark's region up never fails
/// for marks of this image.
///
/// # Example
/// ```
/// use image::RgbImage;
/// use som_core::{BBox, ImageSize, Mark, MarkedImage, Point, Region, Segmentation};
/// let size = ImageSize::new(8, 8);
/// let seg = Segmentation::new(size, vec![Region::from_box(42, BBox::new(0, 0, 4, 4))])?;
/// let marks = vec![Mark::new(1, "1", Point::new(2, 2), 0, BBox::new(0, 0, 4, 4))];
/// let marked = MarkedImage::new(RgbImage::new(8, 8), marks, seg)?;
/// assert_eq!(marked.region_by_text("1").map(|r| r.id), Some(42));
/// assert!(marked.mark_by_text("2").is_none());
/// // A mark from elsewhere that names no region of this image gives `None`.
/// let stranger = Mark::new(9, "9", Point::new(0, 0), 5, BBox::new(0, 0, 1, 1));
/// assert!(marked.region_of(&stranger).is_none());
/// # Ok::<(), som_core::SomError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MarkedImage {
    image: RgbImage,
    marks: Vec<Mark>,
    segmentation: Segmentation,
}

impl MarkedImage {
    /// Bundles an image, its marks and their segmentation.
    ///
    /// # Errors
    /// [`crate::SomError::Region`] when a mark refers to a region index that
    /// does not exist.
    pub fn new(
        image: RgbImage,
        marks: Vec<Mark>,
        segmentation: Segmentation,
    ) -> Result<Self, crate::SomError> {
        if let Some(m) = marks.iter().find(|m| m.region >= segmentation.len()) {
            return Err(crate::SomError::Region {
                id: m.region as u64,
                message: format!("mark {} refers to a region that does not exist", m.text),
            });
        }
        Ok(Self {
            image,
            marks,
            segmentation,
        })
    }

    /// The image with marks drawn on it.
    pub fn image(&self) -> &RgbImage {
        &self.image
    }

    /// The marks, ordered by id.
    pub fn marks(&self) -> &[Mark] {
        &self.marks
    }

    /// The regions the marks refer to.
    pub fn segmentation(&self) -> &Segmentation {
        &self.segmentation
    }

    /// The image, marks and segmentation, giving up the bundle.
    pub fn into_parts(self) -> (RgbImage, Vec<Mark>, Segmentation) {
        (self.image, self.marks, self.segmentation)
    }

    /// The mark whose text is `text` (case-insensitive for letters).
    pub fn mark_by_text(&self, text: &str) -> Option<&Mark> {
        self.marks.iter().find(|m| m.text.eq_ignore_ascii_case(text))
    }

    /// The mark with id `id`.
    pub fn mark_by_id(&self, id: u32) -> Option<&Mark> {
        self.marks.iter().find(|m| m.id == id)
    }

    /// The region a mark names; `None` only for a mark that is not of this
    /// image and names a region index it does not have.
    pub fn region_of(&self, mark: &Mark) -> Option<&Region> {
        self.segmentation.region(mark.region)
    }

    /// The region named by the mark with text `text`.
    pub fn region_by_text(&self, text: &str) -> Option<&Region> {
        self.mark_by_text(text).and_then(|m| self.region_of(m))
    }
}
