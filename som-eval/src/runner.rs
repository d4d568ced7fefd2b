//! The evaluation runner: any [`GroundingModel`] with any segmenter,
//! allocator and renderer over a sample of a benchmark.
//!
//! For each item the runner loads the image, marks it (ground-truth regions,
//! or a segmenter's, through [`SomPipeline`]), asks the model with the
//! [`Prompter`]'s request, splits the answer into one answer per target, and
//! appends one record to the [`ResultsFile`] as soon as the item finishes.
//! Items run with bounded concurrency and, optionally, at most so many
//! requests per minute. A run that is killed resumes where it stopped:
//! finished items are skipped, the torn last line (if any) is cut.
//!
//! Models are driven only through `dyn GroundingModel`; prompts and answer
//! splitting come from the caller's [`Prompter`] (the `som` command line
//! uses `som-lmm`'s templates and answer parser), so this crate depends on no
//! model client.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use image::DynamicImage;
use som_core::{
    BBox, GroundingAnswer, GroundingModel, GroundingRequest, ImageSize, Mark, MarkAllocator, MarkRef,
    MarkRenderer, MarkedImage, Point, Region, Segmentation, Segmenter, SomError, SomPipeline,
};

use crate::data::{ClassNames, Dataset, EvalItem, ItemRef, Query, Truth};
use crate::error::{EvalError, Result};
use crate::records::{
    ClassMask, MarkRecord, Price, Record, RegionRecord, ResultsFile, TargetRecord, UsageRecord,
};

/// What the answer said about one target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetAnswer {
    /// The marks named for the target, in order of mention.
    pub marks: Vec<MarkRef>,
    /// Labels named for it that are not on the image.
    pub unknown: Vec<String>,
    /// The class name given (labelling).
    pub name: Option<String>,
}

/// Turns queries into requests and answers into per-target answers.
///
/// The targets of each query are: [`Query::Refer`], one (the expression);
/// [`Query::Ground`], one per phrase; [`Query::Track`], one per object;
/// [`Query::Label`], one per mark of the marked image, in mark order.
/// [`Prompter::interpret`] returns one [`TargetAnswer`] per target, in that
/// order (missing ones count as answers that named nothing).
pub trait Prompter: Send + Sync {
    /// The request for `query` about `marked`; `reference` is the marked first
    /// frame of a video ([`Query::Track`]).
    fn request<'a>(
        &self,
        query: &Query,
        marked: &'a MarkedImage,
        reference: Option<&'a MarkedImage>,
    ) -> GroundingRequest<'a>;

    /// Splits `answer` into one answer per target of `query`.
    fn interpret(&self, query: &Query, answer: &GroundingAnswer, marked: &MarkedImage) -> Vec<TargetAnswer>;
}

/// Where the marked regions come from.
#[derive(Clone, Copy)]
pub enum RegionSource<'a> {
    /// The dataset's ground-truth regions (COCO instances, ADE20K classes,
    /// RefCOCOg objects): the model chooses among the true objects, as on
    /// SoM-Bench.
    GroundTruth,
    /// A segmenter's regions.
    Segmenter(&'a dyn Segmenter),
}

impl RegionSource<'_> {
    /// `"ground-truth"` or `"segmenter:<name>"`, as results headers record it.
    pub fn describe(&self) -> String {
        match self {
            RegionSource::GroundTruth => "ground-truth".into(),
            RegionSource::Segmenter(s) => format!("segmenter:{}", s.name()),
        }
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Items in flight at once (at least 1).
    pub concurrency: usize,
    /// At most this many requests per minute (`None`: no limit).
    pub requests_per_minute: Option<f64>,
    /// Run again the items whose record holds an error (their new record counts).
    pub retry_errors: bool,
    /// Write each marked image and prompt into this folder and ask no model.
    pub dry_run: Option<PathBuf>,
    /// Price per million tokens, for the progress line.
    pub price: Option<Price>,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            requests_per_minute: None,
            retry_errors: false,
            dry_run: None,
            price: None,
        }
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Items finished in this run.
    pub done: usize,
    /// Items to run in this run (the sample minus those already recorded).
    pub total: usize,
    /// Items skipped because the results file already has them.
    pub skipped: usize,
    /// Finished items that failed.
    pub errors: usize,
    /// Input tokens so far.
    pub input_tokens: u64,
    /// Output tokens so far.
    pub output_tokens: u64,
    /// Cost so far, when a price is set.
    pub cost: Option<f64>,
    /// Time since the run started.
    pub elapsed: Duration,
}

