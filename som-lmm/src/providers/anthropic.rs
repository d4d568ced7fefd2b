//! Anthropic Messages (`POST {base}/v1/messages`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use som_core::Usage;

use super::lenient::{optional, Count, Text};
use super::{answer_schema, ApiReply, ApiRequest, Header, Part, ProviderApi, ProviderInfo, ANSWER_NAME};
use crate::image::ImageLimits;
use crate::secret::ApiKey;

/// The API version header value this module speaks.
const VERSION: &str = "2023-06-01";

/// Anthropic Messages. Structured answers use a forced tool call, the
/// Messages API's way to get JSON that follows a schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AnthropicMessages;

impl AnthropicMessages {
    /// The API's name, endpoint, key variables and limits.
    pub const INFO: ProviderInfo = ProviderInfo {
        name: "anthropic",
        key_envs: &["ANTHROPIC_API_KEY"],
        default_base_url: "https://api.anthropic.com",
        default_model: "claude-sonnet-4-5",
        // Images beyond 1568 px on the long side or about 1.15 megapixels are
        // downscaled by the API; 5 MB per image.
        image_limits: ImageLimits {
            max_long_edge: 1568,
            max_short_edge: None,
            max_pixels: Some(1_150_000),
            max_bytes: 5 * 1024 * 1024,
        },
        structured_output: true,
    };
}

impl ProviderApi for AnthropicMessages {
    fn info(&self) -> &ProviderInfo {
        &Self::INFO
    }

    fn path(&self, _model: &str) -> String {
        "/v1/messages".into()
    }

    fn headers(&self, key: Option<&ApiKey>) -> Vec<Header> {
        let mut h: Vec<Header> = key
            .map(|k| Header::secret("x-api-key", k.expose()))
            .into_iter()
            .collect();
        h.push(Header::plain("anthropic-version", VERSION));
        h
    }

    fn body(&self, r: &ApiRequest<'_>) -> serde_json::Result<Vec<u8>> {
        let content = r
            .parts
            .iter()
            .map(|p| match p {
                Part::Text(text) => Block::Text { text },
                Part::Image(image) => Block::Image {
                    source: Source::Base64 {
                        media_type: image.mime,
                        data: &image.base64,
                    },
                },
            })
            .collect();
        serde_json::to_vec(&MessagesRequest {
            model: r.model,
            max_tokens: r.max_output_tokens,
            system: r.system,
            messages: [UserMessage {
                role: "user",
                content,
            }],
            temperature: r.temperature,
            tools: r.structured.then(|| {
                [Tool {
                    name: ANSWER_NAME,
                    description: "Report the answer and every mark it cites.",
                    input_schema: answer_schema(),
                }]
            }),
            tool_choice: r.structured.then_some(ToolChoice::Tool { name: ANSWER_NAME }),
        })
    }

    fn read(&self, body: &Value) -> Result<ApiReply, String> {
        let m = MessageResponse::deserialize(body).map_err(|e| e.to_string())?;
        let blocks = m.content.ok_or("no content in the response")?;
        let mut text = String::new();
        let mut structured = None;
        for b in blocks {
            match b.kind.0.as_deref() {
                Some("text") => text.push_str(&b.text.or_empty()),
                Some("tool_use") if structured.is_none() => structured = b.input,
                _ => {}
            }
        }
        let finish_reason = m.stop_reason.0;
        let refusal = (finish_reason.as_deref() == Some("refusal")).then(|| {
            if text.is_empty() {
                "refused".to_string()
            } else {
                text.clone()
            }
        });
        Ok(ApiReply {
            text,
            finish_reason,
            refusal,
            usage: m.usage.map(|u| Usage {
                input_tokens: u.input_tokens.or_zero(),
                output_tokens: u.output_tokens.or_zero(),
            }),
            model: m.model.0,
            structured,
        })
    }
}

// ---------------------------------------------------------------- request

#[derive(Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    messages: [UserMessage<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<[Tool; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoice>,
}

#[derive(Serialize)]
struct UserMessage<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Block<'a> {
    Text { text: &'a str },
    Image { source: Source<'a> },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Source<'a> {
    Base64 { media_type: &'static str, data: &'a str },
}

#[derive(Serialize)]
struct Tool {
    name: &'static str,
    description: &'static str,
    input_schema: Value,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ToolChoice {
    Tool { name: &'static str },
}

// ---------------------------------------------------------------- response

#[derive(Deserialize)]
struct MessageResponse {
    #[serde(default)]
    content: Option<Vec<ResponseBlock>>,
    #[serde(default)]
    stop_reason: Text,
    #[serde(default, deserialize_with = "optional")]
    usage: Option<MessageUsage>,
    #[serde(default)]
    model: Text,
}

#[derive(Deserialize)]
struct ResponseBlock {
    #[serde(default, rename = "type")]
    kind: Text,
    #[serde(default)]
    text: Text,
    #[serde(default)]
    input: Option<Value>,
}

#[derive(Deserialize)]
struct MessageUsage {
    #[serde(default)]
    input_tokens: Count,
    #[serde(default)]
    output_tokens: Count,
}
