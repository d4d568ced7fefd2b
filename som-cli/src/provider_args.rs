//! The model-provider options of every command that asks a model (`som ask`,
//! `som eval run`): which provider and model, where, and how patiently.

use std::time::Duration;

use anyhow::bail;
use clap::{Args, ValueEnum};
use som_lmm::{ClientConfig, LmmError, Provider, RetryPolicy};

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

/// Which model to ask, and how.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Model provider")]
pub struct ProviderArgs {
    /// The model provider.
    #[arg(long, value_enum, default_value_t = ProviderArg::Openai)]
    pub provider: ProviderArg,
    /// The model (default: the provider's usual vision model).
    #[arg(long, value_name = "M")]
    pub model: Option<String>,
    /// The endpoint root, e.g. http://localhost:8000/v1 for vLLM or http://localhost:11434/v1 for Ollama.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
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
}

impl ProviderArgs {
    /// The client configuration these options describe (the API key comes
    /// from the provider's environment variable when the client is built).
    ///
    /// # Errors
    /// Options out of range, naming the flag.
    pub fn config(&self) -> anyhow::Result<ClientConfig> {
        if !(self.timeout.is_finite() && self.timeout > 0.0 && self.timeout <= 86_400.0) {
            bail!(
                "--timeout must be between 0 and 86400 seconds, got {}",
                self.timeout
            );
        }
        if let Some(t) = self.temperature {
            if !(t.is_finite() && (0.0..=2.0).contains(&t)) {
                bail!("--temperature must be between 0 and 2, got {t}");
            }
        }
        if self.max_tokens == 0 {
            bail!("--max-tokens must be at least 1");
        }
        let provider = Provider::from(self.provider);
        let model = self
            .model
            .clone()
            .unwrap_or_else(|| provider.api().info().default_model.to_string());
        let mut config = ClientConfig::new(provider, model)
            .with_timeout(Duration::from_secs_f64(self.timeout))
            .with_retry(RetryPolicy {
                max_retries: self.retries,
                ..RetryPolicy::default()
            })
            .with_structured_output(!self.no_structured);
        config.base_url = self.base_url.clone();
        config.max_output_tokens = self.max_tokens;
        config.temperature = self.temperature;
        Ok(config)
    }
}

/// A client, or for a missing key an error that says how to fix it.
pub fn key_hint<T>(client: Result<T, LmmError>) -> anyhow::Result<T> {
    match client {
        Ok(c) => Ok(c),
        Err(LmmError::MissingKey { provider, env }) => bail!(
            "no API key for {provider}: set {env} in the environment \
             (or point --base-url at a server that needs none)"
        ),
        Err(e) => Err(e.into()),
    }
}
