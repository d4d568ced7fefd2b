//! `som ask`: mark an image and ask a multimodal model about it.
//!
//! Segment (or read `--regions`), allocate and render the marks, send the
//! marked image with the prompt to the provider, print the answer with the
//! regions its marks name, and optionally write the marked image (`-o`) and
//! the answer JSON (`--json`):
//!
//! ```json
//! {"provider": "openai", "model": "gpt-4.1", "task": "question", "prompt": "…",
//!  "text": "The cup is [3].", "finish_reason": "stop", "refusal": null,
//!  "image": {"width": 600, "height": 400, "file_name": "coffee.png"},
//!  "sent_size": [600, 400],
//!  "marks": [{"id": 3, "text": "3", "x": 120, "y": 88, "label_box": [x, y, w, h],
//!             "region": <region object of the regions JSON>}],
//!  "unknown": ["42"],
//!  "usage": {"input_tokens": 812, "output_tokens": 9, "total_tokens": 821}}
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use som_core::json::{region_to_value, ImageInfo};
use som_core::{
    GroundingAnswer, ImageSize, LabelScheme, MarkAllocator, MarkRenderer, MarkedImage, StageTiming,
};
use som_lmm::{BlockingClient, ClientConfig, LmmError, PromptTemplates, Provider, RetryPolicy, Task};
use som_marks::{Allocator, AllocatorConfig, Draw, RenderConfig, Renderer};

use crate::io::{encode_image, write_file};
use crate::mark::Labels;
use crate::seg_args::SegmenterArgs;

/// Providers `--provider` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderArg {
    /// OpenAI Chat Completions, or any compatible server with --base-url (vLLM, Ollama /v1, LM Studio).
    Openai,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini.
    Gemini,
    /// Ollama's native /api/chat.
    Ollama,
}

impl From<ProviderArg> for Provider {
    fn from(p: ProviderArg) -> Self {
        match p {
            ProviderArg::Openai => Provider::OpenAi,
            ProviderArg::Anthropic => Provider::Anthropic,
            ProviderArg::Gemini => Provider::Gemini,
            ProviderArg::Ollama => Provider::Ollama,
        }
    }
}

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
    /// The model provider.
    #[arg(long, value_enum, default_value_t = ProviderArg::Openai)]
    pub provider: ProviderArg,
    /// The model (default: the provider's usual vision model).
    #[arg(long, value_name = "M")]
    pub model: Option<String>,
    /// The endpoint root, e.g. http://localhost:8000/v1 for vLLM or http://localhost:11434/v1 for Ollama.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
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
    /// Mark texts.
    #[arg(long, value_enum, default_value_t = Labels::Number)]
    pub labels: Labels,
    /// What to draw: any of mark, mask, contour, box, comma-separated.
    #[arg(long, value_name = "LIST", default_value = "mark,mask,contour")]
    pub draw: String,
    /// Per-request timeout in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120.0)]
    pub timeout: f64,
    /// Retries on rate limits, server errors, timeouts and connection errors.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub retries: u32,
    /// Output token limit.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_tokens: u32,
    /// Sampling temperature (default: the provider's).
    #[arg(long, value_name = "T")]
    pub temperature: Option<f32>,
    /// Do not ask for structured (JSON schema) output; parse the plain text answer.
    #[arg(long)]
    pub no_structured: bool,
    /// Print one JSON line per stage with its time to stderr (decode, segment, allocate, render, ask).
    #[arg(long)]
    pub timings: bool,
}

