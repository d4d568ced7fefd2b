//! [`LmmClient`]: asks one model on one provider API and reads its answer.

use std::fmt;

use serde_json::Value;
use som_core::{
    BoxFuture, ContentPart, GroundingAnswer, GroundingModel, GroundingRequest, ImageScale, SomError,
};

use crate::answer::interpret;
use crate::config::ClientConfig;
use crate::error::LmmError;
use crate::http::Transport;
use crate::image::prepare_image;
use crate::providers::{ApiRequest, Header, Part, ProviderApi};
use crate::secret::{scrub, ApiKey};
use crate::url::endpoint;

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
            .field("base_url", &scrub(self.key.as_ref(), &self.base_url))
            .field("key", &self.key)
            .field("config", &self.config)
            .finish()
    }
}

/// The parts of one question, prepared for upload once and sent as often as
/// needed (the structured-output fallback sends them twice).
struct Prepared<'a> {
    system: Option<&'a str>,
    parts: Vec<Part>,
    scale: ImageScale,
}

impl LmmClient {
    /// Builds a client, taking the key from the config or the environment.
    ///
    /// # Errors
    /// [`LmmError::MissingKey`] when the provider's public endpoint is used
    /// and no key is found; [`LmmError::Config`] for an empty model name, a
    /// zero timeout or a base URL that is not http(s).
    pub fn new(config: ClientConfig) -> Result<Self, LmmError> {
        if config.model.trim().is_empty() {
            return Err(LmmError::Config("the model name is empty".into()));
        }
        let key = config.resolve_key();
        let base_url = config
            .base_url
            .as_deref()
            .unwrap_or_else(|| config.provider.info().default_base_url)
            .trim_end_matches('/')
            .to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(LmmError::Config(format!(
                "base url {:?} is not an http(s) url",
                scrub(key.as_ref(), &base_url)
            )));
        }
        if key.is_none() && config.base_url.is_none() {
            if let Some(env) = config.key_env {
                return Err(LmmError::MissingKey {
                    provider: config.provider.info().name,
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
            name: format!("{}:{}", config.provider.info().name, config.model),
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

    fn api(&self) -> &dyn ProviderApi {
        &*self.config.provider
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
        endpoint(
            &self.base_url,
            &self.api().path(self.config.model.trim()),
            &self.config.query,
        )
    }

    /// The JSON body that [`Self::ask`] would send for `request` (images
    /// inlined as base64), for inspection and dry runs.
    ///
    /// # Errors
    /// [`LmmError::Image`] when an image cannot be prepared.
    pub fn request_body(&self, request: &GroundingRequest<'_>) -> Result<Value, LmmError> {
        let prepared = self.prepare(request)?;
        let body = self.body(&prepared, self.structured())?;
        serde_json::from_slice(&body).map_err(|e| LmmError::Config(format!("cannot encode the request: {e}")))
    }

    /// Whether to ask for structured output: configured, and the API has it.
    fn structured(&self) -> bool {
        self.config.structured_output && self.api().info().structured_output
    }

    /// Fits every image to the provider's limits and encodes it.
    fn prepare<'a>(&self, request: &'a GroundingRequest<'_>) -> Result<Prepared<'a>, LmmError> {
        let limits = self
            .config
            .image_limits
            .unwrap_or_else(|| self.api().info().image_limits);
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
        Ok(Prepared {
            system: request.system.as_deref(),
            parts,
            scale,
        })
    }

    fn body(&self, prepared: &Prepared<'_>, structured: bool) -> Result<Vec<u8>, LmmError> {
        self.api()
            .body(&ApiRequest {
                model: self.config.model.trim(),
                base_url: &self.base_url,
                system: prepared.system,
                parts: &prepared.parts,
                max_output_tokens: self.config.max_output_tokens,
                temperature: self.config.temperature,
                structured,
            })
            .map_err(|e| LmmError::Config(format!("cannot encode the request: {e}")))
    }

    /// Asks the model and parses its answer.
    ///
    /// When structured output is on and the server rejects it (see
    /// [`ProviderApi::rejects_structured`]), the request is sent once more
    /// without it and the text is parsed.
    ///
    /// # Errors
    /// See [`LmmError`]. Unknown marks are not an error: they are listed in
    /// [`GroundingAnswer::unknown`].
    pub async fn ask(&self, request: &GroundingRequest<'_>) -> Result<GroundingAnswer, LmmError> {
        let api = self.api();
        let url = self.endpoint();
        let headers: Vec<Header> = api.headers(self.key.as_ref());
        let prepared = self.prepare(request)?;
        let structured = self.structured();
        let sent = self
            .transport
            .post_json(api, &url, &headers, self.body(&prepared, structured)?)
            .await;
        let reply = match sent {
            Err(LmmError::Api(e)) if structured && api.rejects_structured(&e) => {
                self.transport
                    .post_json(api, &url, &headers, self.body(&prepared, false)?)
                    .await?
            }
            other => other?,
        };
        let read = api.read(&reply).map_err(|message| LmmError::InvalidResponse {
            provider: api.info().name,
            message: self.scrub(&message),
            body: self.scrub(&reply.to_string()),
        })?;
        let mut answer = interpret(read, request.marked);
        answer.image_scale = Some(prepared.scale);
        answer.raw = Some(reply);
        Ok(answer)
    }

    fn scrub(&self, s: &str) -> String {
        scrub(self.key.as_ref(), s)
    }
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
