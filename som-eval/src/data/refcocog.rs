//! RefCOCOg, umd split (Nagaraja et al.), as the refer toolkit
//! (<https://github.com/lichengunc/refer>) lays it out: `refcocog/refs(umd).p`
//! (a pickled list of refs: `ref_id`, `ann_id`, `image_id`, `split`,
//! `sentences` of `{sent_id, sent, raw, tokens}`…) and `refcocog/instances.json`
//! (COCO instances of the referred objects); images are COCO `train2014`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::coco::CocoInstances;
use super::pickle::{unpickle, PyValue};
use super::{Dataset, EvalItem, ItemRef, OpenOptions, Query, Task, Truth};
use crate::error::{EvalError, Result};

/// A sentence of a ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefSentence {
    /// `sent_id`.
    pub id: u64,
    /// `sent` (the cleaned expression).
    pub text: String,
}

/// A referred object and its expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    /// `ref_id`.
    pub ref_id: u64,
    /// `ann_id`: the object's annotation in `instances.json`.
    pub ann_id: u64,
    /// `image_id`.
    pub image_id: u64,
    /// `split`: `train`, `val` or `test`.
    pub split: String,
    /// The expressions.
    pub sentences: Vec<RefSentence>,
}

/// Reads a refs pickle (any protocol) and checks every ref's keys.
///
/// # Errors
/// [`EvalError::Dataset`] naming the file and the ref (`refs[3] (ref_id 12)`)
/// for a malformed pickle or a missing or mistyped key.
pub fn read_refs(path: &Path) -> Result<Vec<Ref>> {
    let bytes = std::fs::read(path).map_err(|e| EvalError::io("read", path, e))?;
    let file = path.display().to_string();
    let value = unpickle(&bytes).map_err(|m| EvalError::dataset(&file, "", m))?;
    let list = value.as_list().ok_or_else(|| {
        EvalError::dataset(&file, "", format!("holds a {}, not a list of refs", value.kind()))
    })?;
    let mut refs = Vec::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        let mut item = format!("refs[{i}]");
        let err = |item: &str, m: String| EvalError::dataset(&file, item, m);
        if !matches!(r, PyValue::Dict(_)) {
            return Err(err(&item, format!("is a {}, not a dict", r.kind())));
        }
        let int = |item: &str, key: &str| -> Result<u64> {
            match r.get(key) {
                None => Err(err(item, format!("missing key {key:?}"))),
                Some(v) => v
                    .as_i64()
                    .and_then(|v| u64::try_from(v).ok())
                    .ok_or_else(|| err(item, format!("{key:?} is a {}, not a non-negative int", v.kind()))),
            }
        };
        let ref_id = int(&item, "ref_id")?;
        item = format!("refs[{i}] (ref_id {ref_id})");
        let ann_id = int(&item, "ann_id")?;
        let image_id = int(&item, "image_id")?;
        let split = r
            .get("split")
            .and_then(PyValue::as_str)
            .ok_or_else(|| err(&item, "missing key \"split\" (a string)".into()))?
            .to_string();
        let sents = r
            .get("sentences")
            .and_then(PyValue::as_list)
            .ok_or_else(|| err(&item, "missing key \"sentences\" (a list)".into()))?;
        let mut sentences = Vec::with_capacity(sents.len());
        for (k, s) in sents.iter().enumerate() {
            let id = s
                .get("sent_id")
                .and_then(PyValue::as_i64)
                .and_then(|v| u64::try_from(v).ok())
                .ok_or_else(|| err(&item, format!("sentences[{k}] has no \"sent_id\"")))?;
            let text = s
                .get("sent")
                .or_else(|| s.get("raw"))
                .and_then(PyValue::as_str)
                .ok_or_else(|| err(&item, format!("sentences[{k}] (sent_id {id}) has no \"sent\"")))?;
            sentences.push(RefSentence {
                id,
                text: text.trim().to_string(),
            });
        }
        refs.push(Ref {
            ref_id,
            ann_id,
            image_id,
            split,
            sentences,
        });
    }
    Ok(refs)
}

/// RefCOCOg (umd): each item is one expression of one ref.
#[derive(Debug)]
pub struct RefCocog {
    root: PathBuf,
    images_dir: PathBuf,
    instances: CocoInstances,
    refs: Vec<Ref>,
    by_id: HashMap<u64, usize>,
    items: Vec<ItemRef>,
    /// (ref index, sentence index) per item.
    index: Vec<(usize, usize)>,
}

