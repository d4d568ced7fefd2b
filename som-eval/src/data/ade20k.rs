//! ADE20K scene parsing (`ADEChallengeData2016`): `images/<split>/*.jpg`,
//! 8-bit `annotations/<split>/*.png` (0 = other, 1..150 the classes) and
//! `objectInfo150.txt` (tab-separated `Idx Ratio Train Val Name`, synonyms
//! comma-separated) or the `objectInfo150.csv` other toolkits ship
//! (comma-separated, synonyms separated by `;`).

use std::path::{Path, PathBuf};

use som_core::{ImageSize, Region, Segmentation};

use super::{list_files, ClassNames, Dataset, EvalItem, ItemRef, OpenOptions, Query, SemanticTruth, Task};
use crate::error::{EvalError, Result};
use crate::labelmap::LabelMap;

/// ADE20K's number of classes.
pub const CLASSES: usize = 150;

/// The ignore value of the semantic maps built here.
pub const IGNORE: u32 = u32::MAX;

/// Reads the 150-class list (`objectInfo150.txt` or `.csv`).
///
/// # Errors
/// [`EvalError::Dataset`] naming the file and line: a row that is not
/// `Idx … Name`, indices out of order, or not 150 classes.
///
/// ```
/// let dir = std::env::temp_dir().join("som-eval-ade-doc");
/// std::fs::create_dir_all(&dir).unwrap();
/// let mut text = String::from("Idx\tRatio\tTrain\tVal\tName\n");
/// for i in 1..=150 { text += &format!("{i}\t0.1\t1\t1\tclass {i}, synonym\n"); }
/// std::fs::write(dir.join("objectInfo150.txt"), text).unwrap();
/// let classes = som_eval::data::ade20k::read_classes(&dir.join("objectInfo150.txt"))?;
/// assert_eq!(classes[1].names, ["class 2", "synonym"]);
/// # Ok::<(), som_eval::EvalError>(())
/// ```
pub fn read_classes(path: &Path) -> Result<Vec<ClassNames>> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io("read", path, e))?;
    let file = path.display().to_string();
    let csv = path.extension().is_some_and(|e| e == "csv");
    let mut classes = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let item = format!("line {}", n + 1);
        let (idx, names) = if csv {
            let mut cols = line.splitn(5, ',');
            let idx = cols.next().unwrap_or("");
            let name = cols.nth(3).unwrap_or("");
            (idx, name.split(';').map(str::trim).collect::<Vec<_>>())
        } else {
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() < 5 {
                return Err(EvalError::dataset(
                    &file,
                    &item,
                    "expected 5 tab-separated columns: Idx Ratio Train Val Name",
                ));
            }
            (cols[0], cols[4].split(',').map(str::trim).collect::<Vec<_>>())
        };
        let idx: u64 = idx
            .trim()
            .parse()
            .map_err(|_| EvalError::dataset(&file, &item, format!("index {idx:?} is not a number")))?;
        if idx != classes.len() as u64 + 1 {
            return Err(EvalError::dataset(
                &file,
                &item,
                format!("index {idx}, expected {}", classes.len() + 1),
            ));
        }
        let names: Vec<String> = names
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if names.is_empty() {
            return Err(EvalError::dataset(&file, &item, "no class name"));
        }
        classes.push(ClassNames { id: idx, names });
    }
    if classes.len() != CLASSES {
        return Err(EvalError::dataset(
            &file,
            "",
            format!("{} classes, ADE20K has {CLASSES}", classes.len()),
        ));
    }
    Ok(classes)
}

/// ADE20K open-vocabulary segmentation: each item is an image whose regions
/// (one per class present, from the annotation) the model names.
#[derive(Debug)]
pub struct Ade20k {
    root: PathBuf,
    images_dir: PathBuf,
    annotations_dir: PathBuf,
    classes: Vec<ClassNames>,
    items: Vec<ItemRef>,
    stems: Vec<String>,
}

