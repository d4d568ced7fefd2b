//! Provider APIs: one file per API, each implementing [`ProviderApi`].
//!
//! A provider is data: where its endpoint is, how it authenticates, the
//! typed request body it takes, how its answers and errors read, how large an
//! image it uses, and whether it can be asked for structured output. The
//! client ([`crate::LmmClient`]) knows no provider by name; it calls the
//! trait.
//!
//! Request bodies are serde structs, exact in what they send (options left
//! out when unset). Response bodies are serde structs too, lenient in what
//! they accept: missing fields, `null`s, empty strings (`"finish_reason":
//! ""`), counts given as strings or floats and values of an unexpected type
//! read as "absent" instead of failing, and finish reasons stay the
//! provider's own strings, so a new one cannot fail a response (see
//! `lenient.rs`). Error bodies are read by [`ApiError::from_body`] (nested or
//! flat, `code` as a string or an integer, plain text) unless a provider
//! overrides [`ProviderApi::error`].
//!
//! # Adding a provider
//!
//! Write a type implementing [`ProviderApi`] in one file. To use it, pass it
//! to [`crate::ClientConfig::for_api`]; to make it built in, add a
//! [`Provider`] variant, its entry in [`Provider::ALL`] and its line in
//! [`Provider::api`] (the registry), all in this module.
//!
//! ```
//! use std::sync::Arc;
//! use serde_json::{json, Value};
//! use som_lmm::providers::{ApiReply, ApiRequest, Header, Part, ProviderApi, ProviderInfo};
//! use som_lmm::{ApiKey, ClientConfig, ImageLimits};
//!
//! /// A made-up API: `POST /ask` with `{"model", "prompt", "images"}`, answering `{"text"}`.
//! #[derive(Debug)]
//! struct Echo;
//!
//! impl ProviderApi for Echo {
//!     fn info(&self) -> &ProviderInfo {
//!         &ProviderInfo {
//!             name: "echo",
//!             key_envs: &["ECHO_API_KEY"],
//!             default_base_url: "http://localhost:9000",
//!             default_model: "echo-1",
//!             image_limits: ImageLimits { max_long_edge: 1024, max_short_edge: None, max_pixels: None, max_bytes: 4 << 20 },
//!             structured_output: false,
//!         }
//!     }
//!     fn path(&self, _model: &str) -> String { "/ask".into() }
//!     fn headers(&self, key: Option<&ApiKey>) -> Vec<Header> {
//!         key.map(|k| Header::secret("x-key", k.expose())).into_iter().collect()
//!     }
//!     fn body(&self, request: &ApiRequest<'_>) -> serde_json::Result<Vec<u8>> {
//!         let mut prompt = String::new();
//!         let mut images = Vec::new();
//!         for part in request.parts {
//!             match part {
//!                 Part::Text(t) => prompt.push_str(t),
//!                 Part::Image(img) => images.push(img.base64.as_str()),
//!                 _ => {}
//!             }
//!         }
//!         serde_json::to_vec(&json!({"model": request.model, "prompt": prompt, "images": images}))
//!     }
//!     fn read(&self, body: &Value) -> Result<ApiReply, String> {
//!         let text = body["text"].as_str().ok_or("no text in the response")?;
//!         Ok(ApiReply { text: text.into(), ..ApiReply::default() })
//!     }
//! }
//!
//! let config = ClientConfig::for_api(Arc::new(Echo), "echo-1");
//! assert_eq!(config.provider.info().name, "echo");
//! ```

mod anthropic;
mod gemini;
mod lenient;
mod ollama;
mod openai;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde_json::{json, Value};
use som_core::Usage;

pub use anthropic::AnthropicMessages;
pub use gemini::GeminiGenerate;
pub use ollama::OllamaChat;
pub use openai::{ImageDetail, MaxTokensField, OpenAiAuth, OpenAiChat};

use crate::error::{ApiError, LmmError};
use crate::image::{EncodedImage, ImageLimits};
use crate::secret::ApiKey;

