//! Offline scoring of predictions already on disk, in each benchmark's usual
//! result format.
//!
//! | task | `pred` | metrics |
//! |---|---|---|
//! | `davis` | a folder with one sub-folder per sequence of indexed PNGs (`00001.png`, …), as the DAVIS 2017 toolkit reads | `J&F-Mean`, `J-Mean`, `J-Recall`, `J-Decay`, `F-Mean`, `F-Recall`, `F-Decay`, per-sequence rows |
//! | `refcocog` | a JSON list of `{"ref_id", "bbox": [x, y, w, h]}` and/or `{"ref_id", "segmentation": RLE}` (optionally `"sent_id"`) | `Acc@0.5`, `mIoU`, `cIoU` |
//! | `flickr30k` | a JSON list of `{"image_id", "sentence_id", "phrase_id", "bbox": [x, y, w, h]}` | `R@1` |
//! | `coco`, `ade20k` | a folder of regions JSON files, `<image name without extension>.json`, each region's `label` a class name | `precision`, `mIoU`, `accuracy` |
//!
//! Coverage: RefCOCOg scores the refs the file predicts; Flickr30K and
//! COCO/ADE20K score the images the predictions cover, and a phrase of a
//! covered image with no prediction is a miss; DAVIS needs every scored frame
//! of every sequence of the split. Anything that names an unknown ref, image,
//! sentence or phrase is an error naming the entry.

use std::collections::{BTreeMap, HashSet};

use std::path::Path;

use serde_json::Value;
use som_core::json::{read_regions_value, ReadOptions};
use som_core::{ImageSize, Rle};

use crate::data::davis::Davis;
use crate::data::flickr30k::Flickr30k;
use crate::data::json::{read_json, Obj};
use crate::data::refcocog::RefCocog;
use crate::data::{open, OpenOptions, Task, Truth};
use crate::error::{EvalError, Result};
use crate::labelmap::LabelMap;
use crate::metrics::davis::score_sequence;
use crate::metrics::grounding::RecallAt1;
use crate::metrics::refer::{to_xywh, RecScore, ResScore};
use crate::metrics::semseg::{ConfusionMatrix, LabelConvention, NamingScore};
use crate::report::{class_of, ScoreOptions, Summary};

/// Scores the predictions at `pred` for `task` against the dataset at `data`.
///
/// # Errors
/// [`EvalError::Dataset`] naming the prediction file and entry for malformed
/// or unknown entries, or a missing prediction frame (DAVIS); the loaders'
/// errors for the dataset; [`EvalError::Invalid`] for a task with no offline format.
pub fn score(
    task: Task,
    data: &Path,
    pred: &Path,
    open_options: &OpenOptions,
    options: ScoreOptions,
) -> Result<Summary> {
    let model = pred
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| pred.display().to_string());
    let mut s = Summary::new(task, &model, options);
    match task {
        Task::Davis => davis(data, pred, open_options, &mut s)?,
        Task::Refcocog => refcocog(data, pred, open_options, &mut s)?,
        Task::Flickr30k => flickr(data, pred, open_options, &mut s)?,
        Task::Coco | Task::Ade20k => open_vocabulary(task, data, pred, open_options, &mut s)?,
        other => {
            return Err(EvalError::invalid(
                "task",
                format!(
                    "{other} has no offline prediction format; score a run's records with `som eval report`"
                ),
            ))
        }
    }
    Ok(s)
}

fn davis(data: &Path, pred: &Path, options: &OpenOptions, s: &mut Summary) -> Result<()> {
    if !pred.is_dir() {
        return Err(EvalError::dataset(
            pred.display().to_string(),
            "",
            "not a folder of per-sequence PNG folders",
        ));
    }
    let ds = Davis::open(data, options)?;
    let mut objects = Vec::new();
    for seq in ds.sequences() {
        let (first, n) = ds.first_frame(seq)?;
        let mut gt = vec![first.clone()];
        for f in &seq.frames[1..] {
            gt.push(ds.read_annotation(&seq.name, f, Some((first.size(), n)))?);
        }
        let mut results = Vec::new();
        for f in &seq.frames[1..seq.frames.len() - 1] {
            let path = pred.join(&seq.name).join(format!("{f}.png"));
            if !path.is_file() {
                return Err(EvalError::dataset(
                    path.display().to_string(),
                    "",
                    format!("missing: the results of sequence {} need frame {f} (indexed PNGs named as the annotations)", seq.name),
                ));
            }
            results.push(LabelMap::read_png(&path)?);
        }
        objects.extend(score_sequence(&seq.name, &gt, &results, &seq.frames)?);
        s.items += seq.frames.len() - 2;
    }
    s.set_davis(&objects);
    Ok(())
}

