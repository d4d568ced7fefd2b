//! # som-serve
//!
//! Set-of-Mark over HTTP: a JSON API that marks images and asks a model about
//! them, and a web page to look at marks and poke at them — as an
//! [`axum::Router`] any Rust application can mount, or on its own (`som
//! serve`).
//!
//! ## Should I be using this crate?
//!
//! Use it to give an agent or a person a local HTTP endpoint that marks an
//! image, or to add that endpoint to your own axum service. To mark images
//! inside one program, call the pipeline directly (`som_core::SomPipeline`
//! with `som-segment` and `som-marks`); to ask models, `som-lmm`.
//!
//! ## The API
//!
//! Every `POST` takes a `multipart/form-data` body with the image (PNG or
//! JPEG) as a file in the field `image`, and optional fields named like
//! `som mark`'s flags: `labels` (`number`|`letter`), `zero_based`
//! (`true`|`false`), `draw` (any of `mark,mask,contour,box`, or `all`,
//! `none`), `alpha` (0–1), `font_size` (pixels, or `auto`), `allocation`
//! (`paper`|`independent`), and `segmenter` (one of the server's, see
//! `/api/health`). They are parsed by `som_marks::MarkStyle::set`, the parser
//! behind the command line's flags, so both accept exactly the same values.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the page (also `app.js`, `app.css`, `photos/*.jpg`) |
//! | `GET /api/health` | `{"status": "ok", "segmenters": [{"name", "one_at_a_time"}], "default_segmenter", "provider": {"name", "model", "available"}, "tasks", "style", "limits", "load", "version"}` |
//! | `POST /api/mark` | the marks JSON, byte for byte as `som mark --json` writes it |
//! | `POST /api/mark.png` | the marked image as PNG |
//! | `POST /api/ask` | with `prompt` and optionally `task` (`question`, `refer`, `label`, `ground`, `action`, `interleaved`, `raw`) and `phrase` (repeatable, for `ground`): the answer JSON, as `som ask --json` writes it |
//!
//! ```sh
//! curl -s localhost:7860/api/health
//! curl -s -F image=@coffee.png -F labels=letter -F alpha=0.2 localhost:7860/api/mark > coffee.marks.json
//! curl -s -F image=@coffee.png -F draw=mark,contour localhost:7860/api/mark.png > coffee.marked.png
//! curl -s -F image=@coffee.png -F prompt='Which marks are the cup?' -F task=refer localhost:7860/api/ask
//! ```
//!
//! Errors are JSON, `{"error": "one line saying what is wrong"}`:
//!
//! | status | when |
//! |---|---|
//! | 400 | not a multipart form, a missing `image` or `prompt`, an unknown field, a field given twice, an option value out of range, an unknown segmenter or task |
//! | 413 | a body over [`Limits::max_body_bytes`], a text field over [`Limits::max_field_bytes`], an image over [`Limits::max_pixels`] |
//! | 415 | the `image` is not a PNG or JPEG |
//! | 422 | a damaged or truncated image; no regions to ask about |
//! | 501 | `/api/ask` on a server without a model (the message says why: e.g. which environment variable lacks the key) |
//! | 502, 504 | the model failed, or did not answer in time |
//! | 503 + `Retry-After` | every admission slot is taken ([`Limits::admitted`]), or the request ran over [`Limits::request_timeout`] |
//!
//! Requests are admitted up to `max_concurrent + max_queue` at once; their CPU
//! stages (decode, segment, allocate, render, encode) run on tokio's blocking
//! pool, `max_concurrent` at a time, and a segmenter added with
//! [`Access::Exclusive`] (a LibTorch model) runs one request at a time. The
//! last [`Limits::cache_entries`] marked images are kept, so the page's
//! `mark`, `mark.png` and `ask` on one image segment it once. API keys stay
//! inside the model client: no response, page or log line carries one.
//!
//! ## Example: mount it in your own application
//! ```no_run
//! use std::sync::Arc;
//! use som_lmm::{ClientConfig, LmmClient, Provider};
//! use som_segment::{Classic, ClassicParams};
//! use som_serve::{Access, SomServer};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let model = LmmClient::new(ClientConfig::new(Provider::OpenAi, "gpt-4.1"))?; // key from OPENAI_API_KEY
//! let server = SomServer::builder()
//!     .segmenter("classic", Classic::new(ClassicParams::default()), Access::Shared)
//!     .model(Arc::new(model), "openai", "gpt-4.1")
//!     .build()?;
//! let app = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "my service" }))
//!     .nest("/som", server.router()); // the page at /som/, the API at /som/api/…
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! som_serve::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! ## Crate features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | *(none)* | | `som-serve` has no optional features; LibTorch segmenters come from `som-segment`'s `torch` feature |
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod admission;
mod cache;
mod error;
mod form;
mod limits;
mod page;
mod routes;
mod run;
mod server;

pub use error::{Result, ServeError};
pub use limits::Limits;
pub use run::{run, serve};
pub use server::{Access, SomServer, SomServerBuilder};

#[cfg(test)]
mod tests;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
