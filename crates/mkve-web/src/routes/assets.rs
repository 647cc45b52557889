//! The static files the pages use, compiled into the binary (see
//! `assets/README`): htmx, xterm.js and its style, mkve-web's script and
//! style. Served with a day's cache: their names change with mkve's
//! version only, so the cache is short.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::state::Shared;

pub fn router() -> Router<Shared> {
    Router::new().route("/assets/{name}", get(serve))
}

/// Name → (content type, bytes).
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "htmx.min.js",
        "text/javascript",
        include_bytes!("../../assets/htmx.min.js"),
    ),
    (
        "xterm.js",
        "text/javascript",
        include_bytes!("../../assets/xterm.js"),
    ),
    (
        "xterm.css",
        "text/css",
        include_bytes!("../../assets/xterm.css"),
    ),
    (
        "mkve.js",
        "text/javascript",
        include_bytes!("../../assets/mkve.js"),
    ),
    (
        "mkve.css",
        "text/css",
        include_bytes!("../../assets/mkve.css"),
    ),
];

/// GET /assets/NAME.
async fn serve(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, ty, bytes)) => (
            [
                (header::CONTENT_TYPE, *ty),
                (header::CACHE_CONTROL, "max-age=86400"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
}
