//! COCO: instance annotations (`instances_*.json`: polygons, RLE or
//! uncompressed RLE) and panoptic annotations (`panoptic_*.json` with one
//! RGB-encoded PNG per image), and the open-vocabulary segmentation task on
//! them.
//!
//! The same instance loader reads RefCOCOg's `instances.json`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;
use som_core::json::{read_regions_value, ReadOptions};
use som_core::{ImageSize, Region, Segmentation};

use super::json::{read_json, top_list, Obj};
use super::{ClassNames, Dataset, EvalItem, ItemRef, OpenOptions, Query, SemanticTruth, Task};
use crate::error::{EvalError, Result};
use crate::labelmap::LabelMap;

/// An image entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CocoImage {
    /// `id`.
    pub id: u64,
    /// `file_name`.
    pub file_name: String,
    /// `width` × `height`.
    pub size: ImageSize,
}

/// A category entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    /// `id`.
    pub id: u64,
    /// `name`.
    pub name: String,
}

/// The ignore value of semantic label maps built here (no class index reaches it).
pub const IGNORE: u32 = u32::MAX;

fn read_images(doc: &Value, file: &str) -> Result<(Vec<CocoImage>, HashMap<u64, usize>)> {
    let mut images = Vec::new();
    let mut by_id = HashMap::new();
    for (i, v) in top_list(doc, "images", file)?.iter().enumerate() {
        let item = format!("images[{i}]");
        let o = Obj::new(v, file, &item)?;
        let id = o.u64("id")?;
        let item = format!("image {id}");
        let o = Obj::new(v, file, &item)?;
        let image = CocoImage {
            id,
            file_name: o.str("file_name")?.to_string(),
            size: ImageSize::new(o.u32("width")?, o.u32("height")?),
        };
        if image.size.pixels() == 0 {
            return Err(o.err("width and height must be positive"));
        }
        if by_id.insert(id, images.len()).is_some() {
            return Err(o.err("the id is used by more than one image"));
        }
        images.push(image);
    }
    Ok((images, by_id))
}

fn read_categories(doc: &Value, file: &str) -> Result<(Vec<Category>, HashMap<u64, usize>)> {
    let mut cats = Vec::new();
    let mut by_id = HashMap::new();
    for (i, v) in top_list(doc, "categories", file)?.iter().enumerate() {
        let item = format!("categories[{i}]");
        let o = Obj::new(v, file, &item)?;
        let c = Category {
            id: o.u64("id")?,
            name: o.str("name")?.to_string(),
        };
        if by_id.insert(c.id, cats.len()).is_some() {
            return Err(o.err(format!("category id {} is used twice", c.id)));
        }
        cats.push(c);
    }
    Ok((cats, by_id))
}

/// A COCO instance annotation file.
#[derive(Debug)]
pub struct CocoInstances {
    file: String,
    doc: Value,
    images: Vec<CocoImage>,
    image_index: HashMap<u64, usize>,
    categories: Vec<Category>,
    category_index: HashMap<u64, usize>,
    /// Annotation positions in `doc["annotations"]`, per image index.
    by_image: Vec<Vec<usize>>,
    ann_index: HashMap<u64, usize>,
}

