//! # som-lmm
//!
//! Multimodal model clients for Set-of-Mark prompting: send a marked image
//! and a prompt to OpenAI (and every OpenAI-compatible server), Anthropic,
//! Gemini or Ollama, and get back the answer with the marks it cites
//! resolved to regions.
//!
//! ## Should I be using this crate?
//!
//! Use it when you have a [`som_core::MarkedImage`] and want a model to
//! point at its regions. It implements [`som_core::GroundingModel`], so an
//! evaluation loop can drive it (or any other model) through a trait object.
//! If you only need to read marks out of answer text you already have, use
//! [`parse_marks`] alone; it needs no network. To make the marked image,
//! use `som-marks`; the `som` command line composes both.
//!
//! ## What is here
//!
//! - [`LmmClient`] (async, tokio + reqwest with rustls) and [`BlockingClient`],
//!   configured by [`ClientConfig`] for a [`Provider`]: OpenAI Chat
//!   Completions (base URL for vLLM, Ollama `/v1`, LM Studio;
//!   [`ClientConfig::azure`] for Azure), Anthropic Messages, Gemini
//!   generateContent, Ollama `/api/chat`. Structured output (a JSON schema
//!   for `{"answer", "marks"}`) where the provider has it, with the text
//!   parsed either way; images resized to each provider's [`ImageLimits`],
//!   keeping the [`som_core::ImageScale`] back to the original.
//! - [`providers`]: each provider API is one type implementing
//!   [`ProviderApi`] (endpoint, headers, typed request and response bodies,
//!   error reading, image limits); bring your own with
//!   [`ClientConfig::for_api`].
//! - [`ground_all`]: bounded-concurrency fan-out over many requests.
//! - [`parse_marks`]: `[3]`, `[1, 2]`, `[1][2]`, `[3-5]`, `(c)`, `mark 3`,
//!   `marks 3 and 5`, `click [12]`, JSON `{"marks": [3]}`; unknown labels are
//!   returned as [`UnknownMark`]s, never dropped.
//! - [`PromptTemplates`] and [`Task`]: the paper's tasks as overridable text.
//! - Reliability as in the official OpenAI SDK ([`RetryPolicy`]): 2 retries
//!   on 408/409/429/5xx, timeouts and connection errors, `retry-after-ms` /
//!   `retry-after` honoured up to 120 s, jittered exponential backoff, no
//!   retry on `insufficient_quota`; lenient [`ApiError`] parsing that keeps
//!   status, request id, headers and raw body.
//! - [`ApiKey`]: keys from the environment (`OPENAI_API_KEY`,
//!   `ANTHROPIC_API_KEY`, `GEMINI_API_KEY`) or the config, never printed.
//!
//! ## Crate features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `mock` | no | `mock::MockServer` (a loopback HTTP server with scripted responses) and `mock::ScriptedModel` (a `GroundingModel` with scripted answers), for testing code that talks to models |
//!
//! ## Example
//! ```
//! use image::RgbImage;
//! use som_core::{BBox, ImageSize, Mark, MarkedImage, Point, Region, Segmentation};
//! use som_lmm::{ClientConfig, LmmClient, PromptTemplates, Provider, Task};
//!
//! let seg = Segmentation::new(ImageSize::new(64, 48), vec![
//!     Region::from_box(10, BBox::new(0, 0, 32, 48)),
//!     Region::from_box(11, BBox::new(32, 0, 32, 48)),
//! ])?;
//! let marks = vec![
//!     Mark::new(1, "1", Point::new(16, 24), 0, BBox::new(10, 18, 12, 12)),
//!     Mark::new(2, "2", Point::new(48, 24), 1, BBox::new(42, 18, 12, 12)),
//! ];
//! let marked = MarkedImage::new(RgbImage::new(64, 48), marks, seg)?;
//!
//! // A request for a local vLLM server (no key needed); inspect the body without sending it.
//! let client = LmmClient::new(
//!     ClientConfig::new(Provider::OpenAi, "Qwen/Qwen2.5-VL-7B-Instruct").with_base_url("http://localhost:8000/v1"),
//! )?;
//! let request = PromptTemplates::default().request(&Task::Refer { expression: "the left half".into() }, &marked);
//! let body = client.request_body(&request)?;
//! assert_eq!(body["messages"][1]["content"][0]["type"], "image_url");
//!
//! // Reading an answer needs no network at all.
//! let parsed = som_lmm::parse_marks("It is [2]; [7] is not on the image.", &marked);
//! assert_eq!(marked.segmentation().regions()[parsed.marks[0].region].id, 11);
//! assert_eq!(parsed.unknown_labels(), ["7"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod answer;
mod blocking;
mod client;
mod config;
mod error;
mod fanout;
mod http;
mod image;
#[cfg(feature = "mock")]
pub mod mock;
mod parse;
mod prompt;
pub mod providers;
mod retry;
mod secret;
#[cfg(test)]
mod testing;
mod url;

pub use blocking::BlockingClient;
pub use client::LmmClient;
pub use config::ClientConfig;
pub use error::{ApiError, LmmError, Result};
pub use fanout::{ground_all, total_usage};
pub use image::{prepare_image, EncodedImage, ImageLimits};
pub use parse::{
    extract_labels, parse_lines, parse_marks, resolve, LabelKinds, LabelToken, LineMarks, ParsedMarks,
    UnknownMark, UnknownMarks, JSON_MARK_KEYS, MAX_LABELS, MAX_RANGE,
};
pub use prompt::{fill_template, PromptTemplates, Task};
pub use providers::{Provider, ProviderApi};
pub use retry::{is_retryable_status, retry_after, RetryPolicy};
pub use secret::ApiKey;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