impl RefCocog {
    /// Opens `root` (a folder holding `refcocog/`, or `refcocog/` itself) for
    /// `options.split` (default `val`); images in `images/train2014/` or
    /// `train2014/` under `root`, or `options.images`.
    ///
    /// # Errors
    /// [`EvalError::Dataset`] naming the file and ref: a ref whose `ann_id`
    /// names no annotation or whose `image_id` is not its annotation's,
    /// duplicate ref ids, a split with no refs.
    pub fn open(root: &Path, options: &OpenOptions) -> Result<Self> {
        let split = options.split.as_deref().unwrap_or("val");
        let dir = if root.join("refcocog").is_dir() {
            root.join("refcocog")
        } else {
            root.to_path_buf()
        };
        let refs_path = dir.join("refs(umd).p");
        let refs = read_refs(&refs_path)?;
        let instances = CocoInstances::open(&dir.join("instances.json"))?;
        let file = refs_path.display().to_string();
        let mut by_id = HashMap::new();
        let mut items = Vec::new();
        let mut index = Vec::new();
        for (i, r) in refs.iter().enumerate() {
            let item = format!("ref {}", r.ref_id);
            if by_id.insert(r.ref_id, i).is_some() {
                return Err(EvalError::dataset(&file, &item, "the ref_id is used twice"));
            }
            if !instances.has_annotation(r.ann_id) {
                return Err(EvalError::dataset(
                    &file,
                    &item,
                    format!("ann_id {} names no annotation of instances.json", r.ann_id),
                ));
            }
            if !instances.annotation_ids(r.image_id).contains(&r.ann_id) {
                return Err(EvalError::dataset(
                    &file,
                    &item,
                    format!(
                        "image_id {} is not the image of annotation {}",
                        r.image_id, r.ann_id
                    ),
                ));
            }
            if r.split != split {
                continue;
            }
            for (k, s) in r.sentences.iter().enumerate() {
                items.push(ItemRef {
                    id: format!("refcocog/ref-{}/sent-{}", r.ref_id, s.id),
                    group: r.image_id.to_string(),
                });
                index.push((i, k));
            }
        }
        if items.is_empty() {
            return Err(EvalError::dataset(
                &file,
                "",
                format!("no ref of split {split:?} has a sentence"),
            ));
        }
        let images_dir = options.images.clone().unwrap_or_else(|| {
            let a = root.join("images").join("train2014");
            if a.is_dir() {
                a
            } else {
                root.join("train2014")
            }
        });
        Ok(Self {
            root: root.to_path_buf(),
            images_dir,
            instances,
            refs,
            by_id,
            items,
            index,
        })
    }

    /// The ref with `ref_id`.
    pub fn get(&self, ref_id: u64) -> Option<&Ref> {
        self.by_id.get(&ref_id).map(|&i| &self.refs[i])
    }

    /// The refs of the opened split.
    pub fn refs(&self) -> impl Iterator<Item = &Ref> {
        let mut seen = std::collections::BTreeSet::new();
        self.index
            .iter()
            .filter(move |(r, _)| seen.insert(*r))
            .map(|(r, _)| &self.refs[*r])
    }

    /// The referred object's truth: its annotated box and mask.
    ///
    /// # Errors
    /// As [`CocoInstances::regions`].
    pub fn truth(&self, r: &Ref) -> Result<Truth> {
        let seg = self.instances.regions(r.image_id, &[r.ann_id])?;
        let region = &seg.regions()[0];
        // REC is scored against the annotated box; the mask's box stands in when there is none.
        let bbox = self
            .instances
            .annotation_bbox(r.ann_id)
            .unwrap_or_else(|| crate::metrics::refer::to_xywh(region.bbox));
        Ok(Truth::Object {
            bbox,
            mask: region.mask.as_ref().map(|m| m.to_rle()),
        })
    }
}

impl Dataset for RefCocog {
    fn task(&self) -> Task {
        Task::Refcocog
    }

    fn root(&self) -> &Path {
        &self.root
    }

    fn items(&self) -> &[ItemRef] {
        &self.items
    }

    fn load(&self, index: usize) -> Result<EvalItem> {
        let (ri, si) = self.index[index];
        let r = &self.refs[ri];
        let image = self.instances.image(r.image_id).ok_or_else(|| {
            EvalError::dataset("instances.json", format!("image {}", r.image_id), "no such image")
        })?;
        let all = self
            .instances
            .regions(r.image_id, &self.instances.annotation_ids(r.image_id))?;
        Ok(EvalItem {
            id: self.items[index].id.clone(),
            group: self.items[index].group.clone(),
            image: self.images_dir.join(&image.file_name),
            premarked: false,
            prompt: None,
            query: Query::Refer {
                expression: r.sentences[si].text.clone(),
            },
            targets: vec![(format!("ref {}", r.ref_id), self.truth(r)?)],
            regions: Some(all),
            semantic: None,
            reference: None,
            output_name: None,
        })
    }
}
