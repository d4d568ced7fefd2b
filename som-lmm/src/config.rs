//! [`ClientConfig`]: which provider API, model and endpoint, and how to talk to it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::image::ImageLimits;
use crate::providers::{OpenAiChat, Provider, ProviderApi};
use crate::retry::RetryPolicy;
use crate::secret::{scrub, ApiKey};
use crate::url::redact_query;

/// Everything a client needs. Build with [`ClientConfig::new`] (a built-in
/// [`Provider`]) or [`ClientConfig::for_api`] (any [`ProviderApi`]) and the
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
    pub provider: Arc<dyn ProviderApi>,
    /// The model (or Azure deployment) name.
    pub model: String,
    /// The endpoint root; `None` uses the provider's public endpoint.
    pub base_url: Option<String>,
    /// The API key; `None` reads [`Self::key_env`] from the environment.
    pub api_key: Option<ApiKey>,
    /// The environment variable read when no key is given (when it is the
    /// provider's first [`ProviderInfo::key_envs`](crate::providers::ProviderInfo::key_envs), the others are read too).
    pub key_env: Option<&'static str>,
    /// Extra query parameters (Azure's `api-version`).
    pub query: Vec<(String, String)>,
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
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.api_key.as_ref();
        f.debug_struct("ClientConfig")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("base_url", &self.base_url.as_deref().map(|u| scrub(key, u)))
            .field("api_key", &self.api_key)
            .field("key_env", &self.key_env)
            .field("query", &redact_query(&self.query, key))
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .field("max_output_tokens", &self.max_output_tokens)
            .field("temperature", &self.temperature)
            .field("structured_output", &self.structured_output)
            .field("image_limits", &self.image_limits)
            .finish()
    }
}

impl ClientConfig {
    /// A config for `model` on a built-in `provider` with the defaults (see
    /// [`Self::for_api`]).
    pub fn new(provider: Provider, model: impl Into<String>) -> Self {
        Self::for_api(provider.api(), model)
    }

    /// A config for `model` on any provider API, with the defaults: the
    /// API's public endpoint, key from its environment variable, 120 s
    /// request timeout, 5 s connect timeout, 2 retries, 1024 output tokens,
    /// structured output on (where the API has it).
    pub fn for_api(api: Arc<dyn ProviderApi>, model: impl Into<String>) -> Self {
        Self {
            key_env: api.info().key_envs.first().copied(),
            provider: api,
            model: model.into(),
            base_url: None,
            api_key: None,
            query: Vec::new(),
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            max_output_tokens: 1024,
            temperature: None,
            structured_output: true,
            image_limits: None,
        }
    }

    /// An Azure OpenAI deployment: `{endpoint}/openai/deployments/{deployment}`
    /// with `api-version` in the query and the key in an `api-key` header
    /// ([`OpenAiChat::AZURE`]), read from `AZURE_OPENAI_API_KEY` unless given.
    ///
    /// ```
    /// use som_lmm::ClientConfig;
    /// let cfg = ClientConfig::azure("https://my.openai.azure.com/", "gpt-4o", "2024-10-21");
    /// assert_eq!(cfg.base_url.as_deref(), Some("https://my.openai.azure.com/openai/deployments/gpt-4o"));
    /// ```
    pub fn azure(endpoint: &str, deployment: &str, api_version: &str) -> Self {
        let mut c = Self::for_api(Arc::new(OpenAiChat::AZURE), deployment);
        c.base_url = Some(format!(
            "{}/openai/deployments/{deployment}",
            endpoint.trim_end_matches('/')
        ));
        c.query = vec![("api-version".into(), api_version.into())];
        c.key_env = Some("AZURE_OPENAI_API_KEY");
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

    /// The API key: the configured one, else from [`Self::key_env`] (and,
    /// when that is the provider's own variable, its alternatives).
    pub(crate) fn resolve_key(&self) -> Option<ApiKey> {
        if let Some(key) = &self.api_key {
            return Some(key.clone());
        }
        let env = self.key_env?;
        let own = self.provider.info().key_envs;
        if own.first() == Some(&env) {
            own.iter().find_map(|v| ApiKey::from_env(v))
        } else {
            ApiKey::from_env(env)
        }
    }
}
