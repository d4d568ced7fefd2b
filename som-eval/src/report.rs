//! Scoring recorded answers: from the records of a results file to the
//! paper's table, with no dataset and no network.
//!
//! **Answers that name several marks, or none.** A target's prediction comes
//! from the marks the answer named for it, by a [`MultiMarkRule`]:
//!
//! - [`MultiMarkRule::Union`] (default): the union of the named regions (the
//!   answer says the object spans those marks; SoM's prompts ask for all of
//!   them). Its box is the box of the union.
//! - [`MultiMarkRule::First`]: the first mark named.
//! - [`MultiMarkRule::Empty`]: an answer that names more than one mark is
//!   treated as no answer.
//!
//! Naming no mark (or only marks that are not on the image) is an empty
//! prediction under every rule: a miss for REC, RES, Recall@1 and SoM-Bench
//! accuracy, an empty mask for DAVIS. Items whose request failed are scored
//! the same way (their answer named nothing) and counted in `errors`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use som_core::{BBox, ImageSize, Mask};

use crate::data::{ClassNames, Task, Truth};
use crate::error::{EvalError, Result};
use crate::labelmap::LabelMap;
use crate::metrics::davis::{self, ObjectScores};
use crate::metrics::grounding::{BoxProtocol, RecallAt1};
use crate::metrics::refer::{to_xywh, RecScore, ResScore};
use crate::metrics::semseg::{normalize_name, ConfusionMatrix, LabelConvention, NamingScore};
use crate::records::{Header, Record, TargetRecord};

/// How a target's prediction is made from the marks an answer named for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MultiMarkRule {
    /// The union of all named regions.
    #[default]
    Union,
    /// The first named region.
    First,
    /// Nothing, when more than one mark is named.
    Empty,
}

impl MultiMarkRule {
    /// `"union"`, `"first"` or `"empty"`.
    pub fn name(self) -> &'static str {
        match self {
            MultiMarkRule::Union => "union",
            MultiMarkRule::First => "first",
            MultiMarkRule::Empty => "empty",
        }
    }

    /// The marks of `named` this rule keeps.
    ///
    /// ```
    /// use som_eval::report::MultiMarkRule;
    /// assert_eq!(MultiMarkRule::Union.keep(&[3, 5]), &[3, 5]);
    /// assert_eq!(MultiMarkRule::First.keep(&[3, 5]), &[3]);
    /// assert!(MultiMarkRule::Empty.keep(&[3, 5]).is_empty());
    /// assert_eq!(MultiMarkRule::Empty.keep(&[3]), &[3]);
    /// ```
    pub fn keep<T>(self, named: &[T]) -> &[T] {
        match self {
            MultiMarkRule::Union => named,
            MultiMarkRule::First => &named[..named.len().min(1)],
            MultiMarkRule::Empty if named.len() > 1 => &[],
            MultiMarkRule::Empty => named,
        }
    }
}

impl std::str::FromStr for MultiMarkRule {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "union" => Ok(Self::Union),
            "first" => Ok(Self::First),
            "empty" => Ok(Self::Empty),
            other => Err(format!(
                "unknown multi-mark rule {other:?} (union, first or empty)"
            )),
        }
    }
}

/// How to score.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScoreOptions {
    /// Answers naming several marks.
    pub rule: MultiMarkRule,
    /// Flickr30K phrases with several boxes.
    pub protocol: BoxProtocol,
}

/// The prediction for one target: its mask and box, and the marks kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The predicted mask (empty when nothing was named).
    pub mask: Mask,
    /// The predicted box (`None` when nothing was named).
    pub bbox: Option<BBox>,
    /// The mark ids kept by the rule.
    pub marks: Vec<u32>,
}

