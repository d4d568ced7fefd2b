//! Ollama's native chat API (`POST {base}/api/chat`, `stream: false`).

use serde_json::{json, Map, Value};
use som_core::Usage;

use super::{answer_schema, count_field, non_empty, str_field, Incoming, Outgoing, Part};

/// The request body: Ollama takes a message's images as a list of base64
/// strings beside its text, so text parts are joined with blank lines and
/// images keep their order.
pub(crate) fn body(model: &str, out: &Outgoing) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = &out.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    let mut texts = Vec::new();
    let mut images = Vec::new();
    for p in &out.parts {
        match p {
            Part::Text(t) => texts.push(t.as_str()),
            Part::Image(img) => images.push(json!(img.base64)),
        }
    }
    messages.push(json!({"role": "user", "content": texts.join("\n\n"), "images": images}));
    let mut options = Map::new();
    options.insert("num_predict".into(), json!(out.max_output_tokens));
    if let Some(t) = out.temperature {
        options.insert("temperature".into(), json!(t));
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages));
    body.insert("stream".into(), json!(false));
    if out.structured {
        body.insert("format".into(), answer_schema());
    }
    body.insert("options".into(), Value::Object(options));
    Value::Object(body)
}

/// Reads a (non-streamed) chat response.
pub(crate) fn parse(body: &Value) -> Result<Incoming, String> {
    let message = body.get("message").ok_or("no message in the response")?;
    let usage =
        (body.get("prompt_eval_count").is_some() || body.get("eval_count").is_some()).then(|| Usage {
            input_tokens: count_field(body, "prompt_eval_count").unwrap_or(0),
            output_tokens: count_field(body, "eval_count").unwrap_or(0),
        });
    Ok(Incoming {
        text: str_field(message, "content").unwrap_or_default(),
        finish_reason: non_empty(str_field(body, "done_reason")),
        refusal: None,
        usage,
        model: non_empty(str_field(body, "model")),
        structured: None,
    })
}