/// Runs `som ask`.
pub fn run(args: AskArgs) -> anyhow::Result<()> {
    // Everything that can fail without work comes first: options, key, templates.
    if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout <= 86_400.0) {
        bail!(
            "--timeout must be between 0 and 86400 seconds, got {}",
            args.timeout
        );
    }
    if let Some(t) = args.temperature {
        if !(t.is_finite() && (0.0..=2.0).contains(&t)) {
            bail!("--temperature must be between 0 and 2, got {t}");
        }
    }
    if args.max_tokens == 0 {
        bail!("--max-tokens must be at least 1");
    }
    let draw: Draw = args.draw.parse().map_err(|e| anyhow::anyhow!("--draw: {e}"))?;
    if let Some(out) = &args.output {
        // Check the output extension before doing any work.
        encode_image(&image::RgbImage::new(1, 1), out)?;
    }
    let provider = Provider::from(args.provider);
    let model = args
        .model
        .clone()
        .unwrap_or_else(|| provider.api().info().default_model.to_string());
    let mut config = ClientConfig::new(provider, model.clone())
        .with_timeout(Duration::from_secs_f64(args.timeout))
        .with_retry(RetryPolicy {
            max_retries: args.retries,
            ..RetryPolicy::default()
        })
        .with_structured_output(!args.no_structured);
    config.base_url = args.base_url.clone();
    config.max_output_tokens = args.max_tokens;
    config.temperature = args.temperature;
    let client = match BlockingClient::new(config) {
        Ok(c) => c,
        Err(LmmError::MissingKey { provider, env }) => bail!(
            "no API key for {provider}: set {env} in the environment \
             (or point --base-url at a server that needs none)"
        ),
        Err(e) => return Err(e.into()),
    };
    let templates = match &args.templates {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read templates file {}", path.display()))?;
            PromptTemplates::from_json(&text).with_context(|| format!("{}", path.display()))?
        }
        None => PromptTemplates::default(),
    };
    let task = task_of(&args)?;

    let mut timings = Vec::new();
    let (image, t) = StageTiming::measure("decode", || som_core::io::load_image(&args.image));
    timings.push(t);
    let image = image?;
    let size = ImageSize::new(image.width(), image.height());
    let (segmentation, t) = StageTiming::measure("segment", || args.segmenter.segment(&image));
    timings.push(t);
    let (segmentation, sub_stages) = segmentation?;
    timings.extend(sub_stages);
    if segmentation.is_empty() {
        bail!("no regions to mark in {}", args.image.display());
    }
    let labels = match args.labels {
        Labels::Number => LabelScheme::Number { zero_based: false },
        Labels::Letter => LabelScheme::Letter,
    };
    let allocator = Allocator::new(AllocatorConfig {
        labels,
        ..AllocatorConfig::default()
    });
    let renderer = Renderer::new(RenderConfig {
        draw,
        ..RenderConfig::default()
    });
    let (marks, t) = StageTiming::measure("allocate", || allocator.allocate(&segmentation, &renderer));
    timings.push(t);
    let marks = marks?;
    let (rendered, t) = StageTiming::measure("render", || {
        renderer.render(&image.to_rgb8(), &segmentation, &marks)
    });
    timings.push(t);
    let rendered = rendered?;
    let marked = MarkedImage::new(rendered, marks, segmentation)?;
    if let Some(out) = &args.output {
        write_file(out, &encode_image(&marked.image, out)?)?;
    }

    let request = match &task {
        Some(task) => templates.request(task, &marked),
        None => som_core::GroundingRequest::new(&marked, args.prompt.clone()),
    };
    let (answer, t) = StageTiming::measure("ask", || client.ask(&request));
    timings.push(t);
    if args.timings {
        for t in &timings {
            eprintln!("{}", t.to_json_line());
        }
    }
    let answer = answer?;

    print_answer(&answer, &marked);
    if let Some(path) = &args.json {
        let info = image_info(&args.image, size);
        let doc = answer_json(&args, provider, &model, &request.prompt, &answer, &marked, &info);
        let text = serde_json::to_string_pretty(&doc).context("cannot encode the answer JSON")?;
        write_file(path, format!("{text}\n").as_bytes())?;
    }
    Ok(())
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
            let region = &marked.segmentation.regions[m.region];
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

fn image_value(info: &ImageInfo) -> Value {
    let mut v = json!({"width": info.width, "height": info.height});
    if let Some(name) = &info.file_name {
        v["file_name"] = json!(name);
    }
    v
}

fn answer_json(
    args: &AskArgs,
    provider: Provider,
    model: &str,
    prompt: &str,
    answer: &GroundingAnswer,
    marked: &MarkedImage,
    info: &ImageInfo,
) -> Value {
    let size = marked.segmentation.size;
    let marks: Vec<Value> = answer
        .marks
        .iter()
        .filter_map(|r| marked.mark_by_id(r.id))
        .map(|m| {
            json!({
                "id": m.id,
                "text": m.text,
                "x": m.anchor.x,
                "y": m.anchor.y,
                "label_box": [m.label_box.x, m.label_box.y, m.label_box.width, m.label_box.height],
                "region": region_to_value(&marked.segmentation.regions[m.region], size),
            })
        })
        .collect();
    json!({
        "provider": provider.name(),
        "model": model,
        "answered_by": answer.model,
        "task": format!("{:?}", args.task).to_lowercase(),
        "prompt": prompt,
        "text": answer.text,
        "finish_reason": answer.finish_reason,
        "refusal": answer.refusal,
        "image": image_value(info),
        "sent_size": answer.image_scale.map(|s| [s.sent.width, s.sent.height]),
        "marks": marks,
        "unknown": answer.unknown,
        "usage": answer.usage.map(|u| json!({
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "total_tokens": u.total(),
        })),
    })
}

/// The `image` object for the input file.
fn image_info(path: &Path, size: ImageSize) -> ImageInfo {
    let info = ImageInfo::new(size.width, size.height);
    match path.file_name().and_then(|n| n.to_str()) {
        Some(name) => info.with_file_name(name),
        None => info,
    }
}
