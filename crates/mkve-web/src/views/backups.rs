//! Backups made through mkve-web: a machine's last one on the machines
//! page, and the Backups section of its page (its last one, to download
//! again, and the form that makes a new one and downloads it). The
//! section is its own fragment (`#backups`); a backup just made carries
//! `data-download`, which mkve.js follows, so one click downloads it.

use maud::{html, Markup};

use super::error;
use super::snapshots::mib;
use crate::backups::Record;

/// The machines page's cell: the date of the last backup made here.
pub fn cell(last: Option<&Record>) -> Markup {
    match last {
        Some(r) => html! { span title=(r.file) data-backup=(r.made) { (r.made) } },
        None => html! { span.muted { "—" } },
    }
}

/// The Backups section of machine `id`: `last` is its last backup made
/// here; `flash` the result of the backup that asked for it (worked,
/// words), and `download` set when it is to be downloaded at once.
pub fn section(
    id: &str,
    last: Option<&Record>,
    flash: Option<(bool, String)>,
    download: bool,
) -> Markup {
    let href = format!("/machines/{id}/backup");
    html! {
        div #backups data-download=[download.then_some(&href)] {
            h2 { "Backups" }
            @if let Some((ok, msg)) = &flash {
                @if *ok { div.ok { (msg) } } @else { (error(msg)) }
            }
            p {
                "What makes the machine differ from its base (or its whole root), in an archive "
                code { "mkve-vm restore" } " takes, signed by this node's GnuPG key. "
                "mkve-web keeps the last one of each machine."
            }
            @if let Some(r) = last {
                p data-backup=(r.made) {
                    "Last made here: " (r.made) " (" (mib(r.bytes))
                    @if r.full { ", full" } @if !r.signed { ", unsigned" } "). "
                    a href=(href) download=(r.file) { "download " (r.file) }
                }
            }
            form #make-backup hx-post=(href) hx-target="#backups" hx-swap="outerHTML" hx-disabled-elt="find button" {
                label { input type="checkbox" name="full" value="true"; " the whole root (--full)" }
                " "
                label { input type="checkbox" name="unsigned" value="true"; " unsigned (--force-no-sign)" }
                " " button type="submit" { "download a backup" }
                span.htmx-indicator { " backing up…" }
            }
        }
    }
}
