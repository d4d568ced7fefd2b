//! Each provider against a loopback mock server: the request it sends, field
//! by field, and how it reads normal, structured, refused, truncated, empty
//! and failed responses.

mod common;

use common::{client, config, decoded_size, ids, marked, marked_with, KEY};
use serde_json::{json, Value};
use som_core::{ContentPart, GroundingModel, GroundingRequest, LabelScheme};
use som_lmm::mock::{MockResponse, MockServer};
use som_lmm::{LmmClient, LmmError, Provider};

fn chat(content: Value, finish: Value) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-test-2025",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": null}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 812, "completion_tokens": 9, "total_tokens": 821}
    })
}

fn only_request(server: &MockServer) -> som_lmm::mock::RecordedRequest {
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1, "expected exactly one request");
    reqs.into_iter().next().unwrap()
}

#[tokio::test]
async fn openai_request_fields_and_text_answer() {
    let server = MockServer::start(vec![MockResponse::json(
        200,
        &chat(json!("The cup is [2], the lid [7]."), json!("stop")),
    )])
    .unwrap();
    let m = marked();
    let c = client(Provider::OpenAi, "gpt-test", &format!("{}/v1", server.url()));
    let req = GroundingRequest::new(&m, "Which mark is the cup?").with_system("Cite marks.");
    let answer = c.ask(&req).await.unwrap();

    let r = only_request(&server);
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.header("authorization"), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let b = r.json().unwrap();
    assert_eq!(b["model"], "gpt-test");
    assert_eq!(b["messages"].as_array().unwrap().len(), 2);
    assert_eq!(
        b["messages"][0],
        json!({"role": "system", "content": "Cite marks."})
    );
    assert_eq!(b["messages"][1]["role"], "user");
    let content = b["messages"][1]["content"].as_array().unwrap();
    assert_eq!(content.len(), 2);
    assert_eq!(content[0]["type"], "image_url");
    assert_eq!(content[0]["image_url"]["detail"], "high");
    let url = content[0]["image_url"]["url"].as_str().unwrap();
    let b64 = url
        .strip_prefix("data:image/png;base64,")
        .expect("a png data url");
    assert_eq!(decoded_size(b64), (40, 30));
    assert_eq!(
        content[1],
        json!({"type": "text", "text": "Which mark is the cup?"})
    );
    // A custom base URL gets the widely supported `max_tokens`.
    assert_eq!(b["max_tokens"], 1024);
    assert!(b.get("max_completion_tokens").is_none());
    assert!(b.get("temperature").is_none());
    let rf = &b["response_format"];
    assert_eq!(rf["type"], "json_schema");
    assert_eq!(rf["json_schema"]["name"], "som_answer");
    assert_eq!(rf["json_schema"]["strict"], true);
    assert_eq!(
        rf["json_schema"]["schema"]["required"],
        json!(["answer", "marks"])
    );
    assert_eq!(b.as_object().unwrap().len(), 4, "unexpected fields in {b}");

    assert_eq!(answer.text, "The cup is [2], the lid [7].");
    assert_eq!(ids(&answer), [2, 7]);
    assert_eq!(answer.marks[0].region, 1);
    assert!(answer.unknown.is_empty());
    let usage = answer.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (812, 9));
    assert_eq!(answer.finish_reason.as_deref(), Some("stop"));
    assert_eq!(answer.model.as_deref(), Some("gpt-test-2025"));
    assert_eq!(answer.raw.as_ref().unwrap()["id"], "chatcmpl-1");
    assert_eq!(
        answer.image_scale.unwrap().sent,
        answer.image_scale.unwrap().original
    );
}

#[tokio::test]
async fn openai_structured_answer_and_unknown_marks() {
    let content = json!({"answer": "the cups [1] and [3]", "marks": ["1", "3", "42"]}).to_string();
    let server = MockServer::start(vec![MockResponse::json(
        200,
        &chat(json!(content), json!("stop")),
    )])
    .unwrap();
    let m = marked();
    let c = client(Provider::OpenAi, "gpt-test", &server.url());
    let answer = c.ask(&GroundingRequest::new(&m, "q")).await.unwrap();
    assert_eq!(answer.text, "the cups [1] and [3]");
    assert_eq!(ids(&answer), [1, 3]);
    assert_eq!(answer.unknown, ["42"]);
}

