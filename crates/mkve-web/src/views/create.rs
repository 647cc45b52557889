//! Create: the upload form, the options that suit an uploaded bundle, and
//! a create's progress.

use maud::{html, Markup};

use super::{error, page};
use crate::auth::Caller;
use crate::jobs::Job;
use crate::uploads::Upload;

/// The upload form.
pub fn create_form(c: &Caller, max: u64) -> Markup {
    page(
        c,
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
            (super::pack::adopt_form())
        },
    )
}

/// The options of a create, suited to the uploaded bundle.
pub fn options_form(c: &Caller, token: &str, u: &Upload) -> Markup {
    let hv = u.meta.hypervisor;
    html! {
        (page(c, "/create", "Create", html! {
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
    page(
        c,
        "/create",
        "Create",
        html! {
            h1 { (j.what) }
            (job_status(n, j))
        },
    )
}

/// A create's progress, the fragment the job's page refreshes.
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