impl Progress {
    /// A one-line progress bar.
    ///
    /// ```
    /// let p = som_eval::runner::Progress { done: 5, total: 20, errors: 1, input_tokens: 900, output_tokens: 40, ..Default::default() };
    /// assert!(p.line().starts_with("[#####...............]   5/20"));
    /// ```
    pub fn line(&self) -> String {
        let width = 20;
        let filled = (self.done * width).checked_div(self.total).unwrap_or(width);
        let mut s = format!(
            "[{}{}] {:>3}/{} · {} errors · {} in + {} out tokens",
            "#".repeat(filled),
            ".".repeat(width - filled),
            self.done,
            self.total,
            self.errors,
            self.input_tokens,
            self.output_tokens
        );
        if let Some(c) = self.cost {
            s += &format!(" · ${c:.4}");
        }
        let secs = self.elapsed.as_secs();
        s += &format!(" · {}m{:02}s", secs / 60, secs % 60);
        if self.done > 0 && self.done < self.total {
            let left = self.elapsed.as_secs_f64() / self.done as f64 * (self.total - self.done) as f64;
            s += &format!(", ~{}m{:02}s left", left as u64 / 60, left as u64 % 60);
        }
        if self.skipped > 0 {
            s += &format!(" · {} already done", self.skipped);
        }
        s
    }
}

/// Picks the items to run: all of them, or every item of `limit` groups
/// (images, sequences) drawn with `seed`. The same seed and limit always give
/// the same sample; items keep dataset order.
///
/// ```
/// use som_eval::data::ItemRef;
/// use som_eval::runner::sample;
/// let items: Vec<ItemRef> = (0..10).map(|i| ItemRef { id: format!("i{i}"), group: format!("g{}", i / 2) }).collect();
/// let s = sample(&items, Some(2), 7);
/// assert_eq!(s.len(), 4);
/// assert_eq!(s, sample(&items, Some(2), 7));
/// assert_eq!(sample(&items, None, 7), (0..10).collect::<Vec<_>>());
/// ```
pub fn sample(items: &[ItemRef], limit: Option<usize>, seed: u64) -> Vec<usize> {
    let Some(limit) = limit else {
        return (0..items.len()).collect();
    };
    let mut groups: Vec<&str> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for it in items {
        if seen.insert(it.group.as_str()) {
            groups.push(&it.group);
        }
    }
    // Fisher–Yates with SplitMix64: stable across platforms and releases.
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in (1..groups.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        groups.swap(i, j);
    }
    let chosen: std::collections::HashSet<&str> = groups.into_iter().take(limit).collect();
    items
        .iter()
        .enumerate()
        .filter(|(_, it)| chosen.contains(it.group.as_str()))
        .map(|(i, _)| i)
        .collect()
}

/// Spaces requests at least `60 / rpm` seconds apart.
#[derive(Debug)]
struct RateLimiter {
    interval: Option<Duration>,
    next: Mutex<Option<tokio::time::Instant>>,
}

impl RateLimiter {
    fn new(rpm: Option<f64>) -> Self {
        Self {
            interval: rpm.map(|r| Duration::from_secs_f64(60.0 / r)),
            next: Mutex::new(None),
        }
    }

