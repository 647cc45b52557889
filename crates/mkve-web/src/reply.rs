//! Answers every route builds the same way: a redirect (htmx's or a 303),
//! JSON as `mkve-vm … --json` prints it, and a file to download.

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

/// `file` as a download named `name` (a plain file name: letters,
/// digits, `.`, `_`, `-`), streamed from disk, never held in memory.
pub fn attachment(file: std::fs::File, name: &str) -> Response {
    use tokio::io::AsyncReadExt;
    let len = file.metadata().map(|m| m.len()).ok();
    let stream =
        futures_util::stream::unfold(Some(tokio::fs::File::from_std(file)), |f| async move {
            let mut f = f?;
            let mut buf = vec![0u8; 256 << 10];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(axum::body::Bytes::from(buf)), Some(f)))
                }
                // The answer ends there, cut short: the client sees it.
                Err(e) => Some((Err(e), None)),
            }
        });
    let mut resp = (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response();
    if let Some(len) = len {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, len.into());
    }
    resp
}
