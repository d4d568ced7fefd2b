//! Reading regions documents: the canonical regions JSON, COCO files, SAM
//! records, bare lists, polygons, uncompressed RLE, binary arrays, box-only
//! regions. Errors name the JSON path of the offending value.
//!
//! A regions document is untrusted input, and a few bytes of it can describe a
//! lot of work (an RLE of "all ones" on a huge image, a polygon with a vertex
//! far away), so the reader bounds it before doing any: images of at most
//! [`MAX_IMAGE_SIDE`] pixels a side, masks that decode to at most
//! [`ReadOptions::max_mask_pixels`] pixels together (by default
//! [`MAX_MASK_PIXELS`]), and polygon outlines of at most
//! [`MAX_OUTLINE_POINTS`] points together.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{ImageInfo, KNOWN_KEYS};
use crate::error::SomError;
use crate::geometry::{BBox, ImageSize};
use crate::io::MAX_IMAGE_SIDE;
use crate::mask::Mask;
use crate::polygon::{polygons_to_rle_within, MAX_OUTLINE_POINTS};
use crate::region::{Region, Segmentation};
use crate::rle::Rle;

const WHAT: &str = "regions JSON";

/// The default of [`ReadOptions::max_mask_pixels`]: 2³⁰ pixels (1 GiB of
/// decoded masks, which hold one byte per pixel of their bounding box). Four
/// masks that each cover the whole of the largest image som reads, or a
/// thousand masks of a 1024 × 1024 image that each span it.
pub const MAX_MASK_PIXELS: u64 = 1 << 30;

/// Which image of a COCO annotation file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSelector {
    /// The image with this `id`.
    Id(u64),
    /// The image whose `file_name` ends with this name.
    FileName(String),
}

/// Options for [`read_regions_with`].
///
/// ```
/// use som_core::json::{read_regions_with, ReadOptions, MAX_MASK_PIXELS};
/// use som_core::ImageSize;
/// let options = ReadOptions { image_size: Some(ImageSize::new(4, 3)), ..Default::default() };
/// assert_eq!(options.max_mask_pixels, MAX_MASK_PIXELS);
/// // A bare list of boxes does not say the image size: the options do.
/// let (info, seg) = read_regions_with(r#"[{"bbox": [1, 1, 2, 1]}]"#, &options)?;
/// assert_eq!(info.size(), ImageSize::new(4, 3));
/// assert_eq!(seg.regions()[0].id, 0);
/// # Ok::<(), som_core::SomError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// The size of the image the regions belong to. Required when the
    /// document does not say (bare lists of polygon or box regions); when
    /// given, every mask is checked against it.
    pub image_size: Option<ImageSize>,
    /// For COCO annotation files holding several images: which one.
    pub image: Option<ImageSelector>,
    /// The most pixels the masks of one document may decode to together,
    /// counted as the areas of their bounding boxes (a decoded [`Mask`] holds
    /// one byte per pixel of its box). A mask that would go past it is refused
    /// before it is decoded. Default [`MAX_MASK_PIXELS`].
    pub max_mask_pixels: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            image_size: None,
            image: None,
            max_mask_pixels: MAX_MASK_PIXELS,
        }
    }
}

/// What one document may still decode: mask pixels and polygon outline points.
struct Budget {
    mask_pixels: u64,
    limit: u64,
    outline_points: u64,
}

impl Budget {
    fn new(options: &ReadOptions) -> Self {
        Self {
            mask_pixels: options.max_mask_pixels,
            limit: options.max_mask_pixels,
            outline_points: MAX_OUTLINE_POINTS,
        }
    }

    /// Takes the pixels of a mask with box `bbox` before it is decoded.
    fn take_mask(&mut self, bbox: BBox, path: &str) -> Result<(), SomError> {
        let pixels = bbox.area();
        if pixels > self.mask_pixels {
            return Err(SomError::format(
                WHAT,
                format!(
                    "{path}: this mask's box of {pixels} pixels takes the document's masks past {} pixels, the most som decodes from one document",
                    self.limit
                ),
            ));
        }
        self.mask_pixels -= pixels;
        Ok(())
    }
}

