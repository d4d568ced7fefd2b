//! The server's configuration: its segmenters, its model, its defaults and
//! limits, built once and shared by every request.

use std::sync::Arc;

use som_core::{GroundingModel, Segmenter};
use som_lmm::PromptTemplates;
use som_marks::MarkStyle;
use tokio::sync::Semaphore;

use crate::admission::Admission;
use crate::cache::MarkCache;
use crate::error::{Result, ServeError};
use crate::limits::Limits;

/// How requests may share a segmenter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// Any number of requests at once (the pure-Rust segmenters).
    #[default]
    Shared,
    /// One request at a time; the others wait their turn in the queue. For
    /// models with weights (SAM, MaskDINO): LibTorch modules are `Send` but not
    /// `Sync`, and one forward pass already uses every core.
    Exclusive,
}

/// A segmenter the server offers, by the name the `segmenter` field uses.
pub(crate) struct NamedSegmenter {
    pub name: String,
    pub segmenter: Arc<dyn Segmenter + Send + Sync>,
    /// `Some` for an [`Access::Exclusive`] segmenter: its one permit.
    pub exclusive: Option<Arc<Semaphore>>,
}

/// The model `/api/ask` asks, with the names its answers record.
pub(crate) struct ServedModel {
    pub model: Arc<dyn GroundingModel + Send + Sync>,
    pub provider: String,
    pub name: String,
}

/// Everything a request handler reads.
pub(crate) struct Shared {
    pub segmenters: Vec<NamedSegmenter>,
    pub default_segmenter: usize,
    pub model: Option<ServedModel>,
    /// Why there is no model, for `/api/health` and `/api/ask`.
    pub no_model: String,
    pub templates: PromptTemplates,
    pub style: MarkStyle,
    pub limits: Limits,
    pub admission: Admission,
    pub cache: MarkCache,
    pub log_requests: bool,
}

/// A Set-of-Mark server: segmenters, an optional model, defaults and limits.
/// [`SomServer::router`] gives its page and API as an [`axum::Router`] to
/// mount in any axum application; [`crate::run`] serves it on its own.
///
/// Cloning is cheap (the configuration is shared), and every router made from
/// one server shares its admission slots, workers and cache.
///
/// # Example
/// ```
/// use som_segment::{Classic, ClassicParams, Felzenszwalb, FelzenszwalbParams};
/// use som_serve::{Access, Limits, SomServer};
///
/// let server = SomServer::builder()
///     .segmenter("classic", Classic::new(ClassicParams::default()), Access::Shared)
///     .segmenter("felzenszwalb", Felzenszwalb::new(FelzenszwalbParams::REFERENCE), Access::Shared)
///     .limits(Limits { max_queue: 4, ..Limits::default() })
///     .build()?;
/// assert_eq!(server.segmenter_names(), ["classic", "felzenszwalb"]);
/// // Mount the page and API under a prefix of your own application:
/// let app: axum::Router = axum::Router::new().nest("/som", server.router());
/// # let _ = app;
/// # Ok::<(), som_serve::ServeError>(())
/// ```
#[derive(Clone)]
pub struct SomServer {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for SomServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.shared;
        f.debug_struct("SomServer")
            .field("segmenters", &self.segmenter_names())
            .field("default_segmenter", &s.segmenters[s.default_segmenter].name)
            .field(
                "model",
                &s.model.as_ref().map(|m| format!("{}:{}", m.provider, m.name)),
            )
            .field("limits", &s.limits)
            .finish_non_exhaustive()
    }
}

impl SomServer {
    /// A builder with no segmenter yet, no model, the default style and limits.
    pub fn builder() -> SomServerBuilder {
        SomServerBuilder::default()
    }

    /// The names of the segmenters, in the order they were added.
    pub fn segmenter_names(&self) -> Vec<&str> {
        self.shared.segmenters.iter().map(|s| s.name.as_str()).collect()
    }

    /// The segmenter used when a request names none.
    pub fn default_segmenter(&self) -> &str {
        &self.shared.segmenters[self.shared.default_segmenter].name
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// `provider:model` of the model `/api/ask` uses, if there is one.
    pub fn model_name(&self) -> Option<String> {
        self.shared
            .model
            .as_ref()
            .map(|m| format!("{}:{}", m.provider, m.name))
    }

    /// The page and the API as a router (see the crate docs for the routes).
    /// Nest it under a prefix to mount it in another application; the page
    /// uses relative URLs, so it works there too (open it with the trailing
    /// slash, `/prefix/`).
    pub fn router(&self) -> axum::Router {
        crate::routes::router(self.shared.clone())
    }
}

/// Builds a [`SomServer`].
pub struct SomServerBuilder {
    segmenters: Vec<(String, Arc<dyn Segmenter + Send + Sync>, Access)>,
    default_segmenter: Option<String>,
    model: Option<ServedModel>,
    no_model: String,
    templates: PromptTemplates,
    style: MarkStyle,
    limits: Limits,
    log_requests: bool,
}

impl Default for SomServerBuilder {
    fn default() -> Self {
        Self {
            segmenters: Vec::new(),
            default_segmenter: None,
            model: None,
            no_model: "this server has no model to ask".into(),
            templates: PromptTemplates::default(),
            style: MarkStyle::default(),
            limits: Limits::default(),
            log_requests: false,
        }
    }
}

impl SomServerBuilder {
    /// Offers `segmenter` under `name` (the `segmenter` field's value). The
    /// first one added is the default unless [`Self::default_segmenter`] says
    /// otherwise.
    #[must_use]
    pub fn segmenter(
        mut self,
        name: impl Into<String>,
        segmenter: impl Segmenter + Send + Sync + 'static,
        access: Access,
    ) -> Self {
        self.segmenters.push((name.into(), Arc::new(segmenter), access));
        self
    }

