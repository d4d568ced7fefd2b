//! The retry policy against failing servers: what each fault gives, and how
//! many requests it took. Backoff is shrunk to milliseconds (the policy is
//! configurable); server-requested waits are real.
//!
//! | fault | outcome | attempts |
//! |---|---|---|
//! | 429 + `retry-after: 1`, then 200 | answer, second request ≥ 1 s after the first | 2 |
//! | 429 + `retry-after-ms: 150`, then 200 | answer, second request ≥ 150 ms later | 2 |
//! | 429 + `retry-after: 500` (beyond 120 s), then 200 | answer after the computed backoff | 2 |
//! | 429 `insufficient_quota` | `LmmError::Api`, not retried | 1 |
//! | 500, 503, then 200 | answer | 3 |
//! | 500 forever | `LmmError::Api` 500 | 3 |
//! | 500 with `x-should-retry: false` | `LmmError::Api`, not retried | 1 |
//! | 400 | `LmmError::Api`, not retried | 1 |
//! | 408 / 409, then 200 | answer | 2 |
//! | never answers | `LmmError::Timeout` | 3 |
//! | closes without answering, then 200 | answer | 2 |
//! | connection refused | `LmmError::Connect` | 3 |
//! | a 200 body over 32 MiB | `LmmError::InvalidResponse`, not buffered | 1 |

mod common;

use std::time::{Duration, Instant};

use common::{config, ids, marked};
use serde_json::json;
use som_core::GroundingRequest;
use som_lmm::mock::{MockResponse, MockServer};
use som_lmm::{LmmClient, LmmError, Provider};

fn ok() -> MockResponse {
    MockResponse::json(
        200,
        &json!({"model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": "[3]"}, "finish_reason": "stop"}]}),
    )
}

fn rate_limited() -> MockResponse {
    MockResponse::json(
        429,
        &json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}),
    )
}

async fn ask(server: &MockServer) -> Result<som_core::GroundingAnswer, LmmError> {
    let c = LmmClient::new(config(Provider::OpenAi, "m", &server.url())).unwrap();
    let m = marked();
    c.ask(&GroundingRequest::new(&m, "q")).await
}

fn gap(server: &MockServer, i: usize) -> Duration {
    let r = server.requests();
    r[i + 1].received.duration_since(r[i].received)
}

#[tokio::test]
async fn retry_after_seconds_is_honoured() {
    let server = MockServer::start(vec![rate_limited().header("retry-after", "1"), ok()]).unwrap();
    let a = ask(&server).await.unwrap();
    assert_eq!(ids(&a), [3]);
    assert_eq!(server.hits(), 2);
    assert!(
        gap(&server, 0) >= Duration::from_millis(990),
        "waited only {:?}",
        gap(&server, 0)
    );
}