/// Refuses an image larger than [`MAX_IMAGE_SIDE`] a side; `what` says where
/// its size came from.
fn check_side(size: ImageSize, what: &str) -> Result<(), SomError> {
    if size.width > MAX_IMAGE_SIDE || size.height > MAX_IMAGE_SIDE {
        return Err(SomError::format(
            WHAT,
            format!("{what} is {size}, more than the {MAX_IMAGE_SIDE} px a side som reads"),
        ));
    }
    Ok(())
}

/// Reads any supported regions document, taking the image size from it.
///
/// Regions without an `id` take their position in the list read as their id.
///
/// # Errors
/// [`SomError::Format`] for malformed JSON, a document of no known shape, a
/// bad mask or box, a repeated id, or a document past the limits in the
/// [module docs](self) (the message names the offending path, e.g.
/// `regions[3].segmentation`); [`SomError::MaskSize`] for masks of another
/// size.
///
/// # Example
/// ```
/// use som_core::json::{read_regions, write_regions, ImageInfo};
/// let doc = r#"{"image": {"width": 4, "height": 3},
///               "regions": [{"id": 5, "bbox": [1, 1, 2, 1]},
///                           {"id": 6, "segmentation": {"size": [3, 4], "counts": [3, 2, 7]}}]}"#;
/// let (info, seg) = read_regions(doc)?;
/// assert_eq!(info.width, 4);
/// assert!(seg.regions()[0].mask.is_none());
/// assert_eq!(seg.regions()[1].area(), 2);
/// let again = write_regions(&info, &seg);
/// assert_eq!(read_regions(&again)?.1, seg);
/// # Ok::<(), som_core::SomError>(())
/// ```
pub fn read_regions(text: &str) -> Result<(ImageInfo, Segmentation), SomError> {
    read_regions_with(text, &ReadOptions::default())
}

/// Reads any supported regions document with explicit options.
///
/// # Errors
/// As [`read_regions`]; also when `options.image_size` contradicts the document.
pub fn read_regions_with(text: &str, options: &ReadOptions) -> Result<(ImageInfo, Segmentation), SomError> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| SomError::format(WHAT, format!("not valid JSON: {e}")))?;
    read_regions_value(&doc, options)
}

/// Reads a regions document that is already parsed.
///
/// # Errors
/// As [`read_regions_with`].
pub fn read_regions_value(doc: &Value, options: &ReadOptions) -> Result<(ImageInfo, Segmentation), SomError> {
    if let Some(s) = options.image_size {
        check_side(s, "the image size given")?;
    }
    match doc {
        Value::Array(items) => {
            let size = match options.image_size {
                Some(s) => Some(s),
                None => infer_size(items)?,
            };
            let Some(size) = size else {
                return Err(SomError::format(
                    WHAT,
                    "a bare list of regions without RLE masks does not say the image size; give the image",
                ));
            };
            let info = ImageInfo::new(size.width, size.height);
            let seg = parse_region_list(items.iter().enumerate(), size, "", &BTreeMap::new(), options)?;
            Ok((info, seg))
        }
        Value::Object(obj) if obj.contains_key("annotations") => read_coco_file(obj, options),
        Value::Object(obj) => {
            let info = match obj.get("image") {
                Some(v) => {
                    let info = parse_image_info(v, "image")?;
                    check_side(info.size(), "image")?;
                    info
                }
                None => match options.image_size {
                    Some(s) => ImageInfo::new(s.width, s.height),
                    None => {
                        return Err(SomError::format(
                            WHAT,
                            "missing the \"image\" object with width and height",
                        ))
                    }
                },
            };
            if let Some(s) = options.image_size {
                if s != info.size() {
                    return Err(SomError::MaskSize {
                        expected: s,
                        found: format!("a regions file for a {} image", info.size()),
                    });
                }
            }
            let Some(Value::Array(items)) = obj.get("regions") else {
                return Err(SomError::format(WHAT, "missing the \"regions\" list"));
            };
            let seg = parse_region_list(
                items.iter().enumerate(),
                info.size(),
                "regions",
                &BTreeMap::new(),
                options,
            )?;
            Ok((info, seg))
        }
        _ => Err(SomError::format(
            WHAT,
            "expected an object with \"regions\", a COCO annotation file, or a list of regions",
        )),
    }
}

