//! Dataset loaders for the SoM paper's benchmarks, each reading the
//! benchmark's own on-disk format.
//!
//! | task | module | `--data` root holds | where to get it |
//! |---|---|---|---|
//! | `coco` | [`coco`] | `annotations/instances_val2017.json` (or `panoptic_val2017.json` + `panoptic_val2017/`), `val2017/` | <https://cocodataset.org/#download> (2017 Val images, annotations) |
//! | `ade20k` | [`ade20k`] | `ADEChallengeData2016`: `images/validation/`, `annotations/validation/`, `objectInfo150.txt` | <http://sceneparsing.csail.mit.edu> (`ADEChallengeData2016.zip`) |
//! | `refcocog` | [`refcocog`] | `refcocog/refs(umd).p`, `refcocog/instances.json`, `images/train2014/` | <https://github.com/lichengunc/refer> (`refcocog.zip`), COCO 2014 train images |
//! | `flickr30k` | [`flickr30k`] | `Annotations/*.xml`, `Sentences/*.txt`, `{train,val,test}.txt`, `flickr30k-images/` | <https://github.com/BryanPlummer/flickr30k_entities> (annotations); images from <https://shannon.cs.illinois.edu/DenotationGraph/> |
//! | `davis` | [`davis`] | `JPEGImages/480p/`, `Annotations/480p/`, `ImageSets/2017/{train,val}.txt` | <https://davischallenge.org/davis2017/code.html> (TrainVal 480p) |
//! | `sombench-*` | [`sombench`] | one SoM-Bench folder: `som_images/*.jpg` (+ `*.json`) | <https://github.com/microsoft/SoM/tree/main/benchmark> (release v1.0 zips) |
//!
//! A loader checks the whole index when it opens (missing keys, ids that
//! point nowhere, sizes that disagree) and returns one [`EvalError::Dataset`]
//! naming the file and the item for the first problem. Heavy parts (masks,
//! label maps) are read per item by [`Dataset::load`].

pub mod ade20k;
pub mod coco;
pub mod davis;
pub mod flickr30k;
pub mod json;
pub mod pickle;
pub mod refcocog;
pub mod sombench;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use som_core::{Rle, Segmentation};

use crate::error::{EvalError, Result};
use crate::metrics::refer::BoxXywh;

/// A benchmark task: a dataset and what is asked about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// COCO open-vocabulary segmentation: name every mark from the COCO classes.
    Coco,
    /// ADE20K-150 open-vocabulary segmentation.
    Ade20k,
    /// RefCOCOg (umd split) referring expressions: REC Acc@0.5 and RES mIoU/cIoU.
    Refcocog,
    /// Flickr30K Entities phrase grounding: Recall@1.
    Flickr30k,
    /// DAVIS 2017 semi-supervised video object segmentation: J&F.
    Davis,
    /// SoM-Bench's RefCOCOg subset (pre-marked images, scored by mark ids).
    SombenchRefcocog,
    /// SoM-Bench's Flickr30K subset (pre-marked images, scored by mark ids).
    SombenchFlickr30k,
    /// SoM-Bench's COCO open-vocabulary subset (pre-marked images, no released ground truth).
    SombenchCoco,
    /// SoM-Bench's ADE20K open-vocabulary subset (pre-marked images, no released ground truth).
    SombenchAde20k,
}

impl Task {
    /// Every task.
    pub const ALL: [Task; 9] = [
        Task::Coco,
        Task::Ade20k,
        Task::Refcocog,
        Task::Flickr30k,
        Task::Davis,
        Task::SombenchRefcocog,
        Task::SombenchFlickr30k,
        Task::SombenchCoco,
        Task::SombenchAde20k,
    ];

    /// The task's name on the command line and in records.
    pub fn name(self) -> &'static str {
        match self {
            Task::Coco => "coco",
            Task::Ade20k => "ade20k",
            Task::Refcocog => "refcocog",
            Task::Flickr30k => "flickr30k",
            Task::Davis => "davis",
            Task::SombenchRefcocog => "sombench-refcocog",
            Task::SombenchFlickr30k => "sombench-flickr30k",
            Task::SombenchCoco => "sombench-coco",
            Task::SombenchAde20k => "sombench-ade20k",
        }
    }

    /// How many groups (images; sequences for DAVIS) the SoM paper evaluated:
    /// 100 images each for COCO, ADE20K, RefCOCOg and Flickr30K (SoM-Bench),
    /// the whole DAVIS 2017 validation set (`None`: everything).
    ///
    /// ```
    /// use som_eval::data::Task;
    /// assert_eq!(Task::Refcocog.paper_subset(), Some(100));
    /// assert_eq!(Task::Davis.paper_subset(), None);
    /// ```
    pub fn paper_subset(self) -> Option<usize> {
        match self {
            Task::Coco | Task::Ade20k | Task::Refcocog | Task::Flickr30k => Some(100),
            _ => None,
        }
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Task {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Task::ALL.into_iter().find(|t| t.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Task::ALL.iter().map(|t| t.name()).collect();
            format!("unknown task {s:?} (one of {})", names.join(", "))
        })
    }
}