/// The prediction for `target` on an image of `size` under `rule`.
///
/// # Errors
/// [`EvalError::Core`] for a recorded mask of another size.
pub fn predict(target: &TargetRecord, size: ImageSize, rule: MultiMarkRule) -> Result<Prediction> {
    let kept = rule.keep(&target.marks);
    let mut masks = Vec::new();
    let mut bbox: Option<BBox> = None;
    for m in kept {
        if let Some(r) = &m.region {
            let mask = match &r.segmentation {
                Some(rle) => rle.to_mask(),
                None => Mask::from_box(size, r.bbox()),
            };
            if mask.size() != size {
                return Err(EvalError::Size {
                    what: format!("the region of mark {} of target {:?}", m.id, target.key),
                    expected: size,
                    found: mask.size(),
                });
            }
            masks.push(mask.to_rle());
            bbox = Some(match bbox {
                Some(b) => b.union(&r.bbox()),
                None => r.bbox(),
            });
        }
    }
    let mask = match masks.len() {
        0 => Mask::empty(size),
        1 => masks[0].to_mask(),
        _ => crate::metrics::coco::merge(&masks, false)?.to_mask(),
    };
    // A mask's box is the box of its union; a box-only region keeps its box.
    let bbox = if mask.is_empty() { bbox } else { Some(mask.bbox()) };
    Ok(Prediction {
        mask,
        bbox,
        marks: kept.iter().map(|m| m.id).collect(),
    })
}

/// One per-sequence row of the DAVIS table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceRow {
    /// `<sequence>_<object>`.
    #[serde(rename = "Sequence")]
    pub sequence: String,
    /// J mean.
    #[serde(rename = "J-Mean")]
    pub j_mean: f64,
    /// F mean.
    #[serde(rename = "F-Mean")]
    pub f_mean: f64,
}

/// The scores of one run (or one prediction set), ready to print.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The task.
    pub task: Task,
    /// The model (or prediction set) scored.
    pub model: String,
    /// Items scored.
    pub items: usize,
    /// Items that failed (scored as answers naming nothing).
    pub errors: usize,
    /// The options used.
    pub options: ScoreOptions,
    /// The metrics, in the paper's order, under the benchmarks' names; values are fractions.
    pub metrics: Vec<(String, f64)>,
    /// DAVIS: one row per object.
    pub per_sequence: Vec<SequenceRow>,
    /// Total input and output tokens (runs only).
    pub tokens: Option<(u64, u64)>,
    /// Cost in US dollars, when a price was given.
    pub cost: Option<f64>,
    /// Mean latency of answered requests, milliseconds.
    pub mean_latency_ms: Option<f64>,
}

impl Summary {
    /// An empty summary of `model` on `task`.
    pub fn new(task: Task, model: &str, options: ScoreOptions) -> Self {
        Self {
            task,
            model: model.to_string(),
            items: 0,
            errors: 0,
            options,
            metrics: Vec::new(),
            per_sequence: Vec::new(),
            tokens: None,
            cost: None,
            mean_latency_ms: None,
        }
    }

    /// The metric called `name`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// Sets the DAVIS metrics (the global row) and per-sequence rows from
    /// per-object scores.
    pub fn set_davis(&mut self, objects: &[ObjectScores]) {
        if let Some(g) = davis::global(objects) {
            self.metrics = g.columns().iter().map(|(n, v)| (n.to_string(), *v)).collect();
        }
        self.per_sequence = objects
            .iter()
            .map(|o| SequenceRow {
                sequence: o.name(),
                j_mean: o.j.mean,
                f_mean: o.f.mean,
            })
            .collect();
    }