impl CocoInstances {
    /// Reads and checks an instance annotation file.
    ///
    /// # Errors
    /// [`EvalError::Dataset`] naming the file and the item: missing keys,
    /// duplicate ids, an annotation whose `image_id` or `category_id` names
    /// nothing, an RLE whose size is not its image's.
    pub fn open(path: &Path) -> Result<Self> {
        let doc = read_json(path)?;
        let file = path.display().to_string();
        let (images, image_index) = read_images(&doc, &file)?;
        let (categories, category_index) = read_categories(&doc, &file)?;
        let mut by_image = vec![Vec::new(); images.len()];
        let mut ann_index = HashMap::new();
        for (i, v) in top_list(&doc, "annotations", &file)?.iter().enumerate() {
            let item = format!("annotations[{i}]");
            let o = Obj::new(v, &file, &item)?;
            let id = o.u64("id")?;
            let item = format!("annotation {id}");
            let o = Obj::new(v, &file, &item)?;
            let image_id = o.u64("image_id")?;
            let category_id = o.u64("category_id")?;
            let Some(&im) = image_index.get(&image_id) else {
                return Err(o.err(format!("image_id {image_id} names no image")));
            };
            if !category_index.contains_key(&category_id) {
                return Err(o.err(format!("category_id {category_id} names no category")));
            }
            match o.opt("segmentation") {
                Some(Value::Object(rle)) => {
                    let size = rle.get("size").and_then(Value::as_array);
                    let hw: Option<Vec<u64>> = size.map(|s| s.iter().filter_map(Value::as_u64).collect());
                    let want = images[im].size;
                    match hw.as_deref() {
                        Some([h, w]) if (*h, *w) == (want.height as u64, want.width as u64) => {}
                        Some([h, w]) => {
                            return Err(o.err(format!("its RLE is {w}x{h} but image {image_id} is {want}")))
                        }
                        _ => return Err(o.err("segmentation.size must be [height, width]")),
                    }
                }
                Some(Value::Array(_)) => {}
                Some(_) => return Err(o.err("segmentation must be polygons or an RLE object")),
                None => {
                    o.bbox("bbox")?;
                }
            }
            if ann_index.insert(id, i).is_some() {
                return Err(o.err("the id is used by more than one annotation"));
            }
            by_image[im].push(i);
        }
        Ok(Self {
            file,
            doc,
            images,
            image_index,
            categories,
            category_index,
            by_image,
            ann_index,
        })
    }

    /// The images.
    pub fn images(&self) -> &[CocoImage] {
        &self.images
    }

    /// The image with `id`.
    pub fn image(&self, id: u64) -> Option<&CocoImage> {
        self.image_index.get(&id).map(|&i| &self.images[i])
    }

    /// The categories.
    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    /// The position of category `id` in [`CocoInstances::categories`].
    pub fn category_index(&self, id: u64) -> Option<usize> {
        self.category_index.get(&id).copied()
    }

    /// Whether an annotation with `id` exists.
    pub fn has_annotation(&self, id: u64) -> bool {
        self.ann_index.contains_key(&id)
    }

    /// The `bbox` of annotation `id` as written (`[x, y, w, h]`, floats).
    pub fn annotation_bbox(&self, id: u64) -> Option<[f64; 4]> {
        let b = self
            .annotation_value(*self.ann_index.get(&id)?)
            .get("bbox")?
            .as_array()?;
        let n: Vec<f64> = b.iter().filter_map(Value::as_f64).collect();
        (n.len() == 4 && b.len() == 4).then(|| [n[0], n[1], n[2], n[3]])
    }

    fn annotation_value(&self, pos: usize) -> &Value {
        &self.doc["annotations"][pos]
    }

