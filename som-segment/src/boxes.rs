//! Box-only regions (UI elements, DOM rectangles, detector output) as a
//! [`Segmenter`].
//!
//! Accepted JSON:
//! - a list of boxes: `[[x0, y0, x1, y1], …]` (coordinates as the chosen
//!   [`BoxFormat`]);
//! - a list of objects: `[{"bbox": [...], "label": "OK", "score": 0.9,
//!   "id": 4}, …]`; the box may be under `"bbox"` or `"box"` (in the chosen
//!   format), or under `"xyxy"` / `"xywh"` (that format, whatever was chosen);
//!   the label under `"label"`, `"text"` or `"name"`;
//! - an object `{"format": "xywh", "boxes": [ … ]}` (its `"format"` wins over
//!   the chosen one; an `"image"` object, if present, is ignored).
//!
//! Coordinates are pixels and may be fractional: a box covers every pixel it
//! touches (`floor` of the start, `ceil` of the end). **Clipping**: a box
//! partly outside the image is clipped to it (with [`BoxOptions::clip`], the
//! default); a box entirely outside, a box of zero area, a negative width or
//! height (`x1 < x0` in xyxy) and non-finite numbers are errors naming the
//! box's index. With `clip: false`, any box leaving the image is an error.
//! Region ids are the `"id"` fields when given, otherwise 1, 2, … in list
//! order.

use std::path::PathBuf;

use image::DynamicImage;
use serde_json::Value;
use som_core::{BBox, ImageSize, Region, Segmentation, Segmenter, SomError};

use crate::error::SegmentError;

/// How the four numbers of a box are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BoxFormat {
    /// `[x0, y0, x1, y1]`: corners (end exclusive).
    #[default]
    Xyxy,
    /// `[x, y, width, height]` (COCO).
    Xywh,
}

impl std::str::FromStr for BoxFormat {
    type Err = SegmentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "xyxy" => Ok(BoxFormat::Xyxy),
            "xywh" => Ok(BoxFormat::Xywh),
            other => Err(SegmentError::param(
                "box format",
                format!("{other:?} is not xyxy or xywh"),
            )),
        }
    }
}

/// Options for reading boxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxOptions {
    /// The format of boxes that do not say (default [`BoxFormat::Xyxy`]).
    pub format: BoxFormat,
    /// Clip boxes partly outside the image (default `true`); when `false`
    /// they are errors.
    pub clip: bool,
}

impl Default for BoxOptions {
    fn default() -> Self {
        Self {
            format: BoxFormat::Xyxy,
            clip: true,
        }
    }
}

const WHAT: &str = "boxes JSON";

/// Parses a boxes document (see the module documentation) into box-only
/// regions of an image of `size`.
///
/// # Errors
/// [`SegmentError::Format`] naming the offending box (`boxes[3]`).
///
/// # Example
/// ```
/// use som_core::{BBox, ImageSize};
/// use som_segment::{parse_boxes, BoxOptions};
/// let doc = r#"[{"xywh": [10, 10, 20, 5], "label": "Submit"}, [90, 40, 120, 60]]"#;
/// let seg = parse_boxes(doc, ImageSize::new(100, 50), &BoxOptions::default())?;
/// assert_eq!(seg.regions()[0].bbox, BBox::new(10, 10, 20, 5));
/// assert_eq!(seg.regions()[0].label.as_deref(), Some("Submit"));
/// // The second box is clipped to the 100x50 image.
/// assert_eq!(seg.regions()[1].bbox, BBox::new(90, 40, 10, 10));
/// # Ok::<(), som_segment::SegmentError>(())
/// ```
pub fn parse_boxes(text: &str, size: ImageSize, options: &BoxOptions) -> Result<Segmentation, SegmentError> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| SegmentError::format(WHAT, format!("not valid JSON: {e}")))?;
    parse_boxes_value(&doc, size, options)
}

