//! Precomputed regions as a [`Segmenter`]: regions JSON (and everything
//! `som_core::json` reads: COCO annotation files, bare COCO annotation lists,
//! SAM automatic-mask-generator records), PNG label maps, and folders of
//! binary PNG masks.
//!
//! Every source is checked against the image it is used with: a label map,
//! mask or regions file of another size is an error, never a silent resize.

use std::path::{Path, PathBuf};

use image::DynamicImage;
use som_core::json::{read_regions_with, ImageSelector, ReadOptions};
use som_core::{BBox, ImageSize, Mask, Region, Segmentation, Segmenter, SomError};

use crate::error::SegmentError;

/// The most regions a label map or mask folder may produce by default
/// (see [`LabelMapOptions::max_regions`]).
pub const DEFAULT_MAX_PRECOMPUTED_REGIONS: usize = 10_000;

/// The most bytes the masks of one label map may take (bounding-box crops,
/// one byte per pixel). A map whose labels are scattered over the whole image
/// would otherwise need `labels × pixels` bytes.
pub const MAX_MASK_BYTES: u64 = 1 << 30;

/// How a PNG label map is read.
///
/// ```
/// use som_segment::LabelMapOptions;
/// let o = LabelMapOptions { background: Some(0), ..LabelMapOptions::default() };
/// assert_eq!(o.max_regions, 10_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMapOptions {
    /// A pixel value that means "no region" (commonly 0); `None` makes every
    /// value a region.
    pub background: Option<u32>,
    /// More distinct ids than this is an error (default
    /// [`DEFAULT_MAX_PRECOMPUTED_REGIONS`]).
    pub max_regions: usize,
}

impl Default for LabelMapOptions {
    fn default() -> Self {
        Self {
            background: None,
            max_regions: DEFAULT_MAX_PRECOMPUTED_REGIONS,
        }
    }
}

/// Where precomputed regions come from.
#[derive(Debug, Clone, PartialEq)]
pub enum RegionSource {
    /// A regions JSON, COCO annotation file, COCO annotation list or SAM AMG
    /// record list; `image` picks the image of a multi-image COCO file.
    Json {
        /// The file.
        path: PathBuf,
        /// Which image of a COCO file (by id or file name).
        image: Option<ImageSelector>,
    },
    /// A PNG label map: one id per pixel (8- or 16-bit grayscale; RGB maps
    /// are read as COCO-panoptic ids `R + 256·G + 256²·B`).
    LabelMap {
        /// The PNG file.
        path: PathBuf,
        /// Background value and region limit.
        options: LabelMapOptions,
    },
    /// A folder of binary PNG masks (non-zero = inside), one region per file.
    MaskFolder {
        /// The folder.
        path: PathBuf,
    },
}

/// Regions that were computed elsewhere, as a [`Segmenter`].
///
/// # Example
/// ```
/// use image::DynamicImage;
/// use som_core::Segmenter;
/// use som_segment::Precomputed;
/// let dir = std::env::temp_dir().join(format!("som-precomputed-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("regions.json");
/// std::fs::write(&path, r#"{"image": {"width": 8, "height": 6},
///     "regions": [{"id": 3, "bbox": [1, 1, 4, 2], "label": "button"}]}"#)?;
/// let seg = Precomputed::from_path(&path).segment(&DynamicImage::new_rgb8(8, 6))?;
/// assert_eq!(seg.regions()[0].label.as_deref(), Some("button"));
/// // The same file for another image size is an error.
/// assert!(Precomputed::from_path(&path).segment(&DynamicImage::new_rgb8(9, 6)).is_err());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Precomputed {
    /// The source.
    pub source: RegionSource,
}

impl Precomputed {
    /// Picks the source by the path: a folder is a mask folder, a `.png` file
    /// a label map (no background), anything else a regions JSON.
    pub fn from_path(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let source = if path.is_dir() {
            RegionSource::MaskFolder { path }
        } else if has_extension(&path, "png") {
            RegionSource::LabelMap {
                path,
                options: LabelMapOptions::default(),
            }
        } else {
            RegionSource::Json { path, image: None }
        };
        Self { source }
    }

