//! The client: configuration, the async [`LmmClient`], the
//! [`BlockingClient`] for simple programs, and bounded fan-out.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::Value;
use som_core::{
    BoxFuture, ContentPart, GroundingAnswer, GroundingModel, GroundingRequest, MarkedImage, SomError, Usage,
};

use crate::error::LmmError;
use crate::http::Transport;
use crate::image::{prepare_image, ImageLimits};
use crate::parse::{extract_labels, resolve, LabelKinds};
use crate::providers::{self, openai::TokensField, Incoming, Outgoing, Part};
use crate::retry::RetryPolicy;
use crate::secret::ApiKey;

/// A model provider's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Provider {
    /// OpenAI Chat Completions, and every server that speaks it (vLLM,
    /// Ollama `/v1`, LM Studio, Azure OpenAI) via [`ClientConfig::base_url`].
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini generateContent.
    Gemini,
    /// Ollama's native `/api/chat`.
    Ollama,
}

impl Provider {
    /// Every provider.
    pub const ALL: [Provider; 4] = [
        Provider::OpenAi,
        Provider::Anthropic,
        Provider::Gemini,
        Provider::Ollama,
    ];

    /// The lowercase name (`"openai"`, `"anthropic"`, `"gemini"`, `"ollama"`).
    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
            Provider::Ollama => "ollama",
        }
    }

    /// The environment variable holding the API key (`None` for Ollama,
    /// which needs none).
    pub fn key_env(self) -> Option<&'static str> {
        match self {
            Provider::OpenAi => Some("OPENAI_API_KEY"),
            Provider::Anthropic => Some("ANTHROPIC_API_KEY"),
            Provider::Gemini => Some("GEMINI_API_KEY"),
            Provider::Ollama => None,
        }
    }

    /// The public endpoint used when no base URL is configured.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Provider::OpenAi => "https://api.openai.com/v1",
            Provider::Anthropic => "https://api.anthropic.com",
            Provider::Gemini => "https://generativelanguage.googleapis.com/v1beta",
            Provider::Ollama => "http://localhost:11434",
        }
    }

    /// A reasonable vision model to use when none is given.
    pub fn default_model(self) -> &'static str {
        match self {
            Provider::OpenAi => "gpt-4.1",
            Provider::Anthropic => "claude-sonnet-4-5",
            Provider::Gemini => "gemini-2.5-flash",
            Provider::Ollama => "qwen2.5vl",
        }
    }

    /// The provider's image limits.
    pub fn image_limits(self) -> ImageLimits {
        match self {
            Provider::OpenAi => ImageLimits::OPENAI,
            Provider::Anthropic => ImageLimits::ANTHROPIC,
            Provider::Gemini => ImageLimits::GEMINI,
            Provider::Ollama => ImageLimits::OLLAMA,
        }
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
                LmmError::Config(format!(
                    "unknown provider {s:?} (expected openai, anthropic, gemini or ollama)"
                ))
            })
    }
}

/// How an OpenAI-compatible server takes its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpenAiAuth {
    /// `Authorization: Bearer KEY` (OpenAI, vLLM, LM Studio…).
    #[default]
    Bearer,
    /// `api-key: KEY` (Azure OpenAI).
    ApiKeyHeader,
}

/// Which field carries the output token limit in Chat Completions requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxTokensField {
    /// `max_completion_tokens` against api.openai.com, `max_tokens` against
    /// any other base URL (older compatible servers only read that).
    #[default]
    Auto,
    /// Always `max_completion_tokens`.
    MaxCompletionTokens,
    /// Always `max_tokens`.
    MaxTokens,
}

