//! A Ganeti cluster's instances (mkve.conf `engine=ganeti`), as
//! `mkve-vm --engine ganeti list` shows them.

use maud::{html, Markup};
use mkve_core::vm::ganeti_rapi::Instance;
use mkve_core::Result;

use super::{error, page};
use crate::auth::Caller;

/// GET /ganeti: the cluster's instances, or why they are not known.
pub fn ganeti_page(c: &Caller, list: &Result<Vec<Instance>>) -> Markup {
    page(
        c,
        "/ganeti",
        "Ganeti",
        html! {
            h1 { "Ganeti cluster" }
            @match list {
                Err(e) => { (error(&e.to_string())) }
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
