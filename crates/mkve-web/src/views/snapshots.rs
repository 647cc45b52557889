//! A machine's snapshots, on its page: the list (name, when taken, the
//! machine's state then, the space each holds) with revert (a stopped
//! machine) and delete, and the form that takes one. The section is its
//! own fragment (`#snapshots`): each of its actions answers it again,
//! with what happened.

use maud::{html, Markup};
use mkve_core::vm::SnapshotInfo;
use mkve_core::Result;

use super::error;

/// Bytes as whole MiB, rounded up, as `mkve-vm snapshots` prints them.
pub fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes.div_ceil(1 << 20))
}

/// The Snapshots section of machine `id`, which `running` or not;
/// `flash` is the result of the action that asked for it (worked, words).
pub fn section(
    id: &str,
    running: bool,
    list: &Result<Vec<SnapshotInfo>>,
    flash: Option<(bool, String)>,
) -> Markup {
    let post = |tail: &str| format!("/machines/{id}/snapshots{tail}");
    html! {
        div #snapshots {
            h2 { "Snapshots" }
            @if let Some((ok, msg)) = &flash {
                @if *ok { div.ok { (msg) } } @else { (error(msg)) }
            }
            @match list {
                Err(e) => { (error(&e.to_string())) }
                Ok(list) if list.is_empty() => { p.muted data-snapshots="0" { "None taken." } }
                Ok(list) => {
                    table data-snapshots=(list.len()) {
                        thead { tr {
                            th { "name" } th { "taken (UTC)" } th { "the machine was" } th { "size" } th { "actions" }
                        } }
                        tbody { @for s in list {
                            @let r = &s.record;
                            tr data-snapshot=(r.name) {
                                td { (r.name) }
                                td { (mkve_core::date::rfc3339(r.made)) }
                                td { @if r.running { "running" } @else { "shut off" } }
                                td { (mib(s.bytes)) }
                                td.actions {
                                    @if running {
                                        span.muted title="revert works on a stopped machine" { "stop it to revert" }
                                    } @else {
                                        button hx-post=(post(&format!("/{}/revert", r.name)))
                                            hx-target="#snapshots" hx-swap="outerHTML" hx-disabled-elt="this"
                                            hx-confirm=(format!("Put machine {id} back as it was at snapshot {}? What it holds since is lost.", r.name))
                                            data-action="revert" { "revert" }
                                    }
                                    " "
                                    button hx-post=(post(&format!("/{}/delete", r.name)))
                                        hx-target="#snapshots" hx-swap="outerHTML" hx-disabled-elt="this"
                                        hx-confirm=(format!("Delete snapshot {} of machine {id}?", r.name))
                                        data-action="delete-snapshot" { "delete" }
                                }
                            }
                        } }
                    }
                }
            }
            form #take-snapshot hx-post=(post("")) hx-target="#snapshots" hx-swap="outerHTML" hx-disabled-elt="find button" {
                label { "Name (optional: the time) "
                    input type="text" name="name" maxlength="64" pattern="[A-Za-z0-9_][A-Za-z0-9_.\\-]*" autocomplete="off"; }
                " " button type="submit" { "take a snapshot" }
            }
        }
    }
}
