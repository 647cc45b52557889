//! The pages, rendered on the server (maud), updated in part by htmx: the
//! machines (`/`, refreshed every few seconds), one machine (`/machines/ID`:
//! its probes, actions and delete), create (create.rs), the console
//! (console.rs), the network and the log. Every change is a POST carrying
//! the CSRF token (`hx-headers` on the body); a failure is shown in the
//! CLI's words.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Form};
use maud::{html, Markup, DOCTYPE};
use mkve_core::libvirt::network::Status;
use mkve_core::vm::{self, Info, MachineState};
use mkve_core::Result;
use serde::Deserialize;

use crate::actions::{act, Action};
use crate::app::{blocking, App, Shared};
use crate::auth::Caller;
use crate::create::{Job, Upload};
use crate::log::Entry;

/// How often the machines page refreshes itself.
pub const REFRESH: Duration = Duration::from_secs(5);

/// Go to `to`: for htmx a `HX-Redirect` (the whole page changes), else a
/// 303.
pub fn redirect(headers: &HeaderMap, to: &str) -> Response {
    if headers.contains_key("hx-request") {
        ([("hx-redirect", to.to_string())], "").into_response()
    } else {
        (
            StatusCode::SEE_OTHER,
            [(axum::http::header::LOCATION, to.to_string())],
        )
            .into_response()
    }
}

fn layout(c: Option<&Caller>, here: &str, title: &str, body: Markup) -> Markup {
    let headers = c
        .map(|c| serde_json::json!({ "X-CSRF-Token": c.csrf }).to_string())
        .unwrap_or_else(|| "{}".into());
    let nav = [
        ("/", "Machines"),
        ("/create", "Create"),
        ("/network", "Network"),
        ("/log", "Log"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — mkve" }
                link rel="stylesheet" href="/assets/mkve.css";
                script src="/assets/htmx.min.js" {}
            }
            body hx-headers=(headers) {
                header {
                    strong { "mkve" }
                    @if let Some(c) = c {
                        @for (href, name) in nav {
                            a href=(href) class=[(here == href).then_some("here")] { (name) }
                        }
                        span.who {
                            (c.user)
                            @if c.session {
                                " "
                                form hx-post="/logout" { button type="submit" { "log out" } }
                            }
                        }
                    }
                }
                main { (body) }
                script src="/assets/mkve.js" {}
            }
        }
    }
}

pub(crate) fn page(c: &Caller, here: &str, title: &str, body: Markup) -> Response {
    Html(layout(Some(c), here, title, body).into_string()).into_response()
}

pub fn login(msg: Option<&str>) -> Markup {
    layout(
        None,
        "",
        "Log in",
        html! {
            h1 { "Log in" }
            @if let Some(m) = msg { p.error { (m) } }
            form.options method="post" action="/login" {
                label { "User " input type="text" name="user" autocomplete="username" required autofocus; }
                label { "Password " input type="password" name="password" autocomplete="current-password" required; }
                button type="submit" { "log in" }
            }
        },
    )
}

/// A full page saying why something was refused.
pub fn refused(c: &Caller, title: &str, msg: &str) -> Markup {
    layout(
        Some(c),
        "",
        title,
        html! { h1 { (title) } (error(msg)) p { a href="/" { "Machines" } } },
    )
}

/// A failure, in the CLI's words.
pub fn error(msg: &str) -> Markup {
    html! { div.error role="alert" { (msg) } }
}

fn state_class(s: MachineState) -> &'static str {
    match s {
        MachineState::Running => "running",
        MachineState::ShutOff => "shut-off",
        MachineState::Orphan => "orphan",
    }
}

/// What was checked of a machine's bundle's signature: as its record says
/// (made by mkve-web or mkve-vm); for a machine made before mkve recorded
/// it, what mkve-web saw if it made it.
fn signature(app: &App, i: &Info) -> Markup {
    if let Some(f) = &i.signed_by {
        return html! { span title=(format!("good signature by {f}")) { "verified" } };
    }
    match app.signatures.of(i.machine.id, &i.bundle) {
        Some(s) if s.starts_with("good signature") => html! { span title=(s) { "verified" } },
        Some(s) => html! { span title=(s) { (s) } },
        None => html! {
            span.muted title="taken unsigned (--allow-unsigned), or made before mkve recorded signatures" {
                "not verified"
            }
        },
    }
}