/// Everything a client needs. Build with [`ClientConfig::new`] and the
/// `with_*` methods; the API key, if any, is redacted in `Debug`.
///
/// ```
/// use std::time::Duration;
/// use som_lmm::{ApiKey, ClientConfig, Provider};
/// let cfg = ClientConfig::new(Provider::OpenAi, "Qwen/Qwen2.5-VL-7B-Instruct")
///     .with_base_url("http://localhost:8000/v1")
///     .with_api_key(ApiKey::new("sk-local"))
///     .with_timeout(Duration::from_secs(30));
/// assert!(!format!("{cfg:?}").contains("sk-local"));
/// ```
///
/// `Debug` also redacts query values whose names suggest a secret (`key`,
/// `token`, `secret`, `sig`…) and the key wherever it appears in the base URL.
#[derive(Clone)]
pub struct ClientConfig {
    /// The provider API to speak.
    pub provider: Provider,
    /// The model (or Azure deployment) name.
    pub model: String,
    /// The endpoint root; `None` uses the provider's public endpoint.
    pub base_url: Option<String>,
    /// The API key; `None` reads [`Self::key_env`] from the environment.
    pub api_key: Option<ApiKey>,
    /// The environment variable read when no key is given.
    pub key_env: Option<&'static str>,
    /// Extra query parameters (Azure's `api-version`).
    pub query: Vec<(String, String)>,
    /// How an OpenAI-compatible server takes the key.
    pub openai_auth: OpenAiAuth,
    /// The output token limit field for Chat Completions.
    pub max_tokens_field: MaxTokensField,
    /// Per-request timeout (each attempt).
    pub timeout: Duration,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Output token limit.
    pub max_output_tokens: u32,
    /// Sampling temperature; `None` leaves the provider's default (some
    /// reasoning models accept no other).
    pub temperature: Option<f32>,
    /// Ask for the structured answer schema (`{"answer", "marks"}`) where the
    /// provider supports it; the answer text is parsed either way.
    pub structured_output: bool,
    /// Image limits; `None` uses the provider's.
    pub image_limits: Option<ImageLimits>,
    /// OpenAI's image `detail` (`"high"`, `"low"`, `"auto"`).
    pub image_detail: String,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scrub = |s: &str| {
            self.api_key
                .as_ref()
                .map_or_else(|| s.to_string(), |k| k.scrub(s))
        };
        let query: Vec<(String, String)> = self
            .query
            .iter()
            .map(|(k, v)| {
                let lower = k.to_ascii_lowercase();
                let secret = ["key", "token", "secret", "sig", "password", "auth"]
                    .iter()
                    .any(|w| lower.contains(w));
                (
                    k.clone(),
                    if secret {
                        "<redacted>".to_string()
                    } else {
                        scrub(v)
                    },
                )
            })
            .collect();
        f.debug_struct("ClientConfig")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("base_url", &self.base_url.as_deref().map(scrub))
            .field("api_key", &self.api_key)
            .field("key_env", &self.key_env)
            .field("query", &query)
            .field("openai_auth", &self.openai_auth)
            .field("max_tokens_field", &self.max_tokens_field)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .field("max_output_tokens", &self.max_output_tokens)
            .field("temperature", &self.temperature)
            .field("structured_output", &self.structured_output)
            .field("image_limits", &self.image_limits)
            .field("image_detail", &self.image_detail)
            .finish()
    }
}

impl ClientConfig {
    /// A config for `model` on `provider` with the defaults: the provider's
    /// public endpoint, key from its environment variable, 120 s request
    /// timeout, 5 s connect timeout, 2 retries, 1024 output tokens,
    /// structured output on.
    pub fn new(provider: Provider, model: impl Into<String>) -> Self {
        Self {
            provider,
            model: model.into(),
            base_url: None,
            api_key: None,
            key_env: provider.key_env(),
            query: Vec::new(),
            openai_auth: OpenAiAuth::Bearer,
            max_tokens_field: MaxTokensField::Auto,
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            max_output_tokens: 1024,
            temperature: None,
            structured_output: true,
            image_limits: None,
            image_detail: "high".into(),
        }
    }

    /// An Azure OpenAI deployment: `{endpoint}/openai/deployments/{deployment}`
    /// with `api-version` in the query and the key in an `api-key` header,
    /// read from `AZURE_OPENAI_API_KEY` unless given.
    ///
    /// ```
    /// use som_lmm::ClientConfig;
    /// let cfg = ClientConfig::azure("https://my.openai.azure.com/", "gpt-4o", "2024-10-21");
    /// assert_eq!(cfg.base_url.as_deref(), Some("https://my.openai.azure.com/openai/deployments/gpt-4o"));
    /// ```
    pub fn azure(endpoint: &str, deployment: &str, api_version: &str) -> Self {
        let mut c = Self::new(Provider::OpenAi, deployment);
        c.base_url = Some(format!(
            "{}/openai/deployments/{deployment}",
            endpoint.trim_end_matches('/')
        ));
        c.query = vec![("api-version".into(), api_version.into())];
        c.openai_auth = OpenAiAuth::ApiKeyHeader;
        c.key_env = Some("AZURE_OPENAI_API_KEY");
        c.max_tokens_field = MaxTokensField::MaxCompletionTokens;
        c
    }

