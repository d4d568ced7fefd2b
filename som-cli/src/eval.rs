//! `som eval`: run a model on a benchmark, re-score recorded answers, score
//! predictions on disk.
//!
//! - `som eval run TASK --data DIR --out results.jsonl [--resume]` marks each
//!   item (`--ground-truth-regions`, or the segmenter options of `som mark`),
//!   asks the model (the provider options of `som ask`, the prompts of
//!   `som_lmm::PromptTemplates`), appends one JSON line per finished item, and
//!   prints the table. `--dry-run` writes the marked images and prompts into
//!   the `--out` folder instead and asks nothing. Referring-expression tasks
//!   ask for structured output where the provider has it (unless
//!   `--no-structured`); tasks with several targets per request (names per
//!   mark, marks per phrase or per object) ask for plain text, one line per
//!   target, which the line parser reads.
//! - `som eval report results.jsonl` re-scores a results file, with no data
//!   and no network.
//! - `som eval score TASK --data DIR --pred PRED` scores predictions in the
//!   benchmark's own result format.
//!
//! Every format and metric lives in `som_eval`; this module parses flags and
//! composes it with `som_lmm` (the model and the answer parser) and
//! `som_marks` (the marks).

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use som_core::{ContentPart, GroundingAnswer, GroundingRequest, MarkedImage};
use som_eval::data::{open, OpenOptions, Query, Task};
use som_eval::metrics::grounding::BoxProtocol;
use som_eval::metrics::semseg::normalize_name;
use som_eval::records::{latest, read_results, Header, Price, ResultsFile, FORMAT};
use som_eval::report::{summarize, MultiMarkRule, ScoreOptions, Summary};
use som_eval::runner::{sample, Prompter, RegionSource, RunConfig, Runner, TargetAnswer};
use som_lmm::{parse_lines, LmmClient, PromptTemplates, Task as LmmTask};

use crate::provider_args::{key_hint, load_templates, ProviderArgs};
use crate::seg_args::SegmenterArgs;
use crate::style_args::MarkStyleArgs;

/// Arguments of `som eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub command: EvalCommand,
}

/// The `som eval` subcommands.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Ask a model about a benchmark sample; one JSON line per item in --out, then the table.
    Run(Box<RunArgs>),
    /// Re-score a results file (no data, no network) and print the table.
    Report(ReportArgs),
    /// Score predictions already on disk in the benchmark's own format.
    Score(ScoreArgs),
}

