//! som-lmm: reading marks out of answers, and one question's full round trip
//! (image preparation, request body, HTTP over loopback, response reading)
//! against the `mock` server, per provider.

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use som_benches::{background, load_set};
use som_core::{BBox, GroundingRequest, Mark, MarkedImage, Point};
use som_lmm::mock::{MockResponse, MockServer};
use som_lmm::{ApiKey, ClientConfig, LmmClient, Provider};

/// The coffee photo (600×400) with its Felzenszwalb regions numbered 1…n.
fn coffee() -> MarkedImage {
    let seg = load_set("felz_coffee").expect("fixture");
    let image = background("felz_coffee", &seg).expect("photo");
    let marks = seg
        .regions()
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let b = r.bbox;
            let anchor = Point::new(b.x + b.width / 2, b.y + b.height / 2);
            Mark::new(
                i as u32 + 1,
                (i + 1).to_string(),
                anchor,
                i,
                BBox::new(anchor.x, anchor.y, 1, 1),
            )
        })
        .collect();
    MarkedImage::new(image, marks, seg).expect("marked")
}

fn parsing(c: &mut Criterion) {
    let marked = coffee();
    let prose = "The cup on the left is [3], its saucer [5]; the spoon is marks 7 and 8. ".repeat(40);
    let answers = [
        ("bracket", "The cup is [3].".to_string()),
        ("list", "[1, 2] and [4-6], also (7) and #9".to_string()),
        (
            "json_fenced",
            "```json\n{\"answer\": \"the cups [1] and [3]\", \"marks\": [\"1\", \"3\", \"42\"]}\n```"
                .to_string(),
        ),
        (
            "keywords",
            "The man is labeled with the number 5; click on 12.".to_string(),
        ),
        ("prose_3kb", prose),
    ];
    let mut g = c.benchmark_group("lmm/parse_marks");
    for (name, answer) in &answers {
        g.bench_function(*name, |b| b.iter(|| som_lmm::parse_marks(answer, &marked)));
    }
    g.finish();
}

fn reply(provider: Provider) -> serde_json::Value {
    let text = "The cup is [3] and the saucer [5].";
    match provider {
        Provider::Anthropic => {
            json!({"id": "m", "type": "message", "model": "m", "content": [{"type": "text", "text": text}],
                                      "stop_reason": "end_turn", "usage": {"input_tokens": 10, "output_tokens": 5}})
        }
        Provider::Gemini => {
            json!({"candidates": [{"content": {"parts": [{"text": text}]}, "finishReason": "STOP"}],
                                   "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5}})
        }
        Provider::Ollama => {
            json!({"model": "m", "message": {"role": "assistant", "content": text}, "done": true,
                                   "done_reason": "stop", "prompt_eval_count": 10, "eval_count": 5})
        }
        _ => {
            json!({"id": "c", "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop"}], "usage": {"prompt_tokens": 10, "completion_tokens": 5}})
        }
    }
}

/// The coffee photo shrunk to 60×40 with the same marks: the round trip
/// without the image encoding that dominates it at full size.
fn coffee_thumbnail() -> MarkedImage {
    let full = coffee();
    let small = image::imageops::resize(full.image(), 60, 40, image::imageops::FilterType::Triangle);
    let (_, marks, segmentation) = full.into_parts();
    MarkedImage::new(small, marks, segmentation).expect("marked")
}

fn round_trip(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for (group, marked) in [
        ("lmm/round_trip_coffee_600x400", coffee()),
        ("lmm/round_trip_60x40", coffee_thumbnail()),
    ] {
        round_trips(c, &runtime, group, &marked);
    }
}

fn round_trips(c: &mut Criterion, runtime: &tokio::runtime::Runtime, group: &str, marked: &MarkedImage) {
    let mut g = c.benchmark_group(group);
    g.sample_size(20);
    for provider in Provider::ALL {
        let server = MockServer::start(vec![MockResponse::json(200, &reply(provider))]).expect("server");
        let config = ClientConfig::new(provider, "bench-model")
            .with_base_url(server.url())
            .with_api_key(ApiKey::new("sk-bench"));
        let client = LmmClient::new(config).expect("client");
        let request = GroundingRequest::new(marked, "Which marks are the cup and the saucer?");
        g.bench_function(provider.name(), |b| {
            b.iter(|| {
                let answer = runtime.block_on(client.ask(&request)).expect("answer");
                assert_eq!(answer.marks.len(), 2);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, parsing, round_trip);
criterion_main!(benches);
