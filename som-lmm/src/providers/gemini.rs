//! Gemini generateContent (`POST {base}/models/{model}:generateContent`).

use serde_json::{json, Map, Value};
use som_core::Usage;

use super::{count_field, non_empty, str_field, Incoming, Outgoing, Part};

/// The answer schema in Gemini's OpenAPI-subset form (`responseSchema`).
fn gemini_schema() -> Value {
    json!({
        "type": "OBJECT",
        "properties": {
            "answer": {"type": "STRING"},
            "marks": {"type": "ARRAY", "items": {"type": "STRING"}}
        },
        "required": ["answer", "marks"],
        "propertyOrdering": ["answer", "marks"]
    })
}

/// The request body.
pub(crate) fn body(out: &Outgoing) -> Value {
    let parts: Vec<Value> = out
        .parts
        .iter()
        .map(|p| match p {
            Part::Text(t) => json!({"text": t}),
            Part::Image(img) => json!({"inlineData": {"mimeType": img.mime, "data": img.base64}}),
        })
        .collect();
    let mut body = Map::new();
    if let Some(system) = &out.system {
        body.insert("systemInstruction".into(), json!({"parts": [{"text": system}]}));
    }
    body.insert("contents".into(), json!([{"role": "user", "parts": parts}]));
    let mut config = Map::new();
    config.insert("maxOutputTokens".into(), json!(out.max_output_tokens));
    if let Some(t) = out.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if out.structured {
        config.insert("responseMimeType".into(), json!("application/json"));
        config.insert("responseSchema".into(), gemini_schema());
    }
    body.insert("generationConfig".into(), Value::Object(config));
    Value::Object(body)
}

/// Reads a generateContent response.
pub(crate) fn parse(body: &Value) -> Result<Incoming, String> {
    let usage = body.get("usageMetadata").map(|u| Usage {
        input_tokens: count_field(u, "promptTokenCount").unwrap_or(0),
        output_tokens: count_field(u, "candidatesTokenCount").unwrap_or(0)
            + count_field(u, "thoughtsTokenCount").unwrap_or(0),
    });
    let model = non_empty(str_field(body, "modelVersion"));
    let candidate = body
        .get("candidates")
        .and_then(Value::as_array)
        .and_then(|c| c.first());
    let Some(candidate) = candidate else {
        // No candidate: the prompt was blocked.
        let reason = body
            .get("promptFeedback")
            .and_then(|f| str_field(f, "blockReason"))
            .ok_or("no candidates and no block reason in the response")?;
        return Ok(Incoming {
            refusal: Some(format!("prompt blocked: {reason}")),
            finish_reason: Some(reason),
            usage,
            model,
            ..Incoming::default()
        });
    };
    let text = candidate
        .get("content")
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter(|p| p.get("thought").and_then(Value::as_bool) != Some(true))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("")
        })
        .unwrap_or_default();
    let finish_reason = non_empty(str_field(candidate, "finishReason"));
    let refusal = match finish_reason.as_deref() {
        Some(r @ ("SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII")) => {
            Some(format!("answer blocked: {r}"))
        }
        _ => None,
    };
    Ok(Incoming {
        text,
        finish_reason,
        refusal,
        usage,
        model,
        structured: None,
    })
}
