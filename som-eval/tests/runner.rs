//! The runner: a run killed mid-way resumes with every item recorded exactly
//! once and the same summary as an uninterrupted run; rate limiting; dry runs;
//! runs on the benchmark fixtures through to the report.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use image::{DynamicImage, RgbImage};
use som_core::{
    BBox, BoxFuture, ContentPart, GroundingAnswer, GroundingModel, GroundingRequest, ImageSize, LabelMeasure,
    Mark, MarkAllocator, MarkRef, MarkRenderer, MarkedImage, Region, Segmentation, Segmenter, SomError,
    Usage,
};
use som_eval::data::{open, Dataset, EvalItem, ItemRef, OpenOptions, Query, Task, Truth};
use som_eval::records::{latest, read_results, Header, Price, ResultsFile, FORMAT};
use som_eval::report::{summarize, MultiMarkRule, ScoreOptions};
use som_eval::runner::{sample, Prompter, RegionSource, RunConfig, Runner, TargetAnswer};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn fixture(task: Task, rel: &str) -> Box<dyn Dataset> {
    match open(task, &fixtures().join(rel), &OpenOptions::default()) {
        Ok(ds) => ds,
        Err(e) => panic!("{rel}: {e}"),
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("som-eval-runner-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Marks at region box centres; a label is one pixel.
struct Centre;
impl LabelMeasure for Centre {
    fn label_size(&self, _: &str, _: ImageSize, _: f32) -> (u32, u32) {
        (1, 1)
    }
}
impl MarkAllocator for Centre {
    fn allocate(&self, seg: &Segmentation, _: &dyn LabelMeasure) -> Result<Vec<Mark>, SomError> {
        Ok(seg
            .order_by_area()
            .into_iter()
            .enumerate()
            .map(|(k, i)| {
                let b = seg.regions()[i].bbox;
                Mark::new(
                    k as u32 + 1,
                    (k + 1).to_string(),
                    b.center(),
                    i,
                    BBox::new(b.center().x, b.center().y, 1, 1),
                )
            })
            .collect())
    }
}
impl MarkRenderer for Centre {
    fn render(&self, image: &RgbImage, _: &Segmentation, _: &[Mark]) -> Result<RgbImage, SomError> {
        Ok(image.clone())
    }
}

/// Four quadrant boxes.
struct Quadrants;
impl Segmenter for Quadrants {
    fn segment(&self, image: &DynamicImage) -> Result<Segmentation, SomError> {
        let (w, h) = (image.width(), image.height());
        let (hw, hh) = (w / 2, h / 2);
        let boxes = [
            BBox::new(0, 0, hw, hh),
            BBox::new(hw, 0, w - hw, hh),
            BBox::new(0, hh, hw, h - hh),
            BBox::new(hw, hh, w - hw, h - hh),
        ];
        Segmentation::new(
            ImageSize::new(w, h),
            boxes
                .iter()
                .enumerate()
                .map(|(i, b)| Region::from_box(i as u64 + 1, *b))
                .collect(),
        )
    }
    fn name(&self) -> &str {
        "quadrants"
    }
}

/// Refer: the answer's marks; every other query: one line per target.
struct LinePrompter;
impl Prompter for LinePrompter {
    fn request<'a>(
        &self,
        q: &Query,
        marked: &'a MarkedImage,
        reference: Option<&'a MarkedImage>,
    ) -> GroundingRequest<'a> {
        let text = match q {
            Query::Refer { expression } => format!("Which mark is {expression}?"),
            Query::Label { vocabulary } => format!("Name each mark from: {}", vocabulary.join(", ")),
            Query::Ground { caption, phrases } => format!("{caption}: ground {}", phrases.join("; ")),
            Query::Track { objects } => format!("Track objects {}", objects.join(", ")),
        };
        let req = GroundingRequest::new(marked, text);
        match reference {
            Some(r) => req.with_context(vec![ContentPart::Image(r.image())]),
            None => req,
        }
    }
    fn interpret(&self, q: &Query, answer: &GroundingAnswer, marked: &MarkedImage) -> Vec<TargetAnswer> {
        let lines = som_lmm::parse_lines(&answer.text, marked);
        match q {
            Query::Refer { .. } => vec![TargetAnswer {
                marks: answer.marks.clone(),
                unknown: answer.unknown.clone(),
                name: None,
            }],
            Query::Label { .. } => marked
                .marks()
                .iter()
                .map(|m| TargetAnswer {
                    name: lines
                        .iter()
                        .find(|l| l.marks.marks.iter().any(|x| x.id == m.id))
                        .map(|l| l.text.clone()),
                    ..TargetAnswer::default()
                })
                .collect(),
            _ => lines
                .iter()
                .map(|l| TargetAnswer {
                    marks: l.marks.marks.clone(),
                    unknown: l.marks.unknown_labels(),
                    name: None,
                })
                .collect(),
        }
    }
}

/// Answers with a mark picked from the prompt's text, so an item's answer
/// does not depend on the order items run in; stalls forever after `stall_after` calls.
struct Deterministic {
    calls: AtomicUsize,
    stall_after: usize,
    sent: Mutex<Vec<tokio::time::Instant>>,
}

impl Deterministic {
    fn new(stall_after: usize) -> Self {
        Self {
            calls: AtomicUsize::new(0),
            stall_after,
            sent: Mutex::new(Vec::new()),
        }
    }
}

impl GroundingModel for Deterministic {
    fn ground<'a>(
        &'a self,
        req: &'a GroundingRequest<'a>,
    ) -> BoxFuture<'a, Result<GroundingAnswer, SomError>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        self.sent.lock().unwrap().push(tokio::time::Instant::now());
        if n >= self.stall_after {
            return Box::pin(std::future::pending());
        }
        let marks = req.marked.marks();
        let h = req
            .prompt
            .bytes()
            .fold(7u64, |a, b| a.wrapping_mul(31).wrapping_add(b as u64));
        let picked: Vec<&Mark> = if h % 5 == 0 {
            marks.iter().take(2).collect()
        } else {
            vec![&marks[(h as usize) % marks.len()]]
        };
        let mut a = GroundingAnswer::new(picked.iter().map(|m| format!("[{}]", m.text)).collect::<String>());
        a.marks = picked
            .iter()
            .map(|m| MarkRef {
                id: m.id,
                text: m.text.clone(),
                region: m.region,
            })
            .collect();
        a.usage = Some(Usage {
            input_tokens: 100 + (h % 7),
            output_tokens: 5,
        });
        Box::pin(async move { Ok(a) })
    }
    fn name(&self) -> &str {
        "deterministic"
    }
}