    /// The table in the paper's layout: one row for the model, one column per
    /// metric (percent, one decimal), then DAVIS's per-sequence rows and the
    /// token and cost lines.
    pub fn table(&self) -> String {
        let prefix = match self.task {
            Task::Coco | Task::SombenchCoco => "COCO ",
            Task::Ade20k | Task::SombenchAde20k => "ADE20K ",
            Task::Refcocog | Task::SombenchRefcocog => "RefCOCOg ",
            Task::Flickr30k | Task::SombenchFlickr30k => "Flickr30K ",
            Task::Davis => "DAVIS2017 ",
        };
        let mut out = format!(
            "{} · {} items, {} errors · multi-mark rule {}{}\n",
            self.task,
            self.items,
            self.errors,
            self.options.rule.name(),
            if matches!(self.task, Task::Flickr30k) {
                format!(" · {} protocol", self.options.protocol.name())
            } else {
                String::new()
            }
        );
        let headers: Vec<String> = self.metrics.iter().map(|(n, _)| format!("{prefix}{n}")).collect();
        let values: Vec<String> = self
            .metrics
            .iter()
            .map(|(_, v)| format!("{:.1}", v * 100.0))
            .collect();
        out += &format!("| Model | {} |\n", headers.join(" | "));
        out += &format!("|---|{}\n", "---:|".repeat(headers.len()));
        out += &format!("| {} | {} |\n", self.model, values.join(" | "));
        if !self.per_sequence.is_empty() {
            out += "\n| Sequence | J-Mean | F-Mean |\n|---|---:|---:|\n";
            for r in &self.per_sequence {
                out += &format!(
                    "| {} | {:.1} | {:.1} |\n",
                    r.sequence,
                    r.j_mean * 100.0,
                    r.f_mean * 100.0
                );
            }
        }
        if let Some((i, o)) = self.tokens {
            out += &format!("\ntokens: {i} in, {o} out");
            if let Some(c) = self.cost {
                out += &format!(", ${c:.4}");
            }
            if let Some(l) = self.mean_latency_ms {
                out += &format!(" · mean latency {:.0} ms", l);
            }
            out.push('\n');
        }
        out
    }

    /// The summary as JSON (fractions, not percent).
    pub fn to_json(&self) -> Value {
        let metrics: serde_json::Map<String, Value> =
            self.metrics.iter().map(|(n, v)| (n.clone(), json!(v))).collect();
        let mut doc = json!({
            "task": self.task,
            "model": self.model,
            "items": self.items,
            "errors": self.errors,
            "multi_mark_rule": self.options.rule,
            "metrics": metrics,
        });
        if self.task == Task::Flickr30k {
            doc["protocol"] = json!(self.options.protocol);
        }
        if !self.per_sequence.is_empty() {
            doc["per_sequence"] = json!(self.per_sequence);
        }
        if let Some((i, o)) = self.tokens {
            doc["usage"] = json!({"input_tokens": i, "output_tokens": o});
        }
        if let Some(c) = self.cost {
            doc["cost_usd"] = json!(c);
        }
        doc
    }
}