/// The probes last run for a machine (on its page), as `2/3 up`.
fn probes(app: &App, i: &Info) -> Markup {
    let known = app
        .probes
        .lock()
        .ok()
        .and_then(|m| m.get(&i.machine.id.get()).cloned());
    match known {
        Some((time, list)) if !list.is_empty() && i.machine.state == MachineState::Running => {
            let up = list.iter().filter(|o| o.up).count();
            html! { span title=(format!("at {time}")) { (up) "/" (list.len()) " up" } }
        }
        _ => html! { span.muted { "—" } },
    }
}

fn action_button(id: &str, word: &str, label: &str, view: &str) -> Markup {
    let target = if view == "machine" {
        "#machine"
    } else {
        "#machines"
    };
    html! {
        button hx-post=(format!("/machines/{id}/{word}?view={view}"))
            hx-target=(target) hx-swap="outerHTML" hx-disabled-elt="this"
            data-action=(word) { (label) }
    }
}

fn actions(i: &Info, view: &str) -> Markup {
    let id = i.machine.id.to_string();
    html! {
        @match i.machine.state {
            MachineState::Running => {
                (action_button(&id, "stop", "stop", view))
                (action_button(&id, "force-stop", "force stop", view))
                (action_button(&id, "reboot", "reboot", view))
                a href=(format!("/machines/{id}/console")) { "console" }
            }
            MachineState::ShutOff => {
                (action_button(&id, "start", "start", view))
            }
            MachineState::Orphan => {}
        }
        @if i.machine.state != MachineState::Orphan {
            @if i.autostart {
                (action_button(&id, "autostart-off", "autostart off", view))
            } @else {
                (action_button(&id, "autostart-on", "autostart on", view))
            }
        }
        @if view != "machine" {
            " " a href=(format!("/machines/{id}")) { "delete…" }
        }
    }
}

