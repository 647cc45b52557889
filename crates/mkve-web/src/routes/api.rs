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
//! | `GET /api/machines/ID/snapshots` | `mkve-vm snapshots --json ID` |
//! | `POST /api/machines/ID/snapshots[?name=NAME]` | `201 {"name": NAME}` |
//! | `POST /api/machines/ID/snapshots/NAME/revert` | `204` |
//! | `DELETE /api/machines/ID/snapshots/NAME` | `204` |
//! | `POST /api/machines/ID/backup[?full=true][&unsigned=true]` | the backup, a download |
//! | `GET /api/machines/ID/backup` | the last backup made here, a download |
//! | `POST /api/machines/ID/pack[?unsigned=true]` | the machine packed into a bundle, a download |
//! | `POST /api/adopt?domain=NAME[&id=N][&dry_run=true]` | `201 {"id": N}`; with `dry_run`, `200 {"id": N, "changes": [...]}` |
//! | `GET /api/network` | `mkve-net status --json` |
//! | `GET /api/log` | the action log, newest first |
//! | `GET /api/session` | `{"user": …, "csrf": …}`: the token changes need |
//!
//! A failure is `{"error": MESSAGE, "exit": STATUS}`: the CLI's message and
//! exit status, with an HTTP status to match (error.rs `status_of`); so is
//! every refusal of a request's form (request.rs): a query option, a form
//! field or a path segment the route does not take, a body that is not
//! multipart, an upload cut short (400, exit 2), a path no route takes
//! (404), a method the route does not take (405).

use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mkve_core::vm::{self, BackupOptions};

use crate::actions::{act, Action};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::reply;
use crate::request::{flag, NoOptions, Query, Upload, UrlPath};
use crate::snapshots::SnapshotAction;
use crate::state::{blocking, Shared};

pub fn router() -> Router<Shared> {
    let uploads = Router::new()
        .route("/api/machines", post(create))
        // Uploads are streamed to disk under their own cap (uploads.rs).
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .route("/api/session", get(session))
        .route("/api/machines", get(list))
        .route("/api/machines/{id}", get(info).delete(delete))
        .route("/api/machines/{id}/{action}", post(action))
        .route(
            "/api/machines/{id}/snapshots",
            get(snapshots).post(take_snapshot),
        )
        .route(
            "/api/machines/{id}/snapshots/{name}",
            axum::routing::delete(delete_snapshot),
        )
        .route(
            "/api/machines/{id}/snapshots/{name}/revert",
            post(revert_snapshot),
        )
        .route("/api/machines/{id}/backup", get(last_backup).post(backup))
        .route("/api/machines/{id}/pack", post(pack))
        .route("/api/machines/{id}/update", get(update))
        .route("/api/machines/{id}/upgrade", post(upgrade))
        .route("/api/adopt", post(adopt))
        .route("/api/network", get(network))
        .route("/api/log", get(log))
        .merge(uploads)
}

type Answer = Result<Response, ApiError>;

async fn session(c: Caller, Query(_): Query<NoOptions>) -> Answer {
    reply::json(&serde_json::json!({ "user": c.user, "csrf": c.csrf }))
}

async fn list(State(app): State<Shared>, Query(_): Query<NoOptions>) -> Answer {
    let uris = app.config.uris.clone();
    reply::json(&blocking(move || vm::list(&uris)).await?)
}

async fn info(
    State(app): State<Shared>,
    UrlPath(id): UrlPath<String>,
    Query(_): Query<NoOptions>,
) -> Answer {
    let uris = app.config.uris.clone();
    reply::json(&blocking(move || vm::info(&uris, &id)).await?)
}

/// `201 {"id": N}` once the machine is made, or the error.
async fn create(
    State(app): State<Shared>,
    c: Caller,
    Query(_): Query<NoOptions>,
    Upload(mp): Upload,
) -> Answer {
    let id = crate::create::at_once(&app, &c.user, mp).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/machines/{id}"))],
        Json(serde_json::json!({ "id": id })),
    )
        .into_response())
}