    /// Sets the endpoint root (e.g. `http://localhost:8000/v1` for vLLM).
    #[must_use]
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Sets the API key.
    #[must_use]
    pub fn with_api_key(mut self, key: ApiKey) -> Self {
        self.api_key = Some(key);
        self
    }

    /// Sets the per-request timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the retry policy.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Turns structured output on or off.
    #[must_use]
    pub fn with_structured_output(mut self, on: bool) -> Self {
        self.structured_output = on;
        self
    }
}

/// A client for one model on one provider; implements [`GroundingModel`].
///
/// ```no_run
/// use som_lmm::{ClientConfig, LmmClient, Provider};
/// # async fn demo(marked: &som_core::MarkedImage) -> Result<(), som_lmm::LmmError> {
/// let client = LmmClient::new(ClientConfig::new(Provider::OpenAi, "gpt-4.1"))?;
/// let answer = client.ask(&som_core::GroundingRequest::new(marked, "Which mark is the cup?")).await?;
/// println!("{} -> {:?}", answer.text, answer.marks);
/// # Ok(()) }
/// ```
pub struct LmmClient {
    config: ClientConfig,
    key: Option<ApiKey>,
    base_url: String,
    name: String,
    transport: Transport,
}

impl fmt::Debug for LmmClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LmmClient")
            .field("name", &self.name)
            .field(
                "base_url",
                &self
                    .key
                    .as_ref()
                    .map_or_else(|| self.base_url.clone(), |k| k.scrub(&self.base_url)),
            )
            .field("key", &self.key)
            .field("config", &self.config)
            .finish()
    }
}

impl LmmClient {
    /// Builds a client, taking the key from the config or the environment.
    ///
    /// # Errors
    /// [`LmmError::MissingKey`] when the provider's public endpoint is used
    /// and no key is found; [`LmmError::Config`] for an empty model name or
    /// a base URL that is not http(s).
    pub fn new(config: ClientConfig) -> Result<Self, LmmError> {
        if config.model.trim().is_empty() {
            return Err(LmmError::Config("the model name is empty".into()));
        }
        let key = config
            .api_key
            .clone()
            .or_else(|| config.key_env.and_then(ApiKey::from_env))
            .or_else(|| match config.provider {
                // Google's own SDKs also read GOOGLE_API_KEY.
                Provider::Gemini if config.key_env == Provider::Gemini.key_env() => {
                    ApiKey::from_env("GOOGLE_API_KEY")
                }
                _ => None,
            });
        let base_url = config
            .base_url
            .clone()
            .unwrap_or_else(|| config.provider.default_base_url().to_string());
        let base_url = base_url.trim_end_matches('/').to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(LmmError::Config(format!(
                "base url {:?} is not an http(s) url",
                key.as_ref().map_or(base_url.clone(), |k| k.scrub(&base_url))
            )));
        }
        if key.is_none() && config.base_url.is_none() {
            if let Some(env) = config.key_env {
                return Err(LmmError::MissingKey {
                    provider: config.provider.name(),
                    env,
                });
            }
        }
        if config.timeout.is_zero() {
            return Err(LmmError::Config("the request timeout is zero".into()));
        }
        let transport = Transport::new(
            config.retry.clone(),
            config.timeout,
            config.connect_timeout,
            key.clone(),
        )?;
        Ok(Self {
            name: format!("{}:{}", config.provider.name(), config.model),
            key,
            base_url,
            transport,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The URL requests go to.
    ///
    /// ```
    /// use som_lmm::{ClientConfig, LmmClient, Provider};
    /// let c = LmmClient::new(ClientConfig::new(Provider::Gemini, "gemini-2.5-flash").with_base_url("http://127.0.0.1:9/v1beta"))?;
    /// assert_eq!(c.endpoint(), "http://127.0.0.1:9/v1beta/models/gemini-2.5-flash:generateContent");
    /// # Ok::<(), som_lmm::LmmError>(())
    /// ```
    pub fn endpoint(&self) -> String {
        let path = match self.config.provider {
            Provider::OpenAi => "/chat/completions".to_string(),
            Provider::Anthropic => "/v1/messages".to_string(),
            Provider::Gemini => format!(
                "/models/{}:generateContent",
                self.config.model.trim().trim_start_matches("models/")
            ),
            Provider::Ollama => "/api/chat".to_string(),
        };
        let mut url = format!("{}{path}", self.base_url);
        for (i, (k, v)) in self.config.query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&encode_query(k));
            url.push('=');
            url.push_str(&encode_query(v));
        }
        url
    }

