//! The network: `mkve-net status`, its DHCP entries told apart as mkve's
//! machines, other hosts and orphans.

use maud::{html, Markup};
use mkve_core::libvirt::network::Status;
use mkve_core::vm::{MachineInfo, MachineState};
use mkve_core::Result;

use super::{error, page, state_class};
use crate::auth::Caller;

fn network_view(s: &Status, machines: &[MachineInfo]) -> Markup {
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
pub fn network_page(c: &Caller, status: &Result<Status>, list: &[MachineInfo]) -> Markup {
    let orphans: Vec<&MachineInfo> = list
        .iter()
        .filter(|i| i.machine.state == MachineState::Orphan)
        .collect();
    page(
        c,
        "/network",
        "Network",
        html! {
            h1 { "Network" }
            @match status {
                Ok(s) => { (network_view(s, list)) }
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
