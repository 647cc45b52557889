//! A machine's backups on its page (`#backups`): `POST
//! /machines/ID/backup` makes one into mkve-web's directory (backups.rs)
//! and answers it as a download (`ID-NAME-DATE.mkvebak`); from the page
//! (htmx), it answers the section instead, marked for mkve.js to fetch
//! the file, `GET /machines/ID/backup`: the last one made here. The POST
//! carries the CSRF token like every change, is logged, and runs on the
//! blocking thread.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use mkve_core::vm::BackupOptions;
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::{status_of, TextError};
use crate::reply;
use crate::state::{blocking, Shared};
use crate::views;

pub fn router() -> Router<Shared> {
    Router::new().route("/machines/{id}/backup", get(last).post(make))
}

/// The form's checkboxes.
#[derive(Deserialize, Default)]
struct Make {
    #[serde(default)]
    full: Option<String>,
    #[serde(default)]
    unsigned: Option<String>,
}

fn checked(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("true" | "on"))
}

/// POST /machines/ID/backup: make one; the file, or for htmx the section.
async fn make(
    State(app): State<Shared>,
    c: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<Make>,
) -> Response {
    let o = BackupOptions {
        full: checked(&f.full),
        sign_key: None,
        no_sign: checked(&f.unsigned),
        secrets_to: None,
    };
    let words = crate::snapshots::backup_words(&o, &id);
    let made = crate::snapshots::backup(&app, &c.user, o, &id).await;
    if !headers.contains_key("hx-request") {
        return match made {
            Ok((r, file)) => reply::attachment(file, &r.file),
            Err(e) => TextError(e).into_response(),
        };
    }
    match made {
        Ok((r, _)) => {
            let flash = format!("{words}: done, {} ({} bytes)", r.file, r.bytes);
            views::backups::section(&id, Some(&r), Some((true, flash)), true).into_response()
        }
        Err(e) => {
            let last = app.backups.last_of(&id);
            let page =
                views::backups::section(&id, last.as_ref(), Some((false, e.to_string())), false);
            (status_of(&e), page).into_response()
        }
    }
}

/// GET /machines/ID/backup: the last backup made here of the machine, as
/// a download; 404 when none was.
async fn last(State(app): State<Shared>, Path(id): Path<String>) -> Response {
    let a = app.clone();
    match blocking(move || a.backups.open_last(&id)).await {
        Ok((r, file)) => reply::attachment(file, &r.file),
        Err(e) => TextError(e).into_response(),
    }
}