fn infer_size(items: &[Value]) -> Result<Option<ImageSize>, SomError> {
    for (i, item) in items.iter().enumerate() {
        if let Some(Value::Object(s)) = item.get("segmentation") {
            if let Some(size) = s.get("size") {
                let path = format!("[{i}].segmentation.size");
                let size = parse_hw(size, &path)?;
                check_side(size, &path)?;
                return Ok(Some(size));
            }
        }
    }
    Ok(None)
}

fn read_coco_file(
    obj: &Map<String, Value>,
    options: &ReadOptions,
) -> Result<(ImageInfo, Segmentation), SomError> {
    let images = match obj.get("images") {
        Some(Value::Array(a)) => a.as_slice(),
        _ => &[],
    };
    let chosen = match (&options.image, images.len()) {
        (Some(ImageSelector::Id(id)), _) => images
            .iter()
            .position(|im| im.get("id").and_then(Value::as_u64) == Some(*id)),
        (Some(ImageSelector::FileName(name)), _) => images.iter().position(|im| {
            im.get("file_name").and_then(Value::as_str).is_some_and(|f| {
                f == name || f.ends_with(&format!("/{name}")) || name.ends_with(&format!("/{f}"))
            })
        }),
        (None, 1) => Some(0),
        (None, 0) => None,
        (None, n) => {
            return Err(SomError::format(
                WHAT,
                format!("the COCO file holds {n} images; choose one by id or file name"),
            ))
        }
    };
    let Some(index) = chosen else {
        return Err(SomError::format(
            WHAT,
            "the COCO file has no matching entry in \"images\"",
        ));
    };
    let image = &images[index];
    let image_path = format!("images[{index}]");
    let info = parse_image_info(image, &image_path)?;
    check_side(info.size(), &image_path)?;
    if let Some(s) = options.image_size {
        if s != info.size() {
            return Err(SomError::MaskSize {
                expected: s,
                found: format!("a COCO image entry of {}", info.size()),
            });
        }
    }
    let image_id = image.get("id").cloned().unwrap_or(Value::Null);
    let mut categories = BTreeMap::new();
    if let Some(Value::Array(cats)) = obj.get("categories") {
        for c in cats {
            if let (Some(id), Some(name)) = (
                c.get("id").and_then(Value::as_u64),
                c.get("name").and_then(Value::as_str),
            ) {
                categories.insert(id, name.to_string());
            }
        }
    }
    let Some(Value::Array(anns)) = obj.get("annotations") else {
        return Err(SomError::format(WHAT, "\"annotations\" is not a list"));
    };
    let mine = anns
        .iter()
        .enumerate()
        .filter(|(_, a)| image_id.is_null() || a.get("image_id") == Some(&image_id));
    let seg = parse_region_list(mine, info.size(), "annotations", &categories, options)?;
    Ok((info, seg))
}

fn parse_image_info(v: &Value, path: &str) -> Result<ImageInfo, SomError> {
    let width = get_u32(v, "width", path)?;
    let height = get_u32(v, "height", path)?;
    let file_name = v
        .get("file_name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from);
    Ok(ImageInfo {
        width,
        height,
        file_name,
    })
}

fn get_u32(v: &Value, key: &str, path: &str) -> Result<u32, SomError> {
    v.get(key)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| SomError::format(WHAT, format!("{path}.{key} must be a non-negative integer")))
}

