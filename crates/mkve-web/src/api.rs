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
//! | `POST /api/machines/ID/stop[?force=true][&timeout=S]` | `204` |
//! | `POST /api/machines/ID/autostart[?off=true]` | `204` |
//! | `DELETE /api/machines/ID` | `204` |
//! | `GET /api/network` | `mkve-net status --json` |
//! | `GET /api/log` | the action log, newest first |
//! | `GET /api/session` | `{"user": …, "csrf": …}`: the token changes need |
//!
//! A failure is `{"error": MESSAGE, "exit": STATUS}`: the CLI's message and
//! exit status, with an HTTP status to match (app.rs `status_of`).

use std::time::Duration;

use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use mkve_core::hypervisor::Hypervisor;
use mkve_core::libvirt::{self, network};
use mkve_core::vm;
use mkve_core::Error;
use serde::Deserialize;

use crate::actions::{act, Action, STOP_TIMEOUT};
use crate::app::{blocking, json_response, ApiError, Shared};
use crate::auth::Caller;

pub async fn session(Extension(c): Extension<Caller>) -> Response {
    json_response(&serde_json::json!({ "user": c.user, "csrf": c.csrf }))
}

pub async fn list(State(app): State<Shared>) -> Response {
    let uris = app.config.uris.clone();
    match blocking(move || vm::list(&uris)).await {
        Ok(m) => json_response(&m),
        Err(e) => ApiError(e).into_response(),
    }
}

pub async fn info(State(app): State<Shared>, Path(id): Path<String>) -> Response {
    let uris = app.config.uris.clone();
    match blocking(move || vm::info(&uris, &id)).await {
        Ok(i) => json_response(&i),
        Err(e) => ApiError(e).into_response(),
    }
}

pub async fn create(
    State(app): State<Shared>,
    Extension(c): Extension<Caller>,
    mp: Multipart,
) -> Response {
    crate::create::api_create(&app, &c.user, mp).await
}

/// The query of `stop` and `autostart`.
#[derive(Deserialize, Default)]
pub struct Options {
    #[serde(default)]
    force: bool,
    timeout: Option<u64>,
    #[serde(default)]
    off: bool,
}

pub async fn action(
    State(app): State<Shared>,
    Extension(c): Extension<Caller>,
    Path((id, word)): Path<(String, String)>,
    Query(q): Query<Options>,
) -> Response {
    let a = match word.as_str() {
        "start" => Action::Start,
        "stop" => Action::Stop {
            force: q.force,
            timeout: q.timeout.map_or(STOP_TIMEOUT, Duration::from_secs),
        },
        "reboot" => Action::Reboot,
        "autostart" => Action::Autostart { on: !q.off },
        w => return ApiError(Error::Usage(format!("no action {w}"))).into_response(),
    };
    done(act(&app, &c.user, a, &id).await)
}

pub async fn delete(
    State(app): State<Shared>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    done(act(&app, &c.user, Action::Delete, &id).await)
}

fn done(r: mkve_core::Result<()>) -> Response {
    match r {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

/// The network's state, as `mkve-net status --json` (the connection
/// `-c` names, else qemu's, as mkve-net's).
pub fn network_status(connect: Option<&str>) -> mkve_core::Result<network::Status> {
    let conn = libvirt::connect(&libvirt::uri(connect, Hypervisor::Qemu.default_uri()))?;
    network::status(&conn, &mkve_core::nodes::network()?)
}

pub async fn network(State(app): State<Shared>) -> Response {
    let connect = app.config.connect.clone();
    match blocking(move || network_status(connect.as_deref())).await {
        Ok(s) => json_response(&s),
        Err(e) => ApiError(e).into_response(),
    }
}

pub async fn log(State(app): State<Shared>) -> Response {
    json_response(&app.log.newest_first())
}
