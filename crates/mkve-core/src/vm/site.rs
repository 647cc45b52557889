//! Machines across the nodes mkve.conf lists (mkve-vm(1), NODES), seen
//! through each node's libvirt URIs: one list of them all (`list
//! --all-nodes`), and the IDs machines hold on the other nodes, which a
//! create here passes by. A node that does not answer is told, never
//! taken for a node without machines.

use serde::Serialize;

use super::lookup::machines_on;
use super::Machine;
use crate::error::{Error, Result};
use crate::libvirt::{self};
use crate::nodes::{Node, Nodes};
use crate::text::one_line;

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
        return (
            crate::nodes::Connections::with_nodes(None, nodes).node(),
            false,
        );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::libvirt::domain;
    use crate::net::NetConfig;
    use crate::vm::taken::used_elsewhere;

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
        let dom = domain::testing::define(&conn, "site-120", 120, net.address_of(120).unwrap());

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