/// One unit of work: one question to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRef {
    /// A stable, unique id (`refcocog/ref-12/sent-40`).
    pub id: String,
    /// The sampling unit it belongs to (an image, a video sequence).
    pub group: String,
}

/// A class of a labelling vocabulary, with its synonyms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassNames {
    /// The dataset's id for the class.
    pub id: u64,
    /// Its names, the first one shown to the model.
    pub names: Vec<String>,
}

/// What an item asks the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Query {
    /// Name every mark from a vocabulary (open-vocabulary segmentation).
    Label {
        /// The class names to choose from.
        vocabulary: Vec<String>,
    },
    /// Which marks denote the expression (REC / RES).
    Refer {
        /// The referring expression.
        expression: String,
    },
    /// Which marks each phrase of the caption denotes (phrase grounding).
    Ground {
        /// The caption.
        caption: String,
        /// Its phrases, one target each.
        phrases: Vec<String>,
    },
    /// Which marks of this frame show each object marked on the reference
    /// frame (video object segmentation); `objects` are the reference marks.
    Track {
        /// The mark texts of the objects on the reference frame, object 1 first.
        objects: Vec<String>,
    },
}

/// The ground truth of one target of an item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Truth {
    /// The referred object: its box and, when annotated, its mask (RefCOCOg).
    Object {
        /// `[x, y, w, h]` as annotated.
        bbox: BoxXywh,
        /// The object's mask.
        #[serde(default, skip_serializing_if = "Option::is_none", with = "rle_opt")]
        mask: Option<Rle>,
    },
    /// The boxes a phrase denotes (Flickr30K).
    Boxes {
        /// `[x, y, w, h]` boxes.
        boxes: Vec<BoxXywh>,
    },
    /// The class of the region under a mark (open-vocabulary segmentation);
    /// `None` when the region is mostly unlabelled.
    Class {
        /// The class's names (empty: no class).
        names: Vec<String>,
        /// The class index in the vocabulary.
        index: Option<u32>,
    },
    /// An object's mask in a video frame (DAVIS); empty when it is not visible.
    Mask {
        /// The mask.
        #[serde(with = "rle_ser")]
        mask: Rle,
    },
    /// The mark ids that answer the target (SoM-Bench).
    Marks {
        /// The right mark ids.
        ids: Vec<u32>,
    },
    /// No ground truth is available (SoM-Bench COCO / ADE20K).
    Unknown,
}

/// Ground-truth classes per pixel, for mIoU and for the truth of marks whose
/// regions came from a segmenter.
#[derive(Debug, Clone, PartialEq)]
pub struct SemanticTruth {
    /// Class index per pixel (`None`: ignored).
    pub map: crate::labelmap::LabelMap,
    /// The value in `map` that means "ignored".
    pub ignore: u32,
}

/// The first frame of a video with its objects, shown to the model as the
/// reference (DAVIS).
#[derive(Debug, Clone)]
pub struct Reference {
    /// The frame.
    pub image: PathBuf,
    /// One region per object, region id = object id, in object order.
    pub objects: Segmentation,
}

/// Everything needed to ask about one item and score the answer.
#[derive(Debug, Clone)]
pub struct EvalItem {
    /// The item's id.
    pub id: String,
    /// Its group (image or sequence).
    pub group: String,
    /// The image to mark and show.
    pub image: PathBuf,
    /// The image is already marked (SoM-Bench): it is shown as it is, no
    /// segmenter runs, and marks are known by their numbers only.
    pub premarked: bool,
    /// The exact prompt to send (no template, no system message), where the
    /// benchmark publishes its own (SoM-Bench).
    pub prompt: Option<String>,
    /// What to ask.
    pub query: Query,
    /// One target per thing asked (expression, phrase, object), with its
    /// ground truth; for [`Query::Label`] the targets are the marks, made when
    /// the image is marked.
    pub targets: Vec<(String, Truth)>,
    /// Ground-truth regions, for marking them instead of segmenting.
    pub regions: Option<Segmentation>,
    /// Classes per pixel (open-vocabulary segmentation).
    pub semantic: Option<SemanticTruth>,
    /// The reference frame (video object segmentation).
    pub reference: Option<Reference>,
    /// Where to write the predicted label map (DAVIS: `<sequence>/<frame>.png`).
    pub output_name: Option<String>,
}

