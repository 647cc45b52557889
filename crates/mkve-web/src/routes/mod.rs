//! The routes: one router per resource, each in its own file, merged here
//! in one place behind the same layers: the access checks (`guard.rs`),
//! what came from outside made printable, the security headers.
//!
//! | resource | routes |
//! | --- | --- |
//! | `machines.rs` | `/`, `/machines/table`, `/machines/ID`, its actions and delete |
//! | `snapshots.rs` | `/machines/ID/snapshots…`: take, revert, delete |
//! | `backups.rs` | `/machines/ID/backup`: make one and download it, the last one |
//! | `pack.rs` | `/machines/ID/pack`: pack the machine and download it, the last one; `/adopt` |
//! | `audit.rs` | `/machines/ID/vulnerabilities` (`--feed`) |
//! | `console.rs` | `/machines/ID/console` and its WebSocket |
//! | `create.rs` | `/create`, `/create/TOKEN`, `/jobs/N` |
//! | `network.rs`, `log.rs` | `/network`, `/log` |
//! | `ganeti.rs` | `/ganeti`, `/api/ganeti/…` (mkve.conf `engine=ganeti`) |
//! | `auth.rs` | `/login`, `/logout` |
//! | `assets.rs` | `/assets/NAME` |
//! | `api.rs` | `/api/…` (mkve-web(8) lists it) |
//!
//! Handlers take the state (`state.rs`), the [`Caller`](crate::auth::Caller)
//! the guard found, and the request's parts read strictly (`request.rs`);
//! they render `views/` and answer failures by their kind (`error.rs`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::state::Shared;

pub mod api;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod backups;
pub mod console;
pub mod create;
pub mod ganeti;
pub mod log;
pub mod machines;
pub mod network;
pub mod pack;
pub mod snapshots;

/// Every route, behind the access checks (guard.rs).
pub fn router(app: Shared) -> Router {
    Router::new()
        .merge(machines::router())
        .merge(snapshots::router())
        .merge(backups::router())
        .merge(pack::router())
        .merge(audit::router())
        .merge(console::router())
        .merge(create::router())
        .merge(network::router())
        .merge(ganeti::router())
        .merge(log::router())
        .merge(auth::router())
        .merge(assets::router())
        .merge(api::router())
        // What no route takes: the API's JSON error under /api/.
        .fallback(crate::request::fallback)
        .method_not_allowed_fallback(crate::request::method_not_allowed)
        .layer(axum::middleware::map_response(printable_body))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::guard::guard,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                 connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
            ),
        ))
        .with_state(app)
}

/// Every page and every JSON answer, whatever made it, with the control
/// characters that came from a guest, a bundle or a node escaped
/// (`mkve_core::text`): HTML as the CLI prints text, JSON with JSON's own
/// escapes (the exact value kept). The pages' own markup has none, so this
/// changes only what came from outside. Other bodies (assets, the
/// console's WebSocket) pass as they are.
async fn printable_body(resp: Response) -> Response {
    let kind = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (html, json) = (
        kind.starts_with("text/html"),
        kind.starts_with("application/json"),
    );
    if !html && !json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    // Pages and answers are built whole in memory: no limit is reached.
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let text = match String::from_utf8(bytes.to_vec()) {
        Ok(t) => t,
        Err(_) => return Response::from_parts(parts, axum::body::Body::from(bytes)),
    };
    let text = if json {
        mkve_core::text::json_safe(text)
    } else {
        mkve_core::text::printable(&text).into_owned()
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(text))
}
