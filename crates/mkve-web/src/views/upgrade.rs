//! The Update section of a machine's page: the newer bundle of its
//! template in the published directory its bundle came from, and the
//! button that upgrades the machine to it (its own fragment, `#update`).

use maud::{html, Markup};
use mkve_core::vm::Update;

use super::error;

/// Machine `id`'s Update section: `update` as found (an error told as
/// one), `flash` the result of the upgrade that asked for it.
pub fn section(
    id: &str,
    update: &mkve_core::Result<Option<Update>>,
    flash: Option<(bool, String)>,
) -> Markup {
    html! {
        div #update {
            h2 { "Update" }
            @if let Some((ok, msg)) = &flash {
                @if *ok { div.ok { (msg) } } @else { (error(msg)) }
            }
            @match update {
                Err(e) => { (error(&format!("looking for a newer bundle: {e}"))) }
                Ok(None) => { p.muted { "No newer bundle of its template in the directory its bundle came from." } }
                Ok(Some(u)) => {
                    p.update-available {
                        "Update available: " strong { (u.version) } " (" code { (u.bundle) } ")."
                    }
                    p {
                        "The upgrade is " code { "mkve-vm upgrade" } "'s: refused when a file the "
                        "machine changed was changed by the new bundle too; the machine's files and "
                        "state laid on the new base; rolled back by itself unless the new bundle's "
                        "probes answer; the old bundle held until a commit."
                    }
                    form #upgrade-form hx-post=(format!("/machines/{id}/upgrade")) hx-target="#update" hx-swap="outerHTML" hx-disabled-elt="find button" {
                        button type="submit" { "upgrade to " (u.version) }
                        span.htmx-indicator { " upgrading…" }
                    }
                }
            }
        }
    }
}