/// Twelve items over six images: two expressions per image, truth = one of its boxes.
struct Synthetic {
    items: Vec<ItemRef>,
}

impl Synthetic {
    fn new() -> Self {
        let items = (0..12)
            .map(|i| ItemRef {
                id: format!("synthetic/img-{}/expr-{}", i / 2, i % 2),
                group: format!("img-{}", i / 2),
            })
            .collect();
        Self { items }
    }
}

impl Dataset for Synthetic {
    fn task(&self) -> Task {
        Task::Refcocog
    }
    fn root(&self) -> &Path {
        Path::new("synthetic")
    }
    fn items(&self) -> &[ItemRef] {
        &self.items
    }
    fn load(&self, index: usize) -> som_eval::Result<EvalItem> {
        let size = ImageSize::new(640, 427);
        let boxes = [
            BBox::new(0, 0, 200, 200),
            BBox::new(300, 100, 150, 150),
            BBox::new(100, 250, 400, 150),
        ];
        let regions: Vec<Region> = boxes
            .iter()
            .enumerate()
            .map(|(i, b)| Region::from_mask(i as u64 + 10, som_core::Mask::from_box(size, *b)))
            .collect();
        let t = boxes[index % 3];
        Ok(EvalItem {
            id: self.items[index].id.clone(),
            group: self.items[index].group.clone(),
            image: fixtures().join("images/rocket.jpg"),
            premarked: false,
            prompt: None,
            query: Query::Refer {
                expression: format!("thing number {index}"),
            },
            targets: vec![(
                "ref".into(),
                Truth::Object {
                    bbox: [t.x as f64, t.y as f64, t.width as f64, t.height as f64],
                    mask: Some(som_core::Mask::from_box(size, t).to_rle()),
                },
            )],
            regions: Some(Segmentation::new(size, regions).unwrap()),
            semantic: None,
            reference: None,
            output_name: None,
        })
    }
}

