//! `som eval` end to end: a run against the loopback OpenAI-compatible mock
//! server prints the table and `som eval report` gives the same table with no
//! server; a run killed with SIGKILL resumes with every item once; offline
//! scoring; dry runs; one-line errors.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{assert_fails, clean_provider_env, fixture, s, tmp};
use serde_json::{json, Value};
use som_lmm::mock::{MockResponse, MockServer};

const KEY: &str = "sk-eval-test-SECRET-7";

fn som_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_som"));
    clean_provider_env(cmd.args(args)).env("OPENAI_API_KEY", KEY);
    cmd
}

fn som(args: &[&str]) -> Output {
    som_cmd(args).output().expect("run som")
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}\nstdout: {stdout}");
    assert!(!stdout.contains(KEY) && !stderr.contains(KEY), "the key leaked");
    stdout
}

fn chat(content: &str) -> Value {
    json!({
        "id": "chatcmpl-eval", "object": "chat.completion", "created": 1, "model": "mock-vl-1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 10, "total_tokens": 1010}
    })
}

fn run_args<'a>(server: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "eval",
        "run",
        "refcocog",
        "--data",
        "",
        "--ground-truth-regions",
        "--base-url",
        server,
        "--model",
        "mock-vl",
        "--no-structured",
        "--out",
        out,
        "--price-in",
        "2.5",
        "--price-out",
        "10",
    ]
}

fn refcocog() -> String {
    s(&fixture("eval/data/refcocog")).to_string()
}