/// Like [`parse_boxes`], on parsed JSON.
///
/// # Errors
/// As [`parse_boxes`].
pub fn parse_boxes_value(
    doc: &Value,
    size: ImageSize,
    options: &BoxOptions,
) -> Result<Segmentation, SegmentError> {
    let mut options = *options;
    let items = match doc {
        Value::Array(items) => items,
        Value::Object(o) => {
            if let Some(f) = o.get("format") {
                let f = f
                    .as_str()
                    .ok_or_else(|| SegmentError::format(WHAT, "\"format\" must be \"xyxy\" or \"xywh\""))?;
                options.format = f.parse().map_err(|_| {
                    SegmentError::format(WHAT, format!("\"format\" {f:?} must be \"xyxy\" or \"xywh\""))
                })?;
            }
            match o.get("boxes") {
                Some(Value::Array(items)) => items,
                _ => return Err(SegmentError::format(WHAT, "expected a \"boxes\" list")),
            }
        }
        _ => {
            return Err(SegmentError::format(
                WHAT,
                "expected a list of boxes or {\"boxes\": [...]}",
            ))
        }
    };
    if size.is_empty() {
        return Err(SegmentError::Image(format!("the image is empty ({size})")));
    }
    let mut regions = Vec::with_capacity(items.len());
    let mut ids = std::collections::BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("boxes[{i}]");
        let region = parse_one(item, i, size, &options, &path)?;
        if !ids.insert(region.id) {
            return Err(SegmentError::format(
                WHAT,
                format!("{path}: id {} is used twice", region.id),
            ));
        }
        regions.push(region);
    }
    Ok(Segmentation::new(size, regions)?)
}

fn numbers(v: &Value, path: &str) -> Result<[f64; 4], SegmentError> {
    let arr = v
        .as_array()
        .filter(|a| a.len() == 4)
        .ok_or_else(|| SegmentError::format(WHAT, format!("{path} must be a list of 4 numbers")))?;
    let mut out = [0.0; 4];
    for (o, x) in out.iter_mut().zip(arr) {
        *o = x
            .as_f64()
            .ok_or_else(|| SegmentError::format(WHAT, format!("{path} must be a list of 4 numbers")))?;
    }
    if out.iter().any(|v| !v.is_finite()) {
        return Err(SegmentError::format(
            WHAT,
            format!("{path} has a non-finite number"),
        ));
    }
    Ok(out)
}

fn parse_one(
    item: &Value,
    index: usize,
    size: ImageSize,
    options: &BoxOptions,
    path: &str,
) -> Result<Region, SegmentError> {
    let (coords, format, obj) = match item {
        Value::Array(_) => (numbers(item, path)?, options.format, None),
        Value::Object(o) => {
            let (key, format) = if o.contains_key("xyxy") {
                ("xyxy", BoxFormat::Xyxy)
            } else if o.contains_key("xywh") {
                ("xywh", BoxFormat::Xywh)
            } else if o.contains_key("bbox") {
                ("bbox", options.format)
            } else if o.contains_key("box") {
                ("box", options.format)
            } else {
                return Err(SegmentError::format(
                    WHAT,
                    format!("{path} has no \"bbox\", \"box\", \"xyxy\" or \"xywh\""),
                ));
            };
            (numbers(&o[key], &format!("{path}.{key}"))?, format, Some(o))
        }
        _ => {
            return Err(SegmentError::format(
                WHAT,
                format!("{path} must be a list of 4 numbers or an object"),
            ))
        }
    };
    let bbox = to_pixel_box(coords, format, size, options.clip, path)?;
    let id = match obj.and_then(|o| o.get("id")) {
        None | Some(Value::Null) => index as u64 + 1,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| SegmentError::format(WHAT, format!("{path}.id must be a non-negative integer")))?,
    };
    let mut region = Region::from_box(id, bbox);
    if let Some(o) = obj {
        if let Some(label) = ["label", "text", "name"]
            .iter()
            .find_map(|k| o.get(*k).and_then(Value::as_str))
        {
            region = region.with_label(label);
        }
        match o.get("score") {
            None | Some(Value::Null) => {}
            Some(v) => {
                let s = v
                    .as_f64()
                    .filter(|s| s.is_finite())
                    .ok_or_else(|| SegmentError::format(WHAT, format!("{path}.score must be a number")))?;
                region = region.with_score(s);
            }
        }
    }
    Ok(region)
}