    /// The segmenter requests get when they name none.
    #[must_use]
    pub fn default_segmenter(mut self, name: impl Into<String>) -> Self {
        self.default_segmenter = Some(name.into());
        self
    }

    /// The model `/api/ask` asks (any [`GroundingModel`], e.g. a
    /// `som_lmm::LmmClient`), and the provider and model names its answers
    /// record (as `som ask --json` does).
    #[must_use]
    pub fn model(
        mut self,
        model: Arc<dyn GroundingModel + Send + Sync>,
        provider: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        self.model = Some(ServedModel {
            model,
            provider: provider.into(),
            name: name.into(),
        });
        self
    }

    /// No model: `/api/ask` answers `501` with `reason` (e.g. which
    /// environment variable holds the missing key), and `/api/health` says so.
    #[must_use]
    pub fn without_model(mut self, reason: impl Into<String>) -> Self {
        self.model = None;
        self.no_model = reason.into();
        self
    }

    /// The prompt templates of `/api/ask`'s tasks.
    #[must_use]
    pub fn templates(mut self, templates: PromptTemplates) -> Self {
        self.templates = templates;
        self
    }

    /// The mark style of requests that set no style field.
    #[must_use]
    pub fn style(mut self, style: MarkStyle) -> Self {
        self.style = style;
        self
    }

    /// The limits.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Writes one line per request to stderr (method, path, status, time, and
    /// the error message of a failed request). Off by default.
    #[must_use]
    pub fn log_requests(mut self, on: bool) -> Self {
        self.log_requests = on;
        self
    }

    /// The server.
    ///
    /// # Errors
    /// No segmenter, a bad or repeated segmenter name, an unknown default
    /// segmenter, limits that are zero, or a default style out of range.
    pub fn build(self) -> Result<SomServer> {
        if self.segmenters.is_empty() {
            return Err(ServeError::NoSegmenter);
        }
        let mut segmenters: Vec<NamedSegmenter> = Vec::with_capacity(self.segmenters.len());
        for (name, segmenter, access) in self.segmenters {
            let good = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !good || segmenters.iter().any(|s| s.name == name) {
                return Err(ServeError::SegmenterName(name));
            }
            segmenters.push(NamedSegmenter {
                name,
                segmenter,
                exclusive: (access == Access::Exclusive).then(|| Arc::new(Semaphore::new(1))),
            });
        }
        let default_segmenter = match &self.default_segmenter {
            None => 0,
            Some(name) => segmenters.iter().position(|s| &s.name == name).ok_or_else(|| {
                ServeError::UnknownSegmenter {
                    name: name.clone(),
                    known: segmenters
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            })?,
        };
        self.limits.validate().map_err(ServeError::Limits)?;
        self.style.validate().map_err(ServeError::Style)?;
        Ok(SomServer {
            shared: Arc::new(Shared {
                segmenters,
                default_segmenter,
                model: self.model,
                no_model: self.no_model,
                templates: self.templates,
                style: self.style,
                admission: Admission::new(&self.limits),
                cache: MarkCache::new(self.limits.cache_entries),
                limits: self.limits,
                log_requests: self.log_requests,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use som_segment::{Felzenszwalb, FelzenszwalbParams};

    fn felz() -> Felzenszwalb {
        Felzenszwalb::new(FelzenszwalbParams::REFERENCE)
    }

    #[test]
    fn the_builder_checks_names_defaults_and_limits() {
        let e = SomServer::builder()
            .segmenter("a b", felz(), Access::Shared)
            .build()
            .unwrap_err();
        assert!(matches!(e, ServeError::SegmenterName(n) if n == "a b"));
        let e = SomServer::builder()
            .segmenter("f", felz(), Access::Shared)
            .segmenter("f", felz(), Access::Shared)
            .build()
            .unwrap_err();
        assert!(matches!(e, ServeError::SegmenterName(_)));
        let e = SomServer::builder()
            .segmenter("f", felz(), Access::Shared)
            .default_segmenter("sam")
            .build()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown default segmenter \"sam\" (the server has f)"
        );
        let e = SomServer::builder()
            .segmenter("f", felz(), Access::Shared)
            .limits(Limits {
                max_concurrent: 0,
                ..Limits::default()
            })
            .build()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid limits: max_concurrent must be more than zero"
        );
        let s = SomServer::builder()
            .segmenter("f", felz(), Access::Shared)
            .segmenter("g", felz(), Access::Exclusive)
            .default_segmenter("g")
            .build()
            .unwrap();
        assert_eq!(s.default_segmenter(), "g");
        assert!(s.shared.segmenters[1].exclusive.is_some());
        assert!(s.shared.segmenters[0].exclusive.is_none());
        assert_eq!(s.model_name(), None);
    }
}