fn header(task: Task, seed: u64) -> Header {
    Header {
        som_eval: FORMAT,
        task,
        model: "deterministic".into(),
        data: "synthetic".into(),
        split: None,
        seed,
        limit: None,
        regions: "ground-truth".into(),
        vocabulary: Vec::new(),
        price: Some(Price {
            input: 2.5,
            output: 10.0,
        }),
    }
}

fn runner<'a>(ds: &'a dyn Dataset, model: &'a dyn GroundingModel, config: RunConfig) -> Runner<'a> {
    Runner::new(
        ds,
        model,
        RegionSource::GroundTruth,
        &Centre,
        &Centre,
        &LinePrompter,
        config,
    )
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_killed_run_resumes_with_every_item_once_and_the_same_summary() {
    let ds = Synthetic::new();
    let selection = sample(ds.items(), None, 0);
    let config = RunConfig {
        concurrency: 3,
        ..RunConfig::default()
    };
    let dir = tmp("kill");

    // The reference: one uninterrupted run.
    let whole = dir.join("whole.jsonl");
    let model = Deterministic::new(usize::MAX);
    let mut out = ResultsFile::create(&whole, &header(Task::Refcocog, 0)).unwrap();
    let p = runner(&ds, &model, config.clone())
        .run(&selection, Some(&mut out), &mut |_| {})
        .await
        .unwrap();
    assert_eq!((p.done, p.errors), (12, 0));
    drop(out);

    // A run whose model stalls after 5 answers, killed while 3 requests hang.
    let path = dir.join("results.jsonl");
    let stalling = Deterministic::new(5);
    let mut out = ResultsFile::create(&path, &header(Task::Refcocog, 0)).unwrap();
    let r = runner(&ds, &stalling, config.clone());
    let killed = tokio::time::timeout(
        Duration::from_secs(600),
        r.run(&selection, Some(&mut out), &mut |_| {}),
    )
    .await;
    assert!(killed.is_err(), "the stalled run should not finish");
    drop(out);
    assert_eq!(
        stalling.calls.load(Ordering::SeqCst),
        8,
        "5 answered, 3 in flight when killed"
    );
    let (_, before) = read_results(&path).unwrap();
    assert_eq!(before.len(), 5);
    // The kill also tore a line in the middle of a write.
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut f, b"{\"id\":\"synthetic/img-5/expr-1\",\"gro").unwrap();
    drop(f);

    // Resume with a model that answers.
    let model = Deterministic::new(usize::MAX);
    let mut out = ResultsFile::resume(&path, &header(Task::Refcocog, 0)).unwrap();
    assert_eq!(out.done_count(), 5);
    let p = runner(&ds, &model, config)
        .run(&selection, Some(&mut out), &mut |_| {})
        .await
        .unwrap();
    assert_eq!((p.done, p.skipped, p.total), (7, 5, 7));
    assert_eq!(
        model.calls.load(Ordering::SeqCst),
        7,
        "finished items are not asked again"
    );
    drop(out);

    let (h, records) = read_results(&path).unwrap();
    let mut ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    let mut want: Vec<&str> = ds.items().iter().map(|i| i.id.as_str()).collect();
    want.sort_unstable();
    assert_eq!(ids, want, "every item exactly once");
    assert!(
        std::fs::read_to_string(&path).unwrap().ends_with("}\n"),
        "the torn line is gone"
    );

    let (wh, whole_records) = read_results(&whole).unwrap();
    for rule in [MultiMarkRule::Union, MultiMarkRule::First, MultiMarkRule::Empty] {
        let opts = ScoreOptions {
            rule,
            ..ScoreOptions::default()
        };
        let a = summarize(&h, &latest(records.clone()), opts).unwrap();
        let b = summarize(&wh, &whole_records, opts).unwrap();
        assert_eq!(a.metrics, b.metrics, "{rule:?}");
        assert_eq!(
            (a.items, a.errors, a.tokens, a.cost),
            (b.items, b.errors, b.tokens, b.cost)
        );
        assert_eq!(a.table().lines().nth(3), b.table().lines().nth(3));
    }
    let s = summarize(&wh, &whole_records, ScoreOptions::default()).unwrap();
    assert_eq!(
        s.metrics.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["Acc@0.5", "mIoU", "cIoU"]
    );
    let acc = s.metric("Acc@0.5").unwrap();
    assert!(acc > 0.0 && acc < 1.0, "{acc}");
}