/// How answers are scored (shared by run, report and score).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Scoring")]
pub struct ScoringArgs {
    /// Answers naming several marks: union of their regions, the first one, or none (empty).
    #[arg(long, value_name = "RULE", default_value = "union", value_parser = parse_rule)]
    pub rule: MultiMarkRule,
    /// Flickr30K phrases with several boxes: match any box, or their enclosing box.
    #[arg(long, value_name = "P", default_value = "any-box", value_parser = parse_protocol)]
    pub protocol: BoxProtocol,
    /// Also write the scores as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

impl ScoringArgs {
    fn options(&self) -> ScoreOptions {
        ScoreOptions {
            rule: self.rule,
            protocol: self.protocol,
        }
    }
}

/// Which data.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Data")]
pub struct DataArgs {
    /// The benchmark: coco, ade20k, refcocog, flickr30k, davis, sombench-refcocog,
    /// sombench-flickr30k, sombench-coco, sombench-ade20k.
    #[arg(value_name = "TASK", value_parser = parse_task)]
    pub task: Task,
    /// The dataset's root folder, in the benchmark's own layout (see `som_eval::data`).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// The split (default: val2017, validation, val, test or val, as each benchmark's paper subset).
    #[arg(long, value_name = "NAME")]
    pub split: Option<String>,
    /// Where the images are, when not in the dataset's usual place.
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
}

impl DataArgs {
    fn options(&self) -> OpenOptions {
        OpenOptions {
            split: self.split.clone(),
            images: self.images.clone(),
        }
    }
}

/// Arguments of `som eval run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The results file (JSON Lines); with --dry-run, a folder for the marked images and prompts.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Continue the run recorded in --out: skip finished items, redo the ones a kill interrupted.
    #[arg(long)]
    pub resume: bool,
    /// With --resume, also redo items whose record holds an error.
    #[arg(long)]
    pub retry_errors: bool,
    /// Evaluate this many groups (images; sequences for DAVIS), sampled with --seed.
    #[arg(long, value_name = "N", conflicts_with = "preset")]
    pub limit: Option<usize>,
    /// A named sample size: paper (the SoM paper's: 100 images, all DAVIS sequences).
    #[arg(long, value_name = "NAME", value_parser = ["paper"])]
    pub preset: Option<String>,
    /// The sampling seed.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub concurrency: usize,
    /// At most this many requests per minute.
    #[arg(long, value_name = "R")]
    pub rpm: Option<f64>,
    /// US dollars per million input tokens (with --price-out: cost in the progress line and table).
    #[arg(long, value_name = "USD", requires = "price_out")]
    pub price_in: Option<f64>,
    /// US dollars per million output tokens.
    #[arg(long, value_name = "USD", requires = "price_in")]
    pub price_out: Option<f64>,
    /// Write each marked image and prompt into the --out folder; ask no model.
    #[arg(long)]
    pub dry_run: bool,
    /// Mark the dataset's ground-truth regions (COCO, ADE20K, RefCOCOg) instead of segmenting.
    #[arg(long)]
    pub ground_truth_regions: bool,
    /// Prompt templates as JSON (fields: system, label, refer, ground, question, action, interleaved).
    #[arg(long, value_name = "FILE")]
    pub templates: Option<PathBuf>,
    #[command(flatten)]
    pub provider: ProviderArgs,
    #[command(flatten)]
    pub segmenter: SegmenterArgs,
    #[command(flatten)]
    pub style: MarkStyleArgs,
    #[command(flatten)]
    pub scoring: ScoringArgs,
}

/// Arguments of `som eval report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A results file written by `som eval run`.
    pub results: PathBuf,
    /// DAVIS: also write the predictions as the toolkit's result folder (`DIR/<sequence>/<frame>.png`).
    #[arg(long, value_name = "DIR")]
    pub write_predictions: Option<PathBuf>,
    #[command(flatten)]
    pub scoring: ScoringArgs,
}

/// Arguments of `som eval score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The predictions: DAVIS a folder of per-sequence PNG folders; RefCOCOg and Flickr30K a JSON
    /// list; COCO and ADE20K a folder of regions JSON files named after the images.
    #[arg(long, value_name = "PATH")]
    pub pred: PathBuf,
    #[command(flatten)]
    pub scoring: ScoringArgs,
}

fn parse_task(s: &str) -> Result<Task, String> {
    s.parse()
}

fn parse_rule(s: &str) -> Result<MultiMarkRule, String> {
    s.parse()
}

fn parse_protocol(s: &str) -> Result<BoxProtocol, String> {
    s.parse()
}

/// Runs `som eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    match args.command {
        EvalCommand::Run(a) => run_eval(*a),
        EvalCommand::Report(a) => {
            let (header, records) = read_results(&a.results)?;
            print_summary(
                &summarize(&header, &latest(records), a.scoring.options())?,
                &a.scoring,
            )
        }
        EvalCommand::Score(a) => {
            let s = som_eval::score::score(
                a.data.task,
                &a.data.data,
                &a.pred,
                &a.data.options(),
                a.scoring.options(),
            )?;
            print_summary(&s, &a.scoring)
        }
    }
}

fn print_summary(s: &Summary, scoring: &ScoringArgs) -> anyhow::Result<()> {
    print!("{}", s.table());
    if let Some(path) = &scoring.json {
        let text = serde_json::to_string_pretty(&s.to_json())?;
        som_core::io::write_file(path, format!("{text}\n").as_bytes())?;
    }
    Ok(())
}