/// The table without its token line (latency differs from run to run).
fn table(stdout: &str) -> String {
    stdout
        .lines()
        .filter(|l| !l.starts_with("tokens:"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn a_run_against_the_mock_server_reports_the_same_table_without_it() {
    let dir = tmp("eval-run");
    let results = dir.join("results.jsonl");
    let summary = dir.join("summary.json");
    let server = MockServer::start(vec![MockResponse::json(200, &chat("It is [1]."))]).unwrap();
    let url = format!("{}/v1", server.url());
    let data = refcocog();
    let mut args = run_args(&url, s(&results));
    args[4] = &data;
    args.extend(["--json", s(&summary), "--concurrency", "2"]);
    let stdout = ok(&som(&args));
    assert_eq!(server.hits(), 3, "one request per expression");
    assert!(
        stdout.contains("| Model | RefCOCOg Acc@0.5 | RefCOCOg mIoU | RefCOCOg cIoU |"),
        "{stdout}"
    );
    assert!(stdout.contains("| openai:mock-vl |"), "{stdout}");
    assert!(stdout.contains("tokens: 3000 in, 30 out, $0.0078"), "{stdout}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(doc["items"], 3);
    assert!(doc["metrics"]["Acc@0.5"].is_number());
    // The request carried the expression and the marked image.
    let body = server.requests()[0].json().unwrap();
    let text = body.to_string();
    assert!(
        text.contains("image_url") && text.contains("Which mark denotes"),
        "{text}"
    );
    drop(server);

    // No server, no data: the same table from the records.
    let report = ok(&som(&["eval", "report", s(&results)]));
    assert_eq!(table(&report), table(&stdout));
    // Another rule re-scores without asking again.
    let first = ok(&som(&["eval", "report", s(&results), "--rule", "first"]));
    assert!(first.contains("multi-mark rule first"));
}

#[test]
fn a_run_killed_mid_way_resumes_with_every_item_once() {
    let dir = tmp("eval-kill");
    let data = refcocog();
    // The reference: an uninterrupted run.
    let whole = dir.join("whole.jsonl");
    let server = MockServer::start(vec![MockResponse::json(200, &chat("[2]"))]).unwrap();
    let url = format!("{}/v1", server.url());
    let mut args = run_args(&url, s(&whole));
    args[4] = &data;
    args.extend(["--concurrency", "1"]);
    let reference = ok(&som(&args));
    drop(server);

    // A server that answers once, then never again; the run is killed while it waits.
    let results = dir.join("results.jsonl");
    let stalling =
        MockServer::start(vec![MockResponse::json(200, &chat("[2]")), MockResponse::hang()]).unwrap();
    let url = format!("{}/v1", stalling.url());
    let mut args = run_args(&url, s(&results));
    args[4] = &data;
    args.extend(["--concurrency", "1"]);
    let mut child = som_cmd(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !(results.is_file() && ids(&results).len() == 1 && stalling.hits() >= 2) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the run did not reach its second request"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(stalling);
    assert_eq!(ids(&results).len(), 1);

    // Resume with a server that answers: only the two unfinished items are asked.
    let server = MockServer::start(vec![MockResponse::json(200, &chat("[2]"))]).unwrap();
    let url = format!("{}/v1", server.url());
    let mut args = run_args(&url, s(&results));
    args[4] = &data;
    args.extend(["--concurrency", "1", "--resume"]);
    let resumed = ok(&som(&args));
    assert_eq!(server.hits(), 2);
    let mut got = ids(&results);
    got.sort();
    let mut want = ids(&whole);
    want.sort();
    assert_eq!(got, want, "every item exactly once");
    assert_eq!(table(&resumed), table(&reference));

    // Without --resume the results are never overwritten.
    let out = som(&args[..args.len() - 1]);
    assert_fails(&out, "exists; resume it or choose another file");
}

#[test]
fn score_prints_davis_under_the_toolkit_names() {
    let dir = tmp("eval-score");
    let json_path = dir.join("scores.json");
    let stdout = ok(&som(&[
        "eval",
        "score",
        "davis",
        "--data",
        s(&fixture("eval/davis")),
        "--pred",
        s(&fixture("eval/davis/pred")),
        "--json",
        s(&json_path),
    ]));
    assert!(
        stdout.contains("DAVIS2017 J&F-Mean | DAVIS2017 J-Mean | DAVIS2017 J-Recall"),
        "{stdout}"
    );
    assert!(stdout.contains("| bear-walk_1 |"), "{stdout}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    for k in [
        "J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay",
    ] {
        assert!(doc["metrics"][k].is_number(), "{k}");
    }
    assert_eq!(doc["per_sequence"].as_array().unwrap().len(), 6);
}

#[test]
fn a_dry_run_writes_marked_frames_and_prompts_without_a_key() {
    let dir = tmp("eval-dry").join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_som"))
        .args([
            "eval",
            "run",
            "davis",
            "--data",
            s(&fixture("eval/davis")),
            "--limit",
            "1",
            "--seed",
            "3",
        ])
        .args(["--dry-run", "--out", s(&dir)])
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    let stdout = ok(&out);
    assert!(stdout.contains("no model asked"), "{stdout}");
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(files.iter().any(|f| f.ends_with(".reference.png")), "{files:?}");
    let prompt = files.iter().find(|f| f.ends_with(".txt")).unwrap();
    let text = std::fs::read_to_string(dir.join(prompt)).unwrap();
    assert!(
        text.contains("object A") && text.contains("[context image]"),
        "{text}"
    );
}

#[test]
fn bad_input_gives_one_line_naming_the_problem() {
    let dir = tmp("eval-errors");
    assert_fails(
        &som(&["eval", "report", s(&dir.join("missing.jsonl"))]),
        "missing.jsonl",
    );
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "not json\n").unwrap();
    assert_fails(&som(&["eval", "report", s(&bad)]), "line 1");
    assert_fails(
        &som(&[
            "eval",
            "run",
            "refcocog",
            "--data",
            s(&dir.join("nope")),
            "--out",
            s(&dir.join("r.jsonl")),
        ]),
        "not a folder",
    );
    assert_fails(
        &som(&[
            "eval",
            "run",
            "coco",
            "--data",
            s(&fixture("eval/data/bad/coco_dangling_image")),
            "--ground-truth-regions",
            "--out",
            s(&dir.join("r.jsonl")),
        ]),
        "annotation 102: image_id 99 names no image",
    );
    assert_fails(
        &som(&[
            "eval",
            "score",
            "refcocog",
            "--data",
            &refcocog(),
            "--pred",
            s(&dir.join("none.json")),
        ]),
        "none.json",
    );
    let out = som(&["eval", "run", "nosuchtask", "--data", ".", "--out", "x"]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}
