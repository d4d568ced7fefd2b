//! Regions (a mask or a box, plus metadata) and whole-image segmentations.

use std::collections::BTreeMap;

use crate::error::SomError;
use crate::geometry::{BBox, ImageSize};
use crate::mask::Mask;

/// One region of an image: a mask (or only a box, for UI elements and
/// detections) with optional score, label and free-form metadata.
///
/// # Example
/// ```
/// use som_core::{BBox, ImageSize, Mask, Region};
/// let size = ImageSize::new(100, 80);
/// let r = Region::from_mask(7, Mask::from_box(size, BBox::new(10, 10, 20, 5))).with_label("button");
/// assert_eq!(r.area(), 100);
/// assert_eq!(r.bbox, BBox::new(10, 10, 20, 5));
/// let b = Region::from_box(8, BBox::new(0, 0, 4, 4));
/// assert!(b.mask.is_none());
/// assert_eq!(b.area(), 16);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// Identifier, unique within a [`Segmentation`] (COCO annotation id, SAM record index…).
    pub id: u64,
    /// The region's pixels; `None` for box-only regions.
    pub mask: Option<Mask>,
    /// The bounding box (the mask's tight box when there is a mask).
    pub bbox: BBox,
    /// Confidence, if the source gave one.
    pub score: Option<f64>,
    /// Category or caption, if known.
    pub label: Option<String>,
    /// Source-specific metadata (e.g. SAM's `predicted_iou`, `stability_score`),
    /// kept sorted so output is deterministic.
    pub source: BTreeMap<String, serde_json::Value>,
}

impl Region {
    /// A region from a mask; the box is the mask's tight box.
    pub fn from_mask(id: u64, mask: Mask) -> Self {
        Self {
            id,
            bbox: mask.bbox(),
            mask: Some(mask),
            score: None,
            label: None,
            source: BTreeMap::new(),
        }
    }

    /// A box-only region.
    pub fn from_box(id: u64, bbox: BBox) -> Self {
        Self {
            id,
            mask: None,
            bbox,
            score: None,
            label: None,
            source: BTreeMap::new(),
        }
    }

    /// The same region with a label.
    #[must_use]
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// The same region with a score.
    #[must_use]
    pub fn with_score(mut self, score: f64) -> Self {
        self.score = Some(score);
        self
    }

    /// Pixel count: the mask's area, or the box's for box-only regions.
    pub fn area(&self) -> u64 {
        match &self.mask {
            Some(m) => m.area(),
            None => self.bbox.area(),
        }
    }

    /// The region as a mask: its own, or one filled from its box.
    pub fn to_mask(&self, size: ImageSize) -> Mask {
        match &self.mask {
            Some(m) => m.clone(),
            None => Mask::from_box(size, self.bbox),
        }
    }
}

/// The regions of one image, in a fixed order.
///
/// A `Segmentation` is always valid: every mask has the image's size, every
/// box lies inside the image, and region ids are unique. Its fields are
/// private, so every one was built by [`Segmentation::new`] (which checks) or
/// [`Segmentation::empty`], and code that reads it needs no checks of its own.
///
/// ```
/// use som_core::{BBox, ImageSize, Mask, Region, Segmentation};
/// let size = ImageSize::new(10, 10);
/// let seg = Segmentation::new(size, vec![Region::from_mask(1, Mask::from_box(size, BBox::new(0, 0, 2, 2)))])?;
/// assert_eq!(seg.len(), 1);
/// let wrong = Region::from_mask(2, Mask::from_box(ImageSize::new(5, 5), BBox::new(0, 0, 2, 2)));
/// assert!(Segmentation::new(size, vec![wrong]).is_err());
/// # Ok::<(), som_core::SomError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Segmentation {
    size: ImageSize,
    regions: Vec<Region>,
}

impl Segmentation {
    /// A segmentation of an image of `size`, after checking that every mask
    /// has the image's size, every box lies inside the image, and region ids
    /// are unique.
    ///
    /// # Errors
    /// [`SomError::MaskSize`] or [`SomError::Region`] naming the first offender.
    pub fn new(size: ImageSize, regions: Vec<Region>) -> Result<Self, SomError> {
        Self::validate(size, &regions)?;
        Ok(Self { size, regions })
    }

    /// A segmentation of an image of `size` with no regions (what a segmenter
    /// returns when it finds nothing to mark).
    ///
    /// ```
    /// use som_core::{ImageSize, Segmentation};
    /// let seg = Segmentation::empty(ImageSize::new(4, 3));
    /// assert!(seg.is_empty());
    /// assert_eq!(seg.size(), ImageSize::new(4, 3));
    /// ```
    pub fn empty(size: ImageSize) -> Self {
        Self {
            size,
            regions: Vec::new(),
        }
    }

    /// Checks what [`Segmentation::new`] guarantees.
    fn validate(size: ImageSize, regions: &[Region]) -> Result<(), SomError> {
        let full = size.full_box();
        let mut ids = std::collections::BTreeSet::new();
        for r in regions {
            if let Some(m) = &r.mask {
                if m.size() != size {
                    return Err(SomError::MaskSize {
                        expected: size,
                        found: format!("region {} with a {} mask", r.id, m.size()),
                    });
                }
            }
            if !r.bbox.is_empty() && !full.contains_box(&r.bbox) {
                return Err(SomError::Region {
                    id: r.id,
                    message: format!("box {:?} lies outside the {size} image", r.bbox.to_xywh()),
                });
            }
            if !ids.insert(r.id) {
                return Err(SomError::Region {
                    id: r.id,
                    message: "id used by more than one region".into(),
                });
            }
        }
        Ok(())
    }

    /// Size of the segmented image.
    pub fn size(&self) -> ImageSize {
        self.size
    }

    /// The regions, in order.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The region at `index`, if there is one.
    pub fn region(&self, index: usize) -> Option<&Region> {
        self.regions.get(index)
    }

    /// The regions, giving up the segmentation.
    pub fn into_regions(self) -> Vec<Region> {
        self.regions
    }

    /// Number of regions.
    pub fn len(&self) -> usize {
        self.regions.len()
    }

    /// `true` when there are no regions.
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// The first region with an empty area, if any.
    pub fn first_empty(&self) -> Option<&Region> {
        self.regions.iter().find(|r| r.area() == 0)
    }

    /// Region indices ordered by area, largest first; ties keep input order.
    /// This order defines mark numbering in every allocation mode.
    ///
    /// ```
    /// use som_core::{BBox, ImageSize, Region, Segmentation};
    /// let seg = Segmentation::new(ImageSize::new(10, 10), vec![
    ///     Region::from_box(1, BBox::new(0, 0, 1, 1)),
    ///     Region::from_box(2, BBox::new(0, 0, 3, 3)),
    ///     Region::from_box(3, BBox::new(0, 0, 1, 1)),
    /// ])?;
    /// assert_eq!(seg.order_by_area(), vec![1, 0, 2]);
    /// # Ok::<(), som_core::SomError>(())
    /// ```
    pub fn order_by_area(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.regions.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.regions[i].area()));
        order
    }
}
