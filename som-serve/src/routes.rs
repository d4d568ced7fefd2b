//! The routes: the page, `/api/health`, `/api/mark`, `/api/mark.png`,
//! `/api/ask`; JSON errors for everything else.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use som_core::json::{write_answer, write_marks, AnswerMeta, ImageInfo};
use som_core::{ErrorChain, GroundingRequest, MarkedImage, SomError, SomPipeline};
use som_lmm::{LmmError, Task};
use som_marks::MarkStyle;
use tokio::sync::OwnedSemaphorePermit;

use crate::error::{Failure, FailureNote};
use crate::form::{self, Endpoint, MarkRequest};
use crate::page;
use crate::server::Shared;

type AppState = State<Arc<Shared>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let log = shared.log_requests;
    let body_limit = shared.limits.max_body_bytes;
    let router = Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/app.css", get(page::style))
        .route("/photos/{name}", get(page::photo))
        .route("/api/health", get(health))
        .route("/api/mark", post(mark_json))
        .route("/api/mark.png", post(mark_png))
        .route("/api/ask", post(ask))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(shared);
    if log {
        router.layer(middleware::from_fn(log_request))
    } else {
        router
    }
}

/// `GET /api/health`.
async fn health(State(s): AppState) -> Response {
    let (admitted, working) = s.admission.load();
    let provider = match &s.model {
        Some(m) => json!({"name": m.provider, "model": m.name, "available": true}),
        None => json!({"available": false, "reason": s.no_model}),
    };
    let style = style_json(&s.style);
    let body = json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "segmenters": s.segmenters.iter().map(|g| json!({
            "name": g.name,
            "one_at_a_time": g.exclusive.is_some(),
        })).collect::<Vec<_>>(),
        "default_segmenter": s.segmenters[s.default_segmenter].name,
        "provider": provider,
        "tasks": Task::NAMES,
        "style": style,
        "limits": {
            "max_body_bytes": s.limits.max_body_bytes,
            "max_pixels": s.limits.max_pixels,
            "request_timeout_s": s.limits.request_timeout.as_secs_f64(),
            "max_concurrent": s.limits.max_concurrent,
            "max_queue": s.limits.max_queue,
        },
        "load": {"admitted": admitted, "working": working},
    });
    json_response(body.to_string())
}

fn style_json(style: &MarkStyle) -> serde_json::Value {
    json!({
        "labels": style.labels.to_string(),
        "zero_based": style.zero_based,
        "draw": style.draw.to_string(),
        // As written (0.1), not as the f32 widens to f64 (0.10000000149011612).
        "alpha": style.alpha.to_string().parse::<f64>().unwrap_or(f64::from(style.alpha)),
        "font_size": style.font_size,
        "allocation": style.allocation.to_string(),
    })
}

/// `POST /api/mark`: the marks JSON, as `som mark --json` writes it.
async fn mark_json(State(s): AppState, request: Request) -> Response {
    let work = async {
        let (request, _slot) = admit_and_read(&s, request, Endpoint::Mark).await?;
        let marked = marked(&s, &request).await?;
        let info = image_info(&request, &marked);
        Ok(json_response(write_marks(
            &info,
            marked.segmentation(),
            marked.marks(),
        )))
    };
    within_time(&s, work).await
}

/// `POST /api/mark.png`: the marked image.
async fn mark_png(State(s): AppState, request: Request) -> Response {
    let work = async {
        let (request, _slot) = admit_and_read(&s, request, Endpoint::Mark).await?;
        let marked = marked(&s, &request).await?;
        let png = s
            .admission
            .run(None, move || som_core::io::encode_png(marked.image()))
            .await?
            .map_err(|e| Failure::internal(ErrorChain(&e).to_string()))?;
        Ok((
            [(header::CONTENT_TYPE, HeaderValue::from_static("image/png"))],
            png,
        )
            .into_response())
    };
    within_time(&s, work).await
}

/// `POST /api/ask`: the answer JSON, as `som ask --json` writes it.
async fn ask(State(s): AppState, request: Request) -> Response {
    let work = async {
        let Some(model) = &s.model else {
            form::drain_body(request.into_body(), &s.limits).await;
            return Err(Failure::new(StatusCode::NOT_IMPLEMENTED, s.no_model.clone()));
        };
        let (request, _slot) = admit_and_read(&s, request, Endpoint::Ask).await?;
        let prompt = request
            .prompt
            .clone()
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| {
                Failure::bad_request("missing field \"prompt\": the question to ask about the image")
            })?;
        let task_name = request
            .task
            .as_deref()
            .unwrap_or("question")
            .trim()
            .to_ascii_lowercase();
        let task = Task::from_name(&task_name, &prompt, &request.phrases)
            .map_err(|e| Failure::bad_request(e.to_string()))?;
        let marked = marked(&s, &request).await?;
        if marked.marks().is_empty() {
            return Err(Failure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "no regions to mark in the image, so there is nothing to ask about (try another segmenter)",
            ));
        }
        let grounding = match &task {
            Some(task) => s.templates.request(task, &marked),
            None => GroundingRequest::new(&marked, prompt),
        };
        let answer = model.model.ground(&grounding).await.map_err(model_failure)?;
        let meta = AnswerMeta {
            provider: model.provider.clone(),
            model: model.name.clone(),
            task: task_name,
            prompt: grounding.prompt.clone(),
        };
        let info = image_info(&request, &marked);
        Ok(json_response(write_answer(&meta, &info, &answer, &marked)))
    };
    within_time(&s, work).await
}

