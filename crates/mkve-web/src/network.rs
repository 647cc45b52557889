//! The mkve network as mkve-net sees it: the same connection (`-c`, else
//! `LIBVIRT_DEFAULT_URI`, else this node's URI in mkve.conf, else qemu's
//! default: `nodes::Connections::network`) and the same status, for the network
//! page and `GET /api/network`.

use mkve_core::libvirt::{self, network};
use mkve_core::Result;

/// The network's state, as `mkve-net status --json`, on the connection
/// mkve-net opens.
pub fn network_status(connect: Option<&str>) -> Result<network::Status> {
    let conn = libvirt::connect(&network_uri(connect)?)?;
    network::status(&conn, &mkve_core::nodes::network()?)
}

/// The libvirt URI the network is reached on, as mkve-net chooses it
/// (`nodes::Connections::network`). Errors (65): mkve.conf is unsound.
pub fn network_uri(connect: Option<&str>) -> Result<String> {
    Ok(mkve_core::nodes::Connections::resolve(connect)?.network())
}
