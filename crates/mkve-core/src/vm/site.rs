//! Machines across the nodes mkve.conf lists (mkve-vm(1), NODES), seen
//! through each node's libvirt URIs: one list of them all (`list
//! --all-nodes`), and the IDs machines hold on the other nodes, which a
//! create here passes by. A node that does not answer is told, never
//! taken for a node without machines.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use super::manage::machines_on;
use super::Machine;
use crate::error::{Error, Result};
use crate::exec::Report;
use crate::ids;
use crate::libvirt::{self, network};
use crate::net::NetConfig;
use crate::nodes::{Node, Nodes};

/// A machine and the node it is on (`list --all-nodes --json`: the keys
/// of `list`, and `node`).
#[derive(Debug, Clone, Serialize)]
pub struct NodeMachine {
    pub node: String,
    #[serde(flatten)]
    pub machine: Machine,
}

/// A node, or one of its URIs, that did not answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreachable {
    pub node: String,
    pub uri: String,
    /// libvirt's answer, as one line.
    pub error: String,
}

/// Every machine of every listed node, and what did not answer.
#[derive(Debug, Clone, Serialize)]
pub struct SiteList {
    pub machines: Vec<NodeMachine>,
    pub unreachable: Vec<Unreachable>,
}

/// The URIs node `n` is looked at through: its own in mkve.conf, or, for
/// this node when mkve.conf gives it none, the hypervisors' defaults here
/// (`explicit` false: a default that does not answer is a hypervisor this
/// node lacks, not a silent node).
fn node_uris(nodes: &Nodes, n: &Node) -> (Vec<String>, bool) {
    let list = n.uri_list();
    if list.is_empty() && nodes.is_this(&n.name) {
        return (crate::nodes::local_uris(), false);
    }
    (list, true)
}

/// Every machine on every node mkve.conf lists, by ID then node, each
/// node asked on a thread of its own. A URI that does not answer is in
/// `unreachable`, and the other nodes are listed all the same. Orphans
/// are not shown (their files are on the node: `mkve-vm --node NAME
/// list`). Errors (2): mkve.conf lists no nodes.
pub fn list_nodes(nodes: &Nodes) -> Result<SiteList> {
    if nodes.is_empty() {
        return Err(Error::Usage(format!(
            "--all-nodes: {} lists no nodes (mkve-vm(1), NODES)",
            nodes.path.display()
        )));
    }
    let per_node: Vec<(Vec<NodeMachine>, Vec<Unreachable>)> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .list
            .iter()
            .map(|n| s.spawn(move || list_node(nodes, n)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut out = SiteList {
        machines: Vec::new(),
        unreachable: Vec::new(),
    };
    for (m, u) in per_node {
        out.machines.extend(m);
        out.unreachable.extend(u);
    }
    out.machines
        .sort_by(|a, b| (a.machine.id, &a.node).cmp(&(b.machine.id, &b.node)));
    Ok(out)
}

fn list_node(nodes: &Nodes, n: &Node) -> (Vec<NodeMachine>, Vec<Unreachable>) {
    let (uris, explicit) = node_uris(nodes, n);
    let mut machines = Vec::new();
    let mut unreachable = Vec::new();
    for uri in uris {
        let found = libvirt::connect(&uri).and_then(|c| machines_on(&c, &uri));
        match found {
            Ok(list) => machines.extend(list.into_iter().map(|machine| NodeMachine {
                node: n.name.clone(),
                machine,
            })),
            Err(_) if !explicit => {}
            Err(e) => unreachable.push(Unreachable {
                node: n.name.clone(),
                uri,
                error: one_line(&e.to_string()),
            }),
        }
    }
    (machines, unreachable)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::libvirt::domain;

    /// `list --all-nodes` on libvirt's in-process test driver: node n1
    /// answers with its machine, node n2's daemon is not there. n2 is told
    /// as unreachable and n1 listed all the same; and a create, which
    /// needs every node's IDs, stops at n2 unless it goes on with local
    /// knowledge.
    #[test]
    fn all_nodes_lists_those_that_answer_and_tells_the_others() {
        let d = tempfile::tempdir().unwrap();
        let conf = d.path().join("mkve.conf");
        std::fs::write(
            &conf,
            "this_node=n3\n\
             node.n1.ids=100-149\nnode.n1.uri.qemu=test:///default\n\
             node.n2.ids=150-199\nnode.n2.uri.qemu=qemu+unix:///system?socket=/nonexistent/mkve-sock\n\
             node.n3.ids=200-254\n",
        )
        .unwrap();
        let net = NetConfig::from_file(&conf).unwrap();
        let nodes = Nodes::from_file(&conf, &net).unwrap();
        let conn = libvirt::connect("test:///default").unwrap();
        let xml = format!(
            "<domain type='test'><name>site-120</name><memory>65536</memory><os><type>hvm</type></os>\
             <metadata>{}</metadata></domain>",
            domain::metadata_xml(&domain::Record {
                id: 120,
                address: net.address_of(120).unwrap(),
                template: "t".into(),
                version: "1".into(),
                bundle: "00".repeat(32),
                signed_by: None,
            })
        );
        let dom = conn.define(&xml, "site-120").unwrap();

        let all = list_nodes(&nodes).unwrap();
        // (Other tests define domains on the same test driver.)
        let found: Vec<(String, u32)> = all
            .machines
            .iter()
            .filter(|m| m.machine.name == "site-120")
            .map(|m| (m.node.clone(), m.machine.id.get()))
            .collect();
        assert_eq!(found, [("n1".to_string(), 120)]);
        assert_eq!(all.unreachable.len(), 1, "{:?}", all.unreachable);
        assert_eq!(all.unreachable[0].node, "n2");
        assert!(all.unreachable[0].uri.contains("/nonexistent/"));
        assert!(!all.unreachable[0].error.contains('\n'));
        let json = serde_json::to_value(&all).unwrap();
        let listed = json["machines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "site-120")
            .unwrap();
        assert_eq!(
            (&listed["node"], &listed["id"]),
            (&"n1".into(), &120.into())
        );
        assert_eq!(json["unreachable"][0]["node"], "n2");

        // A create on n3 asks n1 and n2 which IDs they hold.
        let e = used_elsewhere(&nodes, &net, false, &crate::exec::Silent).unwrap_err();
        assert_eq!(e.exit_code(), 69);
        assert!(
            e.to_string()
                .starts_with("node n2 (qemu+unix:///system?socket=/nonexistent/mkve-sock): "),
            "{e}"
        );
        assert!(e.to_string().contains("--local-ids"), "{e}");
        let used = used_elsewhere(&nodes, &net, true, &crate::exec::Silent).unwrap();
        assert!(used.contains(&120), "{used:?}");
        dom.undefine("site-120").unwrap();

        let none = Nodes::from_file(&d.path().join("none"), &net).unwrap();
        assert_eq!(list_nodes(&none).unwrap_err().exit_code(), 2);
    }
}
