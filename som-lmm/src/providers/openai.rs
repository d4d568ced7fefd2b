//! OpenAI Chat Completions (`POST {base}/chat/completions`), also spoken by
//! vLLM, Ollama's `/v1`, LM Studio and Azure OpenAI deployments.
//!
//! Bodies follow `CreateChatCompletionRequest` of the OpenAI OpenAPI
//! specification (the tests validate every shape against it).

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use som_core::Usage;

use super::lenient::{null_default, optional, Count, Text};
use super::{answer_schema, ApiReply, ApiRequest, Header, Part, ProviderApi, ProviderInfo, ANSWER_NAME};
use crate::image::{EncodedImage, ImageLimits};
use crate::secret::ApiKey;

/// The public endpoint.
const BASE_URL: &str = "https://api.openai.com/v1";

/// How an OpenAI-compatible server takes its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpenAiAuth {
    /// `Authorization: Bearer KEY` (OpenAI, vLLM, LM Studio…).
    #[default]
    Bearer,
    /// `api-key: KEY` (Azure OpenAI).
    ApiKeyHeader,
}

/// Which field carries the output token limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxTokensField {
    /// `max_completion_tokens` against api.openai.com, `max_tokens` against
    /// any other base URL (older compatible servers only read that).
    #[default]
    Auto,
    /// Always `max_completion_tokens` (OpenAI's current name; required by
    /// reasoning models).
    MaxCompletionTokens,
    /// Always `max_tokens` (deprecated by OpenAI, read by every compatible server).
    MaxTokens,
}

/// The resolution OpenAI looks at an image with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageDetail {
    /// The model decides.
    Auto,
    /// A 512×512 overview.
    Low,
    /// The full image in 512 px tiles (what small marks need).
    #[default]
    High,
}

/// OpenAI Chat Completions, with the options compatible servers differ in.
///
/// ```
/// use som_lmm::providers::{ImageDetail, MaxTokensField, OpenAiChat};
/// // A local server that only reads `max_tokens`, looked at in low detail.
/// let api = OpenAiChat { max_tokens: MaxTokensField::MaxTokens, detail: ImageDetail::Low, ..OpenAiChat::default() };
/// let config = som_lmm::ClientConfig::for_api(std::sync::Arc::new(api), "Qwen/Qwen2.5-VL-7B-Instruct");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenAiChat {
    /// How the key is sent.
    pub auth: OpenAiAuth,
    /// The output token limit field.
    pub max_tokens: MaxTokensField,
    /// The image detail.
    pub detail: ImageDetail,
}

impl OpenAiChat {
    /// The API's name, endpoint, key variables and limits.
    pub const INFO: ProviderInfo = ProviderInfo {
        name: "openai",
        key_envs: &["OPENAI_API_KEY"],
        default_base_url: BASE_URL,
        default_model: "gpt-4.1",
        // OpenAI vision (`detail: high`): the model sees the image fitted in
        // 2048×2048 with its short side at most 768; 20 MB per image.
        image_limits: ImageLimits {
            max_long_edge: 2048,
            max_short_edge: Some(768),
            max_pixels: None,
            max_bytes: 20 * 1024 * 1024,
        },
        structured_output: true,
    };

    /// Azure OpenAI: the key in an `api-key` header, `max_completion_tokens`.
    pub const AZURE: OpenAiChat = OpenAiChat {
        auth: OpenAiAuth::ApiKeyHeader,
        max_tokens: MaxTokensField::MaxCompletionTokens,
        detail: ImageDetail::High,
    };
}

impl ProviderApi for OpenAiChat {
    fn info(&self) -> &ProviderInfo {
        &Self::INFO
    }

    fn path(&self, _model: &str) -> String {
        "/chat/completions".into()
    }

    fn headers(&self, key: Option<&ApiKey>) -> Vec<Header> {
        let Some(key) = key else {
            return Vec::new();
        };
        vec![match self.auth {
            OpenAiAuth::Bearer => Header::secret("authorization", format!("Bearer {}", key.expose())),
            OpenAiAuth::ApiKeyHeader => Header::secret("api-key", key.expose()),
        }]
    }