    /// A regions JSON / COCO / SAM AMG file.
    pub fn json(path: impl Into<PathBuf>, image: Option<ImageSelector>) -> Self {
        Self {
            source: RegionSource::Json {
                path: path.into(),
                image,
            },
        }
    }

    /// A PNG label map.
    pub fn label_map(path: impl Into<PathBuf>, options: LabelMapOptions) -> Self {
        Self {
            source: RegionSource::LabelMap {
                path: path.into(),
                options,
            },
        }
    }

    /// A folder of binary PNG masks.
    pub fn mask_folder(path: impl Into<PathBuf>) -> Self {
        Self {
            source: RegionSource::MaskFolder { path: path.into() },
        }
    }

    /// Reads the regions for an image of `size`.
    ///
    /// # Errors
    /// [`SegmentError::Io`] for unreadable files, [`SegmentError::Size`] when
    /// the source is for another image size, [`SegmentError::Format`] for
    /// malformed sources, [`SegmentError::Core`] for errors in regions JSON.
    pub fn load(&self, size: ImageSize) -> Result<Segmentation, SegmentError> {
        match &self.source {
            RegionSource::Json { path, image } => {
                let text = std::fs::read_to_string(path).map_err(|e| SegmentError::io(path, e))?;
                let options = ReadOptions {
                    image_size: Some(size),
                    image: image.clone(),
                    ..Default::default()
                };
                let (_, seg) = read_regions_with(&text, &options).map_err(|e| match e {
                    SomError::MaskSize { expected, found } => SegmentError::format(
                        path.display().to_string(),
                        format!("regions for another image size: expected {expected}, found {found}"),
                    ),
                    other => SegmentError::InFile {
                        path: path.display().to_string(),
                        source: other,
                    },
                })?;
                Ok(seg)
            }
            RegionSource::LabelMap { path, options } => {
                let bytes = std::fs::read(path).map_err(|e| SegmentError::io(path, e))?;
                let what = path.display().to_string();
                let (map_size, values) = decode_label_png(&bytes, &what)?;
                if map_size != size {
                    return Err(SegmentError::Size {
                        what: format!("label map {what}"),
                        expected: size,
                        found: map_size,
                    });
                }
                regions_from_values(size, &values, options, &what)
            }
            RegionSource::MaskFolder { path } => read_mask_folder(path, size),
        }
    }
}

impl Segmenter for Precomputed {
    fn segment(&self, image: &DynamicImage) -> Result<Segmentation, SomError> {
        Ok(self.load(ImageSize::new(image.width(), image.height()))?)
    }

    fn name(&self) -> &str {
        match self.source {
            RegionSource::Json { .. } => "regions",
            RegionSource::LabelMap { .. } => "label-map",
            RegionSource::MaskFolder { .. } => "mask-folder",
        }
    }
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

fn decode_png(bytes: &[u8], what: &str) -> Result<DynamicImage, SegmentError> {
    if !bytes.starts_with(PNG_MAGIC) {
        return Err(SegmentError::format(what, "not a PNG file"));
    }
    som_core::io::decode_image(bytes).map_err(|e| SegmentError::InFile {
        path: what.to_string(),
        source: e,
    })
}

/// Decodes a PNG label map into one id per pixel.
///
/// 8- and 16-bit grayscale maps give the pixel value; RGB(A) 8-bit maps give
/// the COCO-panoptic id `R + 256·G + 256²·B` (alpha ignored). Grayscale with
/// alpha and 16-bit colour are rejected: they are not label maps. Palette
/// (indexed) PNGs are expanded to their colours by the decoder, so their ids
/// are colour codes, not palette indices.
///
/// # Errors
/// [`SegmentError::Format`] for files that are not PNG or not a label map.
///
/// ```
/// use som_segment::decode_label_png;
/// let mut png = Vec::new();
/// image::GrayImage::from_raw(3, 1, vec![0, 7, 7]).unwrap()
///     .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
/// let (size, values) = decode_label_png(&png, "map.png")?;
/// assert_eq!((size.width, size.height), (3, 1));
/// assert_eq!(values, vec![0, 7, 7]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode_label_png(bytes: &[u8], what: &str) -> Result<(ImageSize, Vec<u32>), SegmentError> {
    let img = decode_png(bytes, what)?;
    let size = ImageSize::new(img.width(), img.height());
    let values: Vec<u32> = match &img {
        DynamicImage::ImageLuma8(m) => m.as_raw().iter().map(|&v| v as u32).collect(),
        DynamicImage::ImageLuma16(m) => m.as_raw().iter().map(|&v| v as u32).collect(),
        DynamicImage::ImageRgb8(m) => m
            .as_raw()
            .chunks_exact(3)
            .map(|p| p[0] as u32 + 256 * p[1] as u32 + 65536 * p[2] as u32)
            .collect(),
        DynamicImage::ImageRgba8(m) => m
            .as_raw()
            .chunks_exact(4)
            .map(|p| p[0] as u32 + 256 * p[1] as u32 + 65536 * p[2] as u32)
            .collect(),
        other => {
            return Err(SegmentError::format(
                what,
                format!(
                    "a label map must be 8- or 16-bit grayscale (or 8-bit RGB panoptic ids), not {:?}",
                    other.color()
                ),
            ))
        }
    };
    Ok((size, values))
}

