//! Pack and adopt on the pages: the Pack section of a machine's page (the
//! form that packs it into a bundle and downloads it; its own fragment,
//! `#pack`, marked `data-download` once made, which mkve.js follows), and
//! the Adopt form of the create page.

use maud::{html, Markup};

use super::error;

/// The Pack section of machine `id`: `flash` the result of the pack that
/// asked for it (worked, words), `download` set when the bundle is to be
/// downloaded at once; with `publish` (`--publish-dir`), a button that
/// publishes it there instead.
pub fn section(
    id: &str,
    flash: Option<(bool, String)>,
    download: bool,
    publish: Option<&std::path::Path>,
) -> Markup {
    let href = format!("/machines/{id}/pack");
    html! {
        div #pack data-download=[download.then_some(&href)] {
            h2 { "Pack" }
            @if let Some((ok, msg)) = &flash {
                @if *ok { div.ok { (msg) } } @else { (error(msg)) }
            }
            p {
                "The stopped machine made back into a bundle later machines start from, as "
                code { "mkve-vm pack" } " makes it: what mkve's seed put in taken out (its "
                "parameters, secrets included), machine-id, SSH host keys, leases, logs, "
                "histories, temporary files and caches scrubbed; refused while a private key "
                "is left in it. Signed by this node's GnuPG key."
            }
            form #make-pack hx-post=(href) hx-target="#pack" hx-swap="outerHTML" hx-disabled-elt="find button" {
                label { input type="checkbox" name="unsigned" value="true"; " unsigned (--force-no-sign)" }
                " " button type="submit" { "download it packed" }
                span.htmx-indicator { " packing…" }
            }
            @if let Some(dir) = publish {
                form #publish-pack hx-post=(href) hx-target="#pack" hx-swap="outerHTML" hx-disabled-elt="find button" {
                    input type="hidden" name="publish" value="true";
                    button type="submit" { "publish it packed into " (dir.display()) }
                    span.htmx-indicator { " packing and publishing…" }
                }
            }
        }
    }
}

/// The create page's Adopt form: a libvirt domain mkve did not make.
pub fn adopt_form() -> Markup {
    html! {
        div #adopt {
            h2 { "Adopt a libvirt domain" }
            p {
                "A domain mkve did not make (" code { "virsh define" } ") becomes one of its "
                "machines, as " code { "mkve-vm adopt" } " makes it: its name, disks and "
                "interfaces kept; its ID the one its name ends in when free, or the next free one."
            }
            form #adopt-form hx-post="/adopt" hx-target="#adopt-result" {
                label { "domain " input type="text" name="domain" required; }
                " "
                label { "ID " input type="number" name="id" min="1" placeholder="(its own)"; }
                " " button type="submit" { "adopt" }
            }
            div #adopt-result {}
        }
    }
}
