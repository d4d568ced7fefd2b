//! POSTing JSON with the retry policy, timeouts and lenient error parsing.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{truncate, ApiError, LmmError};
use crate::retry::{is_retryable_status, should_retry_header, unit_random, RetryPolicy};
use crate::secret::ApiKey;

/// The request ids providers put in response headers, in order of preference.
const REQUEST_ID_HEADERS: [&str; 4] = [
    "x-request-id",
    "request-id",
    "x-goog-request-id",
    "x-amzn-requestid",
];

/// A successful response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub body: serde_json::Value,
}

/// A reqwest client plus the policy for using it.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    client: reqwest::Client,
    policy: RetryPolicy,
    timeout: Duration,
    secret: Option<ApiKey>,
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
        match &self.secret {
            Some(k) => k.scrub(s),
            None => s.to_string(),
        }
    }

    /// POSTs `body` as JSON to `url` with `headers`, retrying per the policy.
    pub async fn post_json(
        &self,
        provider: &'static str,
        url: &str,
        headers: &[(&'static str, String, bool)],
        body: &serde_json::Value,
    ) -> Result<Reply, LmmError> {
        let mut header_map = HeaderMap::new();
        for (name, value, sensitive) in headers {
            let mut v = HeaderValue::from_str(value).map_err(|_| {
                LmmError::Config(format!("header {name} has a value that is not valid in http"))
            })?;
            v.set_sensitive(*sensitive);
            header_map.insert(HeaderName::from_static(name), v);
        }
        let payload =
            serde_json::to_vec(body).map_err(|e| LmmError::Config(format!("cannot encode request: {e}")))?;
        let url_shown = self.scrub(url);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let retries_left = attempt <= self.policy.max_retries;
            let sent = self
                .client
                .post(url)
                .headers(header_map.clone())
                .header("content-type", "application/json")
                .body(payload.clone())
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                Err(e) => {
                    if retries_left {
                        tokio::time::sleep(self.policy.backoff(attempt - 1, unit_random())).await;
                        continue;
                    }
                    return Err(self.transport_error(provider, &url_shown, &e, attempt));
                }
            };
            let status = response.status().as_u16();
            let resp_headers = response.headers().clone();
            let bytes = match read_limited(response).await {
                Ok(Some(b)) => b,
                Ok(None) => {
                    return Err(LmmError::InvalidResponse {
                        provider,
                        message: format!(
                            "status {status} with a body larger than {} MiB",
                            MAX_RESPONSE_BYTES >> 20
                        ),
                        body: String::new(),
                    })
                }
                Err(e) => {
                    if retries_left {
                        tokio::time::sleep(self.policy.backoff(attempt - 1, unit_random())).await;
                        continue;
                    }
                    return Err(self.transport_error(provider, &url_shown, &e, attempt));
                }
            };
            let text = self.scrub(&String::from_utf8_lossy(&bytes));
            if (200..300).contains(&status) {
                // Parsed from the scrubbed text: a server that echoes the key
                // must not put it into the answer either.
                return match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(body) => Ok(Reply { body }),
                    Err(e) => Err(LmmError::InvalidResponse {
                        provider,
                        message: format!(
                            "status {status} but the body is not json ({e}): {}",
                            truncate(&text, 120)
                        ),
                        body: text.clone(),
                    }),
                };
            }
            let mut err = ApiError::from_body(provider, status, &text);
            err.request_id = REQUEST_ID_HEADERS
                .iter()
                .find_map(|h| resp_headers.get(*h).and_then(|v| v.to_str().ok()))
                .map(str::to_string);
            err.headers = resp_headers
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
                && should_retry_header(&resp_headers).unwrap_or_else(|| is_retryable_status(status));
            if retryable && retries_left {
                let wait = self
                    .policy
                    .delay(attempt - 1, &resp_headers, SystemTime::now(), unit_random());
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(LmmError::Api(Box::new(err)));
        }
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

/// The body, or `None` when it grows past [`MAX_RESPONSE_BYTES`].
async fn read_limited(mut response: reqwest::Response) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if out.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Ok(None);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}

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
