//! The crate's error type, and the JSON error responses of the API.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// `Result` with [`ServeError`] as the default error.
pub type Result<T, E = ServeError> = std::result::Result<T, E>;

/// What can stop a server from being built or from running.
///
/// Errors *of requests* are not `ServeError`s: they are answered as JSON
/// `{"error": "…"}` with a 4xx or 5xx status (see the crate docs).
///
/// ```
/// use som_serve::{ServeError, SomServer};
/// let e = SomServer::builder().build().unwrap_err();
/// assert!(matches!(e, ServeError::NoSegmenter));
/// assert_eq!(e.to_string(), "a server needs at least one segmenter");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The builder was given no segmenter.
    #[error("a server needs at least one segmenter")]
    NoSegmenter,
    /// A segmenter name that is empty, has characters other than ASCII
    /// letters, digits, `-` and `_`, or is given twice.
    #[error("bad segmenter name {0:?}: names are unique words of letters, digits, - and _")]
    SegmenterName(String),
    /// The default segmenter is not one of the server's.
    #[error("unknown default segmenter {name:?} (the server has {known})")]
    UnknownSegmenter {
        /// The name asked for.
        name: String,
        /// The names the server has, comma separated.
        known: String,
    },
    /// Limits that cannot serve anything.
    #[error("invalid limits: {0}")]
    Limits(String),
    /// The mark style given as the default is out of range.
    #[error("invalid default mark style")]
    Style(#[source] som_marks::MarksError),
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: String,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("the server failed")]
    Io(#[source] std::io::Error),
}

/// A request's failure: the status, the one-line message sent as
/// `{"error": message}`, and for `503`s the seconds of `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<u64>,
}

/// The message of a failed request, kept in the response's extensions for the
/// request log.
#[derive(Debug, Clone)]
pub(crate) struct FailureNote(pub String);

impl Failure {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: one_line(&message.into()),
            retry_after: None,
        }
    }

    /// `400`: a malformed form, a missing or unknown field, a bad option value.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// `503` with `Retry-After`: saturated, or out of time.
    pub fn busy(message: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    /// `500`: a bug or a failure of the server itself.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body,
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(FailureNote(self.message));
        response
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_a_json_error_with_retry_after_when_busy() {
        let r = Failure::busy("too many\nrequests", 0).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            r.extensions().get::<FailureNote>().map(|n| n.0.as_str()),
            Some("too many requests")
        );
        let r = Failure::bad_request("missing field").into_response();
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
    }
}