    fn body(&self, r: &ApiRequest<'_>) -> serde_json::Result<Vec<u8>> {
        let mut messages = Vec::with_capacity(2);
        if let Some(content) = r.system {
            messages.push(Message::System { content });
        }
        let content = r
            .parts
            .iter()
            .map(|p| match p {
                Part::Text(text) => ContentPart::Text { text },
                Part::Image(image) => ContentPart::ImageUrl {
                    image_url: ImageUrl {
                        url: DataUrl(image),
                        detail: self.detail,
                    },
                },
            })
            .collect();
        messages.push(Message::User { content });
        let completion_field = match self.max_tokens {
            MaxTokensField::MaxCompletionTokens => true,
            MaxTokensField::MaxTokens => false,
            MaxTokensField::Auto => r.base_url == BASE_URL,
        };
        let limit = Some(r.max_output_tokens);
        serde_json::to_vec(&ChatRequest {
            model: r.model,
            messages,
            max_completion_tokens: limit.filter(|_| completion_field),
            max_tokens: limit.filter(|_| !completion_field),
            temperature: r.temperature,
            response_format: r.structured.then(|| ResponseFormat::JsonSchema {
                json_schema: JsonSchema {
                    name: ANSWER_NAME,
                    strict: true,
                    schema: answer_schema(),
                },
            }),
        })
    }

    fn read(&self, body: &Value) -> Result<ApiReply, String> {
        let c = ChatCompletion::deserialize(body).map_err(|e| e.to_string())?;
        let choice = c.choices.into_iter().next().ok_or("no choices in the response")?;
        let message = choice.message.ok_or("the first choice has no message")?;
        Ok(ApiReply {
            text: message.content.text(),
            finish_reason: choice.finish_reason.0,
            refusal: message.refusal.0,
            usage: c.usage.map(|u| Usage {
                input_tokens: u.prompt_tokens.or_zero(),
                output_tokens: u.completion_tokens.or_zero(),
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
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<ResponseFormat>,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum Message<'a> {
    System { content: &'a str },
    User { content: Vec<ContentPart<'a>> },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentPart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: ImageUrl<'a> },
}

#[derive(Serialize)]
struct ImageUrl<'a> {
    url: DataUrl<'a>,
    detail: ImageDetail,
}

/// An image as a `data:` URL, written straight into the body (no copy of
/// the base64 text).
struct DataUrl<'a>(&'a EncodedImage);

impl Serialize for DataUrl<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("data:{};base64,{}", self.0.mime, self.0.base64))
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseFormat {
    JsonSchema { json_schema: JsonSchema },
}

#[derive(Serialize)]
struct JsonSchema {
    name: &'static str,
    strict: bool,
    schema: Value,
}

// ---------------------------------------------------------------- response

#[derive(Deserialize)]
struct ChatCompletion {
    #[serde(default, deserialize_with = "null_default")]
    choices: Vec<Choice>,
    #[serde(default, deserialize_with = "optional")]
    usage: Option<ChatUsage>,
    #[serde(default)]
    model: Text,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<ChoiceMessage>,
    #[serde(default)]
    finish_reason: Text,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Content,
    #[serde(default)]
    refusal: Text,
}

/// Message content: a string, or (some compatible servers) a list of parts;
/// `null` (a refusal) or anything else reads as no text.
#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<TextPart>),
    Other(IgnoredAny),
}

impl Default for Content {
    fn default() -> Self {
        Content::Other(IgnoredAny)
    }
}

#[derive(Deserialize)]
struct TextPart {
    #[serde(default)]
    text: Text,
}

impl Content {
    fn text(self) -> String {
        match self {
            Content::Text(s) => s,
            Content::Parts(parts) => parts.into_iter().filter_map(|p| p.text.0).collect(),
            Content::Other(_) => String::new(),
        }
    }
}

#[derive(Deserialize)]
struct ChatUsage {
    #[serde(default)]
    prompt_tokens: Count,
    #[serde(default)]
    completion_tokens: Count,
}