/// The machines' table, refreshing itself; `flash` is the result of the
/// action that asked for it (worked, words).
fn table(app: &App, machines: &Result<Vec<Info>>, flash: Option<(bool, String)>) -> Markup {
    html! {
        div #machines hx-get="/machines/table" hx-trigger=(format!("every {}s", REFRESH.as_secs()))
            hx-swap="outerHTML" {
            @if let Some((ok, msg)) = &flash {
                @if *ok { div.ok { (msg) } } @else { (error(msg)) }
            }
            span.htmx-indicator { "working…" }
            @match machines {
                Err(e) => { (error(&e.to_string())) }
                Ok(list) if list.is_empty() => {
                    p { "No machines. " a href="/create" { "Create one" } " from a bundle." }
                }
                Ok(list) => {
                    table {
                        thead { tr {
                            th { "ID" } th { "name" } th { "hypervisor" } th { "state" }
                            th { "address" } th { "template" } th { "version" }
                            th { "autostart" } th { "signature" } th { "probes" } th { "actions" }
                        } }
                        tbody {
                            @for i in list {
                                @let m = &i.machine;
                                tr data-id=(m.id) data-state=(m.state) {
                                    td { a href=(format!("/machines/{}", m.id)) { (m.id) } }
                                    td { (m.name) }
                                    td { (m.hypervisor) }
                                    td class=(state_class(m.state)) { (m.state) }
                                    td { (m.address) }
                                    td { (m.template) }
                                    td { (m.version) }
                                    td { @if m.state == MachineState::Orphan { "" }
                                         @else if i.autostart { "yes" } @else { "no" } }
                                    td { @if m.state != MachineState::Orphan { (signature(app, i)) } }
                                    td { (probes(app, i)) }
                                    td.actions { (actions(i, "list")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn infos(app: &Shared) -> Result<Vec<Info>> {
    let uris = app.config.uris.clone();
    blocking(move || vm::infos(&uris)).await
}

/// GET /: the machines.
pub async fn machines(State(app): State<Shared>, Extension(c): Extension<Caller>) -> Response {
    let list = infos(&app).await;
    page(
        &c,
        "/",
        "Machines",
        html! {
            h1 { "Machines" }
            (table(&app, &list, None))
        },
    )
}

/// GET /machines/table: the table alone (htmx's refresh).
pub async fn machines_table(State(app): State<Shared>) -> Response {
    let list = infos(&app).await;
    Html(table(&app, &list, None).into_string()).into_response()
}

/// One machine: what `mkve-vm info` shows, its probes run now.
fn detail(app: &App, id: &str, info: &Result<Info>, flash: Option<(bool, String)>) -> Markup {
    html! {
        div #machine {
            @if let Some((ok, msg)) = &flash {
                @if *ok { div.ok { (msg) } } @else { (error(msg)) }
            }
            span.htmx-indicator { "working…" }
            @match info {
                Err(e) => { (error(&e.to_string())) }
                Ok(i) => {
                    @let m = &i.machine;
                    dl {
                        dt { "ID" } dd { (m.id) }
                        dt { "name" } dd { (m.name) }
                        dt { "hypervisor" } dd { (m.hypervisor) }
                        dt { "state" } dd class=(state_class(m.state)) data-state=(m.state) { (m.state) }
                        dt { "address" } dd { (m.address) }
                        dt { "template" } dd { (m.template) " " (m.version) }
                        dt { "autostart" } dd { @if i.autostart { "yes" } @else { "no" } }
                        dt { "signature" } dd { (signature(app, i)) }
                        dt { "bundle" } dd { code { (i.bundle) } }
                        dt { "uri" } dd { code { (i.uri) } }
                    }
                    h2 { "Probes" }
                    @if i.probes.is_empty() {
                        p.muted { "The template declares none." }
                    } @else {
                        table {
                            thead { tr { th { "probe" } th { "state" } th { "answer" } } }
                            tbody { @for o in &i.probes {
                                tr { td { code { (o.probe) } }
                                     td class=(if o.up { "running" } else { "shut-off" }) { @if o.up { "up" } @else { "down" } }
                                     td { (o.detail) } }
                            } }
                        }
                    }
                    h2 { "Actions" }
                    p { (actions(i, "machine")) }
                }
            }
            h2 { "Delete" }
            form hx-post=(format!("/machines/{id}/delete")) hx-target="#delete-result" {
                label { "Type the ID, " strong { (id) } ", to delete the machine and everything mkve made for it: "
                    input type="text" name="confirm" autocomplete="off" required; }
                " " button type="submit" { "delete" }
            }
            div #delete-result {}
        }
    }
}

async fn info_now(app: &Shared, id: &str) -> Result<Info> {
    let uris = app.config.uris.clone();
    let target = id.to_string();
    let info = blocking(move || vm::info(&uris, &target)).await;
    if let (Ok(i), Ok(mut m)) = (&info, app.probes.lock()) {
        m.insert(i.machine.id.get(), (crate::log::now(), i.probes.clone()));
    }
    info
}

/// GET /machines/ID.
pub async fn machine(
    State(app): State<Shared>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let info = info_now(&app, &id).await;
    let status = match &info {
        Err(e) => crate::app::status_of(e),
        Ok(_) => StatusCode::OK,
    };
    let body = html! {
        h1 { "Machine " (id) }
        (detail(&app, &id, &info, None))
    };
    (status, page(&c, "", &format!("Machine {id}"), body)).into_response()
}

#[derive(Deserialize, Default)]
pub struct View {
    #[serde(default)]
    view: String,
}

/// POST /machines/ID/ACTION: start, stop, force-stop, reboot,
/// autostart-on, autostart-off; the table (or the machine, `?view=machine`)
/// again, with what happened.
pub async fn action(
    State(app): State<Shared>,
    Extension(c): Extension<Caller>,
    Path((id, word)): Path<(String, String)>,
    Query(v): Query<View>,
) -> Response {
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
        Html(detail(&app, &id, &info, flash).into_string()).into_response()
    } else {
        let list = infos(&app).await;
        Html(table(&app, &list, flash).into_string()).into_response()
    }
}

#[derive(Deserialize)]
pub struct Confirm {
    #[serde(default)]
    confirm: String,
}

/// POST /machines/ID/delete: only when `confirm` is the machine's ID; then
/// back to the machines.
pub async fn delete(
    State(app): State<Shared>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<Confirm>,
) -> Response {
    if f.confirm.trim() != id {
        return Html(
            error(&format!(
                "not deleted: type the ID, {id}, to confirm (\"{}\" was typed)",
                f.confirm.trim()
            ))
            .into_string(),
        )
        .into_response();
    }
    match act(&app, &c.user, Action::Delete, &id).await {
        Ok(()) => redirect(&headers, "/"),
        Err(e) => Html(error(&e.to_string()).into_string()).into_response(),
    }
}

fn network_view(s: &Status, machines: &[Info]) -> Markup {
    let state = match (s.defined, s.active) {
        (false, _) => "undefined",
        (true, true) => "active",
        (true, false) => "inactive",
    };
    html! {
        dl {
            dt { "name" } dd { (s.name) }
            dt { "state" } dd #network-state { (state) }
            dt { "autostart" } dd { @if s.autostart { "yes" } @else { "no" } }
            dt { "bridge" } dd { (s.bridge) }
            dt { "address" } dd { (s.address) }
            dt { "machines" } dd { (s.hosts.len()) }
        }
        @if !s.defined {
            p { "The network is not defined: " code { "mkve-net create" } " makes it." }
        }
        @if !s.hosts.is_empty() {
            table {
                thead { tr { th { "ID" } th { "MAC" } th { "address" } th { "name" } th { "" } } }
                tbody {
                    @for h in &s.hosts {
                        @let known = h.id.and_then(|id| machines.iter().find(|i| i.machine.id.get() == id && i.machine.state != MachineState::Orphan));
                        tr data-id=[h.id] {
                            td { @if let Some(id) = h.id { a href=(format!("/machines/{id}")) { (id) } } @else { "-" } }
                            td { code { (h.mac) } }
                            td { (h.ip) }
                            td { (h.name) }
                            td {
                                @match (h.id, known) {
                                    (None, _) => span.muted { "not mkve's" },
                                    (Some(_), Some(i)) => span class=(state_class(i.machine.state)) { (i.machine.state) },
                                    (Some(id), None) => span.orphan { "orphan: mkve-vm delete " (id) " removes it" },
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// GET /network: `mkve-net status`, and which entries are orphans.
pub async fn network(State(app): State<Shared>, Extension(c): Extension<Caller>) -> Response {
    let connect = app.config.connect.clone();
    let status = blocking(move || crate::api::network_status(connect.as_deref())).await;
    let list = infos(&app).await.unwrap_or_default();
    let orphans: Vec<&Info> = list
        .iter()
        .filter(|i| i.machine.state == MachineState::Orphan)
        .collect();
    page(
        &c,
        "/network",
        "Network",
        html! {
            h1 { "Network" }
            @match &status {
                Ok(s) => { (network_view(s, &list)) }
                Err(e) => { (error(&e.to_string())) }
            }
            @if !orphans.is_empty() {
                h2 { "Orphans" }
                p { "What mkve made for these IDs is left without a machine; deleting the ID removes it." }
                ul { @for o in orphans {
                    li { a href=(format!("/machines/{}", o.machine.id)) { (o.machine.id) } " " (o.machine.template) " " (o.machine.address) }
                } }
            }
        },
    )
}

/// GET /log: every action, newest first.
pub async fn log(State(app): State<Shared>, Extension(c): Extension<Caller>) -> Response {
    let entries: Vec<Entry> = app.log.newest_first();
    page(
        &c,
        "/log",
        "Log",
        html! {
            h1 { "Log" }
            @if entries.is_empty() { p.muted { "Nothing was done yet." } }
            @else {
                table #log {
                    thead { tr { th { "time" } th { "user" } th { "action" } th { "result" } th { "error" } } }
                    tbody { @for e in &entries {
                        tr { td { (e.time) } td { (e.user) } td { (e.action) }
                             td class=(if e.result == "ok" { "running" } else { "orphan" }) { (e.result) }
                             td { @if !e.error.is_empty() { pre { (e.error) } } } }
                    } }
                }
            }
        },
    )
}

/// The upload form.
pub fn create_form(c: &Caller, max: u64) -> Markup {
    layout(
        Some(c),
        "/create",
        "Create",
        html! {
            h1 { "Create a machine" }
            p { "Upload a bundle (" code { "mkve-bundle -o NAME.bun TEMPLATE" } ", at most "
                (max >> 20) " MiB). It is checked, then you choose its options." }
            form #upload hx-post="/create" hx-encoding="multipart/form-data" hx-target="#upload-result"
                hx-disabled-elt="find button" {
                input type="file" name="bundle" accept=".bun" required;
                " " button type="submit" { "upload" }
                " " progress #upload-progress max="100" value="0" hidden {}
                span.htmx-indicator { " uploading and checking…" }
            }
            div #upload-result {}
        },
    )
}

/// The options of a create, suited to the uploaded bundle.
pub fn create_options(c: &Caller, token: &str, u: &Upload) -> Markup {
    let hv = u.meta.hypervisor;
    html! {
        (layout(Some(c), "/create", "Create", html! {
            h1 { "Create a machine from " (u.name) }
            dl {
                dt { "template" } dd #bundle-template { (u.meta.template.name) " " (u.meta.template.version) }
                dt { "hypervisor" } dd { (hv) }
                dt { "size" } dd { ((u.size + (1 << 20) - 1) >> 20) " MiB" }
                dt { "made" } dd { (u.meta.created) }
                dt { "signature" } dd #bundle-signature { (u.signature.describe()) }
            }
            form.options hx-post=(format!("/create/{token}")) hx-disabled-elt="find button" {
                @if hv.takes_names() {
                    label { "Name " input type="text" name="name" placeholder=(format!("{}-ID", u.meta.template.name)); }
                }
                label { "Memory " input type="text" name="memory" value="512M"; span.muted { " 16M to 16384G" } }
                label { "Virtual CPUs " input type="number" name="vcpus" value="1" min="1" max="4096"; }
                label { "CPU shares " input type="number" name="cpu_shares" min="2" max="262144"; span.muted { " 2 to 262144 (cgroup weight)" } }
                label { "Block I/O weight " input type="number" name="blkio_weight" min="100" max="1000"; span.muted { " 100 to 1000" } }
                @if hv.boots_disk_image() {
                    label { "Disk format " select name="disk_format" { option value="" { "default (qcow2 on the base)" } option value="raw" { "raw (private disk only)" } option value="qcow2" { "qcow2" } } }
                    label { "Disk size " input type="text" name="disk_size" placeholder="1.5 × the root + 512M"; }
                    label { input type="checkbox" name="vnc"; " VNC display (on 127.0.0.1)" }
                }
                @if hv.boots_disk_image() || hv == mkve_core::hypervisor::Hypervisor::Lxc {
                    label { input type="checkbox" name="no_base"; " Private copy (no shared base: slower, larger, independent)" }
                }
                label { "Root password " input type="password" name="root_password" autocomplete="new-password"; }
                label { "SSH public keys " br; textarea name="ssh_key" rows="3" placeholder="ssh-ed25519 AAAA… comment" {} }
                @if !u.params.is_empty() {
                    fieldset {
                        legend { "Template parameters" }
                        @for p in &u.params {
                            label {
                                code { (p.name) }
                                @if p.required { " (required)" }
                                " "
                                input type=(if p.secret { "password" } else { "text" })
                                    name=(format!("param.{}", p.name))
                                    placeholder=[p.default.as_deref()]
                                    required[p.required && p.default.is_none()];
                                span.muted { " " (p.description) }
                            }
                        }
                    }
                }
                @if !u.signature.is_valid() {
                    label { input type="checkbox" name="allow_unsigned"; " accept a bundle without a signature (a bad one is still refused)" }
                }
                label { input type="checkbox" name="start" checked; " start it now" }
                button type="submit" { "create" }
            }
        }))
    }
}

/// A create's page: its progress, refreshed until it ends.
pub fn job(c: &Caller, n: u64, j: &Job) -> Markup {
    layout(
        Some(c),
        "/create",
        "Create",
        html! {
            h1 { (j.what) }
            (job_status(n, j))
        },
    )
}

pub fn job_status(n: u64, j: &Job) -> Markup {
    let lines = j.lines.lock().map(|l| l.clone()).unwrap_or_default();
    let done = j.done.lock().ok().and_then(|d| d.clone());
    let secs = j.started.elapsed().as_secs();
    html! {
        div #job hx-get=[done.is_none().then(|| format!("/jobs/{n}/status"))]
            hx-trigger=[done.is_none().then_some("every 500ms")] hx-swap="outerHTML"
            data-done=(if done.is_some() { "yes" } else { "no" }) {
            pre.progress { @for l in &lines { (l) "\n" } @if done.is_none() { "… " (secs) " s" } }
            @match &done {
                None => {}
                Some(Ok(id)) => {
                    div.ok #created data-id=(id) { "machine " (id) " created. " a href="/" { "Machines" } " · " a href=(format!("/machines/{id}")) { "machine " (id) } }
                }
                Some(Err(msg)) => { (error(msg)) p { a href="/create" { "Upload another bundle" } } }
            }
        }
    }
}

/// The console page (console.rs bridges the socket).
pub fn console(c: &Caller, id: &str) -> Markup {
    layout(
        Some(c),
        "",
        &format!("Console of machine {id}"),
        html! {
            link rel="stylesheet" href="/assets/xterm.css";
            h1 { "Console of machine " a href=(format!("/machines/{id}")) { (id) } }
            p { "State: " span #console-state { "connecting…" } }
            div #terminal data-ws=(format!("/machines/{id}/console/ws")) {}
            script src="/assets/xterm.js" {}
        },
    )
}
