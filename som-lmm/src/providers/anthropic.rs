//! Anthropic Messages (`POST {base}/v1/messages`).

use serde_json::{json, Map, Value};
use som_core::Usage;

use super::{answer_schema, count_field, non_empty, str_field, Incoming, Outgoing, Part, ANSWER_NAME};

/// The API version header value this module speaks.
pub(crate) const VERSION: &str = "2023-06-01";

/// The request body. Structured answers use a forced tool call, the
/// Messages API's way to get JSON that follows a schema.
pub(crate) fn body(model: &str, out: &Outgoing) -> Value {
    let content: Vec<Value> = out
        .parts
        .iter()
        .map(|p| match p {
            Part::Text(t) => json!({"type": "text", "text": t}),
            Part::Image(img) => json!({
                "type": "image",
                "source": {"type": "base64", "media_type": img.mime, "data": img.base64}
            }),
        })
        .collect();
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("max_tokens".into(), json!(out.max_output_tokens));
    if let Some(system) = &out.system {
        body.insert("system".into(), json!(system));
    }
    body.insert("messages".into(), json!([{"role": "user", "content": content}]));
    if let Some(t) = out.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if out.structured {
        body.insert(
            "tools".into(),
            json!([{
                "name": ANSWER_NAME,
                "description": "Report the answer and every mark it cites.",
                "input_schema": answer_schema()
            }]),
        );
        body.insert("tool_choice".into(), json!({"type": "tool", "name": ANSWER_NAME}));
    }
    Value::Object(body)
}

/// Reads a message.
pub(crate) fn parse(body: &Value) -> Result<Incoming, String> {
    let blocks = body
        .get("content")
        .and_then(Value::as_array)
        .ok_or("no content in the response")?;
    let mut text = String::new();
    let mut structured = None;
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") if structured.is_none() => structured = b.get("input").cloned(),
            _ => {}
        }
    }
    let finish_reason = non_empty(str_field(body, "stop_reason"));
    let refusal = if finish_reason.as_deref() == Some("refusal") {
        Some(if text.is_empty() {
            "refused".to_string()
        } else {
            text.clone()
        })
    } else {
        None
    };
    let usage = body.get("usage").map(|u| Usage {
        input_tokens: count_field(u, "input_tokens").unwrap_or(0),
        output_tokens: count_field(u, "output_tokens").unwrap_or(0),
    });
    Ok(Incoming {
        text,
        finish_reason,
        refusal,
        usage,
        model: non_empty(str_field(body, "model")),
        structured,
    })
}