fn run_eval(args: RunArgs) -> anyhow::Result<()> {
    // Everything that can fail without work comes first.
    if args.retry_errors && !args.resume {
        bail!("--retry-errors goes with --resume");
    }
    if args.dry_run && args.resume {
        bail!("--dry-run writes images and prompts; there is nothing to resume");
    }
    let price = match (args.price_in, args.price_out) {
        (Some(i), Some(o)) if i >= 0.0 && o >= 0.0 && i.is_finite() && o.is_finite() => {
            Some(Price { input: i, output: o })
        }
        (Some(_), Some(_)) => bail!("--price-in and --price-out must be non-negative"),
        _ => None,
    };
    let mut config = args.provider.config()?;
    // The structured schema holds one flat list of marks; tasks with several targets per
    // request (names per mark, marks per phrase or object) are read from one line per target.
    if !matches!(args.data.task, Task::Refcocog | Task::SombenchRefcocog) {
        config.structured_output = false;
    }
    let templates = load_templates(args.templates.as_deref())?;
    let style = args.style.style();
    style.validate()?;
    let task = args.data.task;
    let limit = match &args.preset {
        Some(_) => task.paper_subset(),
        None => args.limit,
    };
    if limit == Some(0) {
        bail!("--limit must be at least 1");
    }
    let dataset = open(task, &args.data.data, &args.data.options())?;
    let built = if args.ground_truth_regions {
        None
    } else {
        Some(args.segmenter.build()?)
    };
    let regions = match &built {
        Some(b) => RegionSource::Segmenter(b.segmenter.as_ref()),
        None => RegionSource::GroundTruth,
    };
    let client = if args.dry_run {
        None
    } else {
        Some(key_hint(LmmClient::new(config.clone()))?)
    };
    let model_name = format!("{}:{}", config.provider.info().name, config.model);
    let header = Header {
        som_eval: FORMAT,
        task,
        model: model_name.clone(),
        data: args.data.data.display().to_string(),
        split: args.data.split.clone(),
        seed: args.seed,
        limit,
        regions: regions.describe(),
        vocabulary: dataset.vocabulary().map(<[_]>::to_vec).unwrap_or_default(),
        price,
    };
    let selection = sample(dataset.items(), limit, args.seed);
    let mut out = if args.dry_run {
        None
    } else if args.resume {
        Some(ResultsFile::resume(&args.out, &header)?)
    } else {
        Some(ResultsFile::create(&args.out, &header)?)
    };
    let run_config = RunConfig {
        concurrency: args.concurrency,
        requests_per_minute: args.rpm,
        retry_errors: args.retry_errors,
        dry_run: args.dry_run.then(|| args.out.clone()),
        price,
    };
    let prompter = LmmPrompter { templates };
    let allocator = style.allocator();
    let renderer = style.renderer();
    let unasked = NoModel;
    let model: &dyn som_core::GroundingModel = match &client {
        Some(c) => c,
        None => &unasked,
    };
    let runner = Runner::new(
        &*dataset, model, regions, &allocator, &renderer, &prompter, run_config,
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let tty = std::io::stderr().is_terminal();
    let mut last_line = 0usize;
    let mut show = |p: &som_eval::runner::Progress| {
        if tty {
            eprint!("\r{}", p.line());
        } else if p.done == p.total || p.done >= last_line + (p.total / 10).max(1) {
            last_line = p.done;
            eprintln!("{}", p.line());
        }
    };
    let progress = runtime.block_on(runner.run(&selection, out.as_mut(), &mut show))?;
    if tty {
        eprintln!();
    }
    drop(out);
    if args.dry_run {
        println!(
            "wrote {} marked images and prompts to {} (no model asked)",
            progress.done,
            args.out.display()
        );
        return Ok(());
    }
    let (header, records) = read_results(&args.out)?;
    print_summary(
        &summarize(&header, &latest(records), args.scoring.options())?,
        &args.scoring,
    )
}

/// The model of a dry run: never asked.
struct NoModel;

impl som_core::GroundingModel for NoModel {
    fn ground<'a>(
        &'a self,
        _request: &'a GroundingRequest<'a>,
    ) -> som_core::BoxFuture<'a, Result<GroundingAnswer, som_core::SomError>> {
        Box::pin(async { Err(som_core::SomError::grounding("a dry run asks no model")) })
    }
}

