//! SoM-Bench (<https://github.com/microsoft/SoM/tree/main/benchmark>): the
//! 100-image subsets the SoM paper reports, with the marks already drawn.
//!
//! Each subset is a folder with `som_images/`:
//!
//! - `refcocog_refseg`: `<image>.jpg` (marked) and `<image>.json`, a list of
//!   `{"text": [expressions…], "ref_id": <mark number>}`;
//! - `flickr30k_grounding`: `<image>.jpg`, `<image>_wbox.jpg` (with boxes too)
//!   and `<image>.json`, `{"caption": "… (a phrase) …", "gt_ids": [<mark number
//!   per phrase>…], …}`;
//! - `coco_ovseg`, `ade20k_ovseg`: `<image>_<first region>.jpg`, regions in
//!   groups of five, with no released ground truth.
//!
//! The folder layout and prompts are the benchmark README's; the JSON keys
//! (`text`, `ref_id`, `caption`, `gt_ids`) are not documented there and are
//! read as published third-party readers of the released files read them, so a
//! file that has other keys gives an error naming the key it lacks. Images are
//! shown as they are: the runner does not segment or mark them, and reads
//! answers as mark numbers 1 to [`PREMARKED_MARKS`]. The COCO and ADE20K
//! subsets need the vocabulary, one class a line, in `vocabulary.txt` next to
//! `som_images/`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::json::{read_json, Obj};
use super::{list_files, Dataset, EvalItem, ItemRef, OpenOptions, Query, Task, Truth};
use crate::error::{EvalError, Result};

/// The mark numbers an answer about a pre-marked image may use (1 to this).
pub const PREMARKED_MARKS: u32 = 99;

/// The sentence every SoM-Bench prompt starts with.
pub const PREAMBLE: &str =
    "I have labeled a bright numeric ID at the center for each visual object in the image.";

#[derive(Debug)]
struct Entry {
    image: PathBuf,
    query: Query,
    prompt: String,
    targets: Vec<(String, Truth)>,
}

/// One SoM-Bench subset.
#[derive(Debug)]
pub struct SomBench {
    task: Task,
    root: PathBuf,
    items: Vec<ItemRef>,
    entries: Vec<Entry>,
}

/// The phrases in parentheses of a caption, and the caption without them.
///
/// ```
/// let (text, phrases) = som_eval::data::sombench::caption_phrases("(A man) holds (a cup).");
/// assert_eq!((text.as_str(), phrases), ("A man holds a cup.", vec!["A man".to_string(), "a cup".into()]));
/// ```
pub fn caption_phrases(caption: &str) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut phrases = Vec::new();
    let mut current: Option<String> = None;
    for c in caption.chars() {
        match (c, &mut current) {
            ('(', None) => current = Some(String::new()),
            (')', Some(p)) => {
                text.push_str(p);
                phrases.push(p.trim().to_string());
                current = None;
            }
            (c, Some(p)) => p.push(c),
            (c, None) => text.push(c),
        }
    }
    if let Some(p) = current {
        text.push('(');
        text.push_str(&p);
    }
    (text, phrases)
}

