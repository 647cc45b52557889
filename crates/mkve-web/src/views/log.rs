//! The log: every action, newest first.

use maud::{html, Markup};

use super::page;
use crate::auth::Caller;
use crate::log::Entry;

/// GET /log: every action, newest first.
pub fn log_page(c: &Caller, entries: &[Entry]) -> Markup {
    page(
        c,
        "/log",
        "Log",
        html! {
            h1 { "Log" }
            @if entries.is_empty() { p.muted { "Nothing was done yet." } }
            @else {
                table #log {
                    thead { tr { th { "time" } th { "user" } th { "action" } th { "result" } th { "error" } } }
                    tbody { @for e in entries {
                        tr { td { (e.time) } td { (e.user) } td { (e.action) }
                             td class=(if e.result == "ok" { "running" } else { "orphan" }) { (e.result) }
                             td { @if !e.error.is_empty() { pre { (e.error) } } } }
                    } }
                }
            }
        },
    )
}
