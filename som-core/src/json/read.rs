//! Reading regions documents: the canonical regions JSON, COCO files, SAM
//! records, bare lists, polygons, uncompressed RLE, binary arrays, box-only
//! regions. Errors name the JSON path of the offending value.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{ImageInfo, KNOWN_KEYS};
use crate::error::SomError;
use crate::geometry::{BBox, ImageSize};
use crate::mask::Mask;
use crate::polygon::polygons_to_rle;
use crate::region::{Region, Segmentation};
use crate::rle::Rle;

const WHAT: &str = "regions JSON";

/// Which image of a COCO annotation file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSelector {
    /// The image with this `id`.
    Id(u64),
    /// The image whose `file_name` ends with this name.
    FileName(String),
}

/// Options for [`read_regions_with`].
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// The size of the image the regions belong to. Required when the
    /// document does not say (bare lists of polygon or box regions); when
    /// given, every mask is checked against it.
    pub image_size: Option<ImageSize>,
    /// For COCO annotation files holding several images: which one.
    pub image: Option<ImageSelector>,
}

/// Reads any supported regions document, taking the image size from it.
///
/// # Errors
/// [`SomError::Format`] for malformed JSON or a document of no known shape
/// (the message names the offending path, e.g. `regions[3].segmentation`),
/// [`SomError::MaskSize`] for masks of another size, [`SomError::Rle`] /
/// [`SomError::Polygon`] for bad masks.
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
            let seg = parse_region_list(items, size, "", &BTreeMap::new())?;
            Ok((info, seg))
        }
        Value::Object(obj) if obj.contains_key("annotations") => read_coco_file(obj, options),
        Value::Object(obj) => {
            let info = match obj.get("image") {
                Some(v) => parse_image_info(v, "image")?,
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
            let seg = parse_region_list(items, info.size(), "regions", &BTreeMap::new())?;
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
                return parse_hw(size, &format!("[{i}].segmentation.size")).map(Some);
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
            .find(|im| im.get("id").and_then(Value::as_u64) == Some(*id)),
        (Some(ImageSelector::FileName(name)), _) => images.iter().find(|im| {
            im.get("file_name").and_then(Value::as_str).is_some_and(|f| {
                f == name || f.ends_with(&format!("/{name}")) || name.ends_with(&format!("/{f}"))
            })
        }),
        (None, 1) => images.first(),
        (None, 0) => None,
        (None, n) => {
            return Err(SomError::format(
                WHAT,
                format!("the COCO file holds {n} images; choose one by id or file name"),
            ))
        }
    };
    let Some(image) = chosen else {
        return Err(SomError::format(
            WHAT,
            "the COCO file has no matching entry in \"images\"",
        ));
    };
    let mut info = parse_image_info(image, "images[]")?;
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
    let mine: Vec<Value> = anns
        .iter()
        .filter(|a| image_id.is_null() || a.get("image_id") == Some(&image_id))
        .cloned()
        .collect();
    if info.file_name.is_none() {
        info.file_name = image.get("file_name").and_then(Value::as_str).map(String::from);
    }
    let seg = parse_region_list(&mine, info.size(), "annotations", &categories)?;
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

fn parse_region_list(
    items: &[Value],
    size: ImageSize,
    path: &str,
    categories: &BTreeMap<u64, String>,
) -> Result<Segmentation, SomError> {
    let mut regions = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        regions.push(parse_region(item, i, size, &p, categories)?);
    }
    Segmentation::new(size, regions)
}

fn parse_region(
    item: &Value,
    index: usize,
    size: ImageSize,
    path: &str,
    categories: &BTreeMap<u64, String>,
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
        Some(seg) => Some(parse_segmentation(seg, size, &format!("{path}.segmentation"))?),
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
    let mut label = obj.get("label").and_then(Value::as_str).map(String::from);
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

fn parse_segmentation(v: &Value, size: ImageSize, path: &str) -> Result<Mask, SomError> {
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
                return Mask::from_bytes(size, &bytes);
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
            let rle =
                polygons_to_rle(&polys, size).map_err(|e| SomError::format(WHAT, format!("{path}: {e}")))?;
            Ok(rle.to_mask())
        }
        _ => Err(SomError::format(
            WHAT,
            format!("{path} must be an RLE object, a list of polygons or a binary array"),
        )),
    }
}
