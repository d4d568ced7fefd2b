//! Request bodies and response readers, one module per provider API.
//!
//! Each module turns an [`Outgoing`] message into the provider's JSON body
//! (exact in what it sends) and reads the provider's response into a
//! [`Incoming`] (lenient in what it accepts: missing fields, `null`s, empty
//! strings and unknown enum values do not fail).

pub(crate) mod anthropic;
pub(crate) mod gemini;
pub(crate) mod ollama;
pub(crate) mod openai;

use serde_json::{json, Value};
use som_core::Usage;

use crate::image::EncodedImage;

/// One part of the user message.
#[derive(Debug, Clone)]
pub(crate) enum Part {
    Text(String),
    Image(EncodedImage),
}

/// What to send, provider-neutral.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub system: Option<String>,
    pub parts: Vec<Part>,
    pub max_output_tokens: u32,
    pub temperature: Option<f32>,
    /// Ask for the structured answer schema.
    pub structured: bool,
}

/// What came back, provider-neutral.
#[derive(Debug, Clone, Default)]
pub(crate) struct Incoming {
    pub text: String,
    pub finish_reason: Option<String>,
    pub refusal: Option<String>,
    pub usage: Option<Usage>,
    pub model: Option<String>,
    /// A structured answer (`{"answer", "marks"}`) given as JSON rather than text.
    pub structured: Option<Value>,
}

/// The name of the structured answer (OpenAI's schema name, Anthropic's tool).
pub(crate) const ANSWER_NAME: &str = "som_answer";

/// The JSON schema of a structured answer: the text and the marks it cites.
pub(crate) fn answer_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "answer": {"type": "string", "description": "The answer, citing marks in square brackets like [3]."},
            "marks": {
                "type": "array",
                "description": "Every mark the answer cites, as printed on the image.",
                "items": {"type": "string"}
            }
        },
        "required": ["answer", "marks"],
        "additionalProperties": false
    })
}

/// A string field, if present and a string.
pub(crate) fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// A token count that may come as an integer, a float or a string.
pub(crate) fn count_field(v: &Value, key: &str) -> Option<u64> {
    match v.get(key)? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Non-empty string, else `None`.
pub(crate) fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}
