//! The machines: their table (refreshing itself every few seconds), one
//! machine (what `mkve-vm info` shows, its probes, actions, snapshots,
//! backups and delete), and the buttons of their actions.

use std::time::Duration;

use maud::{html, Markup};
use mkve_core::probe::Outcome;
use mkve_core::vm::{MachineInfo, MachineState, SnapshotInfo};
use mkve_core::Result;

use super::{audit, backups, error, page, snapshots, state_class};
use crate::audits::Count;
use crate::auth::Caller;
use crate::backups::Record;

/// How often the machines page refreshes itself.
pub const REFRESH: Duration = Duration::from_secs(5);

/// What mkve-web itself knows of a machine beyond `vm::info`.
#[derive(Debug, Default)]
pub struct Known {
    /// What it checked of the bundle's signature, if it made the machine
    /// from that bundle.
    pub signature: Option<String>,
    /// The probes last run (on the machine's page), and when.
    pub probes: Option<(String, Vec<Outcome>)>,
    /// Its open vulnerabilities (`--feed`), once worked out.
    pub vulnerabilities: Option<Count>,
    /// The last backup made of it here.
    pub last_backup: Option<Record>,
}

/// What was checked of a machine's bundle's signature: as its record says
/// (made by mkve-web or mkve-vm); for a machine made before mkve recorded
/// it, what mkve-web saw if it made it.
fn signature(i: &MachineInfo, known: &Known) -> Markup {
    if let Some(f) = &i.signed_by {
        return html! { span title=(format!("good signature by {f}")) { "verified" } };
    }
    match known.signature.as_deref() {
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
fn probes(i: &MachineInfo, known: &Known) -> Markup {
    match &known.probes {
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

fn actions(i: &MachineInfo, view: &str) -> Markup {
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
/// action that asked for it (worked, words); `audited`: a column of
/// vulnerabilities (`--feed`).
pub fn table(
    machines: &Result<Vec<MachineInfo>>,
    flash: Option<(bool, String)>,
    audited: bool,
    known: &dyn Fn(&MachineInfo) -> Known,
) -> Markup {
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
                            th { "autostart" } th { "signature" } th { "probes" }
                            @if audited { th { "vulnerabilities" } }
                            th { "last backup" } th { "actions" }
                        } }
                        tbody {
                            @for i in list {
                                @let m = &i.machine;
                                @let k = known(i);
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
                                    td { @if m.state != MachineState::Orphan { (signature(i, &k)) } }
                                    td { (probes(i, &k)) }
                                    @if audited { td { (audit::cell(i, k.vulnerabilities.as_ref())) } }
                                    td { (backups::cell(k.last_backup.as_ref())) }
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

/// GET /: the machines.
pub fn machines_page(
    c: &Caller,
    list: &Result<Vec<MachineInfo>>,
    audited: bool,
    known: &dyn Fn(&MachineInfo) -> Known,
) -> Markup {
    page(
        c,
        "/",
        "Machines",
        html! {
            h1 { "Machines" }
            (table(list, None, audited, known))
        },
    )
}

/// What a machine's page shows besides `vm::info`: whether it links to
/// its vulnerabilities (`--feed`), and its snapshots.
pub struct Extra<'a> {
    pub audited: bool,
    pub snapshots: &'a Result<Vec<SnapshotInfo>>,
    /// `--publish-dir`, where a packed bundle may be published.
    pub publish_dir: Option<&'a std::path::Path>,
    /// Its newer bundle, looked for (the machine's page only).
    pub update: Option<&'a Result<Option<mkve_core::vm::Update>>>,
}

/// One machine: what `mkve-vm info` shows, its probes run now, its
/// snapshots and backups.
pub fn detail(
    id: &str,
    info: &Result<MachineInfo>,
    flash: Option<(bool, String)>,
    extra: &Extra,
    known: &dyn Fn(&MachineInfo) -> Known,
) -> Markup {
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
                    @let k = known(i);
                    dl {
                        dt { "ID" } dd { (m.id) }
                        dt { "name" } dd { (m.name) }
                        dt { "hypervisor" } dd { (m.hypervisor) }
                        dt { "state" } dd class=(state_class(m.state)) data-state=(m.state) { (m.state) }
                        dt { "address" } dd { (m.address) }
                        dt { "template" } dd { (m.template) " " (m.version) }
                        dt { "autostart" } dd { @if i.autostart { "yes" } @else { "no" } }
                        dt { "signature" } dd { (signature(i, &k)) }
                        dt { "bundle" } dd { code { (i.bundle) } }
                        @if extra.audited {
                            dt { "vulnerabilities" } dd { (audit::link(m.id)) }
                        }
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
                    @if m.state != MachineState::Orphan {
                        @if let Some(u) = extra.update {
                            (super::upgrade::section(id, u, None))
                        }
                        (snapshots::section(id, m.state == MachineState::Running, extra.snapshots, None))
                        (backups::section(id, k.last_backup.as_ref(), None, false))
                        @if m.state == MachineState::ShutOff {
                            (super::pack::section(id, None, false, extra.publish_dir))
                        }
                    }
                }
            }
            h2 { "Delete" }
            form #delete-form hx-post=(format!("/machines/{id}/delete")) hx-target="#delete-result" {
                label { "Type the ID, " strong { (id) } ", to delete the machine and everything mkve made for it: "
                    input type="text" name="confirm" autocomplete="off" required; }
                " " button type="submit" { "delete" }
            }
            div #delete-result {}
        }
    }
}

/// GET /machines/ID.
pub fn machine_page(
    c: &Caller,
    id: &str,
    info: &Result<MachineInfo>,
    extra: &Extra,
    known: &dyn Fn(&MachineInfo) -> Known,
) -> Markup {
    let body = html! {
        h1 { "Machine " (id) }
        (detail(id, info, None, extra, known))
    };
    page(c, "", &format!("Machine {id}"), body)
}
