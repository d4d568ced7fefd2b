//! `som ask` end to end against a loopback OpenAI-compatible mock server:
//! image → marks → request → answer → resolved regions in the JSON.

mod common;

use std::process::{Command, Output};

use common::{clean_provider_env, fixture, s, tmp};

use base64::Engine as _;
use serde_json::{json, Value};
use som_lmm::mock::{MockResponse, MockServer};

const KEY: &str = "sk-cli-test-SECRET-42";

/// Runs `som` with a clean provider environment plus `env`.
fn som(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_som"));
    cmd.args(args);
    clean_provider_env(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run som")
}

fn chat(content: &str) -> Value {
    json!({
        "id": "chatcmpl-cli", "object": "chat.completion", "created": 1, "model": "mock-vl-1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1234, "completion_tokens": 17, "total_tokens": 1251}
    })
}

fn fixture_regions() -> Vec<Value> {
    let text = std::fs::read_to_string(fixture("masks/felz_coffee.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["regions"].as_array().unwrap().clone()
}

#[test]
fn ask_marks_sends_and_resolves_regions() {
    let structured =
        json!({"answer": "The cup is [1]; the saucer is [2]. Also [999].", "marks": ["1", "2", "999"]});
    let server = MockServer::start(vec![MockResponse::json(200, &chat(&structured.to_string()))]).unwrap();
    let dir = tmp("e2e");
    let marked_png = dir.join("marked.png");
    let answer_json = dir.join("answer.json");
    let out = som(
        &[
            "ask",
            s(&fixture("images/coffee.png")),
            "Which marks are the cup and the saucer?",
            "--provider",
            "openai",
            "--model",
            "mock-vl",
            "--base-url",
            &format!("{}/v1", server.url()),
            "--regions",
            s(&fixture("masks/felz_coffee.json")),
            "--json",
            s(&answer_json),
            "-o",
            s(&marked_png),
        ],
        &[("OPENAI_API_KEY", KEY)],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}\nstdout: {stdout}");
    assert!(!stdout.contains(KEY) && !stderr.contains(KEY));

    // The request: one POST with the key, the marked image and the prompt.
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.header("authorization"), Some(format!("Bearer {KEY}").as_str()));
    let body = r.json().unwrap();
    assert_eq!(body["model"], "mock-vl");
    assert_eq!(body["messages"][0]["role"], "system");
    let content = body["messages"][1]["content"].as_array().unwrap();
    let url = content[0]["image_url"]["url"].as_str().unwrap();
    let png = base64::engine::general_purpose::STANDARD
        .decode(url.strip_prefix("data:image/png;base64,").unwrap())
        .unwrap();
    let sent = image::load_from_memory(&png).unwrap().to_rgb8();
    // The model saw exactly the marked image that was written (600×400 needs no resizing).
    let written = image::open(&marked_png).unwrap().to_rgb8();
    assert_eq!(sent.dimensions(), (600, 400));
    assert!(
        sent == written,
        "the uploaded image differs from the marked image"
    );
    let original = image::open(fixture("images/coffee.png")).unwrap().to_rgb8();
    assert!(sent != original, "the uploaded image carries no marks");
    let prompt = content[1]["text"].as_str().unwrap();
    assert!(
        prompt.starts_with("Which marks are the cup and the saucer?"),
        "{prompt}"
    );

    // The answer: printed with its regions, and written as JSON.
    assert!(stdout.contains("The cup is [1]; the saucer is [2]."), "{stdout}");
    assert!(
        stdout.contains("unknown marks (not on the image): 999"),
        "{stdout}"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&answer_json).unwrap()).unwrap();
    assert_eq!(doc["provider"], "openai");
    assert_eq!(doc["model"], "mock-vl");
    assert_eq!(doc["answered_by"], "mock-vl-1");
    assert_eq!(doc["text"], "The cup is [1]; the saucer is [2]. Also [999].");
    assert_eq!(doc["finish_reason"], "stop");
    assert_eq!(
        doc["image"],
        json!({"width": 600, "height": 400, "file_name": "coffee.png"})
    );
    assert_eq!(doc["sent_size"], json!([600, 400]));
    assert_eq!(doc["unknown"], json!(["999"]));
    assert_eq!(
        doc["usage"],
        json!({"input_tokens": 1234, "output_tokens": 17, "total_tokens": 1251})
    );
    let marks = doc["marks"].as_array().unwrap();
    assert_eq!(marks.len(), 2);

    // Marks 1 and 2 are the two largest regions (marks number regions largest
    // first), carried with their input masks unchanged.
    let mut regions = fixture_regions();
    regions.sort_by(|a, b| {
        b["area"]
            .as_u64()
            .cmp(&a["area"].as_u64())
            .then(a["id"].as_u64().cmp(&b["id"].as_u64()))
    });
    for (mark, expected) in marks.iter().zip(&regions) {
        let region = &mark["region"];
        assert_eq!(region["id"], expected["id"], "mark {}", mark["text"]);
        assert_eq!(
            region["segmentation"]["counts"],
            expected["segmentation"]["counts"]
        );
        assert_eq!(region["bbox"], expected["bbox"]);
        // The anchor lies inside the region's box.
        let b: Vec<u64> = region["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let (x, y) = (mark["x"].as_u64().unwrap(), mark["y"].as_u64().unwrap());
        assert!(x >= b[0] && x < b[0] + b[2] && y >= b[1] && y < b[1] + b[3]);
    }
    assert_eq!(marks[0]["text"], "1");
    assert_eq!(marks[1]["text"], "2");
}

#[test]
fn ask_with_a_raw_prompt_and_letters_parses_plain_text() {
    let server = MockServer::start(vec![MockResponse::json(200, &chat("I would click (b)."))]).unwrap();
    let dir = tmp("raw");
    let answer_json = dir.join("answer.json");
    let out = som(
        &[
            "ask",
            s(&fixture("images/coffee.png")),
            "Open the cup.",
            "--task",
            "raw",
            "--labels",
            "letter",
            "--no-structured",
            "--timings",
            "--base-url",
            &server.url(),
            "--regions",
            s(&fixture("masks/felz_coffee.json")),
            "--json",
            s(&answer_json),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    let stages: Vec<String> = stderr
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("a timing line")["stage"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(stages, ["decode", "segment", "allocate", "render", "ask"]);
    let body = server.requests()[0].json().unwrap();
    assert_eq!(
        body["messages"][0]["role"], "user",
        "raw prompts have no system message"
    );
    assert_eq!(body["messages"][0]["content"][1]["text"], "Open the cup.");
    assert!(body.get("response_format").is_none());
    assert!(
        server.requests()[0].header("authorization").is_none(),
        "no key, none sent"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&answer_json).unwrap()).unwrap();
    assert_eq!(doc["marks"][0]["text"], "b");
    assert!(doc["usage"].is_object());
}

#[test]
fn ask_without_a_key_says_which_variable_to_set() {
    let out = som(
        &[
            "ask",
            s(&fixture("images/coffee.png")),
            "q",
            "--regions",
            s(&fixture("masks/felz_coffee.json")),
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
    assert!(
        err.starts_with("som: error: no API key for openai: set OPENAI_API_KEY"),
        "{err}"
    );

    let out = som(&["ask", "x.png", "q", "--provider", "anthropic"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ANTHROPIC_API_KEY"), "{err}");
    let out = som(&["ask", "x.png", "q", "--provider", "gemini"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("GEMINI_API_KEY"), "{err}");
}

#[test]
fn ask_reports_provider_errors_on_one_line() {
    let server = MockServer::start(vec![MockResponse::json(
        429,
        &json!({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}}),
    )
    .header("x-request-id", "req_cli")])
    .unwrap();
    let out = som(
        &[
            "ask",
            s(&fixture("images/coffee.png")),
            "q",
            "--base-url",
            &server.url(),
            "--regions",
            s(&fixture("masks/felz_coffee.json")),
        ],
        &[("OPENAI_API_KEY", KEY)],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
    assert!(err.contains("http 429 (insufficient_quota)"), "{err}");
    assert!(err.contains("req_cli"), "{err}");
    assert!(!err.contains(KEY));
    assert_eq!(server.hits(), 1, "quota errors are not retried");
}

#[test]
fn ask_rejects_bad_options_before_any_work() {
    // Exit status 1 for options the command checks, 2 for values the parser refuses.
    for (args, needle, status) in [
        (vec!["--timeout", "0"], "--timeout", 1),
        (vec!["--temperature", "9"], "--temperature", 1),
        (vec!["--phrase", "a cup"], "--phrase", 1),
        (
            vec!["--task", "label", "--base-url", "http://127.0.0.1:9"],
            "vocabulary",
            1,
        ),
        (
            vec!["--draw", "sparkles", "--base-url", "http://127.0.0.1:9"],
            "--draw",
            2,
        ),
        (
            vec!["--alpha", "1.5", "--base-url", "http://127.0.0.1:9"],
            "--alpha",
            2,
        ),
    ] {
        let mut all = vec!["ask", "missing.png", " "];
        all.extend(args);
        let out = som(&all, &[("OPENAI_API_KEY", KEY)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(status), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
        assert!(err.contains(needle), "{err} should mention {needle}");
    }
}

#[test]
fn ask_speaks_every_provider() {
    let cases = [
        (
            "anthropic",
            "/v1/messages",
            json!({"type": "message", "model": "m", "content": [{"type": "text", "text": "It is [3]."}],
                   "stop_reason": "end_turn", "usage": {"input_tokens": 5, "output_tokens": 2}}),
        ),
        (
            "gemini",
            "/models/m:generateContent",
            json!({"candidates": [{"content": {"parts": [{"text": "It is [3]."}]}, "finishReason": "STOP"}],
                   "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2}}),
        ),
        (
            "ollama",
            "/api/chat",
            json!({"model": "m", "message": {"role": "assistant", "content": "It is [3]."}, "done": true,
                   "done_reason": "stop", "prompt_eval_count": 5, "eval_count": 2}),
        ),
    ];
    for (provider, path, reply) in cases {
        let server = MockServer::start(vec![MockResponse::json(200, &reply)]).unwrap();
        let dir = tmp(provider);
        let answer_json = dir.join("answer.json");
        let out = som(
            &[
                "ask",
                s(&fixture("images/coffee.png")),
                "Which mark is the cup?",
                "--provider",
                provider,
                "--model",
                "m",
                "--base-url",
                &server.url(),
                "--regions",
                s(&fixture("masks/felz_coffee.json")),
                "--json",
                s(&answer_json),
            ],
            &[],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{provider}: {stderr}");
        assert_eq!(server.requests()[0].path, path, "{provider}");
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&answer_json).unwrap()).unwrap();
        assert_eq!(doc["provider"], provider);
        assert_eq!(doc["marks"][0]["id"], 3, "{provider}");
        assert_eq!(doc["usage"]["total_tokens"], 7, "{provider}");
    }
}

/// `som serve`'s `/api/ask` answers what `som ask --json` writes, and the key
/// (taken from the environment at start) reaches the provider but no
/// response, page or log line — not even when the provider echoes it back.
#[test]
fn serve_asks_like_som_ask_and_never_shows_the_key() {
    use common::server::{client, form, Server};

    let structured = json!({"answer": "The cup is [1]; the saucer is [2].", "marks": ["1", "2"]});
    let echo = format!("Incorrect API key provided: {KEY}.");
    let mock = MockServer::start(vec![
        // `som ask`, then `/api/ask`: the same answer.
        MockResponse::json(200, &chat(&structured.to_string())),
        MockResponse::json(200, &chat(&structured.to_string())),
        // Then a provider that echoes the key in its error body and headers.
        MockResponse::json(
            401,
            &json!({"error": {"message": echo, "type": "invalid_request_error"}}),
        )
        .header("x-echo", KEY),
    ])
    .unwrap();
    let base_url = format!("{}/v1", mock.url());
    let prompt = "Which marks are the cup and the saucer?";
    let provider = [
        "--provider",
        "openai",
        "--model",
        "mock-vl",
        "--base-url",
        &base_url,
    ];

    let dir = tmp("serve-ask");
    let answer_json = dir.join("answer.json");
    let image = fixture("images/coffee.png");
    let mut args = vec!["ask", s(&image), prompt, "--json", s(&answer_json)];
    args.extend(provider);
    let out = som(&args, &[("OPENAI_API_KEY", KEY)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let want = std::fs::read_to_string(&answer_json).unwrap();

    let server = Server::start(&provider, &[("OPENAI_API_KEY", KEY)]);
    let http = client();
    let coffee = std::fs::read(&image).unwrap();
    let mut seen = Vec::new(); // every response: status, headers and body
    let mut record = |r: reqwest::blocking::Response| -> (u16, String) {
        let status = r.status().as_u16();
        let headers = format!("{:?}", r.headers());
        let body = r.text().unwrap();
        seen.push(format!("{status} {headers} {body}"));
        (status, body)
    };

    let (status, got) = record(
        http.post(format!("{}/api/ask", server.url))
            .multipart(form(&coffee, "coffee.png", &[("prompt", prompt)]))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{got}");
    assert!(
        got == want,
        "/api/ask differs from som ask --json:\n{got}\n---\n{want}"
    );
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[1].header("authorization"),
        Some(format!("Bearer {KEY}").as_str()),
        "the server sends the key to the provider"
    );

    // The provider refuses and echoes the key: a 502 that names the provider's error, without the key.
    let (status, body) = record(
        http.post(format!("{}/api/ask", server.url))
            .multipart(form(&coffee, "coffee.png", &[("prompt", prompt)]))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 502, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    let message = error["error"].as_str().unwrap();
    assert!(message.contains("http 401"), "{message}");
    assert!(message.contains("Incorrect API key provided"), "{message}");

    for path in ["/", "/app.js", "/api/health"] {
        let (status, _) = record(http.get(format!("{}{path}", server.url)).send().unwrap());
        assert_eq!(status, 200, "{path}");
    }
    for response in &seen {
        assert!(!response.contains(KEY), "a response shows the key: {response}");
    }
    let log = server.log_with(&["POST /api/ask 502", "GET /api/health 200"]);
    assert!(log.contains("POST /api/ask 502"), "{log}");
    assert!(!log.contains(KEY), "the log shows the key: {log}");
}

#[test]
fn ask_takes_every_mark_style_option_of_mark() {
    // The same style flags through `som mark` and `som ask` give the same marked image
    // and the same marks (ask's JSON holds the marks the answer names: all of them here).
    let style = [
        "--labels",
        "letter",
        "--zero-based",
        "--draw",
        "mark,contour,box",
        "--alpha",
        "0.3",
        "--font-size",
        "15",
        "--allocation",
        "independent",
    ];
    let (photo, regions) = (fixture("images/coffee.png"), fixture("masks/felz_coffee.json"));
    let n = fixture_regions().len();
    let texts: Vec<String> = (0..n).map(|i| letters(i + 1)).collect();
    let reply = json!({"answer": "all of them", "marks": texts});
    let server = MockServer::start(vec![MockResponse::json(200, &chat(&reply.to_string()))]).unwrap();
    let dir = tmp("style");
    let (ask_png, ask_json) = (dir.join("ask.png"), dir.join("ask.json"));
    let base_url = format!("{}/v1", server.url());
    let mut args = vec![
        "ask",
        s(&photo),
        "Name them all.",
        "--base-url",
        &base_url,
        "--regions",
        s(&regions),
        "-o",
        s(&ask_png),
        "--json",
        s(&ask_json),
    ];
    args.extend(style);
    let out = som(&args, &[("OPENAI_API_KEY", KEY)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let (mark_png, mark_json) = (dir.join("mark.png"), dir.join("mark.json"));
    let mut args = vec![
        "mark",
        s(&photo),
        "--regions",
        s(&regions),
        "-o",
        s(&mark_png),
        "--json",
        s(&mark_json),
    ];
    args.extend(style);
    let out = som(&args, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let a = image::open(&ask_png).unwrap().to_rgb8();
    let m = image::open(&mark_png).unwrap().to_rgb8();
    assert!(
        a == m,
        "som ask and som mark drew different images for the same style"
    );
    let ask: Value = serde_json::from_str(&std::fs::read_to_string(&ask_json).unwrap()).unwrap();
    let mark: Value = serde_json::from_str(&std::fs::read_to_string(&mark_json).unwrap()).unwrap();
    assert_eq!(ask["marks"], mark["marks"]);
    assert_eq!(mark["marks"][0]["text"], "a");
}

/// Bijective base 26: 1 → a, 27 → aa.
fn letters(mut n: usize) -> String {
    let mut out = Vec::new();
    while n > 0 {
        n -= 1;
        out.push(b'a' + (n % 26) as u8);
        n /= 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap()
}