fn entries(pred: &Path) -> Result<(String, Vec<Value>)> {
    let doc = read_json(pred)?;
    let file = pred.display().to_string();
    match doc {
        Value::Array(a) => Ok((file, a)),
        _ => Err(EvalError::dataset(file, "", "is not a JSON list of predictions")),
    }
}

fn refcocog(data: &Path, pred: &Path, options: &OpenOptions, s: &mut Summary) -> Result<()> {
    let ds = RefCocog::open(data, options)?;
    let in_split: HashSet<u64> = ds.refs().map(|r| r.ref_id).collect();
    let (file, list) = entries(pred)?;
    let (mut rec, mut res) = (RecScore::default(), ResScore::default());
    let mut seen = HashSet::new();
    for (i, v) in list.iter().enumerate() {
        let item = format!("[{i}]");
        let o = Obj::new(v, &file, &item)?;
        let ref_id = o.u64("ref_id")?;
        let item = format!("[{i}] (ref_id {ref_id})");
        let o = Obj::new(v, &file, &item)?;
        let r = ds
            .get(ref_id)
            .filter(|r| in_split.contains(&r.ref_id))
            .ok_or_else(|| {
                o.err(format!(
                    "ref_id {ref_id} is not a ref of the {} split",
                    options.split.as_deref().unwrap_or("val")
                ))
            })?;
        let sent = o.opt("sent_id").and_then(Value::as_u64);
        if let Some(sid) = sent {
            if !r.sentences.iter().any(|x| x.id == sid) {
                return Err(o.err(format!("sent_id {sid} is not a sentence of ref {ref_id}")));
            }
        }
        if !seen.insert((ref_id, sent)) {
            return Err(o.err("a second prediction for the same ref (and sentence)"));
        }
        let Truth::Object { bbox, mask } = ds.truth(r)? else {
            continue;
        };
        let seg = match o.opt("segmentation") {
            Some(v) => {
                let size = mask.as_ref().map_or(ImageSize::new(0, 0), Rle::size);
                let opts = ReadOptions {
                    image_size: Some(size),
                    image: None,
                    ..Default::default()
                };
                let doc = Value::Array(vec![serde_json::json!({"segmentation": v})]);
                let (_, seg) =
                    read_regions_value(&doc, &opts).map_err(|e| o.err(format!("segmentation: {e}")))?;
                seg.into_regions().into_iter().next().and_then(|r| r.mask)
            }
            None => None,
        };
        let pbox = match o.opt("bbox") {
            Some(_) => Some(o.bbox("bbox")?),
            None => seg.as_ref().filter(|m| !m.is_empty()).map(|m| to_xywh(m.bbox())),
        };
        if pbox.is_none() && seg.is_none() {
            return Err(o.err("neither \"bbox\" nor \"segmentation\""));
        }
        rec.add(pbox, bbox);
        if let (Some(p), Some(g)) = (&seg, &mask) {
            res.add(p, &g.to_mask())?;
        }
        s.items += 1;
    }
    if let Some(a) = rec.accuracy() {
        s.metrics.push(("Acc@0.5".into(), a));
    }
    if let (Some(m), Some(c)) = (res.mean_iou(), res.cumulative_iou()) {
        s.metrics.push(("mIoU".into(), m));
        s.metrics.push(("cIoU".into(), c));
    }
    Ok(())
}