    /// The JSON body that [`Self::ask`] would send for `request` (images
    /// inlined as base64), for inspection and dry runs.
    ///
    /// # Errors
    /// [`LmmError::Image`] when an image cannot be prepared.
    pub fn request_body(&self, request: &GroundingRequest<'_>) -> Result<Value, LmmError> {
        let (out, _) = self.outgoing(request, self.config.structured_output)?;
        Ok(self.body(&out))
    }

    fn outgoing(
        &self,
        request: &GroundingRequest<'_>,
        structured: bool,
    ) -> Result<(Outgoing, som_core::ImageScale), LmmError> {
        let limits = self
            .config
            .image_limits
            .unwrap_or_else(|| self.config.provider.image_limits());
        let mut parts = Vec::with_capacity(request.context.len() + 2);
        for part in &request.context {
            parts.push(match part {
                ContentPart::Text(t) => Part::Text(t.clone()),
                ContentPart::Image(img) => Part::Image(prepare_image(img, &limits)?),
            });
        }
        let marked = prepare_image(request.marked.image(), &limits)?;
        let scale = marked.scale;
        parts.push(Part::Image(marked));
        parts.push(Part::Text(request.prompt.clone()));
        Ok((
            Outgoing {
                system: request.system.clone(),
                parts,
                max_output_tokens: self.config.max_output_tokens,
                temperature: self.config.temperature,
                structured,
            },
            scale,
        ))
    }

    fn body(&self, out: &Outgoing) -> Value {
        let model = self.config.model.trim();
        match self.config.provider {
            Provider::OpenAi => {
                let field = match self.config.max_tokens_field {
                    MaxTokensField::MaxCompletionTokens => TokensField::MaxCompletionTokens,
                    MaxTokensField::MaxTokens => TokensField::MaxTokens,
                    MaxTokensField::Auto if self.base_url == Provider::OpenAi.default_base_url() => {
                        TokensField::MaxCompletionTokens
                    }
                    MaxTokensField::Auto => TokensField::MaxTokens,
                };
                providers::openai::body(model, out, field, &self.config.image_detail)
            }
            Provider::Anthropic => providers::anthropic::body(model, out),
            Provider::Gemini => providers::gemini::body(out),
            Provider::Ollama => providers::ollama::body(model, out),
        }
    }

    fn headers(&self) -> Vec<(&'static str, String, bool)> {
        let mut h = Vec::new();
        let key = self.key.as_ref().map(|k| k.expose().to_string());
        match self.config.provider {
            Provider::OpenAi => match (key, self.config.openai_auth) {
                (Some(k), OpenAiAuth::Bearer) => h.push(("authorization", format!("Bearer {k}"), true)),
                (Some(k), OpenAiAuth::ApiKeyHeader) => h.push(("api-key", k, true)),
                (None, _) => {}
            },
            Provider::Anthropic => {
                if let Some(k) = key {
                    h.push(("x-api-key", k, true));
                }
                h.push((
                    "anthropic-version",
                    providers::anthropic::VERSION.to_string(),
                    false,
                ));
            }
            Provider::Gemini => {
                if let Some(k) = key {
                    h.push(("x-goog-api-key", k, true));
                }
            }
            Provider::Ollama => {
                if let Some(k) = key {
                    h.push(("authorization", format!("Bearer {k}"), true));
                }
            }
        }
        h
    }

    fn parse(&self, body: &Value) -> Result<Incoming, LmmError> {
        let provider = self.config.provider.name();
        let parsed = match self.config.provider {
            Provider::OpenAi => providers::openai::parse(body),
            Provider::Anthropic => providers::anthropic::parse(body),
            Provider::Gemini => providers::gemini::parse(body),
            Provider::Ollama => providers::ollama::parse(body),
        };
        let scrub = |s: String| match &self.key {
            Some(k) => k.scrub(&s),
            None => s,
        };
        parsed.map_err(|message| LmmError::InvalidResponse {
            provider,
            message: scrub(message),
            body: scrub(body.to_string()),
        })
    }