impl SomBench {
    /// Opens a SoM-Bench subset folder (or its `som_images/`).
    ///
    /// # Errors
    /// [`EvalError::Dataset`] naming the file: a marked image without its JSON,
    /// a JSON without the keys above, a caption whose phrases and `gt_ids`
    /// disagree, no `vocabulary.txt` for COCO / ADE20K.
    pub fn open(task: Task, root: &Path, _options: &OpenOptions) -> Result<Self> {
        let images = if root.join("som_images").is_dir() {
            root.join("som_images")
        } else {
            root.to_path_buf()
        };
        let name = task.name();
        let mut items = Vec::new();
        let mut entries = Vec::new();
        let vocabulary = match task {
            Task::SombenchCoco | Task::SombenchAde20k => {
                let parent = if images == root {
                    root.parent().unwrap_or(root)
                } else {
                    root
                };
                let path = parent.join("vocabulary.txt");
                let text = std::fs::read_to_string(&path).map_err(|e| EvalError::io("read", &path, e))?;
                let v: Vec<String> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect();
                if v.is_empty() {
                    return Err(EvalError::dataset(
                        path.display().to_string(),
                        "",
                        "lists no class",
                    ));
                }
                v
            }
            _ => Vec::new(),
        };
        for file in list_files(&images, &["jpg", "jpeg", "png"])? {
            let stem = Path::new(&file)
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            if stem.ends_with("_wbox") {
                continue;
            }
            let image = images.join(&file);
            let json_path = images.join(format!("{stem}.json"));
            let mut push = |k: usize, entry: Entry| {
                items.push(ItemRef {
                    id: format!("{name}/{stem}/{k}"),
                    group: stem.clone(),
                });
                entries.push(entry);
            };
            match task {
                Task::SombenchRefcocog => {
                    let doc = read_json(&json_path)?;
                    let jf = json_path.display().to_string();
                    let list = doc.as_array().ok_or_else(|| EvalError::dataset(&jf, "", "is not a list of refs"))?;
                    for (k, v) in list.iter().enumerate() {
                        let item = format!("[{k}]");
                        let o = Obj::new(v, &jf, &item)?;
                        let mark = o.u32("ref_id")?;
                        let texts: Vec<String> = match o.get("text")? {
                            Value::String(s) => vec![s.clone()],
                            Value::Array(a) => a.iter().filter_map(Value::as_str).map(String::from).collect(),
                            _ => return Err(o.err("\"text\" must be a string or a list of strings")),
                        };
                        if texts.is_empty() {
                            return Err(o.err("\"text\" holds no expression"));
                        }
                        let joined = texts.join("; ");
                        push(
                            k,
                            Entry {
                                image: image.clone(),
                                query: Query::Refer { expression: joined.clone() },
                                prompt: format!("{PREAMBLE} Please tell me the IDs for: {joined}."),
                                targets: vec![(format!("ref {k}"), Truth::Marks { ids: vec![mark] })],
                            },
                        );
                    }
                }
                Task::SombenchFlickr30k => {
                    let doc = read_json(&json_path)?;
                    let jf = json_path.display().to_string();
                    let o = Obj::new(&doc, &jf, "")?;
                    let caption = o.str("caption")?;
                    let ids: Vec<u32> = o
                        .array("gt_ids")?
                        .iter()
                        .map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
                        .collect::<Option<_>>()
                        .ok_or_else(|| o.err("\"gt_ids\" must be a list of mark numbers"))?;
                    let (text, phrases) = caption_phrases(caption);
                    let targets: Vec<(String, Truth)> = if phrases.is_empty() {
                        vec![("caption".into(), Truth::Marks { ids: ids.clone() })]
                    } else if phrases.len() == ids.len() {
                        phrases.iter().zip(&ids).map(|(p, &id)| (p.clone(), Truth::Marks { ids: vec![id] })).collect()
                    } else {
                        return Err(o.err(format!(
                            "the caption has {} phrases in parentheses but \"gt_ids\" has {} ids",
                            phrases.len(),
                            ids.len()
                        )));
                    };
                    let asked = if phrases.is_empty() { vec![text.clone()] } else { phrases.clone() };
                    push(
                        0,
                        Entry {
                            image: image.clone(),
                            prompt: format!(
                                "{PREAMBLE} Given the image showing {}, find the corresponding regions for {}.",
                                text.trim_end_matches('.'),
                                asked.join(", ")
                            ),
                            query: Query::Ground { caption: text, phrases: asked },
                            targets,
                        },
                    );
                }
                _ => push(
                    0,
                    Entry {
                        image: image.clone(),
                        query: Query::Label {
                            vocabulary: vocabulary.clone(),
                        },
                        prompt: format!(
                            "{PREAMBLE} Please enumerate their names. You must answer by selecting from the following names: {}",
                            vocabulary.join(", ")
                        ),
                        targets: Vec::new(),
                    },
                ),
            }
        }
        if items.is_empty() {
            return Err(EvalError::dataset(
                images.display().to_string(),
                "",
                "holds no marked image",
            ));
        }
        Ok(Self {
            task,
            root: root.to_path_buf(),
            items,
            entries,
        })
    }
}

impl Dataset for SomBench {
    fn task(&self) -> Task {
        self.task
    }

    fn root(&self) -> &Path {
        &self.root
    }

    fn items(&self) -> &[ItemRef] {
        &self.items
    }

    fn load(&self, index: usize) -> Result<EvalItem> {
        let e = &self.entries[index];
        Ok(EvalItem {
            id: self.items[index].id.clone(),
            group: self.items[index].group.clone(),
            image: e.image.clone(),
            premarked: true,
            prompt: Some(e.prompt.clone()),
            query: e.query.clone(),
            targets: e.targets.clone(),
            regions: None,
            semantic: None,
            reference: None,
            output_name: None,
        })
    }
}
