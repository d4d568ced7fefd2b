//! DAVIS 2017 (semi-supervised): `JPEGImages/480p/<sequence>/<frame>.jpg`,
//! indexed-PNG `Annotations/480p/<sequence>/<frame>.png` (0 background,
//! 1..K objects, 255 void), `ImageSets/2017/<split>.txt` (one sequence a line).
//!
//! An item is one frame of one sequence, from the second frame to the
//! second-to-last: the first frame is given (it is the reference shown to the
//! model) and the DAVIS toolkit does not score the last.

use std::path::{Path, PathBuf};

use som_core::{ImageSize, Region, Segmentation};

use super::{list_files, Dataset, EvalItem, ItemRef, OpenOptions, Query, Reference, Task, Truth};
use crate::error::{EvalError, Result};
use crate::labelmap::LabelMap;
use crate::metrics::davis::VOID;

/// One sequence: its frame names (without extension), in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    /// The sequence's name.
    pub name: String,
    /// Frame names, e.g. `00000`.
    pub frames: Vec<String>,
}

/// A DAVIS 2017 root.
#[derive(Debug)]
pub struct Davis {
    root: PathBuf,
    sequences: Vec<Sequence>,
    items: Vec<ItemRef>,
    /// (sequence index, frame index) of each item.
    index: Vec<(usize, usize)>,
}

impl Davis {
    /// Opens `root` for `options.split` (default `val`).
    ///
    /// # Errors
    /// [`EvalError::Dataset`] naming the file or sequence: no sequence list, a
    /// listed sequence without frames, a frame without its annotation, fewer
    /// than 3 frames.
    pub fn open(root: &Path, options: &OpenOptions) -> Result<Self> {
        let split = options.split.as_deref().unwrap_or("val");
        let list = root.join("ImageSets/2017").join(format!("{split}.txt"));
        let text = std::fs::read_to_string(&list).map_err(|e| EvalError::io("read", &list, e))?;
        let mut sequences = Vec::new();
        let mut items = Vec::new();
        let mut index = Vec::new();
        for (line_no, line) in text.lines().enumerate() {
            let name = line.trim();
            if name.is_empty() {
                continue;
            }
            let item = |m: String| {
                EvalError::dataset(
                    list.display().to_string(),
                    format!("line {} ({name})", line_no + 1),
                    m,
                )
            };
            let jpg_dir = root.join("JPEGImages/480p").join(name);
            let png_dir = root.join("Annotations/480p").join(name);
            if !jpg_dir.is_dir() {
                return Err(item(format!("no frames: {} is not a folder", jpg_dir.display())));
            }
            if !png_dir.is_dir() {
                return Err(item(format!(
                    "no annotations: {} is not a folder",
                    png_dir.display()
                )));
            }
            let frames: Vec<String> = list_files(&jpg_dir, &["jpg"])?
                .into_iter()
                .map(|f| f.trim_end_matches(".jpg").to_string())
                .collect();
            let annotations = list_files(&png_dir, &["png"])?;
            for f in &frames {
                if !annotations.contains(&format!("{f}.png")) {
                    return Err(EvalError::dataset(
                        png_dir.display().to_string(),
                        format!("frame {f}"),
                        "the frame has no annotation PNG",
                    ));
                }
            }
            if frames.len() < 3 {
                return Err(item(format!(
                    "{} frames; a sequence needs at least 3 (the first is given, the last is not scored)",
                    frames.len()
                )));
            }
            let s = sequences.len();
            for (t, f) in frames.iter().enumerate().take(frames.len() - 1).skip(1) {
                items.push(ItemRef {
                    id: format!("davis/{name}/{f}"),
                    group: name.to_string(),
                });
                index.push((s, t));
            }
            sequences.push(Sequence {
                name: name.to_string(),
                frames,
            });
        }
        if sequences.is_empty() {
            return Err(EvalError::dataset(
                list.display().to_string(),
                "",
                "lists no sequences",
            ));
        }
        Ok(Self {
            root: root.to_path_buf(),
            sequences,
            items,
            index,
        })
    }

    /// The sequences, in list order.
    pub fn sequences(&self) -> &[Sequence] {
        &self.sequences
    }

    /// The JPEG of a frame.
    pub fn frame_image(&self, sequence: &str, frame: &str) -> PathBuf {
        self.root
            .join("JPEGImages/480p")
            .join(sequence)
            .join(format!("{frame}.jpg"))
    }

