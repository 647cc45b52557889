//! Everything mkve does through libvirt, with the `virt` crate: the XML it
//! generates, and the operations on networks (and, later, domains). No
//! virsh: libvirt's own API, so remote URIs work as they do in virsh.

pub mod domain;
pub mod network;

use virt::connect::Connect;

use crate::error::{Error, Result};

/// The connection URI: the one given, else `LIBVIRT_DEFAULT_URI`, else
/// `default`.
pub fn uri(given: Option<&str>, default: &str) -> String {
    given
        .map(str::to_string)
        .or_else(|| {
            std::env::var("LIBVIRT_DEFAULT_URI")
                .ok()
                .filter(|u| !u.is_empty())
        })
        .unwrap_or_else(|| default.to_string())
}

/// Open a connection; a daemon that does not answer is `Unavailable`.
pub fn connect(uri: &str) -> Result<Connect> {
    // Errors come back as values; libvirt's default handler would print
    // each one on stderr as well.
    virt::error::clear_error_callback();
    Connect::open(Some(uri)).map_err(|e| Error::Unavailable {
        what: format!("libvirt ({uri})"),
        why: format!("{} (is libvirtd running?)", e.message()),
    })
}

/// A libvirt failure while doing `what`.
pub(crate) fn failed(what: impl std::fmt::Display, e: virt::error::Error) -> Error {
    Error::Other(format!("{what}: {}", e.message()))
}

/// Escape text for an XML attribute or element.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}
