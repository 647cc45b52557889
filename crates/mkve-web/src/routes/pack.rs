//! Pack and adopt from the pages: `POST /machines/ID/pack` packs a stopped
//! machine into a bundle (the form on its page) kept as its last one
//! here; from the page (htmx) it answers the section, marked for mkve.js
//! to fetch the file, `GET /machines/ID/pack`. `POST /adopt` adopts a
//! libvirt domain (the form on the create page) and sends the browser to
//! its new machine's page. Each change carries the CSRF token, is logged,
//! and runs on the blocking thread (packs.rs).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use mkve_core::vm::AdoptOptions;
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::{status_of, TextError};
use crate::reply;
use crate::state::{blocking, Shared};
use crate::views;

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/machines/{id}/pack", get(last).post(pack))
        .route("/adopt", post(adopt))
}

/// The pack forms' fields: the download's checkbox, the publish form's
/// hidden `publish`.
#[derive(Deserialize, Default)]
struct Pack {
    #[serde(default)]
    unsigned: Option<String>,
    #[serde(default)]
    publish: Option<String>,
}

/// POST /machines/ID/pack: the packed bundle; for htmx the section.
async fn pack(
    State(app): State<Shared>,
    c: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<Pack>,
) -> Response {
    let dir = app.config.publish_dir.as_deref();
    if matches!(f.publish.as_deref(), Some("true" | "on")) {
        let (status, flash) = match crate::packs::publish(&app, &c.user, &id).await {
            Ok(p) => (
                axum::http::StatusCode::OK,
                (
                    true,
                    format!("published: {} (sha256 {})", p.path.display(), p.sha256),
                ),
            ),
            Err(e) => (status_of(&e), (false, e.to_string())),
        };
        return (status, views::pack::section(&id, Some(flash), false, dir)).into_response();
    }
    let unsigned = matches!(f.unsigned.as_deref(), Some("true" | "on"));
    let made = crate::packs::pack(&app, &c.user, &id, unsigned).await;
    if !headers.contains_key("hx-request") {
        return match made {
            Ok((name, file)) => reply::attachment(file, &name),
            Err(e) => TextError(e).into_response(),
        };
    }
    match made {
        Ok((name, _)) => {
            views::pack::section(&id, Some((true, format!("packed: {name}"))), true, dir)
                .into_response()
        }
        Err(e) => (
            status_of(&e),
            views::pack::section(&id, Some((false, e.to_string())), false, dir),
        )
            .into_response(),
    }
}

/// GET /machines/ID/pack: the last bundle packed here of the machine; 404
/// when none was.
async fn last(State(app): State<Shared>, Path(id): Path<String>) -> Response {
    let a = app.clone();
    match blocking(move || crate::packs::open_last(&a, &id)).await {
        Ok((name, file)) => reply::attachment(file, &name),
        Err(e) => TextError(e).into_response(),
    }
}

/// The adopt form's fields.
#[derive(Deserialize, Default)]
struct Adopt {
    domain: String,
    #[serde(default)]
    id: Option<String>,
}

/// POST /adopt: adopt the domain, then its machine's page.
async fn adopt(
    State(app): State<Shared>,
    c: Caller,
    headers: HeaderMap,
    Form(f): Form<Adopt>,
) -> Response {
    let id = match f.id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match s.parse() {
            Ok(id) => Some(id),
            Err(e) => {
                return TextError(mkve_core::Error::Usage(format!("id: {e}"))).into_response()
            }
        },
    };
    let o = AdoptOptions {
        id,
        ..Default::default()
    };
    match crate::packs::adopt(&app, &c.user, f.domain.trim(), o).await {
        Ok(a) => reply::redirect(&headers, &format!("/machines/{}", a.id)),
        Err(e) => TextError(e).into_response(),
    }
}