    /// The annotation PNG of a frame.
    pub fn frame_annotation(&self, sequence: &str, frame: &str) -> PathBuf {
        self.root
            .join("Annotations/480p")
            .join(sequence)
            .join(format!("{frame}.png"))
    }

    /// Reads a frame's annotation and checks it against the sequence: the
    /// size of the first frame (and of the JPEG, for the first frame), and
    /// labels that are 0, 255 or an object of the first frame (`objects`;
    /// `None` while reading the first frame itself).
    ///
    /// # Errors
    /// [`EvalError::Dataset`] naming the file for a PNG that is not indexed or
    /// grayscale, a size that disagrees, or an unexpected label.
    pub fn read_annotation(
        &self,
        sequence: &str,
        frame: &str,
        expect: Option<(ImageSize, u32)>,
    ) -> Result<LabelMap> {
        let path = self.frame_annotation(sequence, frame);
        let map = LabelMap::read_png(&path)?;
        let file = path.display().to_string();
        match expect {
            None => {
                let jpg = self.frame_image(sequence, frame);
                let (w, h) = image::ImageReader::open(&jpg)
                    .map_err(|e| EvalError::io("read", &jpg, e))?
                    .into_dimensions()
                    .map_err(|e| {
                        EvalError::dataset(
                            jpg.display().to_string(),
                            "",
                            format!("not a readable image ({e})"),
                        )
                    })?;
                if ImageSize::new(w, h) != map.size() {
                    return Err(EvalError::dataset(
                        file,
                        "",
                        format!("the annotation is {}, its frame {}x{h}", map.size(), w),
                    ));
                }
            }
            Some((size, objects)) => {
                if map.size() != size {
                    return Err(EvalError::dataset(
                        file,
                        "",
                        format!(
                            "the annotation is {}, the sequence's first frame {size}",
                            map.size()
                        ),
                    ));
                }
                if let Some((i, v)) = map
                    .labels()
                    .iter()
                    .enumerate()
                    .find(|(_, &v)| v != 0 && v != VOID && v > objects)
                {
                    let w = size.width as usize;
                    return Err(EvalError::dataset(
                        file,
                        format!("pixel ({}, {})", i % w, i / w),
                        format!(
                            "palette index {v} is not an object of the first frame (it has {objects}; 0 is background, 255 void)"
                        ),
                    ));
                }
            }
        }
        Ok(map)
    }

    /// The first frame's annotation and its number of objects.
    ///
    /// # Errors
    /// As [`Davis::read_annotation`].
    pub fn first_frame(&self, sequence: &Sequence) -> Result<(LabelMap, u32)> {
        let map = self.read_annotation(&sequence.name, &sequence.frames[0], None)?;
        let objects = crate::metrics::davis::object_count(&map);
        if objects == 0 {
            return Err(EvalError::dataset(
                self.frame_annotation(&sequence.name, &sequence.frames[0])
                    .display()
                    .to_string(),
                "",
                "the first frame annotates no object",
            ));
        }
        Ok((map, objects))
    }
}

impl Dataset for Davis {
    fn task(&self) -> Task {
        Task::Davis
    }

    fn root(&self) -> &Path {
        &self.root
    }

    fn items(&self) -> &[ItemRef] {
        &self.items
    }

    fn load(&self, index: usize) -> Result<EvalItem> {
        let (s, t) = self.index[index];
        let seq = &self.sequences[s];
        let (first, objects) = self.first_frame(seq)?;
        let frame = &seq.frames[t];
        let gt = self.read_annotation(&seq.name, frame, Some((first.size(), objects)))?;
        // Objects absent from the first frame cannot be shown; they stay targets.
        let regions: Vec<Region> = (1..=objects)
            .map(|k| Region::from_mask(k as u64, first.mask(k)).with_label(format!("object {k}")))
            .filter(|r| r.area() > 0)
            .collect();
        let targets = (1..=objects)
            .map(|k| {
                (
                    format!("object {k}"),
                    Truth::Mask {
                        mask: gt.mask(k).to_rle(),
                    },
                )
            })
            .collect();
        Ok(EvalItem {
            id: self.items[index].id.clone(),
            group: seq.name.clone(),
            image: self.frame_image(&seq.name, frame),
            premarked: false,
            prompt: None,
            query: Query::Track { objects: Vec::new() },
            targets,
            regions: None,
            semantic: None,
            reference: Some(Reference {
                image: self.frame_image(&seq.name, &seq.frames[0]),
                objects: Segmentation::new(first.size(), regions)?,
            }),
            output_name: Some(format!("{}/{frame}.png", seq.name)),
        })
    }
}
