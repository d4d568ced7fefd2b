//! Gemini generateContent (`POST {base}/models/{model}:generateContent`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use som_core::Usage;

use super::lenient::{null_default, optional, Count, Flag, Text};
use super::{ApiReply, ApiRequest, Header, Part, ProviderApi, ProviderInfo};
use crate::image::ImageLimits;
use crate::secret::ApiKey;

/// Gemini generateContent. Structured answers use `responseSchema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GeminiGenerate;

impl GeminiGenerate {
    /// The API's name, endpoint, key variables and limits (Google's own SDKs read `GOOGLE_API_KEY` too, so it is read second).
    pub const INFO: ProviderInfo = ProviderInfo {
        name: "gemini",
        key_envs: &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        default_base_url: "https://generativelanguage.googleapis.com/v1beta",
        default_model: "gemini-2.5-flash",
        // Images are scaled to fit 3072×3072; inline requests are limited to
        // 20 MB in total, so one image gets 15 MB.
        image_limits: ImageLimits {
            max_long_edge: 3072,
            max_short_edge: None,
            max_pixels: None,
            max_bytes: 15 * 1024 * 1024,
        },
        structured_output: true,
    };
}

/// The finish reasons that mean the answer was blocked.
const BLOCKED: [&str; 5] = ["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"];

impl ProviderApi for GeminiGenerate {
    fn info(&self) -> &ProviderInfo {
        &Self::INFO
    }

    /// `models/gemini-2.5-flash` and `gemini-2.5-flash` name the same model.
    fn path(&self, model: &str) -> String {
        format!("/models/{}:generateContent", model.trim_start_matches("models/"))
    }

    fn headers(&self, key: Option<&ApiKey>) -> Vec<Header> {
        key.map(|k| Header::secret("x-goog-api-key", k.expose()))
            .into_iter()
            .collect()
    }

    fn body(&self, r: &ApiRequest<'_>) -> serde_json::Result<Vec<u8>> {
        let parts = r
            .parts
            .iter()
            .map(|p| match p {
                Part::Text(text) => RequestPart::Text(text),
                Part::Image(image) => RequestPart::InlineData(InlineData {
                    mime_type: image.mime,
                    data: &image.base64,
                }),
            })
            .collect();
        serde_json::to_vec(&GenerateRequest {
            system_instruction: r.system.map(|text| SystemInstruction {
                parts: [TextOnly { text }],
            }),
            contents: [Content { role: "user", parts }],
            generation_config: GenerationConfig {
                max_output_tokens: r.max_output_tokens,
                temperature: r.temperature,
                response_mime_type: r.structured.then_some("application/json"),
                response_schema: r.structured.then(response_schema),
            },
        })
    }

    fn read(&self, body: &Value) -> Result<ApiReply, String> {
        let g = GenerateResponse::deserialize(body).map_err(|e| e.to_string())?;
        let usage = g.usage_metadata.map(|u| Usage {
            input_tokens: u.prompt_token_count.or_zero(),
            output_tokens: u
                .candidates_token_count
                .or_zero()
                .saturating_add(u.thoughts_token_count.or_zero()),
        });
        let model = g.model_version.0;
        let Some(candidate) = g.candidates.into_iter().next() else {
            // No candidate: the prompt was blocked.
            let reason = g
                .prompt_feedback
                .and_then(|f| f.block_reason.0)
                .ok_or("no candidates and no block reason in the response")?;
            return Ok(ApiReply {
                refusal: Some(format!("prompt blocked: {reason}")),
                finish_reason: Some(reason),
                usage,
                model,
                ..ApiReply::default()
            });
        };
        let text = candidate
            .content
            .map(|c| c.parts)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| !p.thought.0)
            .filter_map(|p| p.text.0)
            .collect();
        let finish_reason = candidate.finish_reason.0;
        let refusal = finish_reason
            .as_deref()
            .filter(|r| BLOCKED.contains(r))
            .map(|r| format!("answer blocked: {r}"));
        Ok(ApiReply {
            text,
            finish_reason,
            refusal,
            usage,
            model,
            structured: None,
        })
    }
}

/// The answer schema in Gemini's OpenAPI-subset form (`responseSchema`).
fn response_schema() -> Value {
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

// ---------------------------------------------------------------- request

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<SystemInstruction<'a>>,
    contents: [Content<'a>; 1],
    generation_config: GenerationConfig,
}

#[derive(Serialize)]
struct SystemInstruction<'a> {
    parts: [TextOnly<'a>; 1],
}

#[derive(Serialize)]
struct TextOnly<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct Content<'a> {
    role: &'static str,
    parts: Vec<RequestPart<'a>>,
}

/// `{"text": …}` or `{"inlineData": {…}}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum RequestPart<'a> {
    Text(&'a str),
    InlineData(InlineData<'a>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InlineData<'a> {
    mime_type: &'static str,
    data: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    max_output_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_schema: Option<Value>,
}

// ---------------------------------------------------------------- response

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateResponse {
    #[serde(default, deserialize_with = "null_default")]
    candidates: Vec<Candidate>,
    #[serde(default, deserialize_with = "optional")]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default, deserialize_with = "optional")]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    model_version: Text,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default, deserialize_with = "optional")]
    content: Option<CandidateContent>,
    #[serde(default)]
    finish_reason: Text,
}

#[derive(Deserialize)]
struct CandidateContent {
    #[serde(default, deserialize_with = "null_default")]
    parts: Vec<ResponsePart>,
}

#[derive(Deserialize)]
struct ResponsePart {
    #[serde(default)]
    text: Text,
    #[serde(default)]
    thought: Flag,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Text,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: Count,
    #[serde(default)]
    candidates_token_count: Count,
    #[serde(default)]
    thoughts_token_count: Count,
}
