//! A provider the crate does not know, added the way a downstream user adds
//! one: a type implementing `ProviderApi` in this one file, handed to
//! `ClientConfig::for_api`. `som ask`-style requests (prompt templates, a
//! system message, a context image, the blocking client) go through it
//! against the loopback mock server, with its own endpoint, headers, body,
//! answer shape, error shape, image limits and structured-output fallback.

mod common;

use std::sync::Arc;

use common::{decoded_size, fast_retry, ids, marked, KEY};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use som_core::{ContentPart, GroundingModel};
use som_lmm::mock::{MockResponse, MockServer};
use som_lmm::providers::{ApiReply, ApiRequest, Header, Part, ProviderApi, ProviderInfo};
use som_lmm::{
    ApiError, ApiKey, BlockingClient, ClientConfig, ImageLimits, LmmClient, LmmError, PromptTemplates, Task,
};

/// "Acme Vision": `POST {base}/v2/vision/{model}/ask`, key in `x-acme-key`,
/// inputs as a tagged list, a reply schema of its own, errors as `{"fault"}`.
#[derive(Debug)]
struct AcmeVision;

const ACME: ProviderInfo = ProviderInfo {
    name: "acme",
    key_envs: &["ACME_API_KEY"],
    default_base_url: "https://vision.acme.example",
    default_model: "acme-vl-1",
    image_limits: ImageLimits {
        max_long_edge: 32,
        max_short_edge: None,
        max_pixels: None,
        max_bytes: 1 << 20,
    },
    structured_output: true,
};

#[derive(Serialize)]
struct AskBody<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    instructions: Option<&'a str>,
    inputs: Vec<Input<'a>>,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_schema: Option<Value>,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Input<'a> {
    Text { value: &'a str },
    Image { mime: &'a str, b64: &'a str },
}

#[derive(Deserialize)]
struct AskReply {
    output: Output,
    #[serde(default)]
    stop: Option<String>,
    #[serde(default)]
    tokens: Option<Tokens>,
}

#[derive(Deserialize)]
struct Output {
    #[serde(default)]
    text: String,
    #[serde(default)]
    json: Option<Value>,
}

#[derive(Deserialize)]
struct Tokens {
    #[serde(rename = "in")]
    input: u64,
    #[serde(rename = "out")]
    output: u64,
}

#[derive(Deserialize)]
struct Fault {
    fault: FaultBody,
}

#[derive(Deserialize)]
struct FaultBody {
    code: String,
    detail: String,
}

impl ProviderApi for AcmeVision {
    fn info(&self) -> &ProviderInfo {
        &ACME
    }

    fn path(&self, model: &str) -> String {
        format!("/v2/vision/{model}/ask")
    }

    fn headers(&self, key: Option<&ApiKey>) -> Vec<Header> {
        let mut h = vec![Header::plain("acme-api-version", "7")];
        h.extend(key.map(|k| Header::secret("x-acme-key", k.expose())));
        h
    }

    fn body(&self, r: &ApiRequest<'_>) -> serde_json::Result<Vec<u8>> {
        let inputs = r
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Text(value) => Some(Input::Text { value }),
                Part::Image(img) => Some(Input::Image {
                    mime: img.mime,
                    b64: &img.base64,
                }),
                _ => None,
            })
            .collect();
        serde_json::to_vec(&AskBody {
            model: r.model,
            instructions: r.system,
            inputs,
            max_tokens: r.max_output_tokens,
            reply_schema: r.structured.then(som_lmm::providers::answer_schema),
        })
    }

    fn read(&self, body: &Value) -> Result<ApiReply, String> {
        let reply = AskReply::deserialize(body).map_err(|e| format!("not an acme reply: {e}"))?;
        Ok(ApiReply {
            text: reply.output.text,
            finish_reason: reply.stop,
            usage: reply.tokens.map(|t| som_core::Usage {
                input_tokens: t.input,
                output_tokens: t.output,
            }),
            structured: reply.output.json,
            ..ApiReply::default()
        })
    }

    fn error(&self, status: u16, body: &str) -> ApiError {
        let mut e = ApiError::from_body(ACME.name, status, body);
        if let Ok(Fault { fault }) = serde_json::from_str(body) {
            e.kind = Some(fault.code);
            e.message = fault.detail;
        }
        e
    }

    fn rejects_structured(&self, error: &ApiError) -> bool {
        error.kind.as_deref() == Some("NO_SCHEMA")
    }
}

fn acme_config(base: &str) -> ClientConfig {
    ClientConfig::for_api(Arc::new(AcmeVision), ACME.default_model)
        .with_base_url(base)
        .with_api_key(ApiKey::new(KEY))
        .with_retry(fast_retry())
}

fn reply(text: &str, json: Option<Value>) -> MockResponse {
    MockResponse::json(
        200,
        &json!({"output": {"text": text, "json": json}, "stop": "done", "tokens": {"in": 321, "out": 7}}),
    )
}

fn fault(status: u16, code: &str, detail: &str) -> MockResponse {
    MockResponse::json(status, &json!({"fault": {"code": code, "detail": detail}}))
}

