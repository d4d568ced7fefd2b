//! The runner's results file: JSON Lines, a header line and then one line
//! per finished item, appended and flushed as each item finishes.
//!
//! ```text
//! {"som_eval":1,"task":"refcocog","model":"openai:gpt-4o","data":"/data/refcoco","split":null,"seed":0,"limit":100,…}
//! {"id":"refcocog/ref-12/sent-40","group":"5123","image":"…/COCO_train2014_000000005123.jpg","image_size":[640,480],
//!  "prompt":"Which mark denotes …","answer":"It is [3].","targets":[{"key":"ref 12","truth":{…},
//!  "marks":[{"id":3,"text":"3","region":{"id":7,"bbox":[…],"segmentation":{…}}}],"unknown":[]}],
//!  "usage":{"input_tokens":812,"output_tokens":9},"latency_ms":1843.2,"error":null}
//! ```
//!
//! Every record holds what scoring needs (the ground truth of each target and
//! the regions the answer named), so `som eval report` re-scores a file with
//! no dataset and no network.
//!
//! **Resuming.** A run that was killed leaves complete lines and at most one
//! torn last line. [`ResultsFile::resume`] checks the header against the new
//! run, cuts a torn last line, and reports which items are done; the runner
//! skips those, so nothing is lost and nothing is asked twice. When an id
//! appears more than once (an errored item retried), the last record counts.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use som_core::{BBox, Rle};

use crate::data::{ClassNames, Task, Truth};
use crate::error::{EvalError, Result};

/// The format version written in every header.
pub const FORMAT: u32 = 1;

/// The first line of a results file: what was run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// [`FORMAT`].
    pub som_eval: u32,
    /// The task.
    pub task: Task,
    /// The model's name (`GroundingModel::name`).
    pub model: String,
    /// The data root as given.
    pub data: String,
    /// The split, when not the default.
    pub split: Option<String>,
    /// The sampling seed.
    pub seed: u64,
    /// How many groups were sampled (`None`: all).
    pub limit: Option<usize>,
    /// Where the marked regions come from: `"ground-truth"` or `"segmenter:<name>"`.
    pub regions: String,
    /// The labelling vocabulary (open-vocabulary tasks), for scoring names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vocabulary: Vec<ClassNames>,
    /// Price per million input and output tokens, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Price>,
}

/// US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// Per million input tokens.
    pub input: f64,
    /// Per million output tokens.
    pub output: f64,
}

impl Price {
    /// The cost of `input` and `output` tokens.
    ///
    /// ```
    /// let p = som_eval::records::Price { input: 2.5, output: 10.0 };
    /// assert_eq!(p.cost(1_000_000, 100_000), 3.5);
    /// ```
    pub fn cost(&self, input: u64, output: u64) -> f64 {
        input as f64 * self.input / 1e6 + output as f64 * self.output / 1e6
    }
}

/// A region the answer named: its id, box and mask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionRecord {
    /// The region's id in its segmentation.
    pub id: u64,
    /// `[x, y, w, h]` pixels.
    pub bbox: [u32; 4],
    /// The mask (absent for box-only regions).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::data::rle_opt"
    )]
    pub segmentation: Option<Rle>,
}

impl RegionRecord {
    /// The region's box.
    pub fn bbox(&self) -> BBox {
        BBox::new(self.bbox[0], self.bbox[1], self.bbox[2], self.bbox[3])
    }
}

/// A mark the answer named, with its region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarkRecord {
    /// The mark's id.
    pub id: u32,
    /// Its text on the image.
    pub text: String,
    /// Its region (absent on pre-marked images, whose regions are unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionRecord>,
}

/// One target of an item: its ground truth and what the answer said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetRecord {
    /// The target (`"ref 12"`, `"phrase 3"`, `"object 2"`, `"mark 5"`).
    pub key: String,
    /// Its ground truth.
    pub truth: Truth,
    /// The marks the answer named for it, in order of mention.
    pub marks: Vec<MarkRecord>,
    /// Labels the answer named that are not on the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
    /// The class name the answer gave (labelling), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Token counts of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
}

/// Ground-truth classes per pixel of an image, as one RLE per class present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMask {
    /// The class index in the header's vocabulary.
    pub class: u32,
    /// Its pixels.
    #[serde(with = "crate::data::rle_ser")]
    pub segmentation: Rle,
}

/// One finished item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The item's id.
    pub id: String,
    /// Its group (image, sequence).
    pub group: String,
    /// The image shown.
    pub image: String,
    /// Its `[width, height]`.
    pub image_size: [u32; 2],
    /// The prompt sent.
    pub prompt: String,
    /// The answer text (`None` when the item failed before or during the request).
    pub answer: Option<String>,
    /// Why the model stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// One entry per target.
    pub targets: Vec<TargetRecord>,
    /// Ground-truth classes per pixel (open-vocabulary tasks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<ClassMask>,
    /// Where the predicted label map goes (DAVIS: `<sequence>/<frame>.png`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Tokens used, when reported.
    pub usage: Option<UsageRecord>,
    /// Milliseconds from sending the request to its answer (0 without one).
    pub latency_ms: f64,
    /// What went wrong, when the item failed.
    pub error: Option<String>,
}

/// Reads a results file: its header and records (a torn last line is left out).
///
/// # Errors
/// [`EvalError::Dataset`] naming the file and line for a missing or foreign
/// header or a malformed record that is not the last line.
pub fn read_results(path: &Path) -> Result<(Header, Vec<Record>)> {
    let mut text = String::new();
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| EvalError::io("read", path, e))?;
    let (header, records, _) = parse_results(path, &text)?;
    Ok((header, records))
}