/// The whole-pixel box of `coords`, clipped or checked against the image.
fn to_pixel_box(
    coords: [f64; 4],
    format: BoxFormat,
    size: ImageSize,
    clip: bool,
    path: &str,
) -> Result<BBox, SegmentError> {
    let [a, b, c, d] = coords;
    let (x0, y0, x1, y1) = match format {
        BoxFormat::Xyxy => {
            if c < a || d < b {
                return Err(SegmentError::format(
                    WHAT,
                    format!("{path} [{a}, {b}, {c}, {d}] has a negative size (x1 < x0 or y1 < y0)"),
                ));
            }
            (a, b, c, d)
        }
        BoxFormat::Xywh => {
            if c < 0.0 || d < 0.0 {
                return Err(SegmentError::format(
                    WHAT,
                    format!("{path} [{a}, {b}, {c}, {d}] has a negative width or height"),
                ));
            }
            (a, b, a + c, b + d)
        }
    };
    let (w, h) = (size.width as f64, size.height as f64);
    let (fx0, fy0, fx1, fy1) = (x0.floor(), y0.floor(), x1.ceil(), y1.ceil());
    if fx1 <= fx0 || fy1 <= fy0 {
        return Err(SegmentError::format(
            WHAT,
            format!("{path} [{a}, {b}, {c}, {d}] is empty"),
        ));
    }
    let outside = fx0 < 0.0 || fy0 < 0.0 || fx1 > w || fy1 > h;
    if outside && !clip {
        return Err(SegmentError::format(
            WHAT,
            format!("{path} [{a}, {b}, {c}, {d}] leaves the {size} image"),
        ));
    }
    let (cx0, cy0, cx1, cy1) = (fx0.max(0.0), fy0.max(0.0), fx1.min(w), fy1.min(h));
    if cx1 <= cx0 || cy1 <= cy0 {
        return Err(SegmentError::format(
            WHAT,
            format!("{path} [{a}, {b}, {c}, {d}] lies entirely outside the {size} image"),
        ));
    }
    Ok(BBox::from_xyxy(cx0 as u32, cy0 as u32, cx1 as u32, cy1 as u32))
}

/// Box-only regions read from a JSON file, as a [`Segmenter`].
///
/// ```
/// use image::DynamicImage;
/// use som_core::Segmenter;
/// use som_segment::{BoxOptions, Boxes};
/// let path = std::env::temp_dir().join(format!("som-boxes-doc-{}.json", std::process::id()));
/// std::fs::write(&path, "[[1, 1, 5, 4], [-3, 0, 2, 2]]")?;
/// let seg = Boxes::new(&path, BoxOptions::default()).segment(&DynamicImage::new_rgb8(8, 6))?;
/// assert_eq!(seg.regions().len(), 2);
/// assert!(seg.regions().iter().all(|r| r.mask.is_none()));
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Boxes {
    /// The boxes JSON file.
    pub path: PathBuf,
    /// Format and clipping.
    pub options: BoxOptions,
}

impl Boxes {
    /// Boxes from `path`.
    pub fn new(path: impl Into<PathBuf>, options: BoxOptions) -> Self {
        Self {
            path: path.into(),
            options,
        }
    }

    /// Reads the boxes for an image of `size`.
    ///
    /// # Errors
    /// [`SegmentError::Io`] for an unreadable file, [`SegmentError::Format`]
    /// for bad boxes.
    pub fn load(&self, size: ImageSize) -> Result<Segmentation, SegmentError> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| SegmentError::io(&self.path, e))?;
        parse_boxes(&text, size, &self.options).map_err(|e| match e {
            SegmentError::Format { what, message } => SegmentError::Format {
                what: format!("{what} {}", self.path.display()),
                message,
            },
            other => other,
        })
    }
}

impl Segmenter for Boxes {
    fn segment(&self, image: &DynamicImage) -> Result<Segmentation, SomError> {
        Ok(self.load(ImageSize::new(image.width(), image.height()))?)
    }

    fn name(&self) -> &str {
        "boxes"
    }
}