#[test]
fn som_ask_style_requests_go_through_a_provider_defined_in_this_file() {
    let server = MockServer::start(vec![
        fault(429, "RATE", "slow down"),
        reply(
            "",
            Some(json!({"answer": "the cup is [2]; [42] is not there", "marks": ["2", "42"]})),
        ),
    ])
    .unwrap();
    let m = marked();
    let other = image::RgbImage::new(64, 16);
    // As `som ask --task refer` builds it: templates, system message, then the blocking client.
    let request = PromptTemplates::default()
        .request(
            &Task::Refer {
                expression: "the cup".into(),
            },
            &m,
        )
        .with_context(vec![
            ContentPart::Text("Before:".into()),
            ContentPart::Image(&other),
        ]);
    let client = BlockingClient::new(acme_config(&server.url())).unwrap();
    let answer = client.ask(&request).unwrap();

    assert_eq!(server.hits(), 2, "the 429 in acme's own error shape is retried");
    let r = &server.requests()[1];
    assert_eq!(r.path, "/v2/vision/acme-vl-1/ask");
    assert_eq!(r.header("x-acme-key"), Some(KEY));
    assert_eq!(r.header("acme-api-version"), Some("7"));
    assert_eq!(r.header("authorization"), None);
    let b = r.json().unwrap();
    assert_eq!(b["model"], "acme-vl-1");
    assert_eq!(b["instructions"], json!(request.system));
    assert_eq!(b["max_tokens"], 1024);
    assert_eq!(b["reply_schema"]["required"], json!(["answer", "marks"]));
    let inputs = b["inputs"].as_array().unwrap();
    let kinds: Vec<&str> = inputs.iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["text", "image", "image", "text"]);
    assert_eq!(inputs[0]["value"], "Before:");
    assert_eq!(inputs[3]["value"], json!(request.prompt));
    // Both images fitted to acme's 32 px limit: 64×16 → 32×8, the 40×30 marked image → 32×24.
    assert_eq!(decoded_size(inputs[1]["b64"].as_str().unwrap()), (32, 8));
    assert_eq!(decoded_size(inputs[2]["b64"].as_str().unwrap()), (32, 24));
    assert_eq!(b.as_object().unwrap().len(), 5, "unexpected fields in {b}");

    assert_eq!(answer.text, "the cup is [2]; [42] is not there");
    assert_eq!(ids(&answer), [2]);
    assert_eq!(answer.unknown, ["42"]);
    assert_eq!(answer.finish_reason.as_deref(), Some("done"));
    assert_eq!(answer.usage.unwrap().total(), 328);
    let scale = answer.image_scale.unwrap();
    assert_eq!((scale.original.width, scale.sent.width), (40, 32));
    assert!(!format!("{client:?}").contains(KEY));
}

#[tokio::test]
async fn its_error_shape_and_structured_fallback_are_its_own() {
    let server = MockServer::start(vec![
        fault(400, "NO_SCHEMA", "this model cannot follow a schema"),
        reply("It is [3].", None),
        fault(403, "DENIED", "key revoked"),
        MockResponse::json(200, &json!({"result": "wrong shape"})),
    ])
    .unwrap();
    let m = marked();
    let client = LmmClient::new(acme_config(&server.url())).unwrap();
    let model: &dyn GroundingModel = &client;
    assert_eq!(model.name(), "acme:acme-vl-1");
    let request = som_core::GroundingRequest::new(&m, "Which mark is the cup?");

    let a = model.ground(&request).await.unwrap();
    assert_eq!(ids(&a), [3]);
    let sent = server.requests();
    assert!(sent[0].json().unwrap().get("reply_schema").is_some());
    assert!(
        sent[1].json().unwrap().get("reply_schema").is_none(),
        "asked once more without the schema"
    );

    match client.ask(&request).await {
        Err(LmmError::Api(e)) => {
            assert_eq!((e.provider, e.status), ("acme", 403));
            assert_eq!(
                (e.kind.as_deref(), e.message.as_str()),
                (Some("DENIED"), "key revoked")
            );
            assert_eq!(e.attempts, 1, "a 403 is not retried");
            assert_eq!(e.to_string(), "acme returned http 403 (DENIED): key revoked");
        }
        other => panic!("expected an api error, got {other:?}"),
    }
    match client.ask(&request).await {
        Err(LmmError::InvalidResponse {
            provider, message, ..
        }) => {
            assert_eq!(provider, "acme");
            assert!(
                message.starts_with("not an acme reply: missing field `output`"),
                "{message}"
            );
        }
        other => panic!("expected an invalid response, got {other:?}"),
    }
    assert_eq!(server.hits(), 4);
}

#[test]
fn without_structured_output_support_no_schema_is_asked_for() {
    #[derive(Debug)]
    struct Plain;
    const PLAIN: ProviderInfo = ProviderInfo {
        structured_output: false,
        ..ACME
    };
    impl ProviderApi for Plain {
        fn info(&self) -> &ProviderInfo {
            &PLAIN
        }
        fn path(&self, model: &str) -> String {
            AcmeVision.path(model)
        }
        fn headers(&self, key: Option<&ApiKey>) -> Vec<Header> {
            AcmeVision.headers(key)
        }
        fn body(&self, r: &ApiRequest<'_>) -> serde_json::Result<Vec<u8>> {
            AcmeVision.body(r)
        }
        fn read(&self, body: &Value) -> Result<ApiReply, String> {
            AcmeVision.read(body)
        }
    }
    let m = marked();
    let config = ClientConfig::for_api(Arc::new(Plain), "p").with_base_url("http://127.0.0.1:9");
    assert!(config.structured_output, "asked for in the config…");
    let body = LmmClient::new(config)
        .unwrap()
        .request_body(&som_core::GroundingRequest::new(&m, "q"))
        .unwrap();
    assert!(
        body.get("reply_schema").is_none(),
        "…but the API has none: {body}"
    );
    assert_eq!(
        body["inputs"].as_array().unwrap().len(),
        2,
        "the marked image and the prompt"
    );
}