fn flickr(data: &Path, pred: &Path, options: &OpenOptions, s: &mut Summary) -> Result<()> {
    let ds = Flickr30k::open(data, options)?;
    let truth = ds.phrase_truth();
    let (file, list) = entries(pred)?;
    let mut preds: BTreeMap<(String, usize, String), [f64; 4]> = BTreeMap::new();
    let known: HashSet<&(String, usize, String)> = truth.iter().map(|(k, _)| k).collect();
    for (i, v) in list.iter().enumerate() {
        let item = format!("[{i}]");
        let o = Obj::new(v, &file, &item)?;
        let id_text = |key: &str| -> Result<String> {
            match o.get(key)? {
                Value::String(t) => Ok(t.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(o.err(format!("{key:?} must be a string or a number"))),
            }
        };
        let key = (
            id_text("image_id")?,
            o.u64("sentence_id")? as usize,
            id_text("phrase_id")?,
        );
        if !known.contains(&key) {
            return Err(o.err(format!(
                "image {} sentence {} has no boxed phrase {} in the split",
                key.0, key.1, key.2
            )));
        }
        let b = o.bbox("bbox")?;
        if preds.insert(key, b).is_some() {
            return Err(o.err("a second prediction for the same phrase"));
        }
    }
    let images: HashSet<&str> = preds.keys().map(|k| k.0.as_str()).collect();
    let mut r1 = RecallAt1::new(s.options.protocol);
    for (key, boxes) in &truth {
        if images.contains(key.0.as_str()) {
            r1.add(preds.get(key).copied(), boxes);
            s.items += 1;
        }
    }
    if let Some(r) = r1.recall() {
        s.metrics.push(("R@1".into(), r));
    }
    Ok(())
}

fn open_vocabulary(
    task: Task,
    data: &Path,
    pred: &Path,
    options: &OpenOptions,
    s: &mut Summary,
) -> Result<()> {
    if !pred.is_dir() {
        return Err(EvalError::dataset(
            pred.display().to_string(),
            "",
            "not a folder of regions JSON files",
        ));
    }
    let ds = open(task, data, options)?;
    let vocabulary = ds.vocabulary().unwrap_or(&[]).to_vec();
    let n = vocabulary.len() as u32;
    let convention = LabelConvention {
        num_classes: n,
        ignore_index: u32::MAX,
        reduce_zero_label: false,
    };
    let mut cm = ConfusionMatrix::new(n);
    let mut naming = NamingScore::default();
    for i in 0..ds.items().len() {
        let item = ds.load(i)?;
        let stem = item
            .image
            .file_stem()
            .map(|x| x.to_string_lossy().to_string())
            .unwrap_or_default();
        let path = pred.join(format!("{stem}.json"));
        if !path.is_file() {
            continue;
        }
        let Some(sem) = &item.semantic else { continue };
        let size = sem.map.size();
        let doc = read_json(&path)?;
        let file = path.display().to_string();
        let opts = ReadOptions {
            image_size: Some(size),
            image: None,
            ..Default::default()
        };
        let (_, seg) =
            read_regions_value(&doc, &opts).map_err(|e| EvalError::dataset(&file, "", e.to_string()))?;
        let mut painted = Vec::new();
        for r in seg.regions() {
            let mask = r.to_mask(size);
            let Some(label) = &r.label else { continue };
            // The truth of a region: the class covering most of its pixels.
            let best = sem.map.majority(&mask);
            if let Some(c) = best.filter(|&c| c != sem.ignore) {
                naming.add(&vocabulary[c as usize].names, Some(label));
            }
            if let Some(class) = class_of(&vocabulary, label) {
                painted.push((mask, class));
            }
        }
        let map = LabelMap::painted(size, painted, u32::MAX)?;
        let gt: Vec<u32> = sem
            .map
            .labels()
            .iter()
            .map(|&v| if v == sem.ignore { u32::MAX } else { v })
            .collect();
        cm.add(&convention, &gt, map.labels(), &file)?;
        s.items += 1;
    }
    if s.items == 0 {
        return Err(EvalError::dataset(
            pred.display().to_string(),
            "",
            "holds no <image>.json for any image of the dataset",
        ));
    }
    if let Some(p) = naming.precision() {
        s.metrics.push(("precision".into(), p));
    }
    if let Some(m) = cm.mean_iou() {
        s.metrics.push(("mIoU".into(), m));
    }
    if let Some(a) = naming.accuracy() {
        s.metrics.push(("accuracy".into(), a));
    }
    Ok(())
}