#[tokio::test(start_paused = true)]
async fn requests_are_spaced_by_the_rate_limit() {
    let ds = Synthetic::new();
    let model = Deterministic::new(usize::MAX);
    let config = RunConfig {
        concurrency: 4,
        requests_per_minute: Some(120.0),
        ..RunConfig::default()
    };
    let p = runner(&ds, &model, config)
        .run(&[0, 1, 2, 3, 4, 5], None, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(p.done, 6);
    let sent = model.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 6);
    for w in sent.windows(2) {
        assert!(w[1] - w[0] >= Duration::from_millis(500), "{:?}", w[1] - w[0]);
    }
    assert!(Runner::new(
        &ds,
        &model,
        RegionSource::GroundTruth,
        &Centre,
        &Centre,
        &LinePrompter,
        RunConfig {
            requests_per_minute: Some(0.0),
            ..RunConfig::default()
        }
    )
    .is_err());
    assert!(Runner::new(
        &ds,
        &model,
        RegionSource::GroundTruth,
        &Centre,
        &Centre,
        &LinePrompter,
        RunConfig {
            concurrency: 0,
            ..RunConfig::default()
        }
    )
    .is_err());
}

#[tokio::test]
async fn a_dry_run_writes_images_and_prompts_and_asks_nothing() {
    let ds = open(
        Task::Refcocog,
        &fixtures().join("eval/data/refcocog"),
        &OpenOptions::default(),
    )
    .unwrap();
    let model = Deterministic::new(0);
    let dir = tmp("dry");
    let config = RunConfig {
        dry_run: Some(dir.clone()),
        ..RunConfig::default()
    };
    let p = runner(&*ds, &model, config)
        .run(&sample(ds.items(), None, 0), None, &mut |_| {})
        .await
        .unwrap();
    assert_eq!((p.done, p.errors), (3, 0));
    assert_eq!(model.calls.load(Ordering::SeqCst), 0);
    let prompt = std::fs::read_to_string(dir.join("refcocog_ref-0_sent-1.txt")).unwrap();
    assert!(
        prompt.contains("Which mark is astronaut in a white suit?"),
        "{prompt}"
    );
    assert!(image::open(dir.join("refcocog_ref-0_sent-1.png")).is_ok());
}

#[test]
fn resuming_another_run_is_refused_and_a_new_run_never_overwrites() {
    let dir = tmp("mismatch");
    let path = dir.join("r.jsonl");
    drop(ResultsFile::create(&path, &header(Task::Refcocog, 0)).unwrap());
    let e = ResultsFile::resume(&path, &header(Task::Refcocog, 1)).unwrap_err();
    assert!(e.to_string().contains("another seed"), "{e}");
    let e = ResultsFile::create(&path, &header(Task::Refcocog, 0)).unwrap_err();
    assert!(e.to_string().contains("exists"), "{e}");
    std::fs::write(&path, "{\"not\": \"a header\"}\n").unwrap();
    assert!(ResultsFile::resume(&path, &header(Task::Refcocog, 0))
        .unwrap_err()
        .to_string()
        .contains("line 1"));
}

