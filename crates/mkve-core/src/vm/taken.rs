//! Which machine IDs are taken: on this node (its domains on every
//! hypervisor, the DHCP entries of the mkve network, the files in `vms/`)
//! and on the other nodes mkve.conf lists. A create and a move's target
//! ask here before they claim an ID under the IDs lock (ids.rs).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use super::layout::ids_with_files;
use crate::error::{Error, Result};
use crate::exec::Report;
use crate::ids;
use crate::libvirt::{self, network, Connection};
use crate::net::NetConfig;
use crate::nodes::{Node, Nodes};
use crate::text::one_line;

/// IDs not free on the node: those of the domains on `conn` and on every
/// other hypervisor's default connection that answers, those whose MAC or
/// address a DHCP entry holds in the network (mkve's orphans, and entries
/// other tools made), and those with files left in `vms`.
pub(super) fn taken_ids(conn: &Connection, net: &NetConfig, vms: &Path) -> Result<BTreeSet<u32>> {
    let mut used = ids::used_on_node(conn)?;
    for h in network::status(conn, net)?.hosts {
        used.extend(h.blocks(net));
    }
    used.extend(ids_with_files(vms));
    Ok(used)
}

/// The IDs held on the nodes other than this one: their machines' (a
/// machine that moved keeps its ID) and their DHCP entries' in the mkve
/// network, asked through each node's URIs at once. Errors (69): a node
/// does not answer, unless `local_ids`, when it is told as a warning and
/// passed by. No nodes listed: nothing.
pub(super) fn used_elsewhere(
    nodes: &Nodes,
    net: &NetConfig,
    local_ids: bool,
    report: &dyn Report,
) -> Result<BTreeSet<u32>> {
    let asks: Vec<(&Node, String)> = nodes
        .others()
        .flat_map(|n| n.uri_list().into_iter().map(move |u| (n, u)))
        .collect();
    let answers: Vec<Result<BTreeSet<u32>>> = std::thread::scope(|s| {
        let handles: Vec<_> = asks
            .iter()
            .map(|(_, uri)| s.spawn(move || used_at_patiently(uri, net)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Other("a thread panicked".into())))
            })
            .collect()
    });
    let mut used = BTreeSet::new();
    for ((node, uri), answer) in asks.iter().zip(answers) {
        match answer {
            Ok(ids) => used.extend(ids),
            Err(e) if local_ids => report.warning(&format!(
                "node {} ({uri}) does not answer, going on without its IDs (--local-ids): {}",
                node.name,
                one_line(&e.to_string())
            )),
            Err(e) => {
                return Err(Error::Unavailable {
                    what: format!("node {} ({uri})", node.name),
                    why: format!(
                        "{}: a create needs every listed node to say which IDs its machines hold; \
                         --local-ids goes on with what this node knows",
                        one_line(&e.to_string())
                    ),
                })
            }
        }
    }
    Ok(used)
}

/// Pauses between the asks of a node that did not answer: a node whose
/// sshd or libvirtd is busy with many connections at once (many creates
/// on several nodes) answers a moment later; one that is down has failed
/// three times after 4 s.
#[cfg(not(test))]
const ASK_AGAIN_AFTER: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(3)];
/// (Unit tests ask a node that is not there: not patiently.)
#[cfg(test)]
const ASK_AGAIN_AFTER: [Duration; 2] = [Duration::from_millis(10), Duration::from_millis(10)];

/// [`used_at`], asked again after each of [`ASK_AGAIN_AFTER`] while it
/// fails: the last failure is the answer. Only reads, so asking again is
/// harmless.
fn used_at_patiently(uri: &str, net: &NetConfig) -> Result<BTreeSet<u32>> {
    let mut answer = used_at(uri, net);
    for pause in ASK_AGAIN_AFTER {
        if answer.is_ok() {
            break;
        }
        std::thread::sleep(pause);
        answer = used_at(uri, net);
    }
    answer
}

/// The IDs of the mkve domains at `uri`, and those its mkve network's DHCP
/// entries hold.
fn used_at(uri: &str, net: &NetConfig) -> Result<BTreeSet<u32>> {
    let conn = libvirt::connect(uri)?;
    let mut used = ids::used_on(&conn)?;
    let status = network::status(&conn, net)?;
    for h in status.hosts {
        used.extend(h.blocks(net));
    }
    Ok(used)
}
