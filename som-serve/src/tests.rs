//! The router in-process (no socket): routes, forms, the answers' bytes. The
//! loopback tests of the `som serve` binary are in `som-cli/tests/serve.rs`.

use std::io::Cursor;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use serde_json::Value;
use som_core::json::{write_answer, write_marks, AnswerMeta, ImageInfo};
use som_core::{GroundingModel, SomPipeline};
use som_lmm::mock::ScriptedModel;
use som_lmm::{PromptTemplates, Task};
use som_marks::MarkStyle;
use som_segment::{Felzenszwalb, FelzenszwalbParams};
use tower::ServiceExt;

use crate::{Access, SomServer};

const BOUNDARY: &str = "som-test-boundary";

/// Text fields of a form.
type Fields<'a> = &'a [(&'a str, &'a str)];

/// A 48×32 PNG of four flat quadrants (four regions for felzenszwalb).
fn quadrants() -> Vec<u8> {
    let img = image::RgbImage::from_fn(48, 32, |x, y| match (x < 24, y < 16) {
        (true, true) => image::Rgb([200, 30, 30]),
        (false, true) => image::Rgb([30, 200, 30]),
        (true, false) => image::Rgb([30, 30, 200]),
        (false, false) => image::Rgb([230, 230, 230]),
    });
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn felz() -> Felzenszwalb {
    Felzenszwalb::new(FelzenszwalbParams::REFERENCE)
}

fn server(model: Option<Arc<ScriptedModel>>) -> SomServer {
    let b = SomServer::builder().segmenter("felzenszwalb", felz(), Access::Exclusive);
    match model {
        Some(m) => b.model(m, "scripted", "script-1"),
        None => b.without_model("no API key for openai: set OPENAI_API_KEY"),
    }
    .build()
    .unwrap()
}

/// A multipart body: the image as a file, then text fields.
fn form(image: Option<&[u8]>, fields: Fields) -> Vec<u8> {
    let mut body = Vec::new();
    if let Some(bytes) = image {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"quads.png\"\r\n\
                 Content-Type: image/png\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn call(server: &SomServer, method: &str, path: &str, body: Option<Vec<u8>>) -> Response {
    let mut request = Request::builder().method(method).uri(path);
    if body.is_some() {
        request = request.header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        );
    }
    let request = request.body(body.map_or_else(Body::empty, Body::from)).unwrap();
    server.router().oneshot(request).await.unwrap()
}

async fn text(response: Response) -> String {
    String::from_utf8(to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap()
}

async fn error_of(response: Response) -> (StatusCode, String) {
    let status = response.status();
    let v: Value = serde_json::from_str(&text(response).await).unwrap();
    (status, v["error"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn health_lists_segmenters_and_why_there_is_no_model() {
    let r = call(&server(None), "GET", "/api/health", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = serde_json::from_str(&text(r).await).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["segmenters"][0]["name"], "felzenszwalb");
    assert_eq!(v["segmenters"][0]["one_at_a_time"], true);
    assert_eq!(v["default_segmenter"], "felzenszwalb");
    assert_eq!(v["provider"]["available"], false);
    assert_eq!(
        v["provider"]["reason"],
        "no API key for openai: set OPENAI_API_KEY"
    );
    assert_eq!(v["style"]["draw"], MarkStyle::default().draw.to_string());
    // The alpha as written (0.1), not widened (0.10000000149011612).
    assert_eq!(
        v["style"]["alpha"].to_string(),
        MarkStyle::default().alpha.to_string()
    );
    assert_eq!(v["tasks"].as_array().unwrap().len(), Task::NAMES.len());
}

#[tokio::test]
async fn mark_answers_the_marks_json_of_the_pipeline() {
    let png = quadrants();
    let server = server(None);
    let r = call(
        &server,
        "POST",
        "/api/mark",
        Some(form(Some(&png), &[("labels", "letter"), ("alpha", "0.3")])),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    let got = text(r).await;

    let mut style = MarkStyle::default();
    style.set("labels", "letter").unwrap();
    style.set("alpha", "0.3").unwrap();
    let image = som_core::io::decode_image(&png).unwrap();
    let marked = SomPipeline::new(felz(), style.allocator(), style.renderer())
        .mark(&image)
        .unwrap();
    let info = ImageInfo::new(48, 32).with_file_name("quads.png");
    assert_eq!(got, write_marks(&info, marked.segmentation(), marked.marks()));
    assert_eq!(marked.marks().len(), 4);

    // The PNG is the same rendering.
    let r = call(
        &server,
        "POST",
        "/api/mark.png",
        Some(form(Some(&png), &[("labels", "letter"), ("alpha", "0.3")])),
    )
    .await;
    assert_eq!(r.headers()[header::CONTENT_TYPE], "image/png");
    let bytes = to_bytes(r.into_body(), usize::MAX).await.unwrap();
    assert!(image::load_from_memory(&bytes).unwrap().to_rgb8() == *marked.image());
}

#[tokio::test]
async fn ask_answers_the_answer_json_and_refuses_what_it_cannot_ask() {
    let model = Arc::new(ScriptedModel::new(vec![
        "The red one is [1]; [9] is not here.".into()
    ]));
    let server = server(Some(model.clone()));
    let png = quadrants();
    let r = call(
        &server,
        "POST",
        "/api/ask",
        Some(form(
            Some(&png),
            &[("prompt", "the red square"), ("task", "refer")],
        )),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let got = text(r).await;

    let style = MarkStyle::default();
    let image = som_core::io::decode_image(&png).unwrap();
    let marked = SomPipeline::new(felz(), style.allocator(), style.renderer())
        .mark(&image)
        .unwrap();
    let task = Task::Refer {
        expression: "the red square".into(),
    };
    let request = PromptTemplates::default().request(&task, &marked);
    let answer = ScriptedModel::new(vec!["The red one is [1]; [9] is not here.".into()])
        .ground(&request)
        .await
        .unwrap();
    let meta = AnswerMeta {
        provider: "scripted".into(),
        model: "script-1".into(),
        task: "refer".into(),
        prompt: request.prompt.clone(),
    };
    let info = ImageInfo::new(48, 32).with_file_name("quads.png");
    assert_eq!(got, write_answer(&meta, &info, &answer, &marked));
    assert_eq!(model.calls(), 1);

    let cases: [(Fields, StatusCode, &str); 4] = [
        (&[], StatusCode::BAD_REQUEST, "missing field \"prompt\""),
        (
            &[("prompt", "x"), ("task", "poem")],
            StatusCode::BAD_REQUEST,
            "unknown task \"poem\"",
        ),
        (
            &[("prompt", "x"), ("phrase", "a cup")],
            StatusCode::BAD_REQUEST,
            "phrases only go with the ground task",
        ),
        (
            &[("prompt", " , ,"), ("task", "label")],
            StatusCode::BAD_REQUEST,
            "comma-separated vocabulary",
        ),
    ];
    for (fields, status, needle) in cases {
        let r = call(&server, "POST", "/api/ask", Some(form(Some(&png), fields))).await;
        let (s, e) = error_of(r).await;
        assert_eq!(s, status, "{fields:?}: {e}");
        assert!(e.contains(needle), "{fields:?}: {e}");
    }
    // None of them reached the model.
    assert_eq!(model.calls(), 1);

    let (s, e) = error_of(
        call(
            &self::server(None),
            "POST",
            "/api/ask",
            Some(form(Some(&png), &[("prompt", "x")])),
        )
        .await,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(e, "no API key for openai: set OPENAI_API_KEY");
}

#[tokio::test]
async fn form_mistakes_are_400s_that_say_what_is_wrong() {
    let png = quadrants();
    let server = server(None);
    let cases: [(Option<&[u8]>, Fields, &str); 7] = [
        (None, &[("alpha", "0.2")], "missing field \"image\""),
        (Some(b""), &[], "the field \"image\" is empty"),
        (
            Some(&png),
            &[("colour", "red")],
            "unknown field \"colour\" (expected image, labels,",
        ),
        (
            Some(&png),
            &[("alpha", "2")],
            "invalid alpha: must be between 0 and 1, got 2",
        ),
        (Some(&png), &[("draw", "mark,sparkles")], "sparkles"),
        (
            Some(&png),
            &[("segmenter", "sam")],
            "unknown segmenter \"sam\" (this server has felzenszwalb)",
        ),
        (
            Some(&png),
            &[("labels", "letter"), ("labels", "number")],
            "the field \"labels\" is given twice",
        ),
    ];
    for (image, fields, needle) in cases {
        let (s, e) = error_of(call(&server, "POST", "/api/mark", Some(form(image, fields))).await).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{fields:?}: {e}");
        assert!(e.contains(needle), "{needle:?} not in {e:?}");
    }
    // The prompt is no field of /api/mark.
    let (s, e) = error_of(
        call(
            &server,
            "POST",
            "/api/mark",
            Some(form(Some(&png), &[("prompt", "x")])),
        )
        .await,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e.contains("unknown field \"prompt\""), "{e}");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let server = server(None);
    let (s, e) = error_of(call(&server, "GET", "/api/nothing", None).await).await;
    assert_eq!(
        (s, e.as_str()),
        (StatusCode::NOT_FOUND, "no such page: /api/nothing")
    );
    let (s, e) = error_of(call(&server, "GET", "/api/mark", None).await).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(e, "GET is not allowed on /api/mark");
    // Not a multipart body at all.
    let request = Request::builder()
        .method("POST")
        .uri("/api/mark")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let (s, e) = error_of(server.router().oneshot(request).await.unwrap()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e.starts_with("expected a multipart/form-data body"), "{e}");
}

#[tokio::test]
async fn the_page_and_its_photos_are_served() {
    let server = server(None);
    let r = call(&server, "GET", "/", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    assert!(text(r).await.contains("<script src=\"app.js\">"));
    for path in ["/app.js", "/app.css", "/photos/coffee.jpg"] {
        assert_eq!(
            call(&server, "GET", path, None).await.status(),
            StatusCode::OK,
            "{path}"
        );
    }
    let (s, _) = error_of(call(&server, "GET", "/photos/secret.txt", None).await).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// A segmenter that takes its time and counts how many run at once.
#[derive(Default)]
struct Probe {
    delay: std::time::Duration,
    running: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

impl som_core::Segmenter for Probe {
    fn segment(&self, image: &image::DynamicImage) -> som_core::Result<som_core::Segmentation> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        std::thread::sleep(self.delay);
        self.running.fetch_sub(1, SeqCst);
        let size = som_core::ImageSize::new(image.width(), image.height());
        som_core::Segmentation::new(size, vec![som_core::Region::from_box(1, size.full_box())])
    }
}

/// Runs `n` `/api/mark` requests at once (different options each, so none
/// comes from the cache) and returns their statuses.
async fn at_once(server: &SomServer, n: usize) -> Vec<StatusCode> {
    let png = quadrants();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (server, body) = (server.clone(), form(Some(&png), &[("alpha", &format!("0.{i}"))]));
            tokio::spawn(async move { call(&server, "POST", "/api/mark", Some(body)).await.status() })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exclusive_segmenter_serves_one_request_at_a_time_a_shared_one_several() {
    use std::sync::atomic::Ordering::SeqCst;
    for (access, most) in [(Access::Exclusive, 1), (Access::Shared, 4)] {
        let probe = Arc::new(Probe {
            delay: std::time::Duration::from_millis(150),
            ..Probe::default()
        });
        let server = SomServer::builder()
            .segmenter("probe", probe.clone(), access)
            .limits(crate::Limits {
                max_concurrent: 4,
                max_queue: 4,
                ..crate::Limits::default()
            })
            .build()
            .unwrap();
        let statuses = at_once(&server, 4).await;
        assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
        assert_eq!(probe.most.load(SeqCst), most, "{access:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_time_limit_gets_503_with_retry_after() {
    let probe = Arc::new(Probe {
        delay: std::time::Duration::from_millis(1500),
        ..Probe::default()
    });
    let server = SomServer::builder()
        .segmenter("probe", probe.clone(), Access::Exclusive)
        .limits(crate::Limits {
            request_timeout: std::time::Duration::from_millis(300),
            ..crate::Limits::default()
        })
        .build()
        .unwrap();
    let r = call(&server, "POST", "/api/mark", Some(form(Some(&quadrants()), &[]))).await;
    assert!(
        r.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    let (status, message) = error_of(r).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        message,
        "the request took longer than this server's limit of 0.3 s"
    );
    // The segmenter still finishes its work; meanwhile and afterwards the server answers.
    let r = call(&server, "GET", "/api/health", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1400)).await;
    assert_eq!(probe.running.load(std::sync::atomic::Ordering::SeqCst), 0);
}
