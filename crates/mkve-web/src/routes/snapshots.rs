//! A machine's snapshots on its page (`#snapshots`): take one (its name
//! optional), revert to one (a stopped machine: a running one is refused
//! in the CLI's words, 400), delete one. Each is a POST carrying the CSRF
//! token, logged, run on the blocking thread; it answers the section
//! again with what happened, with the status of its failure.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Form, Router};
use maud::Markup;
use mkve_core::vm::{self, MachineState};
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::status_of;
use crate::snapshots::{act, list, SnapshotAction};
use crate::state::{blocking, Shared};
use crate::views;

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/machines/{id}/snapshots", post(take))
        .route("/machines/{id}/snapshots/{name}/revert", post(revert))
        .route("/machines/{id}/snapshots/{name}/delete", post(delete))
}

#[derive(Deserialize, Default)]
struct Take {
    #[serde(default)]
    name: Option<String>,
}

/// POST /machines/ID/snapshots: take one, named `name` (empty: the time).
async fn take(
    State(app): State<Shared>,
    c: Caller,
    Path(id): Path<String>,
    Form(f): Form<Take>,
) -> (StatusCode, Markup) {
    let name = f
        .name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    answer(&app, &c, &id, SnapshotAction::Take(name)).await
}

/// POST /machines/ID/snapshots/NAME/revert.
async fn revert(
    State(app): State<Shared>,
    c: Caller,
    Path((id, name)): Path<(String, String)>,
) -> (StatusCode, Markup) {
    answer(&app, &c, &id, SnapshotAction::Revert(name)).await
}

/// POST /machines/ID/snapshots/NAME/delete.
async fn delete(
    State(app): State<Shared>,
    c: Caller,
    Path((id, name)): Path<(String, String)>,
) -> (StatusCode, Markup) {
    answer(&app, &c, &id, SnapshotAction::Delete(name)).await
}

/// Do `action`, then the section again: its status that of the failure.
async fn answer(
    app: &Shared,
    c: &Caller,
    id: &str,
    action: SnapshotAction,
) -> (StatusCode, Markup) {
    let words = action.words(id);
    let r = act(app, &c.user, action, id).await;
    let (status, flash) = match r {
        // A snapshot named by the time: its name told.
        Ok(name) if !words.ends_with(&name) => {
            (StatusCode::OK, (true, format!("{words}: done ({name})")))
        }
        Ok(_) => (StatusCode::OK, (true, format!("{words}: done"))),
        Err(e) => (status_of(&e), (false, e.to_string())),
    };
    let uris = app.config.uris.clone();
    let t = id.to_string();
    let running = blocking(move || vm::find(&uris, &t).map(|(_, _, m)| m.state))
        .await
        .map(|s| s == MachineState::Running)
        .unwrap_or(false);
    let snapshots = list(app, id).await;
    (
        status,
        views::snapshots::section(id, running, &snapshots, Some(flash)),
    )
}
