//! The page: HTML, CSS, JavaScript and sample photos, embedded in the binary
//! (no build step, nothing fetched from elsewhere, works offline).

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::Failure;

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");

/// The sample photos the page offers: small JPEG copies of the repository's
/// CC0 photos (written by `tools/fixtures/gen_serve_photos.py`).
pub(crate) const PHOTOS: [(&str, &[u8]); 5] = [
    ("coffee.jpg", include_bytes!("../assets/photos/coffee.jpg")),
    ("rocket.jpg", include_bytes!("../assets/photos/rocket.jpg")),
    ("chelsea.jpg", include_bytes!("../assets/photos/chelsea.jpg")),
    ("astronaut.jpg", include_bytes!("../assets/photos/astronaut.jpg")),
    ("camera.jpg", include_bytes!("../assets/photos/camera.jpg")),
];

/// Everything the page loads comes from this server; scripts and styles only
/// from its own files (no inline code), images also from blob: URLs.
const CSP: &str = "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

fn asset(content_type: &'static str, body: impl IntoResponse) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

pub(crate) async fn index() -> Response {
    let mut response = asset("text/html; charset=utf-8", INDEX);
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    response
}

pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

pub(crate) async fn photo(Path(name): Path<String>) -> Response {
    match PHOTOS.iter().find(|(n, _)| *n == name) {
        Some((_, bytes)) => asset("image/jpeg", *bytes),
        None => Failure::new(StatusCode::NOT_FOUND, format!("no sample photo {name:?}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_only_files_this_server_serves() {
        assert!(INDEX.contains("src=\"app.js\"") && INDEX.contains("href=\"app.css\""));
        // No absolute or external URL: the page works offline and under a prefix.
        for text in [INDEX, SCRIPT, STYLE] {
            assert!(!text.contains("http://") && !text.contains("https://"));
            assert!(!text.contains("src=\"/") && !text.contains("href=\"/"));
        }
        for (name, bytes) in PHOTOS {
            assert!(
                SCRIPT.contains(name) || INDEX.contains(name),
                "{name} is not offered"
            );
            assert!(som_core::io::decode_image(bytes).is_ok(), "{name}");
        }
    }
}