    /// Asks the model and parses its answer.
    ///
    /// When structured output is on and the server rejects it (a 400/422
    /// naming `response_format`, `json_schema`, `format` or `tools`), the
    /// request is sent once more without it and the text is parsed.
    ///
    /// # Errors
    /// See [`LmmError`]. Unknown marks are not an error: they are listed in
    /// [`GroundingAnswer::unknown`].
    pub async fn ask(&self, request: &GroundingRequest<'_>) -> Result<GroundingAnswer, LmmError> {
        let url = self.endpoint();
        let headers = self.headers();
        let (out, scale) = self.outgoing(request, self.config.structured_output)?;
        let provider = self.config.provider.name();
        let reply = match self
            .transport
            .post_json(provider, &url, &headers, &self.body(&out))
            .await
        {
            Err(LmmError::Api(e)) if out.structured && rejects_structured(&e) => {
                let plain = Outgoing {
                    structured: false,
                    ..out
                };
                self.transport
                    .post_json(provider, &url, &headers, &self.body(&plain))
                    .await?
            }
            other => other?,
        };
        let incoming = self.parse(&reply.body)?;
        let mut answer = interpret(incoming, request.marked);
        answer.image_scale = Some(scale);
        answer.raw = Some(reply.body);
        Ok(answer)
    }
}

fn rejects_structured(e: &crate::ApiError) -> bool {
    if !matches!(e.status, 400 | 422) {
        return false;
    }
    let hay = format!("{} {}", e.param.as_deref().unwrap_or(""), e.message).to_ascii_lowercase();
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

/// Turns a provider's reply into an answer: the text (the `answer` field of a
/// structured reply), and the marks it cites resolved against `marked`.
pub(crate) fn interpret(mut incoming: Incoming, marked: &MarkedImage) -> GroundingAnswer {
    let kinds = LabelKinds::of(marked);
    incoming.text = strip_thinking(&incoming.text).to_string();
    let structured = incoming.structured.clone().or_else(|| {
        serde_json::from_str::<Value>(strip_fence(&incoming.text))
            .ok()
            .filter(|v| v.get("answer").is_some_and(Value::is_string))
    });
    let (text, tokens) = match structured {
        Some(v) => {
            let text = v
                .get("answer")
                .and_then(Value::as_str)
                .map_or_else(|| incoming.text.clone(), str::to_string);
            let from_json = extract_labels(&v.to_string(), kinds);
            if from_json.is_empty() {
                let t = extract_labels(&text, kinds);
                (text, t)
            } else {
                (text, from_json)
            }
        }
        None => {
            let t = extract_labels(&incoming.text, kinds);
            (incoming.text.clone(), t)
        }
    };
    let parsed = resolve(&tokens, marked);
    let mut answer = GroundingAnswer::new(text);
    answer.unknown = parsed.unknown_labels();
    answer.marks = parsed.marks;
    answer.usage = incoming.usage;
    answer.finish_reason = incoming.finish_reason;
    answer.refusal = incoming.refusal;
    answer.model = incoming.model;
    answer
}

/// The answer after a reasoning model's `<think>…</think>` block (local
/// models on vLLM and Ollama inline it), so marks cited while thinking are
/// not read as the answer. An unterminated block (cut off at the token
/// limit) leaves nothing.
fn strip_thinking(text: &str) -> &str {
    if let Some(end) = text.rfind("</think>") {
        return text[end + "</think>".len()..].trim_start();
    }
    if text.trim_start().starts_with("<think>") {
        return "";
    }
    text
}

fn strip_fence(s: &str) -> &str {
    let t = s.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

fn encode_query(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl GroundingModel for LmmClient {
    fn ground<'a>(
        &'a self,
        request: &'a GroundingRequest<'a>,
    ) -> BoxFuture<'a, Result<GroundingAnswer, SomError>> {
        Box::pin(async move { self.ask(request).await.map_err(SomError::from) })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// An [`LmmClient`] with its own single-threaded runtime, for programs that
/// are not async.
///
/// ```no_run
/// use som_lmm::{BlockingClient, ClientConfig, Provider};
/// # fn demo(marked: &som_core::MarkedImage) -> Result<(), som_lmm::LmmError> {
/// let client = BlockingClient::new(ClientConfig::new(Provider::Ollama, "qwen2.5vl"))?;
/// let answer = client.ask(&som_core::GroundingRequest::new(marked, "Which mark is the dog?"))?;
/// # Ok(()) }
/// ```
pub struct BlockingClient {
    client: LmmClient,
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for BlockingClient {
    fn drop(&mut self) {
        // A plain drop would panic inside an async context; this never blocks.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl fmt::Debug for BlockingClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingClient")
            .field("client", &self.client)
            .finish()
    }
}

impl BlockingClient {
    /// Builds the client and its runtime.
    ///
    /// # Errors
    /// As [`LmmClient::new`], and [`LmmError::Config`] when the runtime cannot start.
    pub fn new(config: ClientConfig) -> Result<Self, LmmError> {
        let client = LmmClient::new(config)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LmmError::Config(format!("cannot start the async runtime: {e}")))?;
        Ok(Self {
            client,
            runtime: Some(runtime),
        })
    }

    /// The async client inside.
    pub fn client(&self) -> &LmmClient {
        &self.client
    }

    /// Asks and waits for the answer.
    ///
    /// # Errors
    /// As [`LmmClient::ask`]; [`LmmError::Config`] when called from inside an
    /// async runtime (which cannot block).
    pub fn ask(&self, request: &GroundingRequest<'_>) -> Result<GroundingAnswer, LmmError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(LmmError::Config(
                "BlockingClient::ask was called inside an async runtime; use LmmClient::ask there".into(),
            ));
        }
        match &self.runtime {
            Some(rt) => rt.block_on(self.client.ask(request)),
            None => Err(LmmError::Config("the blocking client has shut down".into())),
        }
    }
}

