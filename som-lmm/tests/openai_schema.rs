//! Every Chat Completions body the client can send validates against
//! `CreateChatCompletionRequest` from the OpenAI OpenAPI specification.
//!
//! The schema subset is extracted from the spec by
//! `tools/fixtures/gen_openai_chat_schema.py` into
//! `fixtures/lmm/openai_chat_request.schema.json` (request objects closed, as
//! the API treats them: an invented field is an error), so the test needs
//! neither the 3 MB spec nor Python. That the fixture is what the spec gives
//! is checked where the spec is:
//! `python3 tools/fixtures/gen_openai_chat_schema.py --check [SPEC]` fails
//! when the spec is missing or the fixture differs.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{marked, marked_with, KEY};
use serde_json::{json, Value};
use som_core::{ContentPart, GroundingRequest, LabelScheme};
use som_lmm::providers::{ImageDetail, MaxTokensField, OpenAiChat};
use som_lmm::{ApiKey, ClientConfig, LmmClient, Provider};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture_schema() -> Value {
    let text = std::fs::read_to_string(repo().join("fixtures/lmm/openai_chat_request.schema.json"))
        .expect("the schema fixture");
    serde_json::from_str(&text).expect("schema json")
}

/// Request bodies for every option that changes the body's shape.
fn bodies() -> Vec<(String, Value)> {
    let m = marked();
    let letters = marked_with(4, LabelScheme::Letter, 20, 20);
    let extra = image::RgbImage::new(6, 4);
    let mut out = Vec::new();
    let mut configs = Vec::new();
    for structured in [true, false] {
        for field in [
            MaxTokensField::Auto,
            MaxTokensField::MaxCompletionTokens,
            MaxTokensField::MaxTokens,
        ] {
            for temperature in [None, Some(0.0), Some(1.5)] {
                let api = OpenAiChat {
                    max_tokens: field,
                    ..OpenAiChat::default()
                };
                let mut c = ClientConfig::for_api(Arc::new(api), "gpt-4.1")
                    .with_api_key(ApiKey::new(KEY))
                    .with_structured_output(structured);
                c.temperature = temperature;
                configs.push(c);
            }
        }
    }
    for detail in [ImageDetail::Low, ImageDetail::Auto] {
        let api = OpenAiChat {
            detail,
            ..OpenAiChat::default()
        };
        configs.push(
            ClientConfig::for_api(Arc::new(api), "Qwen/Qwen2.5-VL-7B-Instruct")
                .with_base_url("http://localhost:8000/v1"),
        );
    }
    configs.push(
        ClientConfig::new(Provider::OpenAi, "Qwen/Qwen2.5-VL-7B-Instruct")
            .with_base_url("http://localhost:8000/v1"),
    );
    configs.push(
        ClientConfig::azure("https://x.openai.azure.com", "dep", "2024-10-21").with_api_key(ApiKey::new(KEY)),
    );
    for (i, cfg) in configs.into_iter().enumerate() {
        let client = LmmClient::new(cfg).unwrap();
        let plain = GroundingRequest::new(&m, "Which mark is the cup?");
        let full = GroundingRequest::new(&letters, "Is [a] the cup in the first image?")
            .with_system("Cite marks in brackets.")
            .with_context(vec![
                ContentPart::Text("First image:".into()),
                ContentPart::Image(&extra),
            ]);
        out.push((format!("config {i}, plain"), client.request_body(&plain).unwrap()));
        out.push((
            format!("config {i}, system + context"),
            client.request_body(&full).unwrap(),
        ));
    }
    out
}

fn assert_all_valid(schema: &Value, what: &str) {
    let validator = jsonschema::validator_for(schema).expect("the schema compiles");
    let bodies = bodies();
    assert!(bodies.len() >= 40);
    for (name, body) in &bodies {
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{what}: {name} is invalid: {errors:#?}");
    }
}

#[test]
fn request_bodies_validate_against_the_extracted_schema() {
    assert_all_valid(&fixture_schema(), "fixture");
}

#[test]
fn the_schema_rejects_malformed_bodies() {
    // The validation above can fail: bodies that break the spec are caught.
    let validator = jsonschema::validator_for(&fixture_schema()).unwrap();
    let good = bodies().remove(0).1;
    assert!(validator.is_valid(&good), "the unbroken body is valid");
    assert!(
        good.get("response_format").is_some()
            && good["messages"][0]["content"].as_array().unwrap().len() == 2
    );
    let mut broken = Vec::new();
    let mut b = good.clone();
    b.as_object_mut().unwrap().remove("model");
    broken.push(("no model", b));
    let mut b = good.clone();
    b["messages"] = json!([]);
    broken.push(("no messages", b));
    let mut b = good.clone();
    b["messages"][0]["role"] = json!("robot");
    broken.push(("unknown role", b));
    let mut b = good.clone();
    b["messages"][0]["content"][0]["image_url"]["detail"] = json!("ultra");
    broken.push(("unknown detail", b));
    let mut b = good.clone();
    b["temperature"] = json!(3.5);
    broken.push(("temperature out of range", b));
    let mut b = good.clone();
    b["response_format"] = json!({"type": "json_schema"});
    broken.push(("json_schema without its schema", b));
    let mut b = good.clone();
    b["messages"][0]["content"][0] = json!({"type": "image", "url": "x"});
    broken.push(("anthropic-style image part", b));
    // Invented fields, at every level of the body.
    let mut b = good.clone();
    b["invented_option"] = json!(true);
    broken.push(("an invented top-level field", b));
    let mut b = good.clone();
    b["max_output_tokens"] = json!(100);
    broken.push(("another API's token limit field", b));
    let mut b = good.clone();
    b["messages"][0]["images"] = json!(["aGk="]);
    broken.push(("ollama-style images in a message", b));
    let mut b = good.clone();
    b["messages"][0]["content"][1]["cache"] = json!(true);
    broken.push(("an invented field in a text part", b));
    let mut b = good.clone();
    b["messages"][0]["content"][0]["image_url"]["mime"] = json!("image/png");
    broken.push(("an invented field in image_url", b));
    let mut b = good;
    b["response_format"]["json_schema"]["schema_name"] = json!("x");
    broken.push(("an invented field in json_schema", b));
    for (name, body) in broken {
        assert!(!validator.is_valid(&body), "{name} should be rejected");
    }
}
