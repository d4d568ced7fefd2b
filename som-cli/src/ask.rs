//! `som ask`: mark an image and ask a multimodal model about it.
//!
//! Segment (or read `--regions`), allocate and render the marks through the
//! same pipeline and mark-style options as `som mark`, send the marked image
//! with the prompt to the provider, print the answer with the regions its
//! marks name, and optionally write the marked image (`-o`) and the answer
//! JSON (`--json`, written by `som_core::json::write_answer`):
//!
//! ```json
//! {"provider": "openai", "model": "gpt-4.1", "task": "question", "prompt": "…",
//!  "text": "The cup is [3].", "finish_reason": "stop", "refusal": null,
//!  "image": {"width": 600, "height": 400, "file_name": "coffee.png"},
//!  "sent_size": [600, 400],
//!  "marks": [{"id": 3, "text": "3", "x": 120, "y": 88, "label_box": [x, y, w, h],
//!             "placement": "inside", "distance": 14.2,
//!             "region": <region object of the regions JSON>}],
//!  "unknown": ["42"],
//!  "usage": {"input_tokens": 812, "output_tokens": 9, "total_tokens": 821}}
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use som_core::io::{write_file, OutputFormat};
use som_core::json::{write_answer, AnswerMeta};
use som_core::{GroundingAnswer, MarkedImage};
use som_lmm::{BlockingClient, PromptTemplates, Task};

use crate::provider_args::{key_hint, ProviderArgs};
use crate::seg_args::SegmenterArgs;
use crate::stages::{timed, Stages};
use crate::style_args::MarkStyleArgs;

/// What the prompt is, which picks the prompt template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TaskArg {
    /// A free question; the answer cites marks in brackets.
    Question,
    /// A referring expression: which marks denote it.
    Refer,
    /// A comma-separated vocabulary: name every mark from it.
    Label,
    /// A caption; ground each --phrase of it (or the whole caption).
    Ground,
    /// A UI instruction: answer `click [N]`.
    Action,
    /// Text that refers to marks as `[N]`.
    Interleaved,
    /// The prompt as it is, with no template and no system message.
    Raw,
}

/// Arguments of `som ask`.
#[derive(Debug, Args)]
pub struct AskArgs {
    /// The image to ask about (PNG or JPEG).
    pub image: PathBuf,
    /// The question (or expression, vocabulary, caption, instruction: see --task).
    pub prompt: String,
    #[command(flatten)]
    pub provider: ProviderArgs,
    /// What the prompt is; picks the prompt template.
    #[arg(long, value_enum, default_value_t = TaskArg::Question)]
    pub task: TaskArg,
    /// A phrase of the caption to ground (--task ground); repeat for several.
    #[arg(long, value_name = "TEXT")]
    pub phrase: Vec<String>,
    /// Prompt templates as JSON (fields: system, label, refer, ground, question, action, interleaved).
    #[arg(long, value_name = "FILE")]
    pub templates: Option<PathBuf>,
    /// Write the marked image here (.png or .jpg).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write the answer, its marks with their regions, and token usage as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub segmenter: SegmenterArgs,
    #[command(flatten)]
    pub style: MarkStyleArgs,
    /// Print one JSON line per stage with its time to stderr (decode, segment, allocate, render, ask).
    #[arg(long)]
    pub timings: bool,
}