/// Grounds every request with at most `concurrency` in flight at once;
/// results come back in the order of `requests`.
///
/// ```
/// use som_core::{BoxFuture, GroundingAnswer, GroundingModel, GroundingRequest, SomError};
/// struct Echo;
/// impl GroundingModel for Echo {
///     fn ground<'a>(&'a self, r: &'a GroundingRequest<'a>) -> BoxFuture<'a, Result<GroundingAnswer, SomError>> {
///         Box::pin(async move { Ok(GroundingAnswer::new(r.prompt.clone())) })
///     }
/// }
/// # let seg = som_core::Segmentation::new(som_core::ImageSize::new(2, 2), vec![])?;
/// # let marked = som_core::MarkedImage::new(image::RgbImage::new(2, 2), vec![], seg)?;
/// let reqs: Vec<_> = ["a", "b", "c"].iter().map(|p| GroundingRequest::new(&marked, *p)).collect();
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let answers = rt.block_on(som_lmm::ground_all(&Echo, &reqs, 2));
/// let texts: Vec<String> = answers.into_iter().map(|a| a.map(|a| a.text)).collect::<Result<_, _>>()?;
/// assert_eq!(texts, ["a", "b", "c"]);
/// # Ok::<(), som_core::SomError>(())
/// ```
pub async fn ground_all<'a, M: GroundingModel + ?Sized>(
    model: &'a M,
    requests: &'a [GroundingRequest<'a>],
    concurrency: usize,
) -> Vec<Result<GroundingAnswer, SomError>> {
    futures_util::stream::iter(requests.iter().map(|r| model.ground(r)))
        .buffered(concurrency.max(1))
        .collect()
        .await
}

/// Sums token usage over answers (answers without usage count as zero).
pub fn total_usage<'a>(answers: impl IntoIterator<Item = &'a GroundingAnswer>) -> Usage {
    answers
        .into_iter()
        .filter_map(|a| a.usage)
        .fold(Usage::default(), |acc, u| Usage {
            input_tokens: acc.input_tokens.saturating_add(u.input_tokens),
            output_tokens: acc.output_tokens.saturating_add(u.output_tokens),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinking_blocks_are_not_the_answer() {
        assert_eq!(
            strip_thinking("<think>maybe [1]? no, [2]</think>\n\nThe cup is [2]."),
            "The cup is [2]."
        );
        assert_eq!(strip_thinking("  <think>still thinking about [1]"), "");
        assert_eq!(strip_thinking("The cup is [3]."), "The cup is [3].");
    }

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(encode_query("2024-10-21"), "2024-10-21");
        assert_eq!(encode_query("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