#[tokio::test]
async fn openai_refusal_length_and_empty_content() {
    let refusal = json!({
        "id": "x", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}, "finish_reason": "stop"}]
    });
    let server = MockServer::start(vec![
        MockResponse::json(200, &refusal),
        MockResponse::json(200, &chat(json!("The cup is mark 4 and the [1"), json!("length"))),
        MockResponse::json(200, &chat(json!(""), json!(""))),
        MockResponse::json(200, &json!({"id": "x", "choices": []})),
    ])
    .unwrap();
    let m = marked();
    let c = client(Provider::OpenAi, "gpt-test", &server.url());
    let req = GroundingRequest::new(&m, "q");

    let a = c.ask(&req).await.unwrap();
    assert_eq!(a.refusal.as_deref(), Some("I can't help with that."));
    assert_eq!(a.text, "");
    assert!(a.marks.is_empty() && a.usage.is_none());

    let a = c.ask(&req).await.unwrap();
    assert_eq!(a.finish_reason.as_deref(), Some("length"));
    assert_eq!(ids(&a), [4], "the cut-off bracket is not a mark");

    let a = c.ask(&req).await.unwrap();
    assert_eq!((a.text.as_str(), a.finish_reason.as_deref()), ("", None));
    assert!(a.marks.is_empty() && a.unknown.is_empty());

    match c.ask(&req).await {
        Err(LmmError::InvalidResponse {
            provider,
            message,
            body,
        }) => {
            assert_eq!(provider, "openai");
            assert!(message.contains("no choices"), "{message}");
            assert!(body.contains("\"choices\":[]"));
        }
        other => panic!("expected InvalidResponse, got {other:?}"),
    }
}

#[tokio::test]
async fn openai_error_bodies_integer_flat_nested_and_html() {
    let server = MockServer::start(vec![
        MockResponse::json(400, &json!({"error": {"message": "bad image", "type": "invalid_request_error", "code": 400, "param": "messages"}}))
            .header("x-request-id", "req_int"),
        MockResponse::json(404, &json!({"object": "error", "message": "model not found", "type": "NotFoundError", "code": 404})),
        MockResponse::json(401, &json!({"detail": "unauthorised"})),
        MockResponse::text(502, "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>")
            .header("content-type", "text/html"),
    ])
    .unwrap();
    let m = marked();
    let mut cfg = config(Provider::OpenAi, "gpt-test", &server.url());
    cfg.retry.max_retries = 0;
    let c = LmmClient::new(cfg).unwrap();
    let req = GroundingRequest::new(&m, "q");

    let api = |r: Result<_, LmmError>| match r {
        Err(LmmError::Api(e)) => *e,
        other => panic!("expected an api error, got {other:?}"),
    };
    let e = api(c.ask(&req).await);
    assert_eq!(
        (e.status, e.code.as_deref(), e.kind.as_deref()),
        (400, Some("400"), Some("invalid_request_error"))
    );
    assert_eq!(
        (e.message.as_str(), e.param.as_deref(), e.request_id.as_deref()),
        ("bad image", Some("messages"), Some("req_int"))
    );
    assert!(e
        .headers
        .iter()
        .any(|(k, v)| k == "x-request-id" && v == "req_int"));
    assert!(e.body.contains("bad image"));
    assert_eq!(e.attempts, 1);

    let e = api(c.ask(&req).await);
    assert_eq!(
        (e.status, e.code.as_deref(), e.message.as_str()),
        (404, Some("404"), "model not found")
    );

    let e = api(c.ask(&req).await);
    assert_eq!(
        (e.status, e.message.as_str(), e.code),
        (401, "unauthorised", None)
    );

    let e = api(c.ask(&req).await);
    assert_eq!((e.status, e.message.as_str()), (502, "502 Bad Gateway"));
    assert!(e.body.contains("nginx"));
    assert_eq!(
        LmmError::Api(Box::new(e)).to_string(),
        "openai returned http 502: 502 Bad Gateway"
    );
}

#[tokio::test]
async fn openai_structured_output_falls_back_to_text_when_rejected() {
    let server = MockServer::start(vec![
        MockResponse::json(
            400,
            &json!({"error": {"message": "response_format json_schema is not supported", "param": "response_format", "code": null}}),
        ),
        MockResponse::json(200, &chat(json!("[5]"), json!("stop"))),
    ])
    .unwrap();
    let m = marked();
    let c = client(Provider::OpenAi, "local-model", &server.url());
    let a = c.ask(&GroundingRequest::new(&m, "q")).await.unwrap();
    assert_eq!(ids(&a), [5]);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[0].json().unwrap().get("response_format").is_some());
    assert!(reqs[1].json().unwrap().get("response_format").is_none());
}

