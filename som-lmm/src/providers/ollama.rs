//! Ollama's native chat API (`POST {base}/api/chat`, `stream: false`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use som_core::Usage;

use super::lenient::{Count, Text};
use super::{answer_schema, ApiReply, ApiRequest, Header, Part, ProviderApi, ProviderInfo};
use crate::image::ImageLimits;
use crate::secret::ApiKey;

/// Ollama's native chat API. A message takes its images as a list of
/// base64 strings beside its text, so text parts are joined with blank
/// lines and images keep their order. Structured answers use `format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OllamaChat;

impl OllamaChat {
    /// The API's name, endpoint, key variables and limits: no key needed.
    pub const INFO: ProviderInfo = ProviderInfo {
        name: "ollama",
        key_envs: &[],
        default_base_url: "http://localhost:11434",
        default_model: "qwen2.5vl",
        // Local vision models (Qwen-VL, LLaVA…): a modest default that keeps
        // local inference fast.
        image_limits: ImageLimits {
            max_long_edge: 1536,
            max_short_edge: None,
            max_pixels: None,
            max_bytes: 20 * 1024 * 1024,
        },
        structured_output: true,
    };
}

impl ProviderApi for OllamaChat {
    fn info(&self) -> &ProviderInfo {
        &Self::INFO
    }

    fn path(&self, _model: &str) -> String {
        "/api/chat".into()
    }

    /// A key, when one is set, goes as a bearer token (Ollama behind a proxy).
    fn headers(&self, key: Option<&ApiKey>) -> Vec<Header> {
        key.map(|k| Header::secret("authorization", format!("Bearer {}", k.expose())))
            .into_iter()
            .collect()
    }

    fn body(&self, r: &ApiRequest<'_>) -> serde_json::Result<Vec<u8>> {
        let mut messages = Vec::with_capacity(2);
        if let Some(content) = r.system {
            messages.push(Message::System { content });
        }
        let mut texts = Vec::new();
        let mut images = Vec::new();
        for p in r.parts {
            match p {
                Part::Text(t) => texts.push(t.as_str()),
                Part::Image(image) => images.push(image.base64.as_str()),
            }
        }
        messages.push(Message::User {
            content: texts.join("\n\n"),
            images,
        });
        serde_json::to_vec(&ChatRequest {
            model: r.model,
            messages,
            stream: false,
            format: r.structured.then(answer_schema),
            options: Options {
                num_predict: r.max_output_tokens,
                temperature: r.temperature,
            },
        })
    }

    fn read(&self, body: &Value) -> Result<ApiReply, String> {
        let c = ChatResponse::deserialize(body).map_err(|e| e.to_string())?;
        let message = c.message.ok_or("no message in the response")?;
        let (input, output) = (c.prompt_eval_count.0, c.eval_count.0);
        Ok(ApiReply {
            text: message.content.or_empty(),
            finish_reason: c.done_reason.0,
            refusal: None,
            usage: (input.is_some() || output.is_some()).then(|| Usage {
                input_tokens: input.unwrap_or(0),
                output_tokens: output.unwrap_or(0),
            }),
            model: c.model.0,
            structured: None,
        })
    }
}

// ---------------------------------------------------------------- request

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<Message<'a>>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<Value>,
    options: Options,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum Message<'a> {
    System { content: &'a str },
    User { content: String, images: Vec<&'a str> },
}

#[derive(Serialize)]
struct Options {
    num_predict: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
}

// ---------------------------------------------------------------- response

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    message: Option<ResponseMessage>,
    #[serde(default)]
    done_reason: Text,
    #[serde(default)]
    prompt_eval_count: Count,
    #[serde(default)]
    eval_count: Count,
    #[serde(default)]
    model: Text,
}

#[derive(Deserialize)]
struct ResponseMessage {
    #[serde(default)]
    content: Text,
}