#[test]
fn sampling_takes_whole_groups_and_depends_only_on_the_seed() {
    let ds = Synthetic::new();
    let a = sample(ds.items(), Some(2), 42);
    assert_eq!(a.len(), 4);
    let groups: std::collections::BTreeSet<&str> = a.iter().map(|&i| ds.items()[i].group.as_str()).collect();
    assert_eq!(groups.len(), 2);
    assert_eq!(a, sample(ds.items(), Some(2), 42));
    let others: Vec<Vec<usize>> = (0..8).map(|s| sample(ds.items(), Some(2), s)).collect();
    assert!(others.iter().any(|o| o != &a), "seeds should change the sample");
    assert_eq!(sample(ds.items(), Some(100), 1).len(), 12);
}

/// Answers from a script keyed by the start of the prompt.
struct Script(Vec<(&'static str, &'static str)>);
impl GroundingModel for Script {
    fn ground<'a>(
        &'a self,
        req: &'a GroundingRequest<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<GroundingAnswer, SomError>> + Send + 'a>> {
        let text = self
            .0
            .iter()
            .find(|(k, _)| req.prompt.contains(k))
            .map_or("", |(_, v)| v);
        let parsed = som_lmm::parse_marks(text, req.marked);
        let mut a = GroundingAnswer::new(text);
        a.unknown = parsed.unknown_labels();
        a.marks = parsed.marks;
        a.usage = Some(Usage {
            input_tokens: 10,
            output_tokens: 2,
        });
        Box::pin(async move { Ok(a) })
    }
}

#[tokio::test]
async fn davis_runs_through_the_reference_frame_to_j_and_f() {
    let ds = fixture(Task::Davis, "eval/davis");
    let model = Script(vec![("Track", "[1]\n[2]\n[3]")]);
    let r = Runner::new(
        &*ds,
        &model,
        RegionSource::Segmenter(&Quadrants),
        &Centre,
        &Centre,
        &LinePrompter,
        RunConfig::default(),
    )
    .unwrap();
    let dir = tmp("davis");
    let path = dir.join("davis.jsonl");
    let mut out = ResultsFile::create(
        &path,
        &Header {
            task: Task::Davis,
            regions: "segmenter:quadrants".into(),
            ..header(Task::Davis, 0)
        },
    )
    .unwrap();
    let sel = sample(ds.items(), None, 0);
    let p = r.run(&sel, Some(&mut out), &mut |_| {}).await.unwrap();
    assert_eq!((p.done, p.errors), (15, 0));
    let (h, records) = read_results(&path).unwrap();
    assert!(
        records[0].prompt.starts_with("Track objects "),
        "{}",
        records[0].prompt
    );
    assert_eq!(records[6].targets.len(), 3);
    assert_eq!(records[6].targets[2].marks[0].id, 3);
    let s = summarize(&h, &records, ScoreOptions::default()).unwrap();
    let names: Vec<&str> = s.metrics.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
    );
    assert_eq!(s.per_sequence.len(), 6);
    assert_eq!(s.per_sequence[0].sequence, "bear-walk_1");
    let jf = s.metric("J&F-Mean").unwrap();
    assert!(jf > 0.0 && jf < 0.5, "quadrant boxes are poor masks: {jf}");
    assert!(s.table().contains("DAVIS2017 J&F-Mean"));

    // The same predictions written as result PNGs score the same through the toolkit's format.
    let pred = dir.join("pred");
    let written =
        som_eval::report::write_davis_predictions(&h, &records, MultiMarkRule::Union, &pred).unwrap();
    assert_eq!(written, 15);
    let offline = som_eval::score::score(
        Task::Davis,
        &fixtures().join("eval/davis"),
        &pred,
        &OpenOptions::default(),
        ScoreOptions::default(),
    )
    .unwrap();
    assert_eq!(offline.per_sequence, s.per_sequence);
    for ((n1, v1), (n2, v2)) in offline.metrics.iter().zip(&s.metrics) {
        assert_eq!(n1, n2);
        assert!((v1 - v2).abs() < 1e-12, "{n1}: {v1} vs {v2}");
    }
}

