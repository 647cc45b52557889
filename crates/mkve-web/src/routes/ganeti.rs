//! A Ganeti cluster's instances (mkve.conf `engine=ganeti`): the page
//! `/ganeti` lists them, the API lists them and acts on them through the
//! same calls `mkve-vm --engine ganeti` makes (`ganeti.rs`).
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /api/ganeti/instances` | `mkve-vm --engine ganeti list --json` |
//! | `GET /api/ganeti/instances/NAME` | `… info --json NAME` |
//! | `POST /api/ganeti/instances/NAME/start` | `204` |
//! | `POST /api/ganeti/instances/NAME/stop[?force=true|?timeout=S]` | `204` |
//! | `POST /api/ganeti/instances/NAME/migrate?to=NODE` | `204` |
//! | `DELETE /api/ganeti/instances/NAME` | `204` |

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use maud::Markup;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::ganeti::{self, Act};
use crate::reply;
use crate::request::{NoOptions, Query, UrlPath};
use crate::state::{blocking, Shared};
use crate::views;

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/ganeti", get(page))
        .route("/api/ganeti/instances", get(list))
        .route("/api/ganeti/instances/{name}", get(info).delete(delete))
        .route("/api/ganeti/instances/{name}/{action}", post(action))
}

type Answer = Result<Response, ApiError>;

async fn list(Query(_): Query<NoOptions>) -> Answer {
    reply::json(&blocking(ganeti::list).await?)
}

async fn info(UrlPath(name): UrlPath<String>, Query(_): Query<NoOptions>) -> Answer {
    reply::json(&blocking(move || ganeti::info(&name)).await?)
}

async fn act(app: &Shared, user: &str, a: Act, name: String) -> Result<StatusCode, ApiError> {
    app.act(user, a.words(&name), move || a.run(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn action(
    State(app): State<Shared>,
    c: Caller,
    UrlPath((name, word)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<StatusCode, ApiError> {
    let a = Act::parse(&word, query.as_deref())?;
    act(&app, &c.user, a, name).await
}

async fn delete(
    State(app): State<Shared>,
    c: Caller,
    UrlPath(name): UrlPath<String>,
    Query(_): Query<NoOptions>,
) -> Result<StatusCode, ApiError> {
    act(&app, &c.user, Act::Delete, name).await
}

/// GET /ganeti: the cluster's instances.
async fn page(c: Caller) -> Markup {
    let list = blocking(ganeti::list).await;
    views::ganeti::ganeti_page(&c, &list)
}
