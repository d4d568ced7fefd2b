//! Property tests for the providers' response readers: any JSON never
//! panics, and a response of the right shape is read whatever its leaf
//! values are (nulls, numbers for strings, strings for counts, nested junk),
//! with the answer text taken when it is text.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use som_lmm::Provider;

/// Any JSON value, with keys the readers look for among random ones.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        "[a-z0-9 ]{0,8}".prop_map(Value::from),
    ];
    let keys = prop_oneof![
        Just("choices".to_string()),
        Just("message".to_string()),
        Just("content".to_string()),
        Just("text".to_string()),
        Just("usage".to_string()),
        Just("candidates".to_string()),
        Just("parts".to_string()),
        Just("type".to_string()),
        Just("input".to_string()),
        "[a-z]{1,6}",
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever the body, reading it gives a reply or a one-line error.
    #[test]
    fn any_body_reads_without_panicking(body in any_json()) {
        for p in Provider::ALL {
            if let Err(message) = p.api().read(&body) {
                prop_assert!(!message.contains('\n'), "{}: {}", p, message);
            }
        }
    }

    /// The right shape with any leaf values is a reply, not an error.
    #[test]
    fn odd_leaf_values_never_fail_a_response(
        content in any_json(), finish in any_json(), usage in any_json(), model in any_json(), text in "[ -~]{0,20}",
    ) {
        let bodies = [
            (Provider::OpenAi, json!({"choices": [{"message": {"content": content, "refusal": finish}, "finish_reason": finish}], "usage": usage, "model": model})),
            (Provider::Anthropic, json!({"content": [{"type": "text", "text": content}, {"type": finish}], "stop_reason": finish, "usage": usage, "model": model})),
            (Provider::Gemini, json!({"candidates": [{"content": {"parts": [{"text": content, "thought": finish}]}, "finishReason": finish}], "usageMetadata": usage, "modelVersion": model})),
            (Provider::Ollama, json!({"message": {"content": content}, "done_reason": finish, "prompt_eval_count": usage, "eval_count": finish, "model": model})),
        ];
        for (p, body) in bodies {
            let reply = p.api().read(&body);
            prop_assert!(reply.is_ok(), "{}: {:?} for {}", p, reply, body);
        }
        // And the text is the text, wherever it is given as one.
        let cases = [
            (Provider::OpenAi, json!({"choices": [{"message": {"content": text}, "finish_reason": finish}], "usage": usage})),
            (Provider::Anthropic, json!({"content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "usage": usage})),
            (Provider::Gemini, json!({"candidates": [{"content": {"parts": [{"text": text}]}}], "usageMetadata": usage})),
            (Provider::Ollama, json!({"message": {"content": text}, "eval_count": usage})),
        ];
        for (p, body) in cases {
            let reply = p.api().read(&body).unwrap();
            prop_assert_eq!(&reply.text, &text, "{}", p);
        }
    }

    /// Token counts read as integers, floats (truncated) or numeric strings.
    #[test]
    fn counts_read_in_every_form(n in 0u64..1_000_000_000, form in 0..3usize) {
        let v = match form {
            0 => json!(n),
            1 => json!(n as f64 + 0.25),
            _ => json!(format!(" {n} ")),
        };
        let body = json!({"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": v, "completion_tokens": 2}});
        let usage = Provider::OpenAi.api().read(&body).unwrap().usage.unwrap();
        prop_assert_eq!((usage.input_tokens, usage.output_tokens), (n, 2));
    }
}