/// What a provider API is, as data: its name, where it lives, what key it
/// takes, its usual model, how large an image it uses, and whether it can
/// be asked for structured output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProviderInfo {
    /// The lowercase name used in errors and the client's name (`"openai"`).
    pub name: &'static str,
    /// The environment variables that may hold the API key, in the order
    /// they are read; empty when the API needs no key (a local server).
    pub key_envs: &'static [&'static str],
    /// The endpoint root used when no base URL is configured.
    pub default_base_url: &'static str,
    /// A reasonable vision model to use when none is given.
    pub default_model: &'static str,
    /// The largest image worth sending: larger ones are shrunk before upload.
    pub image_limits: ImageLimits,
    /// Whether the API can be asked for the structured answer schema
    /// ([`answer_schema`]); when `false`, [`ApiRequest::structured`] is never set.
    pub structured_output: bool,
}

/// One model provider's HTTP API.
///
/// The client builds the URL as `{base_url}{path(model)}{?query}`, sends
/// [`Self::headers`] and the bytes of [`Self::body`] as JSON, reads a 2xx
/// response with [`Self::read`] and any other status with [`Self::error`].
/// Implementations hold no secrets: the key is passed in where it is needed.
pub trait ProviderApi: fmt::Debug + Send + Sync {
    /// The provider's name, endpoint, key variables, limits.
    fn info(&self) -> &ProviderInfo;

    /// The path after the base URL for `model` (trimmed), e.g. `/chat/completions`.
    fn path(&self, model: &str) -> String;

    /// The request headers (authentication, API version…) for `key`, if any.
    fn headers(&self, key: Option<&ApiKey>) -> Vec<Header>;

    /// The JSON request body.
    ///
    /// # Errors
    /// When the body cannot be serialised.
    fn body(&self, request: &ApiRequest<'_>) -> serde_json::Result<Vec<u8>>;

    /// Reads a 2xx response body.
    ///
    /// # Errors
    /// A one-line description when the body is not what the API promises
    /// (the client wraps it in [`LmmError::InvalidResponse`]).
    fn read(&self, body: &Value) -> Result<ApiReply, String>;

    /// Reads an error response (any non-2xx status). The default reads every
    /// shape the built-in providers use, leniently ([`ApiError::from_body`]).
    fn error(&self, status: u16, body: &str) -> ApiError {
        ApiError::from_body(self.info().name, status, body)
    }

    /// Whether `error` says the server cannot do structured output, so the
    /// client asks once more for plain text. The default: a 400 or 422 that
    /// names `response_format`, `json_schema`, `responseSchema`, `format` or
    /// `tool` (in its message or `param`).
    fn rejects_structured(&self, error: &ApiError) -> bool {
        if !matches!(error.status, 400 | 422) {
            return false;
        }
        let hay = format!("{} {}", error.param.as_deref().unwrap_or(""), error.message).to_ascii_lowercase();
        [
            "response_format",
            "json_schema",
            "responseschema",
            "format",
            "tool",
        ]
        .iter()
        .any(|w| hay.contains(w))
    }
}

/// The built-in providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Provider {
    /// OpenAI Chat Completions, and every server that speaks it (vLLM,
    /// Ollama `/v1`, LM Studio, Azure OpenAI) via a base URL: [`OpenAiChat`].
    OpenAi,
    /// Anthropic Messages: [`AnthropicMessages`].
    Anthropic,
    /// Google Gemini generateContent: [`GeminiGenerate`].
    Gemini,
    /// Ollama's native `/api/chat`: [`OllamaChat`].
    Ollama,
}

impl Provider {
    /// Every built-in provider.
    pub const ALL: [Provider; 4] = [
        Provider::OpenAi,
        Provider::Anthropic,
        Provider::Gemini,
        Provider::Ollama,
    ];

    /// The API this provider speaks, with its default settings. This is the
    /// registry: the one place a built-in provider is named.
    ///
    /// ```
    /// use som_lmm::Provider;
    /// let info = *Provider::Anthropic.api().info();
    /// assert_eq!((info.name, info.key_envs), ("anthropic", &["ANTHROPIC_API_KEY"][..]));
    /// ```
    pub fn api(self) -> Arc<dyn ProviderApi> {
        match self {
            Provider::OpenAi => Arc::new(OpenAiChat::default()),
            Provider::Anthropic => Arc::new(AnthropicMessages),
            Provider::Gemini => Arc::new(GeminiGenerate),
            Provider::Ollama => Arc::new(OllamaChat),
        }
    }