#[tokio::test]
async fn coco_names_are_scored_for_precision_and_miou() {
    let ds = fixture(Task::Coco, "eval/data/coco");
    // Image 1 holds a person (mark 1, larger) and a dog; image 2 a person and a cup.
    let model = Script(vec![("Name each mark", "[1] person\n[2] Dog.")]);
    let r = runner(&*ds, &model, RunConfig::default());
    let dir = tmp("coco");
    let path = dir.join("coco.jsonl");
    let mut h = header(Task::Coco, 0);
    h.vocabulary = ds.vocabulary().unwrap().to_vec();
    let mut out = ResultsFile::create(&path, &h).unwrap();
    r.run(&sample(ds.items(), None, 0), Some(&mut out), &mut |_| {})
        .await
        .unwrap();
    let (h, records) = read_results(&path).unwrap();
    let s = summarize(&h, &records, ScoreOptions::default()).unwrap();
    let truth: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            r.targets
                .iter()
                .map(|t| match &t.truth {
                    Truth::Class { names, .. } => names.join("/"),
                    other => panic!("{other:?}"),
                })
                .collect()
        })
        .collect();
    let names: Vec<Vec<Option<String>>> = records
        .iter()
        .map(|r| r.targets.iter().map(|t| t.name.clone()).collect())
        .collect();
    // Count the right names by hand from what was recorded.
    let (mut right, mut named) = (0, 0);
    for (t, n) in truth.iter().flatten().zip(names.iter().flatten()) {
        if let Some(n) = n {
            named += 1;
            right += (n.to_lowercase().trim_end_matches('.') == *t) as usize;
        }
    }
    assert_eq!(named, 4);
    assert_eq!(right, 3, "{truth:?} {names:?}");
    assert_eq!(s.metric("precision"), Some(right as f64 / named as f64));
    let miou = s.metric("mIoU").unwrap();
    assert!(miou > 0.0 && miou <= 1.0);
}

#[test]
fn the_multi_mark_rule_decides_what_several_marks_mean() {
    let size = ImageSize::new(20, 10);
    let m = |id: u32, b: BBox| som_eval::records::MarkRecord {
        id,
        text: id.to_string(),
        region: Some(som_eval::records::RegionRecord {
            id: id as u64,
            bbox: b.to_xywh(),
            segmentation: Some(som_core::Mask::from_box(size, b).to_rle()),
        }),
    };
    let target = som_eval::records::TargetRecord {
        key: "ref".into(),
        truth: Truth::Object {
            bbox: [0.0, 0.0, 10.0, 10.0],
            mask: Some(som_core::Mask::from_box(size, BBox::new(0, 0, 10, 10)).to_rle()),
        },
        marks: vec![m(1, BBox::new(0, 0, 5, 10)), m(2, BBox::new(5, 0, 5, 10))],
        unknown: vec![],
        name: None,
    };
    let record = som_eval::records::Record {
        id: "x".into(),
        group: "g".into(),
        image: "x.png".into(),
        image_size: [20, 10],
        prompt: "p".into(),
        answer: Some("[1][2]".into()),
        finish_reason: None,
        targets: vec![target],
        classes: vec![],
        output: None,
        usage: None,
        latency_ms: 1.0,
        error: None,
    };
    let h = header(Task::Refcocog, 0);
    let score = |rule| {
        summarize(
            &h,
            std::slice::from_ref(&record),
            ScoreOptions {
                rule,
                ..ScoreOptions::default()
            },
        )
        .unwrap()
    };
    // Union: the two halves are the object.
    assert_eq!(score(MultiMarkRule::Union).metric("Acc@0.5"), Some(1.0));
    assert_eq!(score(MultiMarkRule::Union).metric("mIoU"), Some(1.0));
    // First: half the object (IoU 0.5 is a hit).
    assert_eq!(score(MultiMarkRule::First).metric("mIoU"), Some(0.5));
    assert_eq!(score(MultiMarkRule::First).metric("Acc@0.5"), Some(1.0));
    // Empty: two marks are no answer.
    assert_eq!(score(MultiMarkRule::Empty).metric("Acc@0.5"), Some(0.0));
    assert_eq!(score(MultiMarkRule::Empty).metric("mIoU"), Some(0.0));
    assert!(score(MultiMarkRule::Union)
        .table()
        .contains("| deterministic | 100.0 | 100.0 | 100.0 |"));
}
