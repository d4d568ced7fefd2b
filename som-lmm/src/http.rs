//! POSTing JSON with the retry policy, timeouts and lenient error parsing.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

use crate::error::{truncate, LmmError};
use crate::providers::{Header, ProviderApi};
use crate::retry::{is_retryable_status, should_retry_header, unit_random, RetryPolicy};
use crate::secret::{scrub, ApiKey};

/// The request ids providers put in response headers, in order of preference.
const REQUEST_ID_HEADERS: [&str; 4] = [
    "x-request-id",
    "request-id",
    "x-goog-request-id",
    "x-amzn-requestid",
];

/// A reqwest client plus the policy for using it.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    client: reqwest::Client,
    policy: RetryPolicy,
    timeout: Duration,
    secret: Option<ApiKey>,
}

/// A response read whole: status, headers, body.
struct Exchange {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Transport {
    pub fn new(
        policy: RetryPolicy,
        timeout: Duration,
        connect_timeout: Duration,
        secret: Option<ApiKey>,
    ) -> Result<Self, LmmError> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .user_agent(concat!("som-lmm/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LmmError::Config(format!("cannot build the http client: {e}")))?;
        Ok(Self {
            client,
            policy,
            timeout,
            secret,
        })
    }

    fn scrub(&self, s: &str) -> String {
        scrub(self.secret.as_ref(), s)
    }

    /// POSTs the JSON `body` to `url` with `headers`, retrying per the policy;
    /// returns the 2xx response body as JSON, with the key scrubbed out.
    pub async fn post_json(
        &self,
        api: &dyn ProviderApi,
        url: &str,
        headers: &[Header],
        body: Vec<u8>,
    ) -> Result<serde_json::Value, LmmError> {
        let provider = api.info().name;
        let mut header_map = HeaderMap::new();
        for h in headers {
            let mut v = HeaderValue::from_str(&h.value).map_err(|_| {
                LmmError::Config(format!("header {} has a value that is not valid in http", h.name))
            })?;
            v.set_sensitive(h.secret);
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| LmmError::Config(format!("{:?} is not a valid http header name", h.name)))?;
            header_map.insert(name, v);
        }
        header_map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let url_shown = self.scrub(url);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let retries_left = attempt <= self.policy.max_retries;
            let response = match self.exchange(url, &header_map, &body).await {
                Ok(Some(r)) => r,
                Ok(None) => {
                    return Err(LmmError::InvalidResponse {
                        provider,
                        message: format!("a response body larger than {} MiB", MAX_RESPONSE_BYTES >> 20),
                        body: String::new(),
                    })
                }
                Err(_) if retries_left => {
                    tokio::time::sleep(self.policy.backoff(attempt - 1, unit_random())).await;
                    continue;
                }
                Err(e) => return Err(self.transport_error(provider, &url_shown, &e, attempt)),
            };
            let Exchange {
                status,
                headers,
                body: bytes,
            } = response;
            let text = self.scrub(&String::from_utf8_lossy(&bytes));
            if (200..300).contains(&status) {
                // Parsed from the scrubbed text: a server that echoes the key
                // must not put it into the answer either.
                return serde_json::from_str(&text).map_err(|e| LmmError::InvalidResponse {
                    provider,
                    message: format!(
                        "status {status} but the body is not json ({e}): {}",
                        truncate(&text, 120)
                    ),
                    body: text.clone(),
                });
            }
            let mut err = api.error(status, &text);
            err.request_id = REQUEST_ID_HEADERS
                .iter()
                .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
                .map(str::to_string);
            err.headers = headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        self.scrub(&String::from_utf8_lossy(v.as_bytes())),
                    )
                })
                .collect();
            err.attempts = attempt;
            let retryable = !err.is_insufficient_quota()
                && should_retry_header(&headers).unwrap_or_else(|| is_retryable_status(status));
            if retryable && retries_left {
                let wait = self
                    .policy
                    .delay(attempt - 1, &headers, SystemTime::now(), unit_random());
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(LmmError::Api(Box::new(err)));
        }
    }

    /// One request and its whole response; `None` when the body grows past
    /// [`MAX_RESPONSE_BYTES`].
    async fn exchange(
        &self,
        url: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Option<Exchange>, reqwest::Error> {
        let mut response = self
            .client
            .post(url)
            .headers(headers.clone())
            .body(body.to_vec())
            .send()
            .await?;
        let status = response.status().as_u16();
        let headers = std::mem::take(response.headers_mut());
        let mut out = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if out.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Ok(None);
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Some(Exchange {
            status,
            headers,
            body: out,
        }))
    }

    fn transport_error(
        &self,
        provider: &'static str,
        url: &str,
        e: &reqwest::Error,
        attempts: u32,
    ) -> LmmError {
        if e.is_timeout() {
            LmmError::Timeout {
                provider,
                url: url.to_string(),
                timeout: self.timeout,
                attempts,
            }
        } else {
            LmmError::Connect {
                provider,
                url: url.to_string(),
                message: self.scrub(&error_chain(e)),
                attempts,
            }
        }
    }
}

/// The largest response body read; providers answer in kilobytes.
pub(crate) const MAX_RESPONSE_BYTES: usize = 32 << 20;

/// An error and its sources on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let msg = inner.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        src = inner.source();
    }
    s
}
