//! Answers every route builds the same way: a redirect (htmx's or a 303)
//! and JSON as `mkve-vm … --json` prints it.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Go to `to`: for htmx a `HX-Redirect` (the whole page changes), else a
/// 303.
pub fn redirect(headers: &HeaderMap, to: &str) -> Response {
    if headers.contains_key("hx-request") {
        ([("hx-redirect", to.to_string())], "").into_response()
    } else {
        (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
    }
}

/// The JSON text of `v` as `mkve-vm … --json` prints it (a final newline
/// included).
pub fn json(v: &impl serde::Serialize) -> Result<Response, ApiError> {
    let mut text = mkve_cli::json_text(v)?;
    text.push('\n');
    Ok(([(header::CONTENT_TYPE, "application/json")], text).into_response())
}
