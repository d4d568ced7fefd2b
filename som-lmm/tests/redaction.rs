//! API keys never appear in Debug or Display output: configs, clients,
//! and every error variant, including provider errors whose body and
//! headers echo the key back.

mod common;

use std::time::Duration;

use common::{config, marked, KEY};
use serde_json::json;
use som_core::{GroundingRequest, SomError};
use som_lmm::mock::{MockResponse, MockServer};
use som_lmm::{ApiKey, BlockingClient, ClientConfig, LmmClient, LmmError, Provider};

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(KEY), "{what} leaks the key: {text}");
    assert!(
        !text.contains("SECRET-0123456789"),
        "{what} leaks part of the key: {text}"
    );
}

fn check_error(what: &str, e: LmmError) {
    assert_clean(what, &e.to_string());
    assert_clean(what, &format!("{e:?}"));
    assert_clean(what, &format!("{e:#?}"));
    let som: SomError = e.into();
    assert_clean(what, &som.to_string());
    assert_clean(what, &format!("{som:?}"));
}

#[test]
fn configs_and_clients_never_print_the_key() {
    let key = ApiKey::new(KEY);
    assert_clean("ApiKey", &format!("{key:?} {key:#?}"));
    let mut configs: Vec<ClientConfig> = Provider::ALL
        .into_iter()
        .map(|p| ClientConfig::new(p, "m").with_api_key(key.clone()))
        .collect();
    configs.push(
        ClientConfig::azure("https://x.openai.azure.com", "dep", "2024-10-21").with_api_key(key.clone()),
    );
    configs.push(config(Provider::OpenAi, "m", "http://127.0.0.1:9/v1"));
    // Keys where they do not belong: in the base URL, or as a query parameter.
    configs.push(config(
        Provider::OpenAi,
        "m",
        &format!("http://user:{KEY}@127.0.0.1:9/v1"),
    ));
    let mut q = config(Provider::Gemini, "m", "http://127.0.0.1:9/v1beta");
    q.query = vec![("key".into(), KEY.into()), ("alt".into(), "json".into())];
    configs.push(q);
    for cfg in configs {
        assert_clean("config", &format!("{cfg:?} {cfg:#?}"));
        let client = LmmClient::new(cfg.clone()).unwrap();
        assert_clean("client", &format!("{client:?} {client:#?}"));
        assert_clean("client config", &format!("{:?}", client.config()));
        let blocking = BlockingClient::new(cfg).unwrap();
        assert_clean("blocking client", &format!("{blocking:?} {blocking:#?}"));
    }
}

#[tokio::test]
async fn every_error_is_clean_even_when_the_server_echoes_the_key() {
    let echo = format!("Incorrect API key provided: {KEY}. You can find your API key at ...");
    let server = MockServer::start(vec![
        MockResponse::json(401, &json!({"error": {"message": echo, "type": "invalid_request_error", "code": "invalid_api_key"}}))
            .header("x-echo", KEY),
        MockResponse::text(502, &format!("<html><title>bad gateway {KEY}</title></html>")),
        MockResponse::text(200, &format!("not json {KEY}")),
        MockResponse::json(200, &json!({"weird": KEY})),
        MockResponse::json(
            200,
            &json!({"model": KEY, "choices": [{"message": {"content": format!("[1] {KEY}")}, "finish_reason": "stop"}]}),
        ),
    ])
    .unwrap();
    let mut cfg = config(Provider::OpenAi, "m", &server.url());
    cfg.retry.max_retries = 0;
    let c = LmmClient::new(cfg).unwrap();
    let m = marked();
    let req = GroundingRequest::new(&m, "q");
    for what in [
        "401 echoing the key",
        "502 page echoing the key",
        "non-json 200",
        "200 without choices",
    ] {
        let e = c.ask(&req).await.unwrap_err();
        check_error(what, e);
    }
    // Nor does a successful answer that echoes it.
    let a = c.ask(&req).await.unwrap();
    assert_eq!(a.marks.len(), 1);
    assert_clean("answer", &format!("{a:?}"));
    // The key was really sent, so the checks above mean something.
    assert!(server
        .requests()
        .iter()
        .all(|r| r.header("authorization") == Some(&format!("Bearer {KEY}"))));

    // Timeout and connection errors.
    let hang = MockServer::start(vec![MockResponse::hang()]).unwrap();
    let mut cfg = config(Provider::Anthropic, "m", &hang.url()).with_timeout(Duration::from_millis(100));
    cfg.retry.max_retries = 0;
    let e = LmmClient::new(cfg).unwrap().ask(&req).await.unwrap_err();
    assert!(matches!(e, LmmError::Timeout { .. }));
    check_error("timeout", e);
    let mut cfg = config(Provider::Gemini, "m", "http://127.0.0.1:1");
    cfg.retry.max_retries = 0;
    let e = LmmClient::new(cfg).unwrap().ask(&req).await.unwrap_err();
    assert!(matches!(e, LmmError::Connect { .. }));
    check_error("connect", e);

    // Errors raised before sending.
    let e = LmmClient::new(
        ClientConfig::new(Provider::Ollama, "m")
            .with_api_key(ApiKey::new(KEY))
            .with_base_url(format!("ftp://{KEY}@x")),
    )
    .unwrap_err();
    check_error("config", e);
    let mut cfg = ClientConfig::new(Provider::OpenAi, "m");
    cfg.key_env = Some("SOM_LMM_TEST_UNSET_VARIABLE");
    check_error("missing key", LmmClient::new(cfg).unwrap_err());
    let empty = common::marked_with(0, som_core::LabelScheme::Letter, 1, 1);
    let tiny = som_lmm::ImageLimits {
        max_bytes: 1,
        ..som_lmm::providers::OpenAiChat::INFO.image_limits
    };
    let mut cfg = config(Provider::OpenAi, "m", &server.url());
    cfg.image_limits = Some(tiny);
    let e = LmmClient::new(cfg)
        .unwrap()
        .ask(&GroundingRequest::new(&empty, "q"))
        .await
        .unwrap_err();
    assert!(matches!(e, LmmError::Image(_)));
    check_error("image", e);
}
