//! Reading the multipart form of `/api/mark`, `/api/mark.png` and `/api/ask`.
//!
//! Fields: `image` (the file), the mark-style fields named like `som mark`'s
//! flags (`labels`, `zero_based`, `draw`, `alpha`, `font_size`,
//! `allocation`, parsed by [`MarkStyle::set`], the parser the command line
//! uses), `segmenter`, and for `/api/ask` also `prompt`, `task` and
//! `phrase` (repeatable). Any other field, or a field given twice, is refused:
//! a misspelt option must not silently fall back to its default.

use std::io::Cursor;

use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::Multipart;
use axum::http::StatusCode;
use futures_util::StreamExt;
use image::{ImageFormat, ImageReader};
use som_marks::MarkStyle;

use crate::error::Failure;
use crate::server::Shared;

/// Which endpoint a form is for (`/api/ask` takes more fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Mark,
    Ask,
}

/// A parsed request.
#[derive(Debug)]
pub(crate) struct MarkRequest {
    pub bytes: Bytes,
    pub file_name: Option<String>,
    /// Index into the server's segmenters.
    pub segmenter: usize,
    pub style: MarkStyle,
    pub prompt: Option<String>,
    pub task: Option<String>,
    pub phrases: Vec<String>,
}

/// The failure for a form the multipart extractor refused.
pub(crate) fn rejection(r: &MultipartRejection, limits: &crate::Limits) -> Failure {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large(limits);
    }
    Failure::bad_request(format!(
        "expected a multipart/form-data body with the image in the field \"image\": {}",
        r.body_text()
    ))
}

fn too_large(limits: &crate::Limits) -> Failure {
    Failure::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the request body is larger than this server's limit of {} bytes",
            limits.max_body_bytes
        ),
    )
}

fn multipart_failure(e: MultipartError, limits: &crate::Limits) -> Failure {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(limits)
    } else {
        Failure::bad_request(format!("malformed multipart form: {}", e.body_text()))
    }
}

/// How much more than the limit is read and thrown away before a refusal, so
/// that a client still sending gets its answer instead of a reset connection.
const DRAIN_BEYOND: usize = 64 << 20;

/// Reads the whole body, at most `max_body_bytes` of it. Reading it all before
/// parsing means every refusal comes after the client has finished sending.
pub(crate) async fn read_body(body: Body, limits: &crate::Limits) -> Result<Bytes, Failure> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Failure::bad_request(format!("cannot read the request body: {e}")))?;
        if bytes.len() + chunk.len() > limits.max_body_bytes {
            drop(bytes);
            discard(stream, DRAIN_BEYOND).await;
            return Err(too_large(limits));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(bytes))
}

/// Reads a body that will not be used and throws it away (a refused request),
/// up to the size limit and a bit.
pub(crate) async fn drain_body(body: Body, limits: &crate::Limits) {
    discard(
        body.into_data_stream(),
        limits.max_body_bytes.saturating_add(DRAIN_BEYOND),
    )
    .await;
}

async fn discard(mut stream: BodyDataStream, at_most: usize) {
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        seen = seen.saturating_add(chunk.len());
        if seen > at_most {
            return;
        }
    }
}

