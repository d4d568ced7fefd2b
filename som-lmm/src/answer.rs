//! From a provider's reply to a [`GroundingAnswer`]: the answer text (the
//! `answer` field of a structured reply, without a reasoning model's
//! `<think>` block) and the marks it cites, resolved against the image.

use serde_json::Value;
use som_core::{GroundingAnswer, MarkedImage};

use crate::parse::{extract_labels, resolve, LabelKinds};
use crate::providers::ApiReply;

/// Turns a provider's reply into an answer: the text (the `answer` field of a
/// structured reply), and the marks it cites resolved against `marked`.
pub(crate) fn interpret(mut reply: ApiReply, marked: &MarkedImage) -> GroundingAnswer {
    let kinds = LabelKinds::of(marked);
    reply.text = strip_thinking(&reply.text).to_string();
    let structured = reply.structured.take().or_else(|| {
        serde_json::from_str::<Value>(strip_fence(&reply.text))
            .ok()
            .filter(|v| v.get("answer").is_some_and(Value::is_string))
    });
    // The structured answer's text, and its marks wherever it lists them
    // (`marks`, or citations inside `answer`); else the plain text's.
    let text = structured
        .as_ref()
        .and_then(|v| v.get("answer"))
        .and_then(Value::as_str)
        .map_or(reply.text, str::to_string);
    let mut tokens = structured.map_or_else(Vec::new, |v| extract_labels(&v.to_string(), kinds));
    if tokens.is_empty() {
        tokens = extract_labels(&text, kinds);
    }
    let parsed = resolve(&tokens, marked);
    let mut answer = GroundingAnswer::new(text);
    answer.unknown = parsed.unknown_labels();
    answer.marks = parsed.marks;
    answer.usage = reply.usage;
    answer.finish_reason = reply.finish_reason;
    answer.refusal = reply.refusal;
    answer.model = reply.model;
    answer
}

/// The answer after a reasoning model's `<think>…</think>` block (local
/// models on vLLM and Ollama inline it), so marks cited while thinking are
/// not read as the answer. An unterminated block (cut off at the token
/// limit) leaves nothing.
fn strip_thinking(text: &str) -> &str {
    if let Some(end) = text.rfind("</think>") {
        return text[end + "</think>".len()..].trim_start();
    }
    if text.trim_start().starts_with("<think>") {
        return "";
    }
    text
}

/// The text inside a Markdown code fence (```` ```json … ``` ````), or the text.
fn strip_fence(s: &str) -> &str {
    let t = s.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinking_blocks_are_not_the_answer() {
        assert_eq!(
            strip_thinking("<think>maybe [1]? no, [2]</think>\n\nThe cup is [2]."),
            "The cup is [2]."
        );
        assert_eq!(strip_thinking("  <think>still thinking about [1]"), "");
        assert_eq!(strip_thinking("The cup is [3]."), "The cup is [3].");
    }

    #[test]
    fn fences_are_stripped() {
        assert_eq!(strip_fence("```json\n{\"a\": 1}\n```"), "{\"a\": 1}");
        assert_eq!(strip_fence(" ```\n{}\n``` "), "{}");
        assert_eq!(strip_fence("{\"a\": 1}"), "{\"a\": 1}");
    }
}
