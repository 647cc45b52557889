//! Vulnerabilities (`--feed`): a machine's count on the machines page,
//! linking to its page, and that page: the open CVEs of the machine's
//! bundle, as `mkve-vm audit` lists them.

use maud::{html, Markup};
use mkve_core::audit::Finding;
use mkve_core::vm::{self, MachineInfo, MachineState};
use mkve_core::Result;

use super::{error, page};
use crate::audits::Count;
use crate::auth::Caller;

/// The machines page's cell for `i`: its count (`None`: not worked out
/// yet), linking to its page.
pub fn cell(i: &MachineInfo, count: Option<&Count>) -> Markup {
    if i.machine.state == MachineState::Orphan {
        return html! {};
    }
    let href = format!("/machines/{}/vulnerabilities", i.machine.id);
    match count {
        Some(Count::Open(0)) => html! { a href=(href) data-vulns="0" { "0" } },
        Some(Count::Open(n)) => html! { a.error href=(href) data-vulns=(n) { (n) " open" } },
        Some(Count::NoSbom(why)) => {
            html! { span.muted title=(why) data-vulns="none" { "no SBOM" } }
        }
        Some(Count::Failed(e)) => html! { span.error title=(e) { "error" } },
        Some(Count::FeedUnreadable(e)) => html! { span.error title=(e) { "feed unreadable" } },
        None => html! { span.muted { "—" } },
    }
}

/// The link from a machine's page to its vulnerabilities.
pub fn link(id: impl std::fmt::Display) -> Markup {
    html! { a href=(format!("/machines/{id}/vulnerabilities")) { "open ones" } }
}

/// What `GET /machines/ID/vulnerabilities` found: the machine and its open
/// findings, or why its packages are not known.
pub type Found = (MachineInfo, std::result::Result<Vec<Finding>, String>);

/// GET /machines/ID/vulnerabilities: `found`, or the failure (`Ok(None)`:
/// mkve-web was started without a feed).
pub fn vulnerabilities_page(c: &Caller, id: &str, found: &Result<Option<Found>>) -> Markup {
    let title = format!("Vulnerabilities of machine {id}");
    let body = match found {
        Ok(None) => error("no feed: mkve-web shows vulnerabilities when started with --feed FILE"),
        Err(e) => error(&e.to_string()),
        Ok(Some((i, found))) => listing(i, found),
    };
    let body = html! {
        h1 { (title) }
        (body)
        p { a href=(format!("/machines/{id}")) { "Machine " (id) } " · " a href="/" { "Machines" } }
    };
    page(c, "", &title, body)
}

fn listing(i: &MachineInfo, found: &std::result::Result<Vec<Finding>, String>) -> Markup {
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
                    tbody { @for f in list {
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