/// One region per distinct value of `values` (except the background), in
/// increasing value order; region id = the value.
///
/// # Errors
/// [`SegmentError::Format`] when there are more than `options.max_regions`
/// distinct values, or when their masks would need more than
/// [`MAX_MASK_BYTES`].
///
/// ```
/// use som_core::ImageSize;
/// use som_segment::{regions_from_values, LabelMapOptions};
/// let opts = LabelMapOptions { background: Some(0), ..Default::default() };
/// let seg = regions_from_values(ImageSize::new(3, 2), &[0, 5, 5, 0, 9, 0], &opts, "map")?;
/// assert_eq!(seg.regions().iter().map(|r| r.id).collect::<Vec<_>>(), vec![5, 9]);
/// assert_eq!(seg.regions()[0].area(), 2);
/// # Ok::<(), som_segment::SegmentError>(())
/// ```
pub fn regions_from_values(
    size: ImageSize,
    values: &[u32],
    options: &LabelMapOptions,
    what: &str,
) -> Result<Segmentation, SegmentError> {
    if values.len() as u64 != size.pixels() {
        return Err(SegmentError::format(
            what,
            format!("{} values for a {size} image", values.len()),
        ));
    }
    // Distinct ids in increasing order, with bounding boxes.
    let mut distinct: Vec<u32> = values.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if let Some(bg) = options.background {
        distinct.retain(|&v| v != bg);
    }
    if distinct.len() > options.max_regions {
        return Err(SegmentError::format(
            what,
            format!(
                "{} distinct ids is more than the limit of {} regions (a label map holds one id per region; raise the limit if this is intended)",
                distinct.len(),
                options.max_regions
            ),
        ));
    }
    let index_of = |v: u32| distinct.binary_search(&v).ok();
    let w = size.width as usize;
    let mut boxes = vec![(u32::MAX, u32::MAX, 0u32, 0u32); distinct.len()];
    for (i, &v) in values.iter().enumerate() {
        if let Some(k) = index_of(v) {
            let (x, y) = ((i % w) as u32, (i / w) as u32);
            let b = &mut boxes[k];
            b.0 = b.0.min(x);
            b.1 = b.1.min(y);
            b.2 = b.2.max(x + 1);
            b.3 = b.3.max(y + 1);
        }
    }
    let bytes: u64 = boxes
        .iter()
        .map(|b| (b.2 - b.0) as u64 * (b.3 - b.1) as u64)
        .sum();
    if bytes > MAX_MASK_BYTES {
        return Err(SegmentError::format(
            what,
            format!(
                "the {} regions are so scattered that their masks would need {} MiB (limit {} MiB)",
                distinct.len(),
                bytes >> 20,
                MAX_MASK_BYTES >> 20
            ),
        ));
    }
    let mut crops: Vec<Vec<u8>> = boxes
        .iter()
        .map(|b| vec![0u8; (b.2 - b.0) as usize * (b.3 - b.1) as usize])
        .collect();
    for (i, &v) in values.iter().enumerate() {
        if let Some(k) = index_of(v) {
            let (x, y) = ((i % w) as u32, (i / w) as u32);
            let b = boxes[k];
            let bw = (b.2 - b.0) as usize;
            crops[k][(y - b.1) as usize * bw + (x - b.0) as usize] = 1;
        }
    }
    let mut regions = Vec::with_capacity(distinct.len());
    for ((&v, b), crop) in distinct.iter().zip(&boxes).zip(crops) {
        let bbox = BBox::from_xyxy(b.0, b.1, b.2, b.3);
        let mask = Mask::from_crop(size, bbox, &crop)?;
        regions.push(Region::from_mask(v as u64, mask));
    }
    Ok(Segmentation::new(size, regions)?)
}