fn parse_hw(v: &Value, path: &str) -> Result<ImageSize, SomError> {
    let arr = v.as_array().filter(|a| a.len() == 2);
    let hw: Option<Vec<u32>> = arr.map(|a| {
        a.iter()
            .filter_map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()))
            .collect()
    });
    match hw {
        Some(hw) if hw.len() == 2 => Ok(ImageSize::new(hw[1], hw[0])),
        _ => Err(SomError::format(WHAT, format!("{path} must be [height, width]"))),
    }
}

/// Reads the regions `items` (each with its index in the document's list, for
/// error paths) of an image of `size`.
fn parse_region_list<'a>(
    items: impl Iterator<Item = (usize, &'a Value)>,
    size: ImageSize,
    path: &str,
    categories: &BTreeMap<u64, String>,
    options: &ReadOptions,
) -> Result<Segmentation, SomError> {
    let mut budget = Budget::new(options);
    let mut regions = Vec::new();
    // Each id with the path of the region that has it.
    let mut ids: BTreeMap<u64, String> = BTreeMap::new();
    for (i, item) in items {
        let p = format!("{path}[{i}]");
        let region = parse_region(item, regions.len(), size, &p, categories, &mut budget)?;
        if let Some(first) = ids.get(&region.id) {
            let message = match item.get("id") {
                Some(Value::Number(_)) => format!("{p}.id {} is also the id of {first}", region.id),
                _ => format!(
                    "{p} has no id, and its position gives it {}, the id of {first}",
                    region.id
                ),
            };
            return Err(SomError::format(WHAT, message));
        }
        ids.insert(region.id, p);
        regions.push(region);
    }
    Segmentation::new(size, regions)
}

fn parse_region(
    item: &Value,
    index: usize,
    size: ImageSize,
    path: &str,
    categories: &BTreeMap<u64, String>,
    budget: &mut Budget,
) -> Result<Region, SomError> {
    let Value::Object(obj) = item else {
        return Err(SomError::format(WHAT, format!("{path} is not an object")));
    };
    let id = match obj.get("id") {
        None | Some(Value::Null) => index as u64,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| SomError::format(WHAT, format!("{path}.id must be a non-negative integer")))?,
    };
    let mask = match obj.get("segmentation") {
        None | Some(Value::Null) => None,
        Some(seg) => Some(parse_segmentation(
            seg,
            size,
            &format!("{path}.segmentation"),
            budget,
        )?),
    };
    let bbox = match (&mask, obj.get("bbox")) {
        (Some(m), _) => m.bbox(),
        (None, Some(b)) => parse_bbox(b, size, &format!("{path}.bbox"))?,
        (None, None) => {
            return Err(SomError::format(
                WHAT,
                format!("{path} has neither a segmentation nor a bbox"),
            ))
        }
    };
    let score = match obj.get("score") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .filter(|s| s.is_finite())
                .ok_or_else(|| SomError::format(WHAT, format!("{path}.score must be a number")))?,
        ),
    };
    let mut label = match obj.get("label") {
        None | Some(Value::Null) => None,
        Some(Value::String(l)) => Some(l.clone()),
        Some(_) => return Err(SomError::format(WHAT, format!("{path}.label must be a string"))),
    };
    if label.is_none() {
        label = obj
            .get("category_id")
            .and_then(Value::as_u64)
            .and_then(|c| categories.get(&c).cloned());
    }
    let source: BTreeMap<String, Value> = obj
        .iter()
        .filter(|(k, _)| !KNOWN_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Region {
        id,
        mask,
        bbox,
        score,
        label,
        source,
    })
}