    /// The ids of the annotations of image `image_id`, in file order.
    pub fn annotation_ids(&self, image_id: u64) -> Vec<u64> {
        self.image_index
            .get(&image_id)
            .map(|&i| {
                self.by_image[i]
                    .iter()
                    .filter_map(|&p| self.annotation_value(p)["id"].as_u64())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Decodes annotations (by id) of one image into regions: region id =
    /// annotation id, label = category name, `iscrowd` and `category_id` kept
    /// in the region's source.
    ///
    /// # Errors
    /// [`EvalError::Dataset`] naming the annotation for an unknown id, an id
    /// of another image, or a segmentation that does not decode.
    pub fn regions(&self, image_id: u64, ann_ids: &[u64]) -> Result<Segmentation> {
        let image = self
            .image(image_id)
            .ok_or_else(|| EvalError::dataset(&self.file, format!("image {image_id}"), "no such image"))?;
        let mut regions = Vec::with_capacity(ann_ids.len());
        for &id in ann_ids {
            let item = format!("annotation {id}");
            let pos = *self
                .ann_index
                .get(&id)
                .ok_or_else(|| EvalError::dataset(&self.file, &item, "no such annotation"))?;
            let v = self.annotation_value(pos);
            if v["image_id"].as_u64() != Some(image_id) {
                return Err(EvalError::dataset(
                    &self.file,
                    &item,
                    format!("belongs to another image than {image_id}"),
                ));
            }
            let opts = ReadOptions {
                image_size: Some(image.size),
                image: None,
                ..Default::default()
            };
            let (_, seg) = read_regions_value(&Value::Array(vec![v.clone()]), &opts)
                .map_err(|e| EvalError::dataset(&self.file, &item, e.to_string()))?;
            let mut r = seg
                .into_regions()
                .into_iter()
                .next()
                .ok_or_else(|| EvalError::dataset(&self.file, &item, "empty"))?;
            r.id = id;
            if let Some(c) = v["category_id"].as_u64().and_then(|c| self.category_index(c)) {
                r.label = Some(self.categories[c].name.clone());
            }
            regions.push(r);
        }
        Ok(Segmentation::new(image.size, regions)?)
    }

    /// All annotations of an image as regions, and a semantic label map
    /// (category index per pixel, later annotations on top, crowd regions and
    /// unannotated pixels [`IGNORE`]).
    ///
    /// # Errors
    /// As [`CocoInstances::regions`].
    pub fn image_truth(&self, image_id: u64) -> Result<(Segmentation, LabelMap)> {
        let all = self.regions(image_id, &self.annotation_ids(image_id))?;
        let size = all.size();
        let mut map = LabelMap::filled(size, IGNORE);
        let mut kept = Vec::new();
        for r in all.into_regions() {
            let crowd = r.source.get("iscrowd").and_then(Value::as_u64) == Some(1);
            let class = r
                .source
                .get("category_id")
                .and_then(Value::as_u64)
                .and_then(|c| self.category_index(c))
                .map_or(IGNORE, |c| c as u32);
            let mask = r.to_mask(size);
            map.paint(&mask, if crowd { IGNORE } else { class })?;
            if !crowd && r.area() > 0 {
                kept.push(r);
            }
        }
        Ok((Segmentation::new(size, kept)?, map))
    }
}

/// A segment of a panoptic annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanopticSegment {
    /// The segment id (the PNG's `R + 256 G + 256² B`).
    pub id: u32,
    /// `category_id`.
    pub category_id: u64,
    /// `iscrowd`.
    pub iscrowd: bool,
}

/// A COCO panoptic annotation file and its PNG folder.
#[derive(Debug)]
pub struct CocoPanoptic {
    file: String,
    png_dir: PathBuf,
    images: Vec<CocoImage>,
    image_index: HashMap<u64, usize>,
    categories: Vec<Category>,
    category_index: HashMap<u64, usize>,
    /// Per image index: the PNG file name and segments (`None`: not annotated).
    annotations: Vec<Option<(String, Vec<PanopticSegment>)>>,
}

impl CocoPanoptic {
    /// Reads and checks a panoptic annotation file; `png_dir` holds its PNGs.
    ///
    /// # Errors
    /// [`EvalError::Dataset`] naming the file and item: missing keys, an
    /// annotation for no image, a segment of no category, duplicate segment ids.
    pub fn open(path: &Path, png_dir: &Path) -> Result<Self> {
        let doc = read_json(path)?;
        let file = path.display().to_string();
        let (images, image_index) = read_images(&doc, &file)?;
        let (categories, category_index) = read_categories(&doc, &file)?;
        let mut annotations = vec![None; images.len()];
        for (i, v) in top_list(&doc, "annotations", &file)?.iter().enumerate() {
            let item = format!("annotations[{i}]");
            let o = Obj::new(v, &file, &item)?;
            let image_id = o.u64("image_id")?;
            let item = format!("annotation of image {image_id}");
            let o = Obj::new(v, &file, &item)?;
            let Some(&im) = image_index.get(&image_id) else {
                return Err(o.err(format!("image_id {image_id} names no image")));
            };
            let png = o.str("file_name")?.to_string();
            let mut segments: Vec<PanopticSegment> = Vec::new();
            for (k, s) in o.array("segments_info")?.iter().enumerate() {
                let item = format!("annotation of image {image_id}, segments_info[{k}]");
                let so = Obj::new(s, &file, &item)?;
                let id = so.u32("id")?;
                let category_id = so.u64("category_id")?;
                if !category_index.contains_key(&category_id) {
                    return Err(so.err(format!("category_id {category_id} names no category")));
                }
                if id == 0 || id >= 1 << 24 {
                    return Err(so.err(format!(
                        "segment id {id} cannot be stored in an RGB PNG (1..2^24)"
                    )));
                }
                if segments.iter().any(|x| x.id == id) {
                    return Err(so.err(format!("segment id {id} is used twice")));
                }
                let iscrowd = so.opt("iscrowd").and_then(Value::as_u64) == Some(1);
                segments.push(PanopticSegment {
                    id,
                    category_id,
                    iscrowd,
                });
            }
            if annotations[im].replace((png, segments)).is_some() {
                return Err(o.err("the image is annotated twice"));
            }
        }
        Ok(Self {
            file,
            png_dir: png_dir.to_path_buf(),
            images,
            image_index,
            categories,
            category_index,
            annotations,
        })
    }

    /// The images.
    pub fn images(&self) -> &[CocoImage] {
        &self.images
    }

    /// The categories.
    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    /// Whether image `id` has a panoptic annotation.
    pub fn is_annotated(&self, id: u64) -> bool {
        self.image_index
            .get(&id)
            .is_some_and(|&i| self.annotations[i].is_some())
    }

    /// Reads an image's PNG: one region per segment (id = segment id, label =
    /// category name) and the semantic label map (category index per pixel,
    /// [`IGNORE`] for unlabelled pixels).
    ///
    /// # Errors
    /// [`EvalError::Dataset`] naming the PNG: a size other than the image's,
    /// a pixel id that no segment of `segments_info` has, a listed segment
    /// with no pixel.
    pub fn image_truth(&self, image_id: u64) -> Result<(Segmentation, LabelMap)> {
        let item = format!("image {image_id}");
        let &im = self
            .image_index
            .get(&image_id)
            .ok_or_else(|| EvalError::dataset(&self.file, &item, "no such image"))?;
        let Some((png, segments)) = &self.annotations[im] else {
            return Err(EvalError::dataset(
                &self.file,
                &item,
                "the image has no panoptic annotation",
            ));
        };
        let path = self.png_dir.join(png);
        let ids = LabelMap::read_png_rgb_ids(&path)?;
        let file = path.display().to_string();
        let size = self.images[im].size;
        if ids.size() != size {
            return Err(EvalError::dataset(
                file,
                "",
                format!("the PNG is {}, image {image_id} is {size}", ids.size()),
            ));
        }
        let by_id: BTreeMap<u32, &PanopticSegment> = segments.iter().map(|s| (s.id, s)).collect();
        let mut labels = Vec::with_capacity(ids.labels().len());
        let mut seen = BTreeMap::new();
        let w = size.width as usize;
        for (i, &id) in ids.labels().iter().enumerate() {
            if id == 0 {
                labels.push(IGNORE);
                continue;
            }
            let Some(seg) = by_id.get(&id) else {
                return Err(EvalError::dataset(
                    file,
                    format!("pixel ({}, {})", i % w, i / w),
                    format!("segment id {id} is not in the segments_info of image {image_id}"),
                ));
            };
            *seen.entry(id).or_insert(0u64) += 1;
            labels.push(self.category_index[&seg.category_id] as u32);
        }
        if let Some(s) = segments.iter().find(|s| !seen.contains_key(&s.id)) {
            return Err(EvalError::dataset(
                file,
                "",
                format!(
                    "segment {} of image {image_id}'s segments_info has no pixel in the PNG",
                    s.id
                ),
            ));
        }
        let mut regions = Vec::new();
        for s in segments {
            if s.iscrowd {
                continue;
            }
            let r = Region::from_mask(s.id as u64, ids.mask(s.id))
                .with_label(self.categories[self.category_index[&s.category_id]].name.clone());
            regions.push(r);
        }
        Ok((Segmentation::new(size, regions)?, LabelMap::new(size, labels)?))
    }
}

enum Source {
    Instances(CocoInstances),
    Panoptic(CocoPanoptic),
}

/// COCO open-vocabulary segmentation: each item is an image whose regions
/// the model names from the COCO categories.
pub struct CocoDataset {
    root: PathBuf,
    images_dir: PathBuf,
    source: Source,
    items: Vec<ItemRef>,
    image_ids: Vec<u64>,
    vocabulary: Vec<ClassNames>,
}

impl std::fmt::Debug for CocoDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CocoDataset")
            .field("root", &self.root)
            .field("items", &self.items.len())
            .finish()
    }
}