    /// The lowercase name (`"openai"`, `"anthropic"`, `"gemini"`, `"ollama"`).
    pub fn name(self) -> &'static str {
        self.api().info().name
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Provider {
    type Err = LmmError;

    /// ```
    /// use som_lmm::Provider;
    /// assert_eq!("Anthropic".parse::<Provider>()?, Provider::Anthropic);
    /// assert!("openia".parse::<Provider>().is_err());
    /// # Ok::<(), som_lmm::LmmError>(())
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Provider::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let names: Vec<&str> = Provider::ALL.iter().map(|p| p.name()).collect();
                LmmError::Config(format!(
                    "unknown provider {s:?} (expected one of {})",
                    names.join(", ")
                ))
            })
    }
}

/// One request header.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    /// The name, lowercase.
    pub name: &'static str,
    /// The value.
    pub value: String,
    /// Whether the value is a secret (never printed; marked sensitive in HTTP/2).
    pub secret: bool,
}

impl Header {
    /// A header whose value may be shown.
    pub fn plain(name: &'static str, value: impl Into<String>) -> Self {
        Self {
            name,
            value: value.into(),
            secret: false,
        }
    }

    /// A header carrying a secret.
    pub fn secret(name: &'static str, value: impl Into<String>) -> Self {
        Self {
            name,
            value: value.into(),
            secret: true,
        }
    }
}

impl fmt::Debug for Header {
    /// ```
    /// use som_lmm::providers::Header;
    /// assert_eq!(format!("{:?}", Header::secret("x-api-key", "sk-1")), r#"Header("x-api-key", <redacted>)"#);
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            write!(f, "Header({:?}, <redacted>)", self.name)
        } else {
            write!(f, "Header({:?}, {:?})", self.name, self.value)
        }
    }
}

/// One part of the user message.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Part {
    /// Text.
    Text(String),
    /// An image, fitted to the provider's limits and encoded.
    Image(EncodedImage),
}

/// What to send, provider-neutral: the user message is [`Self::parts`] in
/// order (context, the marked image, the prompt).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ApiRequest<'a> {
    /// The model name, trimmed.
    pub model: &'a str,
    /// The endpoint root the request goes to (without a trailing slash).
    pub base_url: &'a str,
    /// The system message, if any.
    pub system: Option<&'a str>,
    /// The user message.
    pub parts: &'a [Part],
    /// Output token limit.
    pub max_output_tokens: u32,
    /// Sampling temperature; `None` leaves the provider's default.
    pub temperature: Option<f32>,
    /// Ask for the structured answer ([`answer_schema`]).
    pub structured: bool,
}

/// What came back, provider-neutral.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiReply {
    /// The answer text.
    pub text: String,
    /// Why the model stopped, as the provider says it (`"stop"`, `"length"`,
    /// `"end_turn"`, `"STOP"`…); `None` when not given or empty.
    pub finish_reason: Option<String>,
    /// The refusal, when the model or the provider refused.
    pub refusal: Option<String>,
    /// Token counts.
    pub usage: Option<Usage>,
    /// The model that answered, as the provider names it.
    pub model: Option<String>,
    /// A structured answer (`{"answer", "marks"}`) given as JSON rather than
    /// text (Anthropic's forced tool call).
    pub structured: Option<Value>,
}

/// The name of the structured answer (OpenAI's schema name, Anthropic's tool).
pub const ANSWER_NAME: &str = "som_answer";

/// The JSON schema of a structured answer: the text and the marks it cites.
///
/// ```
/// let schema = som_lmm::providers::answer_schema();
/// assert_eq!(schema["required"], serde_json::json!(["answer", "marks"]));
/// ```
pub fn answer_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "answer": {"type": "string", "description": "The answer, citing marks in square brackets like [3]."},
            "marks": {
                "type": "array",
                "description": "Every mark the answer cites, as printed on the image.",
                "items": {"type": "string"}
            }
        },
        "required": ["answer", "marks"],
        "additionalProperties": false
    })
}
