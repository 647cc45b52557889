//! The open vulnerabilities of each machine's bundle (mkve-web(8),
//! `--feed`): a count per machine on the machines page and a page per
//! machine (`/machines/ID/vulnerabilities`), as `mkve-vm audit` finds
//! them (mkve-core's `vm::audit`, `audit`). Nothing here when no feed is
//! given.
//!
//! The machines page refreshes every few seconds: the feed and the
//! accepted file are read again only when their size or time changed, and
//! a machine's count is worked out once for its bundle and that feed, on
//! a blocking thread before the page is drawn ([`refresh`]); drawing the
//! table only reads what is known ([`cell`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};
use mkve_core::audit::{self, Accepted, Feed};
use mkve_core::vm::{self, Info, MachineState};
use mkve_core::Result;

use crate::app::{blocking, App, Shared};
use crate::auth::Caller;

/// What the machines page shows of one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Count {
    /// How many vulnerabilities are open.
    Open(usize),
    /// Its packages are not known: why.
    NoSbom(String),
    /// Its SBOM could not be read: the CLI's words.
    Failed(String),
}

/// A file as last seen: its size and time, to tell when it changed.
type Stamp = Option<(u64, SystemTime)>;

fn stamp(path: &Path) -> Stamp {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
}

/// The feed and decisions as last read, and the counts worked out with
/// them, by machine ID (with the bundle each was for).
#[derive(Default)]
pub struct Audits {
    known: Mutex<Known>,
}

/// The feed and the accepted decisions as read, or why they could not be.
type Loaded = std::result::Result<Arc<(Feed, Vec<Accepted>)>, String>;

#[derive(Default)]
struct Known {
    stamps: (Stamp, Stamp),
    loaded: Option<Loaded>,
    counts: HashMap<u32, (String, Count)>,
}

fn accepted_path() -> PathBuf {
    mkve_core::paths::confdir().join(audit::ACCEPTED)
}

/// The feed and the accepted decisions, read.
fn load(feed: &Path) -> Result<(Feed, Vec<Accepted>)> {
    let bytes = audit::read_feed_file(feed)?;
    let parsed = audit::parse_feed(&bytes, feed)?;
    Ok((parsed, audit::load_accepted(&accepted_path())?))
}

/// Bring the counts of `machines` up to date (the feed read again if it
/// changed), on a blocking thread. Nothing without `--feed`.
pub async fn refresh(app: &Shared, machines: &[Info]) {
    let Some(feed) = app.config.feed.clone() else {
        return;
    };
    let wanted: Vec<(mkve_core::ids::MachineId, String)> = machines
        .iter()
        .filter(|i| i.machine.state != MachineState::Orphan)
        .map(|i| (i.machine.id, i.bundle.clone()))
        .collect();
    let app = app.clone();
    let _ = blocking(move || {
        update(&app.audits, &feed, &wanted);
        Ok(())
    })
    .await;
}

fn update(audits: &Audits, feed: &Path, wanted: &[(mkve_core::ids::MachineId, String)]) {
    let Ok(mut k) = audits.known.lock() else {
        return;
    };
    let stamps = (stamp(feed), stamp(&accepted_path()));
    if k.loaded.is_none() || k.stamps != stamps {
        k.loaded = Some(load(feed).map(Arc::new).map_err(|e| e.to_string()));
        k.stamps = stamps;
        k.counts.clear();
    }
    let loaded = match &k.loaded {
        Some(Ok(l)) => l.clone(),
        _ => return,
    };
    k.counts
        .retain(|id, (b, _)| wanted.iter().any(|(w, wb)| w.get() == *id && wb == b));
    for (id, bundle) in wanted {
        if k.counts.contains_key(&id.get()) {
            continue;
        }
        let count = match vm::machine_packages(*id, bundle) {
            Ok(Ok(p)) => Count::Open(audit::open_findings(&loaded.0, &p, &loaded.1).0.len()),
            Ok(Err(why)) => Count::NoSbom(why),
            Err(e) => Count::Failed(e.to_string()),
        };
        k.counts.insert(id.get(), (bundle.clone(), count));
    }
}