/// Reads a folder of binary PNG masks: one region per `.png` file, in file
/// name order. Files whose names start with `.` are ignored; any other
/// non-PNG entry is an error. Region ids are the file stems when every stem
/// is a distinct non-negative integer (`0007.png` → 7), otherwise 1, 2, … in
/// name order. Empty masks are skipped. The file name is kept in
/// `source["file"]`.
fn read_mask_folder(dir: &Path, size: ImageSize) -> Result<Segmentation, SegmentError> {
    let entries = std::fs::read_dir(dir).map_err(|e| SegmentError::io(dir, e))?;
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| SegmentError::io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if !path.is_file() || !has_extension(&path, "png") {
            return Err(SegmentError::format(
                format!("mask folder {}", dir.display()),
                format!("{name} is not a PNG file (the folder must hold only binary PNG masks)"),
            ));
        }
        files.push(path);
    }
    files.sort();
    if files.is_empty() {
        return Err(SegmentError::format(
            format!("mask folder {}", dir.display()),
            "holds no PNG masks",
        ));
    }
    if files.len() > DEFAULT_MAX_PRECOMPUTED_REGIONS {
        return Err(SegmentError::format(
            format!("mask folder {}", dir.display()),
            format!(
                "{} masks is more than the limit of {DEFAULT_MAX_PRECOMPUTED_REGIONS}",
                files.len()
            ),
        ));
    }
    let stems: Vec<Option<u64>> = files
        .iter()
        .map(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
        })
        .collect();
    let numeric = stems.iter().all(Option::is_some) && {
        let mut ids: Vec<u64> = stems.iter().flatten().copied().collect();
        ids.sort_unstable();
        ids.windows(2).all(|w| w[0] != w[1])
    };
    let mut regions = Vec::with_capacity(files.len());
    for (i, path) in files.iter().enumerate() {
        let what = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| SegmentError::io(path, e))?;
        let img = decode_png(&bytes, &what)?;
        let found = ImageSize::new(img.width(), img.height());
        if found != size {
            return Err(SegmentError::Size {
                what: format!("mask {what}"),
                expected: size,
                found,
            });
        }
        let inside: Vec<u8> = match img {
            DynamicImage::ImageLuma8(m) => m.into_raw(),
            DynamicImage::ImageLumaA8(m) => m.as_raw().chunks_exact(2).map(|p| p[0]).collect(),
            DynamicImage::ImageLuma16(m) => m.as_raw().iter().map(|&v| (v != 0) as u8).collect(),
            other => other.to_luma8().into_raw(),
        };
        let mask = Mask::from_bytes(size, &inside)?;
        if mask.is_empty() {
            continue;
        }
        let id = if numeric {
            stems[i].unwrap_or(i as u64)
        } else {
            i as u64 + 1
        };
        let mut region = Region::from_mask(id, mask);
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        region
            .source
            .insert("file".into(), serde_json::Value::String(file));
        regions.push(region);
    }
    Ok(Segmentation::new(size, regions)?)
}
