//! What can go wrong talking to a model provider.

use std::fmt;
use std::time::Duration;

/// An error response from a provider (a non-2xx status), parsed leniently.
///
/// Bodies come nested (`{"error": {"message", "type", "code"}}`), flat
/// (`{"message", "code"}`), with `code` as a string or an integer, as a bare
/// string (`{"error": "model not found"}`) or as plain text or HTML (proxies'
/// 502 pages). Whatever the shape, the status, headers, request id and raw
/// body are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The provider (`"openai"`, `"anthropic"`, `"gemini"`, `"ollama"`).
    pub provider: &'static str,
    /// HTTP status.
    pub status: u16,
    /// The error message (for non-JSON bodies: the page title or first line).
    pub message: String,
    /// The error code, as text even when the body gave an integer.
    pub code: Option<String>,
    /// The error type (`"insufficient_quota"`, `"overloaded_error"`,
    /// `"RESOURCE_EXHAUSTED"`…).
    pub kind: Option<String>,
    /// The request parameter the error is about, when given.
    pub param: Option<String>,
    /// The provider's request id (`x-request-id`, `request-id`…).
    pub request_id: Option<String>,
    /// Response headers, in the order received.
    pub headers: Vec<(String, String)>,
    /// The raw response body.
    pub body: String,
    /// How many requests were made, retries included.
    pub attempts: u32,
}

impl ApiError {
    /// `true` for quota exhaustion, which retrying cannot fix.
    pub fn is_insufficient_quota(&self) -> bool {
        self.code.as_deref() == Some("insufficient_quota")
            || self.kind.as_deref() == Some("insufficient_quota")
    }

    /// Parses an error response body leniently.
    ///
    /// ```
    /// use som_lmm::ApiError;
    /// let e = ApiError::from_body("openai", 429, r#"{"error":{"message":"quota","type":"insufficient_quota","code":"insufficient_quota"}}"#);
    /// assert!(e.is_insufficient_quota());
    /// let e = ApiError::from_body("gemini", 400, r#"{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}"#);
    /// assert_eq!((e.code.as_deref(), e.kind.as_deref()), (Some("400"), Some("INVALID_ARGUMENT")));
    /// let e = ApiError::from_body("openai", 502, "<html><title>502 Bad Gateway</title></html>");
    /// assert_eq!(e.message, "502 Bad Gateway");
    /// ```
    pub fn from_body(provider: &'static str, status: u16, body: &str) -> Self {
        let mut e = ApiError {
            provider,
            status,
            message: String::new(),
            code: None,
            kind: None,
            param: None,
            request_id: None,
            headers: Vec::new(),
            body: body.to_string(),
            attempts: 1,
        };
        match serde_json::from_str::<serde_json::Value>(body) {
            Ok(v) => e.fill_from_json(&v),
            Err(_) => e.message = text_summary(body),
        }
        if e.message.is_empty() {
            e.message = text_summary(body);
        }
        if e.message.is_empty() {
            e.message = format!("http status {status}");
        }
        e
    }

    fn fill_from_json(&mut self, v: &serde_json::Value) {
        let v = match v {
            serde_json::Value::Array(items) => match items.first() {
                Some(first) => first,
                None => return,
            },
            other => other,
        };
        let obj = match v.get("error") {
            Some(serde_json::Value::String(s)) => {
                self.message = s.clone();
                v
            }
            Some(inner @ serde_json::Value::Object(_)) => inner,
            _ => v,
        };
        if self.message.is_empty() {
            for key in ["message", "detail", "error_description", "msg"] {
                if let Some(m) = obj.get(key).and_then(value_text) {
                    self.message = m;
                    break;
                }
            }
        }
        self.code = obj.get("code").and_then(value_text);
        self.kind = obj
            .get("type")
            .and_then(value_text)
            .or_else(|| obj.get("status").and_then(value_text));
        self.param = obj.get("param").and_then(value_text);
    }
}

fn value_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Array(_) | serde_json::Value::Object(_) => Some(v.to_string()),
        _ => None,
    }
}

/// A one-line summary of a non-JSON body: an HTML page's title, or the first
/// non-blank line, cut to 200 characters.
fn text_summary(body: &str) -> String {
    let lower = body.to_ascii_lowercase();
    if let (Some(a), Some(b)) = (lower.find("<title>"), lower.find("</title>")) {
        if a + 7 <= b {
            return body[a + 7..b].trim().to_string();
        }
    }
    let line = body.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    truncate(line, 200)
}

pub(crate) fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max_chars).collect();
        t.push('…');
        t
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} returned http {}", self.provider, self.status)?;
        if let Some(code) = self.code.as_deref().or(self.kind.as_deref()) {
            write!(f, " ({code})")?;
        }
        write!(f, ": {}", truncate(&self.message, 300))?;
        if let Some(id) = &self.request_id {
            write!(f, " [request id {id}]")?;
        }
        if self.attempts > 1 {
            write!(f, " after {} attempts", self.attempts)?;
        }
        Ok(())
    }
}

/// `Result` with [`LmmError`] as the default error.
pub type Result<T, E = LmmError> = std::result::Result<T, E>;

/// Everything that can go wrong in `som-lmm`.
///
/// Messages are lowercase and one line; none contains an API key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LmmError {
    /// The provider answered with an error status.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// No answer within the request timeout, on every attempt.
    #[error("{provider} request to {url} timed out after {timeout:?} ({attempts} attempt(s))")]
    Timeout {
        /// The provider.
        provider: &'static str,
        /// The URL requested.
        url: String,
        /// The per-request timeout.
        timeout: Duration,
        /// Requests made, retries included.
        attempts: u32,
    },
    /// The connection failed (refused, reset, DNS, TLS), on every attempt.
    #[error("cannot reach {provider} at {url}: {message} ({attempts} attempt(s))")]
    Connect {
        /// The provider.
        provider: &'static str,
        /// The URL requested.
        url: String,
        /// What the HTTP client said.
        message: String,
        /// Requests made, retries included.
        attempts: u32,
    },
    /// A 2xx response that is not what the provider's API promises.
    #[error("unexpected response from {provider}: {message}")]
    InvalidResponse {
        /// The provider.
        provider: &'static str,
        /// What is wrong with it.
        message: String,
        /// The raw body.
        body: String,
    },
    /// No API key in the config or the environment.
    #[error("no api key for {provider}: set {env} (or pass a key in the client config)")]
    MissingKey {
        /// The provider.
        provider: &'static str,
        /// The environment variable that would hold it.
        env: &'static str,
    },
    /// An image that cannot be prepared for upload.
    #[error("cannot prepare image for upload: {0}")]
    Image(String),
    /// A client configuration that cannot work.
    #[error("invalid client config: {0}")]
    Config(String),
}

impl LmmError {
    /// Requests made before giving up (1 when no request was sent… or the
    /// first one failed for good; 0 for errors raised before sending).
    pub fn attempts(&self) -> u32 {
        match self {
            LmmError::Api(e) => e.attempts,
            LmmError::Timeout { attempts, .. } | LmmError::Connect { attempts, .. } => *attempts,
            LmmError::InvalidResponse { .. } => 1,
            _ => 0,
        }
    }

    /// The HTTP status, for provider errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            LmmError::Api(e) => Some(e.status),
            _ => None,
        }
    }
}

/// A client error reaches [`som_core::GroundingModel`] users as
/// [`som_core::SomError::Grounding`] with the `LmmError` itself as its source,
/// so its HTTP status and body stay readable.
impl From<LmmError> for som_core::SomError {
    fn from(e: LmmError) -> Self {
        som_core::SomError::grounding(e)
    }
}