/// Scores a run's records (the latest record of each item).
///
/// # Errors
/// [`EvalError::Core`] / [`EvalError::Size`] for records whose masks do not
/// match their image size.
pub fn summarize(header: &Header, records: &[Record], options: ScoreOptions) -> Result<Summary> {
    let mut s = Summary::new(header.task, &header.model, options);
    s.items = records.len();
    s.errors = records.iter().filter(|r| r.error.is_some()).count();
    let (tin, tout) = records
        .iter()
        .filter_map(|r| r.usage)
        .fold((0u64, 0u64), |(a, b), u| {
            (a + u.input_tokens, b + u.output_tokens)
        });
    s.tokens = Some((tin, tout));
    s.cost = header.price.map(|p| p.cost(tin, tout));
    let answered: Vec<f64> = records
        .iter()
        .filter(|r| r.answer.is_some())
        .map(|r| r.latency_ms)
        .collect();
    s.mean_latency_ms = (!answered.is_empty()).then(|| answered.iter().sum::<f64>() / answered.len() as f64);
    match header.task {
        Task::Refcocog => {
            let (mut rec, mut res) = (RecScore::default(), ResScore::default());
            for r in records {
                let size = size_of(r);
                for t in &r.targets {
                    if let Truth::Object { bbox, mask } = &t.truth {
                        let p = predict(t, size, options.rule)?;
                        rec.add(p.bbox.map(to_xywh), *bbox);
                        let gt = mask
                            .as_ref()
                            .map_or_else(|| Mask::from_box(size, box_pixels(*bbox)), |m| m.to_mask());
                        res.add(&p.mask, &gt)?;
                    }
                }
            }
            push(&mut s, "Acc@0.5", rec.accuracy());
            push(&mut s, "mIoU", res.mean_iou());
            push(&mut s, "cIoU", res.cumulative_iou());
        }
        Task::Flickr30k => {
            let mut r1 = RecallAt1::new(options.protocol);
            for r in records {
                for t in &r.targets {
                    if let Truth::Boxes { boxes } = &t.truth {
                        let p = predict(t, size_of(r), options.rule)?;
                        r1.add(p.bbox.map(to_xywh), boxes);
                    }
                }
            }
            push(&mut s, "R@1", r1.recall());
        }
        Task::Coco | Task::Ade20k => {
            let (naming, miou) = open_vocabulary(&header.vocabulary, records, options.rule)?;
            push(&mut s, "precision", naming.precision());
            push(&mut s, "mIoU", miou.mean_iou());
            push(&mut s, "accuracy", naming.accuracy());
        }
        Task::Davis => {
            s.set_davis(&davis_objects(records, options.rule)?);
        }
        Task::SombenchRefcocog | Task::SombenchFlickr30k | Task::SombenchCoco | Task::SombenchAde20k => {
            let (mut hits, mut n) = (0u64, 0u64);
            for r in records {
                for t in &r.targets {
                    if let Truth::Marks { ids } = &t.truth {
                        let named: Vec<u32> = t.marks.iter().map(|m| m.id).collect();
                        let mut kept = options.rule.keep(&named).to_vec();
                        kept.sort_unstable();
                        kept.dedup();
                        let mut want = ids.clone();
                        want.sort_unstable();
                        want.dedup();
                        n += 1;
                        hits += (!kept.is_empty() && kept == want) as u64;
                    }
                }
            }
            push(&mut s, "accuracy", (n > 0).then(|| hits as f64 / n as f64));
        }
    }
    Ok(s)
}

fn push(s: &mut Summary, name: &str, v: Option<f64>) {
    if let Some(v) = v {
        s.metrics.push((name.to_string(), v));
    }
}

fn size_of(r: &Record) -> ImageSize {
    ImageSize::new(r.image_size[0], r.image_size[1])
}

/// The pixels a continuous box covers (rounded outwards), clipped later by the mask.
fn box_pixels(b: [f64; 4]) -> BBox {
    let x0 = b[0].max(0.0).floor() as u32;
    let y0 = b[1].max(0.0).floor() as u32;
    let x1 = (b[0] + b[2]).max(0.0).ceil() as u32;
    let y1 = (b[1] + b[3]).max(0.0).ceil() as u32;
    BBox::from_xyxy(x0, y0, x1.max(x0), y1.max(y0))
}

/// The class index of a name in a vocabulary (any synonym).
pub fn class_of(vocabulary: &[ClassNames], name: &str) -> Option<u32> {
    let n = normalize_name(name);
    vocabulary
        .iter()
        .position(|c| c.names.iter().any(|s| normalize_name(s) == n))
        .map(|i| i as u32)
}

/// Naming precision over marks with a ground-truth class, and mIoU of the
/// label map painted from the named regions (larger regions first, smaller
/// on top; unnamed pixels are "no class").
fn open_vocabulary(
    vocabulary: &[ClassNames],
    records: &[Record],
    rule: MultiMarkRule,
) -> Result<(NamingScore, ConfusionMatrix)> {
    let n = vocabulary.len() as u32;
    let convention = LabelConvention {
        num_classes: n,
        ignore_index: u32::MAX,
        reduce_zero_label: false,
    };
    let mut naming = NamingScore::default();
    let mut cm = ConfusionMatrix::new(n);
    for r in records {
        let size = size_of(r);
        let mut gt = LabelMap::filled(size, u32::MAX);
        for c in &r.classes {
            gt.paint(&c.segmentation.to_mask(), c.class)?;
        }
        let mut painted: Vec<(Mask, u32)> = Vec::new();
        for t in &r.targets {
            if let Truth::Class { names, index } = &t.truth {
                if index.is_some() {
                    naming.add(names, t.name.as_deref());
                }
            }
            let Some(class) = t.name.as_deref().and_then(|name| class_of(vocabulary, name)) else {
                continue;
            };
            painted.push((predict(t, size, rule)?.mask, class));
        }
        let pred = LabelMap::painted(size, painted, u32::MAX)?;
        if !r.classes.is_empty() {
            cm.add(&convention, gt.labels(), pred.labels(), &r.id)?;
        }
    }
    Ok((naming, cm))
}