/// Benchmark queries as `som_lmm` prompt templates, answers split with its line parser.
struct LmmPrompter {
    templates: PromptTemplates,
}

/// The names objects of a video go by in prompts and answers (`object A`, …).
fn object_name(k: usize) -> String {
    let letters = som_core::LabelScheme::Letter.text(k).to_uppercase();
    format!("object {letters}")
}

impl Prompter for LmmPrompter {
    fn request<'a>(
        &self,
        query: &Query,
        marked: &'a MarkedImage,
        reference: Option<&'a MarkedImage>,
    ) -> GroundingRequest<'a> {
        match query {
            Query::Refer { expression } => self.templates.request(
                &LmmTask::Refer {
                    expression: expression.clone(),
                },
                marked,
            ),
            Query::Label { vocabulary } => self.templates.request(
                &LmmTask::Label {
                    vocabulary: vocabulary.clone(),
                },
                marked,
            ),
            Query::Ground { caption, phrases } => self.templates.request(
                &LmmTask::Ground {
                    caption: caption.clone(),
                    phrases: phrases.clone(),
                },
                marked,
            ),
            Query::Track { objects } => {
                let shown: Vec<String> = objects
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| !t.is_empty())
                    .map(|(k, t)| format!("{} is marked {t}", object_name(k)))
                    .collect();
                let phrases: Vec<String> = (0..objects.len()).map(object_name).collect();
                let req = self.templates.request(
                    &LmmTask::Ground {
                        caption: format!(
                            "the objects of the first image ({}) as they appear in this frame",
                            shown.join(", ")
                        ),
                        phrases,
                    },
                    marked,
                );
                match reference {
                    Some(r) => req.with_context(vec![
                        ContentPart::Text(format!(
                            "The first frame of the video, its objects marked: {}.",
                            shown.join(", ")
                        )),
                        ContentPart::Image(r.image()),
                        ContentPart::Text("The current frame, with its own marks:".into()),
                    ]),
                    None => req,
                }
            }
        }
    }

    fn interpret(&self, query: &Query, answer: &GroundingAnswer, marked: &MarkedImage) -> Vec<TargetAnswer> {
        let lines = parse_lines(&answer.text, marked);
        let by_phrase = |phrases: &[String]| -> Vec<TargetAnswer> {
            // A line answers the phrase it names; failing that, lines answer phrases in order.
            let named: Vec<Option<usize>> = phrases
                .iter()
                .map(|p| {
                    let p = normalize_name(p);
                    lines.iter().position(|l| {
                        let t = normalize_name(&l.text);
                        !t.is_empty() && (t == p || t.contains(&p) || p.contains(&t))
                    })
                })
                .collect();
            let all_named = named.iter().all(Option::is_some);
            phrases
                .iter()
                .enumerate()
                .map(|(k, _)| {
                    let line = if all_named { named[k] } else { named[k].or(Some(k)) };
                    line.and_then(|i| lines.get(i))
                        .map(|l| TargetAnswer {
                            marks: l.marks.marks.clone(),
                            unknown: l.marks.unknown_labels(),
                            name: None,
                        })
                        .unwrap_or_default()
                })
                .collect()
        };
        match query {
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
                        .map(|l| l.text.clone())
                        .filter(|t| !t.is_empty() && normalize_name(t) != "none"),
                    ..TargetAnswer::default()
                })
                .collect(),
            Query::Ground { phrases, .. } => by_phrase(phrases),
            Query::Track { objects } => by_phrase(&(0..objects.len()).map(object_name).collect::<Vec<_>>()),
        }
    }
}
