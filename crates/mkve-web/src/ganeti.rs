//! A Ganeti cluster's instances (mkve.conf `engine=ganeti`; mkve-vm(1),
//! GANETI), in mkve-web as `mkve-vm --engine ganeti` has them: the API
//! lists them and acts on them through the same calls (RAPI jobs, logged
//! as the command line would say them), the page `/ganeti` lists them.
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /api/ganeti/instances` | `mkve-vm --engine ganeti list --json` |
//! | `GET /api/ganeti/instances/NAME` | `… info --json NAME` |
//! | `POST /api/ganeti/instances/NAME/start` | `204` |
//! | `POST /api/ganeti/instances/NAME/stop[?force=true|?timeout=S]` | `204` |
//! | `POST /api/ganeti/instances/NAME/migrate?to=NODE` | `204` |
//! | `DELETE /api/ganeti/instances/NAME` | `204` |

use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::html;
use mkve_core::vm::ganeti_rapi::{self, Engine};
use mkve_core::{Error, Result};

use crate::app::{blocking, json_response, ApiError, Shared};
use crate::auth::Caller;
use crate::request::{NoOptions, Query, UrlPath};

/// The cluster mkve.conf names. Errors (2): it names none.
fn engine() -> Result<Engine> {
    ganeti_rapi::configured(None)?.ok_or_else(|| {
        Error::Usage("no Ganeti cluster: mkve.conf does not say engine=ganeti".into())
    })
}

pub async fn list(Query(_): Query<NoOptions>) -> Response {
    match blocking(|| engine()?.list()).await {
        Ok(l) => json_response(&l),
        Err(e) => ApiError(e).into_response(),
    }
}

pub async fn info(UrlPath(name): UrlPath<String>, Query(_): Query<NoOptions>) -> Response {
    match blocking(move || engine()?.info(&name)).await {
        Ok(i) => json_response(&i),
        Err(e) => ApiError(e).into_response(),
    }
}

/// What a POST asks of an instance.
enum Act {
    Start,
    Stop(Duration),
    Migrate(String),
    Delete,
}

impl Act {
    /// `start` (no options), `stop` (`force=true`, or `timeout=` seconds),
    /// `migrate` (`to=` the node). Errors (2): another word or option.
    fn parse(word: &str, query: Option<&str>) -> Result<Act> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Stop {
            force: Option<String>,
            timeout: Option<String>,
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Migrate {
            to: String,
        }
        Ok(match word {
            "start" => {
                crate::request::query::<NoOptions>(query)?;
                Act::Start
            }
            "stop" => {
                let q: Stop = crate::request::query(query)?;
                match (q.force.as_deref(), q.timeout) {
                    (Some("true"), None) => Act::Stop(Duration::ZERO),
                    (None | Some("false"), None) => Act::Stop(crate::actions::STOP_TIMEOUT),
                    (None | Some("false"), Some(t)) => {
                        Act::Stop(Duration::from_secs(t.parse::<u64>().map_err(|e| {
                            Error::Usage(format!(
                                "the query: timeout={}: {e}",
                                mkve_core::text::printable(&t)
                            ))
                        })?))
                    }
                    _ => {
                        return Err(Error::Usage(
                            "the query: force=true or timeout=SECONDS, not both".into(),
                        ))
                    }
                }
            }
            "migrate" => Act::Migrate(crate::request::query::<Migrate>(query)?.to),
            w => {
                return Err(Error::Usage(format!(
                    "no action {}",
                    mkve_core::text::printable(w)
                )))
            }
        })
    }

    /// The log's words, as the command line says it.
    fn words(&self, name: &str) -> String {
        match self {
            Act::Start => format!("--engine ganeti start {name}"),
            Act::Stop(t) if t.is_zero() => format!("--engine ganeti stop --force {name}"),
            Act::Stop(t) => format!("--engine ganeti stop --timeout {} {name}", t.as_secs()),
            Act::Migrate(to) => format!("--engine ganeti migrate {name} {to}"),
            Act::Delete => format!("--engine ganeti delete {name}"),
        }
    }

    fn run(self, name: &str) -> Result<()> {
        let e = engine()?;
        let r = &mkve_core::report::Silent;
        match self {
            Act::Start => e.start(name, r),
            Act::Stop(t) => e.stop(name, t, r),
            Act::Migrate(to) => e.migrate(name, Some(&to), r),
            Act::Delete => e.delete(name, r),
        }
    }
}

async fn act(app: &Shared, user: &str, a: Act, name: String) -> Response {
    match app.act(user, a.words(&name), move || a.run(&name)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

pub async fn action(
    State(app): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath((name, word)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    match Act::parse(&word, query.as_deref()) {
        Ok(a) => act(&app, &c.user, a, name).await,
        Err(e) => ApiError(e).into_response(),
    }
}

pub async fn delete(
    State(app): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath(name): UrlPath<String>,
    Query(_): Query<NoOptions>,
) -> Response {
    act(&app, &c.user, Act::Delete, name).await
}

/// GET /ganeti: the cluster's instances.
pub async fn page(Extension(c): Extension<Caller>) -> Response {
    let list = blocking(|| engine()?.list()).await;
    crate::pages::page(
        &c,
        "/ganeti",
        "Ganeti",
        html! {
            h1 { "Ganeti cluster" }
            @match &list {
                Err(e) => { (crate::pages::error(&e.to_string())) }
                Ok(l) if l.is_empty() => { p.muted { "The cluster has no instance." } }
                Ok(l) => {
                    table #instances {
                        thead { tr { th { "Name" } th { "Node" } th { "State" } th { "ID" } th { "Address" } th { "Variant" } } }
                        tbody { @for i in l {
                            tr {
                                td { (i.name) } td { (i.node) } td { (i.state) }
                                td { (i.id.map(|d| d.to_string()).unwrap_or_else(|| "-".into())) }
                                td { (i.address.as_deref().unwrap_or("-")) }
                                td { (i.variant.as_deref().unwrap_or(&i.os)) }
                            }
                        } }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_their_words() {
        assert_eq!(
            Act::parse("stop", Some("force=true")).unwrap().words("a"),
            "--engine ganeti stop --force a"
        );
        assert_eq!(
            Act::parse("migrate", Some("to=n2")).unwrap().words("a"),
            "--engine ganeti migrate a n2"
        );
        assert!(Act::parse("stop", Some("force=true&timeout=3")).is_err());
        assert!(Act::parse("migrate", None).is_err());
        assert!(Act::parse("explode", None).is_err());
    }
}
