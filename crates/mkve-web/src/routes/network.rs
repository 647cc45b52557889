//! The network's page: `mkve-net status` on mkve-net's connection, and
//! which of its entries are orphans.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use maud::Markup;

use crate::auth::Caller;
use crate::state::{blocking, Shared};
use crate::views;

pub fn router() -> Router<Shared> {
    Router::new().route("/network", get(network))
}

/// GET /network.
async fn network(State(app): State<Shared>, c: Caller) -> Markup {
    let connect = app.config.connect.clone();
    let status = blocking(move || crate::network::network_status(connect.as_deref())).await;
    let list = super::machines::infos(&app).await.unwrap_or_default();
    views::network::network_page(&c, &status, &list)
}