#[tokio::test]
async fn openai_context_parts_keep_their_order_and_azure_shape() {
    let server =
        MockServer::start(vec![MockResponse::json(200, &chat(json!("[1]"), json!("stop")))]).unwrap();
    let m = marked();
    let other = image::RgbImage::new(12, 9);
    let mut cfg = som_lmm::ClientConfig::azure(&server.url(), "my-gpt", "2024-10-21");
    cfg.api_key = Some(som_lmm::ApiKey::new(KEY));
    let c = LmmClient::new(cfg).unwrap();
    let req = GroundingRequest::new(&m, "Is it the same cup?").with_context(vec![
        ContentPart::Text("Reference:".into()),
        ContentPart::Image(&other),
    ]);
    c.ask(&req).await.unwrap();
    let r = only_request(&server);
    assert_eq!(
        r.path,
        "/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(r.header("api-key"), Some(KEY));
    assert_eq!(r.header("authorization"), None);
    let b = r.json().unwrap();
    assert_eq!(b["max_completion_tokens"], 1024);
    let content = b["messages"][0]["content"].as_array().unwrap();
    let kinds: Vec<&str> = content.iter().map(|p| p["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["text", "image_url", "image_url", "text"]);
    let url = content[1]["image_url"]["url"].as_str().unwrap();
    assert_eq!(
        decoded_size(url.strip_prefix("data:image/png;base64,").unwrap()),
        (12, 9)
    );
}

#[tokio::test]
async fn anthropic_request_fields_tool_answer_refusal_and_overload() {
    let tool_answer = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test-1",
        "content": [
            {"type": "text", "text": "Reporting."},
            {"type": "tool_use", "id": "tu_1", "name": "som_answer", "input": {"answer": "the dog [3]", "marks": ["3"]}}
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 1500, "output_tokens": 40}
    });
    let refusal = json!({"id": "msg_2", "type": "message", "model": "claude-test-1", "content": [], "stop_reason": "refusal", "usage": {"input_tokens": 10, "output_tokens": 0}});
    let overloaded = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    let server = MockServer::start(vec![
        MockResponse::json(529, &overloaded).header("request-id", "req_ant"),
        MockResponse::json(200, &tool_answer),
        MockResponse::json(200, &refusal),
        MockResponse::json(400, &json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: too big"}}))
            .header("request-id", "req_bad"),
    ])
    .unwrap();
    let m = marked();
    let c = client(Provider::Anthropic, "claude-test", &server.url());
    let req = GroundingRequest::new(&m, "Which mark is the dog?").with_system("Cite marks.");
    let a = c.ask(&req).await.unwrap();
    assert_eq!(server.hits(), 2, "the 529 is retried");
    let r = &server.requests()[1];
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some(KEY));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(r.header("authorization"), None);
    let b = r.json().unwrap();
    assert_eq!(b["model"], "claude-test");
    assert_eq!(b["max_tokens"], 1024);
    assert_eq!(b["system"], "Cite marks.");
    assert_eq!(b["messages"].as_array().unwrap().len(), 1);
    assert_eq!(b["messages"][0]["role"], "user");
    let content = b["messages"][0]["content"].as_array().unwrap();
    assert_eq!(content[0]["type"], "image");
    assert_eq!(content[0]["source"]["type"], "base64");
    assert_eq!(content[0]["source"]["media_type"], "image/png");
    assert_eq!(
        decoded_size(content[0]["source"]["data"].as_str().unwrap()),
        (40, 30)
    );
    assert_eq!(
        content[1],
        json!({"type": "text", "text": "Which mark is the dog?"})
    );
    assert_eq!(b["tools"][0]["name"], "som_answer");
    assert_eq!(b["tools"][0]["input_schema"]["type"], "object");
    assert_eq!(b["tool_choice"], json!({"type": "tool", "name": "som_answer"}));
    assert_eq!(b.as_object().unwrap().len(), 6, "unexpected fields in {b}");

    assert_eq!(a.text, "the dog [3]");
    assert_eq!(ids(&a), [3]);
    assert_eq!(a.finish_reason.as_deref(), Some("tool_use"));
    assert_eq!(a.usage.unwrap().input_tokens, 1500);
    assert_eq!(a.model.as_deref(), Some("claude-test-1"));

    let a = c.ask(&req).await.unwrap();
    assert_eq!(a.refusal.as_deref(), Some("refused"));
    assert!(a.marks.is_empty());

    match c.ask(&req).await {
        Err(LmmError::Api(e)) => {
            assert_eq!(
                (e.status, e.kind.as_deref(), e.message.as_str()),
                (400, Some("invalid_request_error"), "max_tokens: too big")
            );
            assert_eq!(e.request_id.as_deref(), Some("req_bad"));
        }
        other => panic!("expected an api error, got {other:?}"),
    }
}

#[tokio::test]
async fn gemini_request_fields_json_answer_block_and_integer_error() {
    let ok = json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": "{\"answer\": \"[b] and [c]\", \"marks\": [\"b\", \"c\"]}"}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 300, "candidatesTokenCount": 12, "totalTokenCount": 312},
        "modelVersion": "gemini-test-001"
    });
    let blocked =
        json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 300}});
    let quota = json!({"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}});
    let server = MockServer::start(vec![
        MockResponse::json(200, &ok),
        MockResponse::json(200, &blocked),
        MockResponse::json(
            400,
            &json!([{"error": {"code": 400, "message": "API key not valid", "status": "INVALID_ARGUMENT"}}]),
        ),
        MockResponse::json(429, &quota),
    ])
    .unwrap();
    let m = marked_with(5, LabelScheme::Letter, 40, 30);
    let c = client(
        Provider::Gemini,
        "models/gemini-test",
        &format!("{}/v1beta", server.url()),
    );
    let req = GroundingRequest::new(&m, "Which marks are cats?").with_system("Cite marks.");
    let a = c.ask(&req).await.unwrap();
    let r = only_request(&server);
    assert_eq!(r.path, "/v1beta/models/gemini-test:generateContent");
    assert_eq!(r.header("x-goog-api-key"), Some(KEY));
    assert!(!r.path.contains(KEY));
    let b = r.json().unwrap();
    assert_eq!(
        b["systemInstruction"],
        json!({"parts": [{"text": "Cite marks."}]})
    );
    assert_eq!(b["contents"][0]["role"], "user");
    let parts = b["contents"][0]["parts"].as_array().unwrap();
    assert_eq!(parts[0]["inlineData"]["mimeType"], "image/png");
    assert_eq!(
        decoded_size(parts[0]["inlineData"]["data"].as_str().unwrap()),
        (40, 30)
    );
    assert_eq!(parts[1], json!({"text": "Which marks are cats?"}));
    let g = &b["generationConfig"];
    assert_eq!(g["maxOutputTokens"], 1024);
    assert_eq!(g["responseMimeType"], "application/json");
    assert_eq!(g["responseSchema"]["type"], "OBJECT");
    assert_eq!(g["responseSchema"]["properties"]["marks"]["type"], "ARRAY");

    assert_eq!(a.text, "[b] and [c]");
    assert_eq!(ids(&a), [2, 3]);
    assert_eq!(a.usage.unwrap().output_tokens, 12);
    assert_eq!(a.model.as_deref(), Some("gemini-test-001"));

    let a = c.ask(&req).await.unwrap();
    assert_eq!(a.refusal.as_deref(), Some("prompt blocked: SAFETY"));

    match c.ask(&req).await {
        Err(LmmError::Api(e)) => {
            assert_eq!(
                (e.code.as_deref(), e.kind.as_deref()),
                (Some("400"), Some("INVALID_ARGUMENT"))
            );
            assert_eq!(e.message, "API key not valid");
        }
        other => panic!("expected an api error, got {other:?}"),
    }
    match c.ask(&req).await {
        Err(LmmError::Api(e)) => {
            assert_eq!(
                (e.status, e.code.as_deref(), e.kind.as_deref()),
                (429, Some("429"), Some("RESOURCE_EXHAUSTED"))
            );
            assert_eq!(e.attempts, 3, "a plain 429 is retried");
        }
        other => panic!("expected an api error, got {other:?}"),
    }
}

#[tokio::test]
async fn ollama_request_fields_answer_and_string_error() {
    let ok = json!({
        "model": "qwen-test", "created_at": "2025-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": "{\"answer\": \"marks 2 and 4\", \"marks\": [2, 4]}"},
        "done": true, "done_reason": "stop", "prompt_eval_count": 640, "eval_count": 22
    });
    let server = MockServer::start(vec![
        MockResponse::json(200, &ok),
        MockResponse::json(
            404,
            &json!({"error": "model \"nope\" not found, try pulling it first"}),
        ),
    ])
    .unwrap();
    let m = marked_with(10, LabelScheme::Number { zero_based: false }, 3000, 100);
    let mut cfg = config(Provider::Ollama, "qwen-test", &server.url());
    cfg.api_key = None;
    cfg.temperature = Some(0.0);
    let c = LmmClient::new(cfg).unwrap();
    let req = GroundingRequest::new(&m, "Which marks are bottles?").with_system("Cite marks.");
    let a = c.ask(&req).await.unwrap();
    let r = only_request(&server);
    assert_eq!(r.path, "/api/chat");
    assert_eq!(r.header("authorization"), None);
    let b = r.json().unwrap();
    assert_eq!(b["model"], "qwen-test");
    assert_eq!(b["stream"], false);
    assert_eq!(
        b["messages"][0],
        json!({"role": "system", "content": "Cite marks."})
    );
    assert_eq!(b["messages"][1]["role"], "user");
    assert_eq!(b["messages"][1]["content"], "Which marks are bottles?");
    let images = b["messages"][1]["images"].as_array().unwrap();
    assert_eq!(images.len(), 1);
    // 3000×100 is fitted into Ollama's 1536 px long edge.
    assert_eq!(decoded_size(images[0].as_str().unwrap()), (1536, 51));
    assert_eq!(b["format"]["required"], json!(["answer", "marks"]));
    assert_eq!(b["options"], json!({"num_predict": 1024, "temperature": 0.0}));

    assert_eq!(a.text, "marks 2 and 4");
    assert_eq!(ids(&a), [2, 4]);
    assert_eq!(
        (a.usage.unwrap().input_tokens, a.usage.unwrap().output_tokens),
        (640, 22)
    );
    let scale = a.image_scale.unwrap();
    assert_eq!((scale.sent.width, scale.sent.height), (1536, 51));
    assert_eq!((scale.original.width, scale.original.height), (3000, 100));

    match c.ask(&req).await {
        Err(LmmError::Api(e)) => {
            assert_eq!(e.status, 404);
            assert_eq!(e.message, "model \"nope\" not found, try pulling it first");
            assert_eq!(e.attempts, 1);
        }
        other => panic!("expected an api error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_trait_object_and_blocking_paths_give_the_same_answer() {
    let server = MockServer::start(vec![MockResponse::json(
        200,
        &chat(json!("click [6]"), json!("stop")),
    )])
    .unwrap();
    let m = marked();
    let c = client(Provider::OpenAi, "gpt-test", &server.url());
    let model: &dyn GroundingModel = &c;
    assert_eq!(model.name(), "openai:gpt-test");
    let req = GroundingRequest::new(&m, "q");
    let a = model.ground(&req).await.unwrap();
    assert_eq!(ids(&a), [6]);

    let url = server.url();
    let blocking = std::thread::spawn(move || {
        let m = marked();
        let c = som_lmm::BlockingClient::new(config(Provider::OpenAi, "gpt-test", &url)).unwrap();
        c.ask(&GroundingRequest::new(&m, "q")).map(|a| ids(&a))
    })
    .join()
    .unwrap();
    assert_eq!(blocking.unwrap(), [6]);
    assert_eq!(server.hits(), 2);

    // Blocking inside an async runtime is refused, not a panic.
    let b = som_lmm::BlockingClient::new(config(Provider::OpenAi, "gpt-test", &server.url())).unwrap();
    assert!(matches!(b.ask(&req), Err(LmmError::Config(_))));
    assert_eq!(server.hits(), 2);
    drop(b);
}

#[test]
fn missing_key_for_public_endpoints_names_the_variable() {
    for (provider, env) in [
        (Provider::OpenAi, "OPENAI_API_KEY"),
        (Provider::Anthropic, "ANTHROPIC_API_KEY"),
        (Provider::Gemini, "GEMINI_API_KEY"),
    ] {
        let mut cfg = som_lmm::ClientConfig::new(provider, "m");
        cfg.key_env = Some("SOM_LMM_TEST_UNSET_VARIABLE");
        match LmmClient::new(cfg) {
            Err(LmmError::MissingKey { provider: p, env: e }) => {
                assert_eq!(p, provider.name());
                assert_eq!(e, "SOM_LMM_TEST_UNSET_VARIABLE");
            }
            other => panic!("expected MissingKey, got {other:?}"),
        }
        assert_eq!(provider.api().info().key_envs.first(), Some(&env));
    }
    // Ollama and custom endpoints need no key.
    assert!(LmmClient::new(som_lmm::ClientConfig::new(Provider::Ollama, "m")).is_ok());
    let mut cfg = som_lmm::ClientConfig::new(Provider::OpenAi, "m").with_base_url("http://127.0.0.1:1/v1");
    cfg.key_env = Some("SOM_LMM_TEST_UNSET_VARIABLE");
    assert!(LmmClient::new(cfg).is_ok());
    assert!(matches!(
        LmmClient::new(som_lmm::ClientConfig::new(Provider::Ollama, " ")),
        Err(LmmError::Config(_))
    ));
    assert!(matches!(
        LmmClient::new(som_lmm::ClientConfig::new(Provider::Ollama, "m").with_base_url("ftp://x")),
        Err(LmmError::Config(_))
    ));
}

#[tokio::test]
async fn anthropic_tool_input_without_answer_keeps_the_text_block() {
    let body = json!({
        "id": "msg_3", "type": "message", "role": "assistant", "model": "claude-test-1",
        "content": [
            {"type": "text", "text": "It is [2]."},
            {"type": "tool_use", "id": "tu_2", "name": "som_answer", "input": {"marks": [2, "b"]}}
        ],
        "stop_reason": "tool_use"
    });
    let server = MockServer::start(vec![MockResponse::json(200, &body)]).unwrap();
    let m = marked();
    let c = client(Provider::Anthropic, "claude-test", &server.url());
    let a = c.ask(&GroundingRequest::new(&m, "q")).await.unwrap();
    assert_eq!(a.text, "It is [2].");
    assert_eq!(ids(&a), [2]);
    assert_eq!(a.unknown, ["b"]);
    assert!(a.usage.is_none());
}

#[tokio::test]
async fn reasoning_models_thinking_is_not_read_as_the_answer() {
    let server = MockServer::start(vec![MockResponse::json(
        200,
        &chat(
            json!("<think>Is it [1]? No, [1] is the table.</think>\n\nThe cup is [4]."),
            json!("stop"),
        ),
    )])
    .unwrap();
    let m = marked();
    let mut cfg = config(Provider::OpenAi, "qwen3-vl", &server.url());
    cfg.structured_output = false;
    let a = LmmClient::new(cfg)
        .unwrap()
        .ask(&GroundingRequest::new(&m, "q"))
        .await
        .unwrap();
    assert_eq!(a.text, "The cup is [4].");
    assert_eq!(ids(&a), [4]);
    assert!(
        a.raw.unwrap().to_string().contains("<think>"),
        "the raw response keeps everything"
    );
}

#[tokio::test]
async fn the_scripted_model_reads_answers_like_a_provider() {
    let model = som_lmm::mock::ScriptedModel::new(vec![
        "<think>[9]?</think>[2]".into(),
        r#"{"answer": "the cup [3]", "marks": ["3", "77"]}"#.into(),
        "mark 5".into(),
    ])
    .with_usage(som_core::Usage {
        input_tokens: 100,
        output_tokens: 5,
    });
    let m = marked();
    let reqs: Vec<_> = (0..4)
        .map(|i| GroundingRequest::new(&m, format!("q{i}")))
        .collect();
    let answers: Vec<_> = som_lmm::ground_all(&model, &reqs, 2)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let got: Vec<Vec<u32>> = answers.iter().map(ids).collect();
    assert_eq!(
        got,
        [vec![2], vec![3], vec![5], vec![5]],
        "the last answer repeats"
    );
    assert_eq!(answers[1].text, "the cup [3]");
    assert_eq!(answers[1].unknown, ["77"]);
    assert_eq!(som_lmm::total_usage(&answers).total(), 420);
    assert_eq!(model.calls(), 4);
    assert_eq!(GroundingModel::name(&model), "scripted");
}
