//! The log's page: every action, newest first.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use maud::Markup;

use crate::auth::Caller;
use crate::state::Shared;
use crate::views;

pub fn router() -> Router<Shared> {
    Router::new().route("/log", get(log))
}

/// GET /log.
async fn log(State(app): State<Shared>, c: Caller) -> Markup {
    views::log::log_page(&c, &app.log.newest_first())
}
