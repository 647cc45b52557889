//! The machines' pages: the list (`/`, and its table alone for htmx's
//! refresh; with `--feed`, each machine's open vulnerabilities worked out
//! first), one machine (`/machines/ID`: its probes run now, its
//! snapshots listed), its actions and its delete. Every change is a POST carrying the CSRF token; a
//! failure is shown in the CLI's words, in the page.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::Markup;
use mkve_core::vm::{self, MachineInfo, MachineState};
use mkve_core::Result;
use serde::Deserialize;

use crate::actions::{act, Action};
use crate::auth::Caller;
use crate::error::status_of;
use crate::reply;
use crate::state::{blocking, App, Shared};
use crate::views::{self, machines::Extra, machines::Known};

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/", get(machines))
        .route("/machines/table", get(machines_table))
        .route("/machines/{id}", get(machine))
        .route("/machines/{id}/delete", post(delete))
        .route("/machines/{id}/upgrade", post(upgrade))
        .route("/machines/{id}/{action}", post(action))
}

/// The machines, as `mkve-vm list` finds them, with what they show; with
/// `--feed`, their counts of open vulnerabilities brought up to date
/// (audits.rs).
pub async fn infos(app: &Shared) -> Result<Vec<MachineInfo>> {
    let uris = app.config.uris.clone();
    let list = blocking(move || vm::infos(&uris)).await;
    if let (Ok(l), Some(feed)) = (&list, app.config.feed.clone()) {
        let wanted: Vec<_> = l
            .iter()
            .filter(|i| i.machine.state != MachineState::Orphan)
            .map(|i| (i.machine.id, i.bundle.clone()))
            .collect();
        let a = app.clone();
        let _ = blocking(move || {
            a.audits.update(&feed, &wanted);
            Ok(())
        })
        .await;
    }
    list
}

/// Whether pages show vulnerabilities: a feed was given.
fn audited(app: &App) -> bool {
    app.config.feed.is_some()
}

/// What mkve-web knows of machine `i` beyond `vm::info`: the signature it
/// checked when it made it, the probes its page last ran, its open
/// vulnerabilities, its last backup made here.
fn known(app: &App, i: &MachineInfo) -> Known {
    let id = i.machine.id;
    Known {
        signature: app.signatures.of(id, &i.bundle),
        probes: app
            .probes
            .lock()
            .ok()
            .and_then(|m| m.get(&id.get()).cloned()),
        vulnerabilities: if audited(app) {
            app.audits.count(id)
        } else {
            None
        },
        last_backup: app.backups.last(id.get(), &i.machine.name),
    }
}

/// GET /: the machines.
async fn machines(State(app): State<Shared>, c: Caller) -> Markup {
    let list = infos(&app).await;
    views::machines::machines_page(&c, &list, audited(&app), &|i| known(&app, i))
}

/// GET /machines/table: the table alone (htmx's refresh).
async fn machines_table(State(app): State<Shared>) -> Markup {
    let list = infos(&app).await;
    views::machines::table(&list, None, audited(&app), &|i| known(&app, i))
}

/// `vm::info` of `id`, its probes run now and remembered for the list.
async fn info_now(app: &Shared, id: &str) -> Result<MachineInfo> {
    let uris = app.config.uris.clone();
    let target = id.to_string();
    let info = blocking(move || vm::info(&uris, &target)).await;
    if let (Ok(i), Ok(mut m)) = (&info, app.probes.lock()) {
        m.insert(i.machine.id.get(), (crate::log::now(), i.probes.clone()));
    }
    info
}

/// GET /machines/ID: what `mkve-vm info` shows, with the status of its
/// failure (a machine that is not there: 404).
async fn machine(
    State(app): State<Shared>,
    c: Caller,
    Path(id): Path<String>,
) -> (StatusCode, Markup) {
    let info = info_now(&app, &id).await;
    let status = match &info {
        Err(e) => status_of(e),
        Ok(_) => StatusCode::OK,
    };
    let snapshots = crate::snapshots::list(&app, &id).await;
    let update = crate::upgrades::update(&app, &id).await;
    let extra = Extra {
        audited: audited(&app),
        snapshots: &snapshots,
        publish_dir: app.config.publish_dir.as_deref(),
        update: Some(&update),
    };
    let page = views::machines::machine_page(&c, &id, &info, &extra, &|i| known(&app, i));
    (status, page)
}

#[derive(Deserialize, Default)]
struct View {
    #[serde(default)]
    view: String,
}

/// POST /machines/ID/ACTION: start, stop, force-stop, reboot,
/// autostart-on, autostart-off; the table (or the machine, `?view=machine`)
/// again, with what happened.
async fn action(
    State(app): State<Shared>,
    c: Caller,
    Path((id, word)): Path<(String, String)>,
    Query(v): Query<View>,
) -> Markup {
    let r = match Action::from_page(&word) {
        Ok(a) => act(&app, &c.user, a, &id).await.map(|()| a.words(&id)),
        Err(e) => Err(e),
    };
    let flash = Some(match r {
        Ok(words) => (true, format!("{words}: done")),
        Err(e) => (false, e.to_string()),
    });
    if v.view == "machine" {
        let info = info_now(&app, &id).await;
        let snapshots = crate::snapshots::list(&app, &id).await;
        let extra = Extra {
            audited: audited(&app),
            snapshots: &snapshots,
            publish_dir: app.config.publish_dir.as_deref(),
            update: None,
        };
        views::machines::detail(&id, &info, flash, &extra, &|i| known(&app, i))
    } else {
        let list = infos(&app).await;
        views::machines::table(&list, flash, audited(&app), &|i| known(&app, i))
    }
}

#[derive(Deserialize)]
struct Confirm {
    #[serde(default)]
    confirm: String,
}

/// POST /machines/ID/delete: only when `confirm` is the machine's ID; then
/// back to the machines.
async fn delete(
    State(app): State<Shared>,
    c: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<Confirm>,
) -> Response {
    if f.confirm.trim() != id {
        return views::error(&format!(
            "not deleted: type the ID, {id}, to confirm (\"{}\" was typed)",
            f.confirm.trim()
        ))
        .into_response();
    }
    match act(&app, &c.user, Action::Delete, &id).await {
        Ok(()) => reply::redirect(&headers, "/"),
        Err(e) => views::error(&e.to_string()).into_response(),
    }
}

/// POST /machines/ID/upgrade: the machine upgraded to its update (the
/// button of its Update section); the section again, with what happened.
async fn upgrade(
    State(app): State<Shared>,
    c: Caller,
    Path(id): Path<String>,
) -> (StatusCode, Markup) {
    let (status, flash) = match crate::upgrades::upgrade(&app, &c.user, &id).await {
        Ok((u, s)) => (
            StatusCode::OK,
            (
                true,
                format!(
                    "upgraded from {} to {}: its probes answer; the old bundle is held until mkve-vm upgrade --commit {id}",
                    s.from_version, u.version
                ),
            ),
        ),
        Err(e) => (status_of(&e), (false, e.to_string())),
    };
    let update = crate::upgrades::update(&app, &id).await;
    (status, views::upgrade::section(&id, &update, Some(flash)))
}