/// A loaded benchmark: its items, and each item's details on demand.
pub trait Dataset: Send + Sync {
    /// The task.
    fn task(&self) -> Task;
    /// The dataset's root folder.
    fn root(&self) -> &Path;
    /// Every item, in a stable order.
    fn items(&self) -> &[ItemRef];
    /// Loads item `index` of [`Dataset::items`].
    ///
    /// # Errors
    /// [`EvalError::Dataset`] naming the file and item for bad data.
    fn load(&self, index: usize) -> Result<EvalItem>;
    /// The labelling vocabulary (open-vocabulary tasks).
    fn vocabulary(&self) -> Option<&[ClassNames]> {
        None
    }
}

/// Options for opening a dataset.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The split (`val2017`, `val`, `test`…); each dataset has a default.
    pub split: Option<String>,
    /// Where the images are, when not in the dataset's usual place.
    pub images: Option<PathBuf>,
}

/// Opens the dataset of `task` under `root`.
///
/// # Errors
/// As each loader's `open`.
///
/// ```
/// use som_eval::data::{open, OpenOptions, Task};
/// let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/eval/davis");
/// let ds = open(Task::Davis, root.as_ref(), &OpenOptions::default())?;
/// assert_eq!(ds.items()[0].group, "bear-walk");
/// # Ok::<(), som_eval::EvalError>(())
/// ```
pub fn open(task: Task, root: &Path, options: &OpenOptions) -> Result<Box<dyn Dataset>> {
    if !root.is_dir() {
        return Err(EvalError::dataset(
            root.display().to_string(),
            "",
            format!("not a folder (the {task} data root)"),
        ));
    }
    Ok(match task {
        Task::Coco => Box::new(coco::CocoDataset::open(root, options)?),
        Task::Ade20k => Box::new(ade20k::Ade20k::open(root, options)?),
        Task::Refcocog => Box::new(refcocog::RefCocog::open(root, options)?),
        Task::Flickr30k => Box::new(flickr30k::Flickr30k::open(root, options)?),
        Task::Davis => Box::new(davis::Davis::open(root, options)?),
        Task::SombenchRefcocog | Task::SombenchFlickr30k | Task::SombenchCoco | Task::SombenchAde20k => {
            Box::new(sombench::SomBench::open(task, root, options)?)
        }
    })
}

/// The sorted file names in a folder with one of `extensions` (lowercase, no dot).
pub(crate) fn list_files(dir: &Path, extensions: &[&str]) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| EvalError::io("read", dir, e))?;
    let mut names = Vec::new();
    for e in entries {
        let e = e.map_err(|e| EvalError::io("read", dir, e))?;
        let name = e.file_name().to_string_lossy().to_string();
        let ext = Path::new(&name)
            .extension()
            .map(|x| x.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if extensions.contains(&ext.as_str()) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

pub(crate) mod rle_ser {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use som_core::{ImageSize, Rle};

    #[derive(Serialize, Deserialize)]
    struct Coco {
        size: [u32; 2],
        counts: String,
    }

    pub fn serialize<S: Serializer>(rle: &Rle, s: S) -> Result<S::Ok, S::Error> {
        Coco {
            size: [rle.size().height, rle.size().width],
            counts: rle.to_compressed(),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Rle, D::Error> {
        let c = Coco::deserialize(d)?;
        Rle::from_compressed(ImageSize::new(c.size[1], c.size[0]), &c.counts)
            .map_err(serde::de::Error::custom)
    }
}

pub(crate) mod rle_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use som_core::Rle;

    pub fn serialize<S: Serializer>(rle: &Option<Rle>, s: S) -> Result<S::Ok, S::Error> {
        match rle {
            Some(r) => super::rle_ser::serialize(r, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Rle>, D::Error> {
        #[derive(Deserialize)]
        struct W(#[serde(with = "super::rle_ser")] Rle);
        Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
    }
}