/// Takes an admission slot (refusing at once when there is none: `503` with
/// `Retry-After`, after reading the body away), reads the whole body (at most
/// the size limit), and parses the form.
async fn admit_and_read(
    s: &Shared,
    request: Request,
    endpoint: Endpoint,
) -> Result<(MarkRequest, OwnedSemaphorePermit), Failure> {
    let (parts, body) = request.into_parts();
    let slot = match s.admission.admit() {
        Ok(slot) => slot,
        Err(busy) => {
            form::drain_body(body, &s.limits).await;
            return Err(busy);
        }
    };
    let bytes = form::read_body(body, &s.limits).await?;
    let multipart = Multipart::from_request(Request::from_parts(parts, Body::from(bytes)), &())
        .await
        .map_err(|r| form::rejection(&r, &s.limits))?;
    let request = form::read(s, multipart, endpoint).await?;
    Ok((request, slot))
}

/// The marked image for a request: from the cache, or decoded, segmented,
/// allocated and rendered on a worker.
async fn marked(s: &Shared, request: &MarkRequest) -> Result<Arc<MarkedImage>, Failure> {
    let named = &s.segmenters[request.segmenter];
    if let Some(hit) = s.cache.get(&request.bytes, &named.name, &request.style) {
        return Ok(hit);
    }
    let (bytes, segmenter, style) = (request.bytes.clone(), named.segmenter.clone(), request.style);
    let marked = s
        .admission
        .run(
            named.exclusive.as_ref(),
            move || -> Result<MarkedImage, Failure> {
                let image = som_core::io::decode_image(&bytes).map_err(stage_failure)?;
                SomPipeline::new(segmenter, style.allocator(), style.renderer())
                    .mark(&image)
                    .map_err(stage_failure)
            },
        )
        .await??;
    let marked = Arc::new(marked);
    s.cache
        .put(request.bytes.clone(), &named.name, request.style, marked.clone());
    Ok(marked)
}

/// The `image` object of the JSON answers: the size, and the uploaded file's
/// name as `som mark --json` writes a path's.
fn image_info(request: &MarkRequest, marked: &MarkedImage) -> ImageInfo {
    let (w, h) = marked.image().dimensions();
    let info = ImageInfo::new(w, h);
    match &request.file_name {
        Some(name) => info.with_file_name(name.clone()),
        None => info,
    }
}

/// A stage's error: the image's fault (`422`) or the server's (`500`).
fn stage_failure(e: SomError) -> Failure {
    let status = match e {
        SomError::Image(_) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Failure::new(status, ErrorChain(&e).to_string())
}

/// The model's error: `504` when it did not answer in time, `502` otherwise.
fn model_failure(e: SomError) -> Failure {
    let status = match e.find::<LmmError>() {
        Some(LmmError::Timeout { .. }) => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    };
    Failure::new(status, ErrorChain(&e).to_string())
}

/// Runs a request's work within the request timeout; out of time is `503`
/// with `Retry-After`.
async fn within_time(s: &Shared, work: impl Future<Output = Result<Response, Failure>>) -> Response {
    let limit = s.limits.request_timeout;
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(response)) => response,
        Ok(Err(failure)) => failure.into_response(),
        Err(_) => Failure::busy(
            format!(
                "the request took longer than this server's limit of {} s",
                limit.as_secs_f64()
            ),
            s.admission.retry_after(),
        )
        .into_response(),
    }
}

fn json_response(body: String) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}

async fn not_found(request: Request) -> Response {
    Failure::new(
        StatusCode::NOT_FOUND,
        format!("no such page: {}", clip(request.uri().path())),
    )
    .into_response()
}

async fn method_not_allowed(request: Request) -> Response {
    Failure::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}",
            request.method(),
            clip(request.uri().path())
        ),
    )
    .into_response()
}

/// One line per request on stderr. Only the method, the path (never the query
/// or the body), the status, the time and a failure's message.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = clip(request.uri().path());
    let start = Instant::now();
    let response = next.run(request).await;
    let note = response
        .extensions()
        .get::<FailureNote>()
        .map(|n| format!(": {}", n.0))
        .unwrap_or_default();
    eprintln!(
        "som serve: {method} {path} {} {:.0} ms{note}",
        response.status().as_u16(),
        start.elapsed().as_secs_f64() * 1000.0
    );
    response
}

fn clip(path: &str) -> String {
    path.chars().take(200).collect()
}