    async fn wait(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let slot = {
            let mut next = self
                .next
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = tokio::time::Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// A segmenter for runs on ground-truth regions; it is never called.
struct NoSegmenter;

impl Segmenter for NoSegmenter {
    fn segment(&self, _image: &DynamicImage) -> std::result::Result<Segmentation, SomError> {
        Err(SomError::segment(
            "ground-truth regions are used; no segmenter runs",
        ))
    }
}

/// Evaluates a model on a dataset.
pub struct Runner<'a> {
    dataset: &'a dyn Dataset,
    model: &'a dyn GroundingModel,
    regions: RegionSource<'a>,
    pipeline: SomPipeline<&'a dyn Segmenter, &'a dyn MarkAllocator, &'a dyn MarkRenderer>,
    prompter: &'a dyn Prompter,
    config: RunConfig,
    limiter: RateLimiter,
}

impl<'a> Runner<'a> {
    /// A runner; `regions` says what to mark, `allocator` and `renderer` how.
    ///
    /// # Errors
    /// [`EvalError::Invalid`] for a concurrency of 0 or a request rate that is
    /// not positive.
    pub fn new(
        dataset: &'a dyn Dataset,
        model: &'a dyn GroundingModel,
        regions: RegionSource<'a>,
        allocator: &'a dyn MarkAllocator,
        renderer: &'a dyn MarkRenderer,
        prompter: &'a dyn Prompter,
        config: RunConfig,
    ) -> Result<Self> {
        if config.concurrency == 0 {
            return Err(EvalError::invalid("concurrency", "must be at least 1"));
        }
        if let Some(r) = config.requests_per_minute {
            if !(r.is_finite() && r > 0.0) {
                return Err(EvalError::invalid(
                    "requests per minute",
                    format!("{r} is not positive"),
                ));
            }
        }
        static NONE: NoSegmenter = NoSegmenter;
        let segmenter: &'a dyn Segmenter = match regions {
            RegionSource::GroundTruth => &NONE,
            RegionSource::Segmenter(s) => s,
        };
        Ok(Self {
            dataset,
            model,
            regions,
            pipeline: SomPipeline::new(segmenter, allocator, renderer),
            prompter,
            limiter: RateLimiter::new(config.requests_per_minute),
            config,
        })
    }

    /// Runs the items `selection` (indices into the dataset's items) that
    /// `out` does not have yet, appending each record as it finishes and
    /// calling `progress` after each. With [`RunConfig::dry_run`] nothing is
    /// asked or recorded (`out` may be `None`).
    ///
    /// # Errors
    /// [`EvalError::Io`] when the results file cannot be written; item
    /// failures are recorded, not returned.
    pub async fn run(
        &self,
        selection: &[usize],
        mut out: Option<&mut ResultsFile>,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<Progress> {
        let started = Instant::now();
        let items = self.dataset.items();
        let pending: Vec<usize> = selection
            .iter()
            .copied()
            .filter(|&i| {
                i < items.len()
                    && !out
                        .as_deref()
                        .is_some_and(|o| o.is_done(&items[i].id, self.config.retry_errors))
            })
            .collect();
        let mut p = Progress {
            total: pending.len(),
            skipped: selection.len() - pending.len(),
            cost: self.config.price.map(|_| 0.0),
            ..Progress::default()
        };
        progress(&p);
        if let Some(dir) = &self.config.dry_run {
            std::fs::create_dir_all(dir).map_err(|e| EvalError::io("create", dir, e))?;
        }
        let mut stream = futures_util::stream::iter(pending.into_iter().map(|i| self.item(i)))
            .buffer_unordered(self.config.concurrency);
        while let Some(record) = stream.next().await {
            if self.config.dry_run.is_none() {
                if let Some(o) = out.as_deref_mut() {
                    o.append(&record)?;
                }
            }
            p.done += 1;
            p.errors += record.error.is_some() as usize;
            if let Some(u) = record.usage {
                p.input_tokens += u.input_tokens;
                p.output_tokens += u.output_tokens;
            }
            p.cost = self
                .config
                .price
                .map(|pr| pr.cost(p.input_tokens, p.output_tokens));
            p.elapsed = started.elapsed();
            progress(&p);
        }
        Ok(p)
    }

    /// Runs one item; failures become the record's error.
    async fn item(&self, index: usize) -> Record {
        let it: &ItemRef = &self.dataset.items()[index];
        let mut rec = Record {
            id: it.id.clone(),
            group: it.group.clone(),
            image: String::new(),
            image_size: [0, 0],
            prompt: String::new(),
            answer: None,
            finish_reason: None,
            targets: Vec::new(),
            classes: Vec::new(),
            output: None,
            usage: None,
            latency_ms: 0.0,
            error: None,
        };
        if let Err(e) = self.fill(index, &mut rec).await {
            rec.error = Some(som_core::ErrorChain(&e).to_string());
        }
        rec
    }

    async fn fill(&self, index: usize, rec: &mut Record) -> Result<()> {
        let item = self.dataset.load(index)?;
        let stage = |what: &str| {
            let context = what.to_string();
            move |source: SomError| EvalError::Stage {
                context: context.clone(),
                source,
            }
        };
        rec.image = item.image.display().to_string();
        rec.output = item.output_name.clone();
        rec.targets = item
            .targets
            .iter()
            .map(|(key, truth)| TargetRecord {
                key: key.clone(),
                truth: truth.clone(),
                marks: Vec::new(),
                unknown: Vec::new(),
                name: None,
            })
            .collect();
        let image = som_core::io::load_image(&item.image).map_err(stage("load image"))?;
        let size = ImageSize::new(image.width(), image.height());
        rec.image_size = [size.width, size.height];
        let marked = if item.premarked {
            premarked(&image)?
        } else {
            let seg = match (&self.regions, &item.regions) {
                (RegionSource::GroundTruth, Some(r)) => r.clone(),
                (RegionSource::GroundTruth, None) => {
                    return Err(EvalError::invalid(
                        "regions",
                        format!(
                            "{} has no ground-truth regions to mark; use a segmenter",
                            self.dataset.task()
                        ),
                    ))
                }
                (RegionSource::Segmenter(s), _) => s.segment(&image).map_err(stage("segment"))?,
            };
            if seg.is_empty() {
                return Err(EvalError::invalid("regions", "no regions to mark"));
            }
            self.pipeline.mark_regions(&image, seg).map_err(stage("mark"))?.0
        };
        if let Some(sem) = &item.semantic {
            rec.classes = class_masks(&sem.map, sem.ignore);
            if matches!(item.query, Query::Label { .. }) && !item.premarked {
                let vocabulary = self.dataset.vocabulary().unwrap_or(&[]);
                rec.targets = label_targets(&marked, &sem.map, sem.ignore, vocabulary);
            }
        }
        let reference = match &item.reference {
            Some(r) => {
                let img = som_core::io::load_image(&r.image).map_err(stage("load reference frame"))?;
                Some(
                    self.pipeline
                        .mark_regions(&img, r.objects.clone())
                        .map_err(stage("mark reference frame"))?
                        .0,
                )
            }
            None => None,
        };
        let query = track_objects(&item, reference.as_ref());
        let request = match &item.prompt {
            Some(p) => GroundingRequest::new(&marked, p.clone()),
            None => self.prompter.request(&query, &marked, reference.as_ref()),
        };
        rec.prompt = request.prompt.clone();
        if let Some(dir) = &self.config.dry_run {
            return dry_run(dir, &item, &request, &marked, reference.as_ref());
        }
        self.limiter.wait().await;
        let t0 = Instant::now();
        let answer = self.model.ground(&request).await;
        rec.latency_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let answer = answer.map_err(stage("ask the model"))?;
        rec.answer = Some(answer.text.clone());
        rec.finish_reason = answer.finish_reason.clone();
        rec.usage = answer.usage.map(|u| UsageRecord {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
        });
        let parts = self.prompter.interpret(&query, &answer, &marked);
        let label = matches!(query, Query::Label { .. });
        for (k, t) in rec.targets.iter_mut().enumerate() {
            let part = parts.get(k).cloned().unwrap_or_default();
            t.name = part.name;
            if !label {
                t.marks = part
                    .marks
                    .iter()
                    .map(|m| mark_record(&marked, m, item.premarked))
                    .collect();
                t.unknown = part.unknown;
            }
        }
        Ok(())
    }
}

/// A pre-marked image: marks 1..=PREMARKED_MARKS, regions unknown.
fn premarked(image: &DynamicImage) -> Result<MarkedImage> {
    let size = ImageSize::new(image.width(), image.height());
    let n = crate::data::sombench::PREMARKED_MARKS;
    let regions: Vec<Region> = (1..=n)
        .map(|k| Region::from_box(k as u64, size.full_box()))
        .collect();
    let marks: Vec<Mark> = (1..=n)
        .map(|k| {
            Mark::new(
                k,
                k.to_string(),
                Point::new(0, 0),
                k as usize - 1,
                BBox::new(0, 0, 1, 1),
            )
        })
        .collect();
    Ok(MarkedImage::new(
        image.to_rgb8(),
        marks,
        Segmentation::new(size, regions)?,
    )?)
}

fn mark_record(marked: &MarkedImage, m: &MarkRef, premarked: bool) -> MarkRecord {
    let region = (!premarked)
        .then(|| marked.segmentation().region(m.region))
        .flatten()
        .map(|r| RegionRecord {
            id: r.id,
            bbox: r.bbox.to_xywh(),
            segmentation: r.mask.as_ref().map(|mask| mask.to_rle()),
        });
    MarkRecord {
        id: m.id,
        text: m.text.clone(),
        region,
    }
}

/// One RLE per class present in a semantic map.
fn class_masks(map: &crate::labelmap::LabelMap, ignore: u32) -> Vec<ClassMask> {
    let mut present: Vec<u32> = map.labels().iter().copied().filter(|&v| v != ignore).collect();
    present.sort_unstable();
    present.dedup();
    present
        .into_iter()
        .map(|c| ClassMask {
            class: c,
            segmentation: map.mask(c).to_rle(),
        })
        .collect()
}

/// One target per mark, its truth the class covering most of its region
/// (none when ignored pixels are the most).
fn label_targets(
    marked: &MarkedImage,
    map: &crate::labelmap::LabelMap,
    ignore: u32,
    vocabulary: &[ClassNames],
) -> Vec<TargetRecord> {
    marked
        .marks()
        .iter()
        .filter_map(|mark| Some((mark, marked.region_of(mark)?)))
        .map(|(mark, region)| {
            let best = map.majority(&region.to_mask(map.size()));
            let truth = match best {
                Some(c) if c != ignore => Truth::Class {
                    names: vocabulary
                        .get(c as usize)
                        .map(|v| v.names.clone())
                        .unwrap_or_default(),
                    index: Some(c),
                },
                _ => Truth::Class {
                    names: Vec::new(),
                    index: None,
                },
            };
            TargetRecord {
                key: format!("mark {}", mark.text),
                truth,
                marks: vec![MarkRecord {
                    id: mark.id,
                    text: mark.text.clone(),
                    region: Some(RegionRecord {
                        id: region.id,
                        bbox: region.bbox.to_xywh(),
                        segmentation: region.mask.as_ref().map(|m| m.to_rle()),
                    }),
                }],
                unknown: Vec::new(),
                name: None,
            }
        })
        .collect()
}

/// [`Query::Track`] with the reference frame's mark text of each object
/// (empty for an object not shown on it), in object order.
fn track_objects(item: &EvalItem, reference: Option<&MarkedImage>) -> Query {
    match (&item.query, reference) {
        (Query::Track { .. }, Some(r)) => {
            let objects = (1..=item.targets.len() as u64)
                .map(|k| {
                    r.marks()
                        .iter()
                        .find(|m| r.region_of(m).is_some_and(|reg| reg.id == k))
                        .map(|m| m.text.clone())
                        .unwrap_or_default()
                })
                .collect();
            Query::Track { objects }
        }
        (q, _) => q.clone(),
    }
}

/// A file name from an item id (`refcocog/ref-12/sent-40` → `refcocog_ref-12_sent-40`).
fn file_stem(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn dry_run(
    dir: &Path,
    item: &EvalItem,
    request: &GroundingRequest<'_>,
    marked: &MarkedImage,
    reference: Option<&MarkedImage>,
) -> Result<()> {
    let stem = file_stem(&item.id);
    let save = |img: &image::RgbImage, path: PathBuf| {
        som_core::io::save_image(img, &path).map_err(|source| EvalError::Stage {
            context: format!("dry run of {}", item.id),
            source,
        })
    };
    save(marked.image(), dir.join(format!("{stem}.png")))?;
    if let Some(r) = reference {
        save(r.image(), dir.join(format!("{stem}.reference.png")))?;
    }
    let mut text = String::new();
    if let Some(s) = &request.system {
        text += &format!("[system]\n{s}\n\n");
    }
    for part in &request.context {
        match part {
            som_core::ContentPart::Text(t) => text += &format!("[context]\n{t}\n\n"),
            som_core::ContentPart::Image(_) => text += "[context image]\n\n",
        }
    }
    text += &format!("[image] {stem}.png\n\n[prompt]\n{}\n", request.prompt);
    let path = dir.join(format!("{stem}.txt"));
    std::fs::write(&path, text).map_err(|e| EvalError::io("write", &path, e))
}