/// Header, records, and the byte length of the complete lines.
fn parse_results(path: &Path, text: &str) -> Result<(Header, Vec<Record>, usize)> {
    let file = path.display().to_string();
    let mut lines = text.split_inclusive('\n');
    let first = lines.next().filter(|l| l.ends_with('\n')).ok_or_else(|| {
        EvalError::dataset(
            &file,
            "line 1",
            "no header line (is this a som eval results file?)",
        )
    })?;
    let header: Header = serde_json::from_str(first)
        .map_err(|e| EvalError::dataset(&file, "line 1", format!("not a som eval header ({e})")))?;
    if header.som_eval != FORMAT {
        return Err(EvalError::dataset(
            &file,
            "line 1",
            format!("format {} (this som reads {FORMAT})", header.som_eval),
        ));
    }
    let mut complete = first.len();
    let mut records = Vec::new();
    let all: Vec<&str> = lines.collect();
    for (k, line) in all.iter().enumerate() {
        let last = k + 1 == all.len();
        if !line.ends_with('\n') {
            // Torn by a kill in the middle of a write: only possible on the last line.
            break;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(r) => records.push(r),
            Err(_) if last && line.trim().is_empty() => {}
            Err(e) => {
                return Err(EvalError::dataset(
                    &file,
                    format!("line {}", k + 2),
                    format!("not a record ({e})"),
                ))
            }
        }
        complete += line.len();
    }
    Ok((header, records, complete))
}

/// The latest record of each id, in first-appearance order.
pub fn latest(records: Vec<Record>) -> Vec<Record> {
    let mut order: Vec<String> = Vec::new();
    let mut by_id: BTreeMap<String, Record> = BTreeMap::new();
    for r in records {
        if !by_id.contains_key(&r.id) {
            order.push(r.id.clone());
        }
        by_id.insert(r.id.clone(), r);
    }
    order.into_iter().filter_map(|id| by_id.remove(&id)).collect()
}

/// A results file open for appending.
#[derive(Debug)]
pub struct ResultsFile {
    path: PathBuf,
    file: File,
    done: BTreeMap<String, bool>,
}

impl ResultsFile {
    /// Starts a new results file with `header`.
    ///
    /// # Errors
    /// [`EvalError::Invalid`] when the file exists and is not empty (answers
    /// cost money: never overwrite them; resume or choose another file);
    /// [`EvalError::Io`] when it cannot be written.
    pub fn create(path: &Path, header: &Header) -> Result<Self> {
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            return Err(EvalError::invalid(
                "output",
                format!("{} exists; resume it or choose another file", path.display()),
            ));
        }
        let mut file = File::create(path).map_err(|e| EvalError::io("create", path, e))?;
        let line = serde_json::to_string(header).map_err(|e| EvalError::invalid("header", e.to_string()))?;
        file.write_all(format!("{line}\n").as_bytes())
            .map_err(|e| EvalError::io("write", path, e))?;
        file.sync_data().map_err(|e| EvalError::io("write", path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            done: BTreeMap::new(),
        })
    }

    /// Reopens a results file to continue the run `header` describes.
    ///
    /// # Errors
    /// [`EvalError::Invalid`] naming the field when the file was written for
    /// another task, data, split, seed, limit or region source;
    /// [`EvalError::Dataset`] for a malformed file.
    pub fn resume(path: &Path, header: &Header) -> Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| EvalError::io("open", path, e))?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| EvalError::io("read", path, e))?;
        let (old, records, complete) = parse_results(path, &text)?;
        let checks: [(&str, bool); 6] = [
            ("task", old.task == header.task),
            ("data", old.data == header.data),
            ("split", old.split == header.split),
            ("seed", old.seed == header.seed),
            ("limit", old.limit == header.limit),
            ("regions", old.regions == header.regions),
        ];
        if let Some((field, _)) = checks.iter().find(|(_, same)| !same) {
            return Err(EvalError::invalid(
                "resume",
                format!(
                    "{} was written by a run with another {field}; resume it with the same options",
                    path.display()
                ),
            ));
        }
        // Cut a torn last line, then append after the complete ones.
        file.set_len(complete as u64)
            .map_err(|e| EvalError::io("write", path, e))?;
        file.seek(SeekFrom::End(0))
            .map_err(|e| EvalError::io("write", path, e))?;
        let mut done = BTreeMap::new();
        for r in records {
            done.insert(r.id.clone(), r.error.is_none());
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            done,
        })
    }

    /// Whether item `id` already has a record (`retry_errors`: one without an error).
    pub fn is_done(&self, id: &str, retry_errors: bool) -> bool {
        self.done.get(id).is_some_and(|&ok| ok || !retry_errors)
    }

    /// How many items have a record.
    pub fn done_count(&self) -> usize {
        self.done.len()
    }

    /// Appends one record as one line and flushes it to disk.
    ///
    /// # Errors
    /// [`EvalError::Io`] when it cannot be written.
    pub fn append(&mut self, record: &Record) -> Result<()> {
        let mut line =
            serde_json::to_string(record).map_err(|e| EvalError::invalid("record", e.to_string()))?;
        line.push('\n');
        // One write per line: a kill can tear the last line only, which resume cuts.
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| EvalError::io("write", &self.path, e))?;
        self.file
            .sync_data()
            .map_err(|e| EvalError::io("write", &self.path, e))?;
        self.done.insert(record.id.clone(), record.error.is_none());
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