impl CocoDataset {
    /// Opens `root` for `options.split` (default `val2017`): instance
    /// annotations `annotations/instances_<split>.json` when present, else
    /// panoptic `annotations/panoptic_<split>.json` with
    /// `annotations/panoptic_<split>/`; images in `<split>/` (or `options.images`).
    ///
    /// # Errors
    /// [`EvalError::Dataset`] when neither annotation file exists, or as the loaders.
    pub fn open(root: &Path, options: &OpenOptions) -> Result<Self> {
        let split = options.split.as_deref().unwrap_or("val2017");
        let ann = root.join("annotations");
        let instances = ann.join(format!("instances_{split}.json"));
        let panoptic = ann.join(format!("panoptic_{split}.json"));
        let source = if instances.is_file() {
            Source::Instances(CocoInstances::open(&instances)?)
        } else if panoptic.is_file() {
            Source::Panoptic(CocoPanoptic::open(
                &panoptic,
                &ann.join(format!("panoptic_{split}")),
            )?)
        } else {
            return Err(EvalError::dataset(
                ann.display().to_string(),
                "",
                format!("neither instances_{split}.json nor panoptic_{split}.json is here"),
            ));
        };
        let (images, categories) = match &source {
            Source::Instances(c) => (c.images(), c.categories()),
            Source::Panoptic(p) => (p.images(), p.categories()),
        };
        let mut items = Vec::new();
        let mut image_ids = Vec::new();
        for im in images {
            let annotated = match &source {
                Source::Instances(c) => !c.annotation_ids(im.id).is_empty(),
                Source::Panoptic(p) => p.is_annotated(im.id),
            };
            if annotated {
                items.push(ItemRef {
                    id: format!("coco/{}", im.id),
                    group: im.id.to_string(),
                });
                image_ids.push(im.id);
            }
        }
        let vocabulary = categories
            .iter()
            .map(|c| ClassNames {
                id: c.id,
                names: vec![c.name.clone()],
            })
            .collect();
        Ok(Self {
            root: root.to_path_buf(),
            images_dir: options.images.clone().unwrap_or_else(|| root.join(split)),
            source,
            items,
            image_ids,
            vocabulary,
        })
    }
}