/// Reads and checks the form.
pub(crate) async fn read(
    shared: &Shared,
    mut multipart: Multipart,
    endpoint: Endpoint,
) -> Result<MarkRequest, Failure> {
    let limits = &shared.limits;
    let mut request = MarkRequest {
        bytes: Bytes::new(),
        file_name: None,
        segmenter: shared.default_segmenter,
        style: shared.style,
        prompt: None,
        task: None,
        phrases: Vec::new(),
    };
    let mut seen: Vec<String> = Vec::new();
    let mut image = false;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_failure(e, limits))?
    {
        let name = field.name().unwrap_or_default().trim().replace('-', "_");
        if name != "phrase" {
            if seen.contains(&name) {
                return Err(Failure::bad_request(format!("the field {name:?} is given twice")));
            }
            seen.push(name.clone());
        }
        if name == "image" {
            request.file_name = field.file_name().and_then(file_name);
            request.bytes = field.bytes().await.map_err(|e| multipart_failure(e, limits))?;
            image = true;
            continue;
        }
        if !known(&name, endpoint) {
            return Err(Failure::bad_request(format!(
                "unknown field {name:?} (expected {})",
                expected(endpoint)
            )));
        }
        let value = text(&mut field, &name, limits).await?;
        match name.as_str() {
            "segmenter" => {
                let wanted = value.trim();
                request.segmenter = shared
                    .segmenters
                    .iter()
                    .position(|s| s.name == wanted)
                    .ok_or_else(|| {
                        Failure::bad_request(format!(
                            "unknown segmenter {wanted:?} (this server has {})",
                            shared
                                .segmenters
                                .iter()
                                .map(|s| s.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })?;
            }
            "prompt" => request.prompt = Some(value),
            "task" => request.task = Some(value),
            "phrase" => request.phrases.push(value),
            style_field => request
                .style
                .set(style_field, &value)
                .map_err(|e| Failure::bad_request(e.to_string()))?,
        }
    }
    if !image {
        return Err(Failure::bad_request(
            "missing field \"image\": send the image (PNG or JPEG) as a file in the field \"image\"",
        ));
    }
    if request.bytes.is_empty() {
        return Err(Failure::bad_request("the field \"image\" is empty"));
    }
    check_image(&request.bytes, limits.max_pixels)?;
    Ok(request)
}

fn known(name: &str, endpoint: Endpoint) -> bool {
    MarkStyle::FIELDS.contains(&name)
        || name == "segmenter"
        || (endpoint == Endpoint::Ask && matches!(name, "prompt" | "task" | "phrase"))
}

fn expected(endpoint: Endpoint) -> String {
    let mut names = vec!["image"];
    names.extend(MarkStyle::FIELDS);
    names.push("segmenter");
    if endpoint == Endpoint::Ask {
        names.extend(["prompt", "task", "phrase"]);
    }
    names.join(", ")
}

/// A text field, at most `max_field_bytes` long, as UTF-8.
async fn text(field: &mut Field<'_>, name: &str, limits: &crate::Limits) -> Result<String, Failure> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_failure(e, limits))? {
        if bytes.len() + chunk.len() > limits.max_field_bytes {
            return Err(Failure::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the field {name:?} is longer than this server's limit of {} bytes",
                    limits.max_field_bytes
                ),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes)
        .map_err(|_| Failure::bad_request(format!("the field {name:?} is not UTF-8 text")))
}

/// The last component of an uploaded file's name, as `som mark --json` writes
/// the file name of a path; `None` when nothing printable is left.
fn file_name(raw: &str) -> Option<String> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = last.chars().filter(|c| !c.is_control()).take(255).collect();
    let clean = clean.trim();
    (!clean.is_empty() && clean != "." && clean != "..").then(|| clean.to_string())
}

/// Checks what the image header says before anything is decoded: a PNG or a
/// JPEG (`415` otherwise), a readable header (`422`), at most `max_pixels`
/// (`413`).
pub(crate) fn check_image(bytes: &[u8], max_pixels: u64) -> Result<(), Failure> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| {
            Failure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("cannot read the image: {e}"),
            )
        })?;
    match reader.format() {
        Some(ImageFormat::Png | ImageFormat::Jpeg) => {}
        Some(other) => {
            return Err(Failure::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "the image is {}, which som does not read: send a PNG or JPEG",
                    other.extensions_str().first().unwrap_or(&"of an unknown format")
                ),
            ))
        }
        None => {
            return Err(Failure::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the field \"image\" holds no PNG or JPEG image",
            ))
        }
    }
    // The decoder that will decode it reads the size (som_core's JPEG decoder for JPEGs).
    let (w, h) = som_core::io::image_dimensions(bytes)
        .map_err(|e| Failure::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        return Err(Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the image is {w}x{h} = {pixels} pixels, more than this server's limit of {max_pixels}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        image::RgbImage::new(w, h)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn file_names_keep_their_last_component() {
        assert_eq!(file_name("coffee.png").as_deref(), Some("coffee.png"));
        assert_eq!(file_name("C:\\photos\\cup.jpg").as_deref(), Some("cup.jpg"));
        assert_eq!(file_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(file_name("a\u{0}b\n.png").as_deref(), Some("ab.png"));
        assert_eq!(file_name("photos/"), None);
        assert_eq!(file_name(".."), None);
    }

    #[test]
    fn image_headers_are_checked_before_decoding() {
        assert!(check_image(&png(4, 3), 12).is_ok());
        let e = check_image(&png(4, 3), 11).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(e.message.contains("4x3 = 12 pixels"), "{}", e.message);
        let e = check_image(b"hello, world", 100).unwrap_err();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let e = check_image(b"GIF89a\x01\x00\x01\x00", 100).unwrap_err();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(e.message.contains("gif"), "{}", e.message);
        // A PNG cut inside its header.
        let e = check_image(&png(4, 3)[..20], 100).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        // JPEGs: the size from the frame header som's own decoder reads; a file cut
        // before its frame header is unreadable.
        let jpeg = som_core::io::encode_jpeg(&image::RgbImage::new(5, 4), 90).unwrap();
        assert!(check_image(&jpeg, 20).is_ok());
        let e = check_image(&jpeg, 19).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(e.message.contains("5x4 = 20 pixels"), "{}", e.message);
        let e = check_image(&jpeg[..4], 100).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e.message.contains("header"), "{}", e.message);
    }
}
