//! OpenAI Chat Completions (`POST {base}/chat/completions`), also spoken by
//! vLLM, Ollama's `/v1`, LM Studio and Azure OpenAI deployments.

use serde_json::{json, Map, Value};
use som_core::Usage;

use super::{answer_schema, count_field, non_empty, str_field, Incoming, Outgoing, Part, ANSWER_NAME};

/// Which field carries the output token limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokensField {
    /// `max_completion_tokens` (OpenAI's current name; required by reasoning models).
    MaxCompletionTokens,
    /// `max_tokens` (deprecated by OpenAI, but what older compatible servers read).
    MaxTokens,
}

/// The request body.
pub(crate) fn body(model: &str, out: &Outgoing, tokens_field: TokensField, detail: &str) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = &out.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    let content: Vec<Value> = out
        .parts
        .iter()
        .map(|p| match p {
            Part::Text(t) => json!({"type": "text", "text": t}),
            Part::Image(img) => {
                json!({"type": "image_url", "image_url": {"url": img.data_url(), "detail": detail}})
            }
        })
        .collect();
    messages.push(json!({"role": "user", "content": content}));
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages));
    let field = match tokens_field {
        TokensField::MaxCompletionTokens => "max_completion_tokens",
        TokensField::MaxTokens => "max_tokens",
    };
    body.insert(field.into(), json!(out.max_output_tokens));
    if let Some(t) = out.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if out.structured {
        body.insert(
            "response_format".into(),
            json!({
                "type": "json_schema",
                "json_schema": {"name": ANSWER_NAME, "strict": true, "schema": answer_schema()}
            }),
        );
    }
    Value::Object(body)
}

/// Reads a chat completion.
pub(crate) fn parse(body: &Value) -> Result<Incoming, String> {
    let choice = body
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or("no choices in the response")?;
    let message = choice.get("message").ok_or("the first choice has no message")?;
    let text = match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        // Some compatible servers return content parts.
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    };
    let usage = body.get("usage").map(|u| Usage {
        input_tokens: count_field(u, "prompt_tokens").unwrap_or(0),
        output_tokens: count_field(u, "completion_tokens").unwrap_or(0),
    });
    Ok(Incoming {
        text,
        finish_reason: non_empty(str_field(choice, "finish_reason")),
        refusal: non_empty(str_field(message, "refusal")),
        usage,
        model: non_empty(str_field(body, "model")),
        structured: None,
    })
}