impl Dataset for CocoDataset {
    fn task(&self) -> Task {
        Task::Coco
    }

    fn root(&self) -> &Path {
        &self.root
    }

    fn items(&self) -> &[ItemRef] {
        &self.items
    }

    fn load(&self, index: usize) -> Result<EvalItem> {
        let id = self.image_ids[index];
        let (file_name, (regions, map)) = match &self.source {
            Source::Instances(c) => (c.image(id).map(|i| i.file_name.clone()), c.image_truth(id)?),
            Source::Panoptic(p) => (
                p.images()
                    .iter()
                    .find(|i| i.id == id)
                    .map(|i| i.file_name.clone()),
                p.image_truth(id)?,
            ),
        };
        Ok(EvalItem {
            id: self.items[index].id.clone(),
            group: self.items[index].group.clone(),
            image: self.images_dir.join(file_name.unwrap_or_default()),
            premarked: false,
            prompt: None,
            query: Query::Label {
                vocabulary: self.vocabulary.iter().map(|c| c.names[0].clone()).collect(),
            },
            targets: Vec::new(),
            regions: Some(regions),
            semantic: Some(SemanticTruth { map, ignore: IGNORE }),
            reference: None,
            output_name: None,
        })
    }

    fn vocabulary(&self) -> Option<&[ClassNames]> {
        Some(&self.vocabulary)
    }
}