impl Ade20k {
    /// Opens `root` (the `ADEChallengeData2016` folder) for `options.split`
    /// (default `validation`).
    ///
    /// # Errors
    /// [`EvalError::Dataset`]: no class list, an image without its annotation.
    pub fn open(root: &Path, options: &OpenOptions) -> Result<Self> {
        let split = options.split.as_deref().unwrap_or("validation");
        let txt = root.join("objectInfo150.txt");
        let csv = root.join("objectInfo150.csv");
        let classes = if txt.is_file() {
            read_classes(&txt)?
        } else if csv.is_file() {
            read_classes(&csv)?
        } else {
            return Err(EvalError::dataset(
                root.display().to_string(),
                "",
                "no objectInfo150.txt (the 150-class list that ships with ADEChallengeData2016)",
            ));
        };
        let images_dir = options
            .images
            .clone()
            .unwrap_or_else(|| root.join("images").join(split));
        let annotations_dir = root.join("annotations").join(split);
        let annotations = list_files(&annotations_dir, &["png"])?;
        let mut items = Vec::new();
        let mut stems = Vec::new();
        for name in list_files(&images_dir, &["jpg", "jpeg", "png"])? {
            let stem = Path::new(&name)
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            if !annotations.contains(&format!("{stem}.png")) {
                return Err(EvalError::dataset(
                    annotations_dir.display().to_string(),
                    stem,
                    format!("image {name} has no annotation PNG"),
                ));
            }
            items.push(ItemRef {
                id: format!("ade20k/{stem}"),
                group: stem.clone(),
            });
            stems.push(name);
        }
        Ok(Self {
            root: root.to_path_buf(),
            images_dir,
            annotations_dir,
            classes,
            items,
            stems,
        })
    }

    /// Reads the annotation of image `name` (a file in the images folder) and
    /// checks it: the image's size, values 0..=150.
    ///
    /// # Errors
    /// [`EvalError::Dataset`] naming the PNG and the pixel.
    pub fn annotation(&self, name: &str) -> Result<LabelMap> {
        let stem = Path::new(name)
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let path = self.annotations_dir.join(format!("{stem}.png"));
        let map = LabelMap::read_png(&path)?;
        let file = path.display().to_string();
        let img = self.images_dir.join(name);
        let (w, h) = image::ImageReader::open(&img)
            .map_err(|e| EvalError::io("read", &img, e))?
            .with_guessed_format()
            .map_err(|e| EvalError::io("read", &img, e))?
            .into_dimensions()
            .map_err(|e| {
                EvalError::dataset(
                    img.display().to_string(),
                    "",
                    format!("not a readable image ({e})"),
                )
            })?;
        if map.size() != ImageSize::new(w, h) {
            return Err(EvalError::dataset(
                file,
                "",
                format!("the annotation is {}, its image {w}x{h}", map.size()),
            ));
        }
        if let Some((i, v)) = map
            .labels()
            .iter()
            .enumerate()
            .find(|(_, &v)| v as usize > CLASSES)
        {
            let w = map.size().width as usize;
            return Err(EvalError::dataset(
                file,
                format!("pixel ({}, {})", i % w, i / w),
                format!("label {v} is not 0 (other) or one of the {CLASSES} classes"),
            ));
        }
        Ok(map)
    }
}

impl Dataset for Ade20k {
    fn task(&self) -> Task {
        Task::Ade20k
    }

    fn root(&self) -> &Path {
        &self.root
    }

    fn items(&self) -> &[ItemRef] {
        &self.items
    }

    fn load(&self, index: usize) -> Result<EvalItem> {
        let name = &self.stems[index];
        let stored = self.annotation(name)?;
        let size = stored.size();
        let labels: Vec<u32> = stored
            .labels()
            .iter()
            .map(|&v| if v == 0 { IGNORE } else { v - 1 })
            .collect();
        let map = LabelMap::new(size, labels)?;
        let mut present: Vec<u32> = stored.labels().iter().copied().filter(|&v| v > 0).collect();
        present.sort_unstable();
        present.dedup();
        let regions: Vec<Region> = present
            .iter()
            .map(|&v| {
                Region::from_mask(v as u64, stored.mask(v))
                    .with_label(self.classes[v as usize - 1].names[0].clone())
            })
            .collect();
        Ok(EvalItem {
            id: self.items[index].id.clone(),
            group: self.items[index].group.clone(),
            image: self.images_dir.join(name),
            premarked: false,
            prompt: None,
            query: Query::Label {
                vocabulary: self.classes.iter().map(|c| c.names[0].clone()).collect(),
            },
            targets: Vec::new(),
            regions: Some(Segmentation::new(size, regions)?),
            semantic: Some(SemanticTruth { map, ignore: IGNORE }),
            reference: None,
            output_name: None,
        })
    }

    fn vocabulary(&self) -> Option<&[ClassNames]> {
        Some(&self.classes)
    }
}