fn parse_bbox(v: &Value, size: ImageSize, path: &str) -> Result<BBox, SomError> {
    let nums: Option<Vec<f64>> = v
        .as_array()
        .filter(|a| a.len() == 4)
        .map(|a| a.iter().filter_map(Value::as_f64).collect());
    let Some(n) = nums.filter(|n| n.len() == 4) else {
        return Err(SomError::format(WHAT, format!("{path} must be [x, y, w, h]")));
    };
    let b = BBox::from_float_xywh(n[0], n[1], n[2], n[3])
        .map_err(|e| SomError::format(WHAT, format!("{path}: {e}")))?;
    if b.is_empty() || !size.full_box().contains_box(&b) {
        return Err(SomError::format(
            WHAT,
            format!(
                "{path} {:?} is empty or lies outside the {size} image",
                b.to_xywh()
            ),
        ));
    }
    Ok(b)
}

fn parse_segmentation(v: &Value, size: ImageSize, path: &str, budget: &mut Budget) -> Result<Mask, SomError> {
    match v {
        Value::Object(o) => {
            let rle_size = parse_hw(o.get("size").unwrap_or(&Value::Null), &format!("{path}.size"))?;
            if rle_size != size {
                return Err(SomError::MaskSize {
                    expected: size,
                    found: format!("{path} of {rle_size}"),
                });
            }
            let rle = match o.get("counts") {
                Some(Value::String(s)) => Rle::from_compressed(size, s),
                Some(Value::Array(a)) => {
                    let counts: Option<Vec<u32>> = a
                        .iter()
                        .map(|c| c.as_u64().and_then(|n| u32::try_from(n).ok()))
                        .collect();
                    match counts {
                        Some(c) => Rle::from_counts(size, c),
                        None => Err(SomError::Rle("counts must be non-negative integers".into())),
                    }
                }
                _ => Err(SomError::Rle("missing counts".into())),
            }
            .map_err(|e| SomError::format(WHAT, format!("{path}: {e}")))?;
            budget.take_mask(rle.bbox(), path)?;
            Ok(rle.to_mask())
        }
        Value::Array(items) if items.iter().all(Value::is_array) && !items.is_empty() => {
            let first_is_number_row = items[0]
                .as_array()
                .is_some_and(|r| r.iter().all(Value::is_number));
            let looks_binary = items.len() as u64 == size.height as u64
                && items
                    .iter()
                    .all(|r| r.as_array().is_some_and(|r| r.len() as u64 == size.width as u64))
                && items
                    .iter()
                    .flat_map(|r| r.as_array().into_iter().flatten())
                    .all(|x| matches!(x, Value::Bool(_)) || x.as_u64().is_some_and(|n| n <= 1));
            if looks_binary && size.width as usize != 0 {
                let bytes: Vec<u8> = items
                    .iter()
                    .flat_map(|r| r.as_array().into_iter().flatten())
                    .map(|x| match x {
                        Value::Bool(b) => *b as u8,
                        other => other.as_u64().unwrap_or(0) as u8,
                    })
                    .collect();
                let mask = Mask::from_bytes(size, &bytes)?;
                budget.take_mask(mask.bbox(), path)?;
                return Ok(mask);
            }
            if !first_is_number_row {
                return Err(SomError::format(
                    WHAT,
                    format!("{path} must hold polygons (lists of numbers)"),
                ));
            }
            let mut polys = Vec::with_capacity(items.len());
            for (j, p) in items.iter().enumerate() {
                let coords: Option<Vec<f64>> =
                    p.as_array().map(|a| a.iter().filter_map(Value::as_f64).collect());
                match coords {
                    Some(c) if c.len() == p.as_array().map_or(0, Vec::len) => polys.push(c),
                    _ => {
                        return Err(SomError::format(
                            WHAT,
                            format!("{path}[{j}] must be a list of numbers"),
                        ))
                    }
                }
            }
            let rle = polygons_to_rle_within(&polys, size, &mut budget.outline_points)
                .map_err(|e| SomError::format(WHAT, format!("{path}: {e}")))?;
            budget.take_mask(rle.bbox(), path)?;
            Ok(rle.to_mask())
        }
        _ => Err(SomError::format(
            WHAT,
            format!("{path} must be an RLE object, a list of polygons or a binary array"),
        )),
    }
}
