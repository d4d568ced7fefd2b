//! The regions JSON and marks JSON contracts (DESIGN §5).
//!
//! Regions JSON, the canonical form this crate writes:
//! ```json
//! {"image": {"width": 640, "height": 427, "file_name": "rocket.jpg"},
//!  "regions": [{"id": 1, "bbox": [10, 20, 30, 40], "area": 1234,
//!               "segmentation": {"size": [427, 640], "counts": "…"},
//!               "score": 0.97, "label": "rocket"}]}
//! ```
//! Also read: a bare list of COCO annotations or SAM automatic-mask-generator
//! records; a COCO annotation file (`images` + `annotations`); `counts` as a
//! list (uncompressed RLE); polygons; binary arrays; regions with a `bbox` only.
//! Fields a region carries beyond the known ones (`predicted_iou`,
//! `stability_score`, `category_id`…) are kept in [`crate::Region::source`] and
//! written back out.
//!
//! [`mod@read`] holds the reader, [`mod@write`] the writers (regions, marks and the
//! answer JSON of `som ask`); their functions are re-exported here.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::geometry::ImageSize;

pub mod read;
pub mod write;

pub use read::{
    read_regions, read_regions_value, read_regions_with, ImageSelector, ReadOptions, MAX_MASK_PIXELS,
};
pub use write::{mark_to_value, region_to_value, write_answer, write_marks, write_regions, AnswerMeta};

/// Keys of a region object with a meaning of their own; everything else goes
/// to [`crate::Region::source`] and is written back out.
pub(crate) const KNOWN_KEYS: &[&str] = &["id", "bbox", "area", "segmentation", "score", "label"];

/// The `image` object of regions and marks JSON.
///
/// ```
/// use som_core::json::ImageInfo;
/// let info = ImageInfo::new(640, 427).with_file_name("rocket.jpg");
/// assert_eq!(info.size().width, 640);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageInfo {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The image's file name, if known.
    pub file_name: Option<String>,
}

impl ImageInfo {
    /// An image of `width` × `height` with no file name.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            file_name: None,
        }
    }

    /// The same, with a file name.
    #[must_use]
    pub fn with_file_name(mut self, name: impl Into<String>) -> Self {
        self.file_name = Some(name.into());
        self
    }

    /// The `image` object for the image file at `path`: its size and its file
    /// name (the last path component).
    ///
    /// ```
    /// use som_core::{json::ImageInfo, ImageSize};
    /// let info = ImageInfo::for_file("photos/rocket.jpg".as_ref(), ImageSize::new(640, 427));
    /// assert_eq!(info.file_name.as_deref(), Some("rocket.jpg"));
    /// assert_eq!(info.size(), ImageSize::new(640, 427));
    /// ```
    pub fn for_file(path: &Path, size: ImageSize) -> Self {
        let info = Self::new(size.width, size.height);
        match path.file_name().and_then(|n| n.to_str()) {
            Some(name) => info.with_file_name(name),
            None => info,
        }
    }

    /// The image size.
    pub fn size(&self) -> ImageSize {
        ImageSize::new(self.width, self.height)
    }

    pub(crate) fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("width".into(), json!(self.width));
        m.insert("height".into(), json!(self.height));
        if let Some(f) = &self.file_name {
            m.insert("file_name".into(), json!(f));
        }
        Value::Object(m)
    }
}