/// Whether the machines page has the column: a feed was given.
pub fn shown(app: &App) -> bool {
    app.config.feed.is_some()
}

/// The machines page's cell for `i`: its count, linking to its page.
pub fn cell(app: &App, i: &Info) -> Markup {
    if i.machine.state == MachineState::Orphan {
        return html! {};
    }
    let Ok(k) = app.audits.known.lock() else {
        return html! {};
    };
    if let Some(Err(e)) = &k.loaded {
        return html! { span.error title=(e) { "feed unreadable" } };
    }
    let href = format!("/machines/{}/vulnerabilities", i.machine.id);
    match k.counts.get(&i.machine.id.get()) {
        Some((_, Count::Open(0))) => html! { a href=(href) data-vulns="0" { "0" } },
        Some((_, Count::Open(n))) => html! { a.error href=(href) data-vulns=(n) { (n) " open" } },
        Some((_, Count::NoSbom(why))) => {
            html! { span.muted title=(why) data-vulns="none" { "no SBOM" } }
        }
        Some((_, Count::Failed(e))) => html! { span.error title=(e) { "error" } },
        None => html! { span.muted { "—" } },
    }
}

/// GET /machines/ID/vulnerabilities: the open vulnerabilities of the
/// machine's bundle, as `mkve-vm audit` lists them; 404 without `--feed`.
pub async fn page(
    State(app): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let title = format!("Vulnerabilities of machine {id}");
    let Some(feed) = app.config.feed.clone() else {
        let msg = "no feed: mkve-web shows vulnerabilities when started with --feed FILE";
        return (
            StatusCode::NOT_FOUND,
            crate::pages::page(&c, "", &title, crate::pages::error(msg)),
        )
            .into_response();
    };
    let uris = app.config.uris.clone();
    let target = id.clone();
    let found = blocking(move || {
        let (feed, accepted) = load(&feed)?;
        vm::audit_machine(&uris, &target, &feed, &accepted)
    })
    .await;
    let (status, body) = match found {
        Err(e) => (
            crate::app::status_of(&e),
            crate::pages::error(&e.to_string()),
        ),
        Ok((i, found)) => (StatusCode::OK, listing(&i, found)),
    };
    let body = html! {
        h1 { (title) }
        (body)
        p { a href=(format!("/machines/{id}")) { "Machine " (id) } " · " a href="/" { "Machines" } }
    };
    (status, crate::pages::page(&c, "", &title, body)).into_response()
}

fn listing(i: &Info, found: std::result::Result<Vec<audit::Finding>, String>) -> Markup {
    let m = &i.machine;
    html! {
        p { (m.name) ", made from " (m.template) " " (m.version) " (bundle " code { (vm::short_digest(&i.bundle)) } ")" }
        @match found {
            Err(why) => { p.muted data-vulns="none" { "No SBOM: " (why) } }
            Ok(list) if list.is_empty() => { p data-vulns="0" { "Nothing open." } }
            Ok(list) => {
                table data-vulns=(list.len()) {
                    thead { tr {
                        th { "CVE" } th { "package" } th { "source" } th { "installed" }
                        th { "fixed" } th { "urgency" } th { "remote" }
                    } }
                    tbody { @for f in &list {
                        tr data-cve=(f.cve) {
                            td { (f.cve) } td { (f.package) } td { (f.source) } td { (f.installed) }
                            td { (f.fixed.as_deref().unwrap_or("—")) }
                            td { (f.urgency.as_deref().unwrap_or("—")) }
                            td { @match f.remote { Some(true) => "remote", Some(false) => "local", None => "—" } }
                        }
                    } }
                }
            }
        }
    }
}
