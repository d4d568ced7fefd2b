//! What a downstream program sees when a provider fails behind the
//! `GroundingModel` trait: a `SomError::Grounding` whose source is the
//! `LmmError` itself, so the HTTP status (here a 429 after the retries), the
//! provider's error code and the retry count stay readable, by `find` or by
//! downcasting `source()`, and the chain prints once on one line.

mod common;

use std::error::Error as _;

use common::{config, marked, KEY};
use serde_json::json;
use som_core::{ErrorChain, GroundingModel, GroundingRequest, SomError};
use som_lmm::mock::{MockResponse, MockServer};
use som_lmm::{LmmClient, LmmError, Provider};

/// Asks through the trait object, as evaluation code does.
async fn ground(model: &dyn GroundingModel) -> Result<som_core::GroundingAnswer, SomError> {
    let m = marked();
    model
        .ground(&GroundingRequest::new(&m, "Which mark is the cup?"))
        .await
}

#[tokio::test]
async fn a_rate_limit_reaches_the_caller_as_an_lmm_error_with_status_429() {
    let server = MockServer::start(vec![MockResponse::json(
        429,
        &json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}),
    )
    .header("x-request-id", "req_429")])
    .unwrap();
    let client = LmmClient::new(config(Provider::OpenAi, "gpt-test", &server.url())).unwrap();
    let err = ground(&client).await.unwrap_err();

    assert!(matches!(err, SomError::Grounding(_)), "{err:?}");
    // Found along the chain…
    let lmm = err.find::<LmmError>().expect("the LmmError is in the chain");
    assert_eq!(lmm.status(), Some(429));
    assert_eq!(lmm.attempts(), 3, "retried twice before giving up");
    // …or by downcasting the source directly.
    let source = err.source().expect("a source");
    match source.downcast_ref::<LmmError>() {
        Some(LmmError::Api(api)) => {
            assert_eq!(api.status, 429);
            assert_eq!(api.code.as_deref(), Some("rate_limit_exceeded"));
            assert_eq!(api.request_id.as_deref(), Some("req_429"));
        }
        other => panic!("expected an api error as the source, got {other:?}"),
    }
    assert_eq!(server.hits(), 3);
    // One line, each message once, no key.
    let line = ErrorChain(&err).to_string();
    assert_eq!(
        line,
        "grounding model failed: openai returned http 429 (rate_limit_exceeded): \
         Rate limit reached [request id req_429] after 3 attempts"
    );
    assert!(!format!("{line} {err:?}").contains(KEY));
}

#[tokio::test]
async fn other_client_errors_keep_their_variant_too() {
    // A server that is not there: the connection error, not a status.
    let mut cfg = config(Provider::Anthropic, "m", "http://127.0.0.1:1");
    cfg.retry.max_retries = 0;
    let client = LmmClient::new(cfg).unwrap();
    let err = ground(&client).await.unwrap_err();
    let lmm = err.find::<LmmError>().expect("the LmmError is in the chain");
    assert!(
        matches!(
            lmm,
            LmmError::Connect {
                provider: "anthropic",
                ..
            }
        ),
        "{lmm:?}"
    );
    assert_eq!(lmm.status(), None);
}