/// A DAVIS frame's prediction as one label map: object `k` (1-based, target
/// order) painted in object order, later objects on top, as an indexed PNG
/// holds it.
fn frame_prediction(r: &Record, rule: MultiMarkRule) -> Result<LabelMap> {
    let size = size_of(r);
    let mut pred = LabelMap::filled(size, 0);
    for (k, t) in r.targets.iter().enumerate() {
        pred.paint(&predict(t, size, rule)?.mask, k as u32 + 1)?;
    }
    Ok(pred)
}

/// Writes the predictions of DAVIS records as the toolkit reads results:
/// `<dir>/<sequence>/<frame>.png`, indexed PNGs with the DAVIS palette. Returns
/// how many frames were written.
///
/// # Errors
/// [`EvalError::Invalid`] for records of another task or without an output
/// name; [`EvalError::Io`] when a file cannot be written.
pub fn write_davis_predictions(
    header: &Header,
    records: &[Record],
    rule: MultiMarkRule,
    dir: &std::path::Path,
) -> Result<usize> {
    if header.task != Task::Davis {
        return Err(EvalError::invalid(
            "predictions",
            format!("only DAVIS runs write result PNGs, not {}", header.task),
        ));
    }
    let palette = crate::labelmap::davis_palette();
    for r in records {
        let name = r.output.as_deref().ok_or_else(|| {
            EvalError::invalid("predictions", format!("record {} has no output name", r.id))
        })?;
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| EvalError::io("create", parent, e))?;
        }
        frame_prediction(r, rule)?.write_indexed_png(&path, &palette)?;
    }
    Ok(records.len())
}

/// J and F per object from DAVIS records: each frame's objects painted into
/// one label map in object order (as an indexed PNG holds them), then scored
/// against the recorded ground truth.
fn davis_objects(records: &[Record], rule: MultiMarkRule) -> Result<Vec<ObjectScores>> {
    let mut by_seq: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for r in records {
        if !by_seq.contains_key(r.group.as_str()) {
            order.push(&r.group);
        }
        by_seq.entry(&r.group).or_default().push(r);
    }
    let mut out = Vec::new();
    for seq in order {
        let mut frames = by_seq.remove(seq).unwrap_or_default();
        frames.sort_by(|a, b| a.id.cmp(&b.id));
        let objects = frames.iter().map(|r| r.targets.len()).max().unwrap_or(0);
        let mut j: Vec<Vec<f64>> = vec![Vec::new(); objects];
        let mut f: Vec<Vec<f64>> = vec![Vec::new(); objects];
        for r in &frames {
            let pred = frame_prediction(r, rule)?;
            for (k, t) in r.targets.iter().enumerate() {
                let Truth::Mask { mask } = &t.truth else { continue };
                let gt = mask.to_mask();
                let pm = pred.mask(k as u32 + 1);
                j[k].push(davis::region_similarity(&gt, &pm)?);
                f[k].push(davis::boundary_measure(&gt, &pm, davis::BOUND_TH)?);
            }
        }
        for (k, (jv, fv)) in j.into_iter().zip(f).enumerate() {
            if jv.is_empty() {
                continue;
            }
            out.push(ObjectScores {
                sequence: seq.to_string(),
                object: k as u32 + 1,
                j: davis::statistics(&jv)?,
                f: davis::statistics(&fv)?,
                j_frames: jv,
                f_frames: fv,
            });
        }
    }
    Ok(out)
}
