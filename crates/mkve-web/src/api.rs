//! The JSON API: what the pages do, for scripts, answering what the
//! command line prints with `--json` (the same serialisation, through
//! `mkve_cli::json_text`), so a script and the page agree.
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /api/machines` | `mkve-vm list --json` |
//! | `GET /api/machines/ID` | `mkve-vm info --json ID` |
//! | `POST /api/machines` (multipart: `bundle` and options) | `201 {"id": N}` |
//! | `POST /api/machines/ID/start`, `reboot` | `204` |
//! | `POST /api/machines/ID/stop[?force=true|?timeout=S]` | `204` |
//! | `POST /api/machines/ID/autostart[?off=true]` | `204` |
//! | `DELETE /api/machines/ID` | `204` |
//! | `GET /api/network` | `mkve-net status --json` |
//! | `GET /api/log` | the action log, newest first |
//! | `GET /api/session` | `{"user": …, "csrf": …}`: the token changes need |
//!
//! A failure is `{"error": MESSAGE, "exit": STATUS}`: the CLI's message and
//! exit status, with an HTTP status to match (app.rs `status_of`); so is
//! every refusal of a request's form (request.rs): a query option, a form
//! field or a path segment the route does not take, a body that is not
//! multipart, an upload cut short (400, exit 2), a path no route takes
//! (404), a method the route does not take (405).

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use mkve_core::libvirt::{self, network};
use mkve_core::vm;

use crate::actions::{act, Action};
use crate::app::{blocking, json_response, ApiError, Shared};
use crate::auth::Caller;
use crate::request::{NoOptions, Query, Upload, UrlPath};

pub async fn session(Extension(c): Extension<Caller>, Query(_): Query<NoOptions>) -> Response {
    json_response(&serde_json::json!({ "user": c.user, "csrf": c.csrf }))
}

pub async fn list(State(app): State<Shared>, Query(_): Query<NoOptions>) -> Response {
    let uris = app.config.uris.clone();
    match blocking(move || vm::list(&uris)).await {
        Ok(m) => json_response(&m),
        Err(e) => ApiError(e).into_response(),
    }
}

pub async fn info(
    State(app): State<Shared>,
    UrlPath(id): UrlPath<String>,
    Query(_): Query<NoOptions>,
) -> Response {
    let uris = app.config.uris.clone();
    match blocking(move || vm::info(&uris, &id)).await {
        Ok(i) => json_response(&i),
        Err(e) => ApiError(e).into_response(),
    }
}

pub async fn create(
    State(app): State<Shared>,
    Extension(c): Extension<Caller>,
    Query(_): Query<NoOptions>,
    Upload(mp): Upload,
) -> Response {
    crate::create::api_create(&app, &c.user, mp).await
}

pub async fn action(
    State(app): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath((id, word)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    match Action::from_api(&word, query.as_deref()) {
        Ok(a) => done(act(&app, &c.user, a, &id).await),
        Err(e) => ApiError(e).into_response(),
    }
}

pub async fn delete(
    State(app): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
    Query(_): Query<NoOptions>,
) -> Response {
    done(act(&app, &c.user, Action::Delete, &id).await)
}

fn done(r: mkve_core::Result<()>) -> Response {
    match r {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

/// The network's state, as `mkve-net status --json`, on the connection
/// mkve-net opens: `-c`, else `LIBVIRT_DEFAULT_URI`, else this node's URI
/// in mkve.conf, else qemu's default (`nodes::network_uri`).
pub fn network_status(connect: Option<&str>) -> mkve_core::Result<network::Status> {
    let conn = libvirt::connect(&network_uri(connect)?)?;
    network::status(&conn, &mkve_core::nodes::network()?)
}

pub async fn network(State(app): State<Shared>, Query(_): Query<NoOptions>) -> Response {
    let connect = app.config.connect.clone();
    match blocking(move || network_status(connect.as_deref())).await {
        Ok(s) => json_response(&s),
        Err(e) => ApiError(e).into_response(),
    }
}

pub async fn log(State(app): State<Shared>, Query(_): Query<NoOptions>) -> Response {
    json_response(&app.log.newest_first())
}

/// The libvirt URI the network is reached on, as mkve-net chooses it
/// (`nodes::Connections::network`). Errors (65): mkve.conf is unsound.
pub fn network_uri(connect: Option<&str>) -> mkve_core::Result<String> {
    Ok(mkve_core::nodes::Connections::resolve(connect)?.network())
}