async fn action(
    State(app): State<Shared>,
    c: Caller,
    UrlPath((id, word)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<StatusCode, ApiError> {
    let a = Action::from_api(&word, query.as_deref())?;
    act(&app, &c.user, a, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete(
    State(app): State<Shared>,
    c: Caller,
    UrlPath(id): UrlPath<String>,
    Query(_): Query<NoOptions>,
) -> Result<StatusCode, ApiError> {
    act(&app, &c.user, Action::Delete, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn snapshots(
    State(app): State<Shared>,
    UrlPath(id): UrlPath<String>,
    Query(_): Query<NoOptions>,
) -> Answer {
    reply::json(&crate::snapshots::list(&app, &id).await?)
}

/// `201 {"name": NAME}` once it is taken.
async fn take_snapshot(
    State(app): State<Shared>,
    c: Caller,
    UrlPath(id): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Take {
        name: Option<String>,
    }
    let q: Take = crate::request::query(query.as_deref())?;
    let name = crate::snapshots::act(&app, &c.user, SnapshotAction::Take(q.name), &id).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/machines/{id}/snapshots"))],
        Json(serde_json::json!({ "name": name })),
    )
        .into_response())
}

async fn revert_snapshot(
    State(app): State<Shared>,
    c: Caller,
    UrlPath((id, name)): UrlPath<(String, String)>,
    Query(_): Query<NoOptions>,
) -> Result<StatusCode, ApiError> {
    crate::snapshots::act(&app, &c.user, SnapshotAction::Revert(name), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_snapshot(
    State(app): State<Shared>,
    c: Caller,
    UrlPath((id, name)): UrlPath<(String, String)>,
    Query(_): Query<NoOptions>,
) -> Result<StatusCode, ApiError> {
    crate::snapshots::act(&app, &c.user, SnapshotAction::Delete(name), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The backup made, as a download (`ID-NAME-DATE.mkvebak`); it is kept as
/// the machine's last one.
async fn backup(
    State(app): State<Shared>,
    c: Caller,
    UrlPath(id): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Backup {
        full: Option<String>,
        unsigned: Option<String>,
    }
    let q: Backup = crate::request::query(query.as_deref())?;
    let o = BackupOptions {
        full: flag("full", q.full)?,
        sign_key: None,
        no_sign: flag("unsigned", q.unsigned)?,
        secrets_to: None,
    };
    let (r, file) = crate::snapshots::backup(&app, &c.user, o, &id).await?;
    Ok(reply::attachment(file, &r.file))
}

/// The machine packed into a bundle, as a download; kept as its last one.
async fn pack(
    State(app): State<Shared>,
    c: Caller,
    UrlPath(id): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Pack {
        unsigned: Option<String>,
        publish: Option<String>,
    }
    let q: Pack = crate::request::query(query.as_deref())?;
    let unsigned = flag("unsigned", q.unsigned)?;
    if flag("publish", q.publish)? {
        if unsigned {
            return Err(mkve_core::Error::Usage(
                "publish and unsigned: a published bundle is signed".into(),
            )
            .into());
        }
        let p = crate::packs::publish(&app, &c.user, &id).await?;
        return Ok((
            StatusCode::CREATED,
            Json(serde_json::json!({"path": p.path, "sha256": p.sha256, "bytes": p.bytes})),
        )
            .into_response());
    }
    let (name, file) = crate::packs::pack(&app, &c.user, &id, unsigned).await?;
    Ok(reply::attachment(file, &name))
}

/// `{"update": null}`, or `{"update": {"version": V, "bundle": B}}`: the
/// newer bundle of the machine's template in the directory its bundle
/// came from.
async fn update(
    State(app): State<Shared>,
    UrlPath(id): UrlPath<String>,
    Query(_): Query<NoOptions>,
) -> Answer {
    let u = crate::upgrades::update(&app, &id).await?;
    reply::json(&serde_json::json!({ "update": u }))
}

/// The machine upgraded to its update, as `mkve-vm upgrade` does:
/// `{"update": …, "upgrade": …}` (the summary `mkve-vm upgrade --json`
/// prints); 400 when there is none, the upgrade's failures by kind.
async fn upgrade(
    State(app): State<Shared>,
    c: Caller,
    UrlPath(id): UrlPath<String>,
    Query(_): Query<NoOptions>,
) -> Answer {
    let (u, summary) = crate::upgrades::upgrade(&app, &c.user, &id).await?;
    reply::json(&serde_json::json!({ "update": u, "upgrade": summary }))
}

/// `201 {"id": N}` once the domain is adopted; with `dry_run`, what would
/// change.
async fn adopt(State(app): State<Shared>, c: Caller, RawQuery(query): RawQuery) -> Answer {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Adopt {
        domain: String,
        id: Option<String>,
        dry_run: Option<String>,
    }
    let q: Adopt = crate::request::query(query.as_deref())?;
    let id = match q.id {
        None => None,
        Some(s) => Some(
            s.parse::<mkve_core::ids::MachineId>()
                .map_err(|e| mkve_core::Error::Usage(format!("the query: id={s}: {e}")))?,
        ),
    };
    let o = vm::AdoptOptions {
        id,
        hypervisor: None,
        dry_run: flag("dry_run", q.dry_run)?,
        network: false,
    };
    let dry = o.dry_run;
    let a = crate::packs::adopt(&app, &c.user, &q.domain, o).await?;
    if dry {
        return reply::json(&serde_json::json!({ "id": a.id, "changes": a.changes }));
    }
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/machines/{}", a.id))],
        Json(serde_json::json!({ "id": a.id })),
    )
        .into_response())
}

async fn last_backup(
    State(app): State<Shared>,
    UrlPath(id): UrlPath<String>,
    Query(_): Query<NoOptions>,
) -> Answer {
    let a = app.clone();
    let (r, file) = blocking(move || a.backups.open_last(&id)).await?;
    Ok(reply::attachment(file, &r.file))
}

/// The network's state, as `mkve-net status --json`, on the connection
/// mkve-net opens (`network.rs`).
async fn network(State(app): State<Shared>, Query(_): Query<NoOptions>) -> Answer {
    let connect = app.config.connect.clone();
    reply::json(&blocking(move || crate::network::network_status(connect.as_deref())).await?)
}

async fn log(State(app): State<Shared>, Query(_): Query<NoOptions>) -> Answer {
    reply::json(&app.log.newest_first())
}