/// Runs `som ask`.
pub fn run(args: AskArgs) -> anyhow::Result<()> {
    // Everything that can fail without work comes first: options, key, templates, output format.
    let format = args.output.as_deref().map(OutputFormat::from_path).transpose()?;
    let config = args.provider.config()?;
    let client = key_hint(BlockingClient::new(config.clone()))?;
    let templates = match &args.templates {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read templates file {}", path.display()))?;
            PromptTemplates::from_json(&text).with_context(|| format!("{}", path.display()))?
        }
        None => PromptTemplates::default(),
    };
    let task = task_of(&args)?;
    let stages = Stages::build(&args.segmenter, args.style.style(), args.timings)?;

    let mut timings = Vec::new();
    let marked = match stages.mark_file(&args.image, &mut timings) {
        Ok(m) => m,
        Err(e) => {
            stages.report(&timings);
            return Err(e);
        }
    };
    if marked.marked.marks().is_empty() {
        stages.report(&timings);
        bail!(
            "{}: no regions to mark, so there is nothing to ask about (try another --segmenter or --regions)",
            args.image.display()
        );
    }
    if let (Some(out), Some(format)) = (&args.output, format) {
        write_file(out, &format.encode(marked.marked.image())?)?;
    }

    let request = match &task {
        Some(task) => templates.request(task, &marked.marked),
        None => som_core::GroundingRequest::new(&marked.marked, args.prompt.clone()),
    };
    let answer = timed(&mut timings, "ask", || client.ask(&request));
    stages.report(&timings);
    let answer = answer?;

    print_answer(&answer, &marked.marked);
    if let Some(path) = &args.json {
        let meta = AnswerMeta {
            provider: config.provider.info().name.to_string(),
            model: config.model.clone(),
            task: args.task.name().to_string(),
            prompt: request.prompt.clone(),
        };
        write_file(
            path,
            write_answer(&meta, &marked.info, &answer, &marked.marked).as_bytes(),
        )?;
    }
    Ok(())
}

impl TaskArg {
    /// The task's name as the answer JSON records it (the flag value).
    fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

fn task_of(args: &AskArgs) -> anyhow::Result<Option<Task>> {
    if !args.phrase.is_empty() && args.task != TaskArg::Ground {
        bail!("--phrase only goes with --task ground");
    }
    let p = args.prompt.clone();
    Ok(Some(match args.task {
        TaskArg::Question => Task::Question { question: p },
        TaskArg::Refer => Task::Refer { expression: p },
        TaskArg::Label => {
            let vocabulary: Vec<String> = p
                .split(',')
                .map(|w| w.trim().to_string())
                .filter(|w| !w.is_empty())
                .collect();
            if vocabulary.is_empty() {
                bail!("--task label needs a comma-separated vocabulary as the prompt");
            }
            Task::Label { vocabulary }
        }
        TaskArg::Ground => Task::Ground {
            phrases: if args.phrase.is_empty() {
                vec![p.clone()]
            } else {
                args.phrase.clone()
            },
            caption: p,
        },
        TaskArg::Action => Task::Action { instruction: p },
        TaskArg::Interleaved => Task::Interleaved { text: p },
        TaskArg::Raw => return Ok(None),
    }))
}

fn print_answer(answer: &GroundingAnswer, marked: &MarkedImage) {
    if let Some(r) = &answer.refusal {
        println!("The model refused: {r}");
    }
    println!("{}", answer.text.trim_end());
    if answer.marks.is_empty() {
        println!("\nmarks: none");
    } else {
        println!("\nmarks:");
        for m in &answer.marks {
            let Some(region) = marked.segmentation().region(m.region) else {
                continue;
            };
            let b = region.bbox;
            let label = region
                .label
                .as_deref()
                .map(|l| format!(" {l:?}"))
                .unwrap_or_default();
            println!(
                "  [{}] region {}{label}: box [{}, {}, {}, {}], area {}",
                m.text,
                region.id,
                b.x,
                b.y,
                b.width,
                b.height,
                region.area()
            );
        }
    }
    if !answer.unknown.is_empty() {
        println!("unknown marks (not on the image): {}", answer.unknown.join(", "));
    }
    if answer
        .finish_reason
        .as_deref()
        .is_some_and(|r| r.eq_ignore_ascii_case("length") || r.eq_ignore_ascii_case("max_tokens"))
    {
        println!("note: the answer was cut off at the token limit (--max-tokens)");
    }
    if let Some(u) = answer.usage {
        println!("tokens: {} in, {} out", u.input_tokens, u.output_tokens);
    }
}