#[tokio::test]
async fn retry_after_ms_wins_over_retry_after() {
    let server = MockServer::start(vec![
        rate_limited()
            .header("retry-after-ms", "150")
            .header("retry-after", "100"),
        ok(),
    ])
    .unwrap();
    let started = Instant::now();
    ask(&server).await.unwrap();
    assert_eq!(server.hits(), 2);
    assert!(
        gap(&server, 0) >= Duration::from_millis(150),
        "waited only {:?}",
        gap(&server, 0)
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn retry_after_beyond_the_limit_falls_back_to_backoff() {
    let server = MockServer::start(vec![rate_limited().header("retry-after", "500"), ok()]).unwrap();
    ask(&server).await.unwrap();
    assert_eq!(server.hits(), 2);
    assert!(
        gap(&server, 0) < Duration::from_secs(2),
        "waited {:?}",
        gap(&server, 0)
    );
}

#[tokio::test]
async fn insufficient_quota_is_not_retried() {
    let server = MockServer::start(vec![
        MockResponse::json(
            429,
            &json!({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}),
        )
        .header("retry-after", "1"),
        ok(),
    ])
    .unwrap();
    match ask(&server).await {
        Err(LmmError::Api(e)) => {
            assert!(e.is_insufficient_quota());
            assert_eq!((e.status, e.attempts), (429, 1));
        }
        other => panic!("expected an api error, got {other:?}"),
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn server_errors_then_success() {
    let server = MockServer::start(vec![
        MockResponse::text(500, "Internal Server Error"),
        MockResponse::json(
            503,
            &json!({"error": {"message": "overloaded", "type": "server_error"}}),
        ),
        ok(),
    ])
    .unwrap();
    let a = ask(&server).await.unwrap();
    assert_eq!(ids(&a), [3]);
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn persistent_server_errors_give_up_after_two_retries() {
    let server = MockServer::start(vec![MockResponse::text(500, "boom")]).unwrap();
    let err = ask(&server).await.unwrap_err();
    assert_eq!((err.status(), err.attempts()), (Some(500), 3));
    assert_eq!(server.hits(), 3);
    assert_eq!(err.to_string(), "openai returned http 500: boom after 3 attempts");
}

#[tokio::test]
async fn should_retry_header_and_client_errors_stop_retries() {
    let server = MockServer::start(vec![
        MockResponse::text(500, "no").header("x-should-retry", "false")
    ])
    .unwrap();
    let err = ask(&server).await.unwrap_err();
    assert_eq!((err.status(), err.attempts(), server.hits()), (Some(500), 1, 1));

    let server = MockServer::start(vec![MockResponse::json(
        400,
        &json!({"error": {"message": "bad"}}),
    )])
    .unwrap();
    let err = ask(&server).await.unwrap_err();
    assert_eq!((err.status(), err.attempts(), server.hits()), (Some(400), 1, 1));

    let server = MockServer::start(vec![
        MockResponse::text(400, "retry me").header("x-should-retry", "true"),
        ok(),
    ])
    .unwrap();
    ask(&server).await.unwrap();
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn timeout_and_conflict_statuses_are_retried() {
    for status in [408, 409] {
        let server = MockServer::start(vec![MockResponse::text(status, "try again"), ok()]).unwrap();
        ask(&server).await.unwrap();
        assert_eq!(server.hits(), 2, "status {status}");
    }
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_on_every_attempt() {
    let server = MockServer::start(vec![MockResponse::hang()]).unwrap();
    let c =
        LmmClient::new(config(Provider::OpenAi, "m", &server.url()).with_timeout(Duration::from_millis(200)))
            .unwrap();
    let m = marked();
    let started = Instant::now();
    match c.ask(&GroundingRequest::new(&m, "q")).await {
        Err(LmmError::Timeout {
            attempts, timeout, ..
        }) => {
            assert_eq!(attempts, 3);
            assert_eq!(timeout, Duration::from_millis(200));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(server.hits(), 3);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(5),
        "took {took:?}"
    );
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let server = MockServer::start(vec![MockResponse::close(), ok()]).unwrap();
    let a = ask(&server).await.unwrap();
    assert_eq!(ids(&a), [3]);
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}/v1");
    let c = LmmClient::new(config(Provider::OpenAi, "m", &base)).unwrap();
    let m = marked();
    match c.ask(&GroundingRequest::new(&m, "q")).await {
        Err(e @ LmmError::Connect { .. }) => {
            assert_eq!(e.attempts(), 3);
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("cannot reach openai at {base}/chat/completions")),
                "{msg}"
            );
            assert!(msg.ends_with("(3 attempt(s))"), "{msg}");
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
}

#[tokio::test]
async fn ground_all_bounds_concurrency_and_keeps_order() {
    use som_core::{BoxFuture, GroundingAnswer, GroundingModel, SomError};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Slow {
        now: AtomicUsize,
        max: AtomicUsize,
    }
    impl GroundingModel for Slow {
        fn ground<'a>(
            &'a self,
            r: &'a GroundingRequest<'a>,
        ) -> BoxFuture<'a, Result<GroundingAnswer, SomError>> {
            Box::pin(async move {
                let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
                self.max.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.now.fetch_sub(1, Ordering::SeqCst);
                Ok(GroundingAnswer::new(r.prompt.clone()))
            })
        }
    }
    let m = marked();
    let reqs: Vec<_> = (0..10)
        .map(|i| GroundingRequest::new(&m, i.to_string()))
        .collect();
    let model = Slow {
        now: AtomicUsize::new(0),
        max: AtomicUsize::new(0),
    };
    let answers = som_lmm::ground_all(&model, &reqs, 3).await;
    let texts: Vec<String> = answers.into_iter().map(|a| a.unwrap().text).collect();
    assert_eq!(texts, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
    assert_eq!(model.max.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn fan_out_over_the_http_client_counts_usage() {
    let body = json!({"model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": "[1]"}, "finish_reason": "stop"}],
                      "usage": {"prompt_tokens": 10, "completion_tokens": 2}});
    let server = MockServer::start(vec![
        MockResponse::json(200, &body).delayed(Duration::from_millis(30))
    ])
    .unwrap();
    let c = LmmClient::new(config(Provider::OpenAi, "m", &server.url())).unwrap();
    let m = marked();
    let reqs: Vec<_> = (0..6)
        .map(|i| GroundingRequest::new(&m, format!("q{i}")))
        .collect();
    let answers: Vec<_> = som_lmm::ground_all(&c, &reqs, 2)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(server.hits(), 6);
    let usage = som_lmm::total_usage(&answers);
    assert_eq!(
        (usage.input_tokens, usage.output_tokens, usage.total()),
        (60, 12, 72)
    );
}

#[tokio::test]
async fn an_oversized_body_is_refused_not_buffered() {
    let huge = "x".repeat((32 << 20) + 1);
    let server = MockServer::start(vec![MockResponse::text(200, &huge)]).unwrap();
    match ask(&server).await {
        Err(LmmError::InvalidResponse { message, body, .. }) => {
            assert!(message.contains("larger than 32 MiB"), "{message}");
            assert!(body.is_empty());
        }
        other => panic!("expected InvalidResponse, got {other:?}"),
    }
    assert_eq!(server.hits(), 1);
}
