//! `/machines/ID/vulnerabilities` (`--feed`): the open vulnerabilities of
//! the machine's bundle, as `mkve-vm audit` lists them (`vm::audit_machine`),
//! the feed and the accepted file read afresh; 404 without `--feed`. The
//! counts on the machines page are `routes/machines.rs`'s.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use maud::Markup;
use mkve_core::vm;

use crate::auth::Caller;
use crate::error::status_of;
use crate::state::{blocking, Shared};
use crate::views;

pub fn router() -> Router<Shared> {
    Router::new().route("/machines/{id}/vulnerabilities", get(vulnerabilities))
}

/// GET /machines/ID/vulnerabilities.
async fn vulnerabilities(
    State(app): State<Shared>,
    c: Caller,
    Path(id): Path<String>,
) -> (StatusCode, Markup) {
    let found = match app.config.feed.clone() {
        None => Ok(None),
        Some(feed) => {
            let uris = app.config.uris.clone();
            let target = id.clone();
            blocking(move || {
                let (feed, accepted) = crate::audits::load(&feed)?;
                vm::audit_machine(&uris, &target, &feed, &accepted)
            })
            .await
            .map(Some)
        }
    };
    let status = match &found {
        Ok(Some(_)) => StatusCode::OK,
        Ok(None) => StatusCode::NOT_FOUND,
        Err(e) => status_of(e),
    };
    (status, views::audit::vulnerabilities_page(&c, &id, &found))
}
