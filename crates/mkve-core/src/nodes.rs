//! The nodes of a site, as `$MKVE_CONFDIR/mkve.conf` lists them
//! (mkve-vm(1), NODES): each node's name, the libvirt URI of each of its
//! hypervisors, the range of machine IDs it gives out, how its files are
//! reached (an ssh destination) and the `mkve-vm` that runs there; which
//! node this one is (`this_node=`); and the ssh command every node is
//! reached with. Keys are `KEY=VALUE` lines in the style of the network's
//! (`net.rs`), which this module leaves alone, as `NetConfig` leaves these:
//!
//! ```text
//! this_node=n1
//! node_ssh_command=ssh -o BatchMode=yes
//! node.n1.ids=100-199
//! node.n2.ids=200-299
//! node.n2.uri.qemu=qemu+ssh://root@10.0.0.2/system
//! node.n2.uri.lxc=lxc+ssh://root@10.0.0.2/
//! node.n2.ssh=root@10.0.0.2
//! ```
//!
//! Only the format and its checks live here; what is done with a node
//! (listing it, creating and migrating there) is `vm/`'s.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Problem, Result};
use crate::hypervisor::Hypervisor;
use crate::hypervisor::FIRST_ID;
use crate::net::NetConfig;

/// The ssh command nodes are reached with when mkve.conf names none:
/// never a password prompt that would hang a create.
pub const DEFAULT_SSH: [&str; 3] = ["ssh", "-o", "BatchMode=yes"];

/// A node's range of machine IDs, both ends included: `200-299`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct IdRange {
    pub first: u32,
    pub last: u32,
}

impl IdRange {
    pub fn contains(self, id: u32) -> bool {
        (self.first..=self.last).contains(&id)
    }

    fn overlaps(self, other: IdRange) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

impl fmt::Display for IdRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl FromStr for IdRange {
    type Err = String;
    /// `FIRST-LAST`, FIRST at least [`FIRST_ID`] and at most LAST.
    fn from_str(s: &str) -> std::result::Result<IdRange, String> {
        let bad = || format!("\"{s}\" is not an ID range like 200-299");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let first: u32 = a.trim().parse().map_err(|_| bad())?;
        let last: u32 = b.trim().parse().map_err(|_| bad())?;
        if first < FIRST_ID {
            return Err(format!("{s}: IDs start at {FIRST_ID}"));
        }
        if first > last {
            return Err(format!("{s}: the first ID is above the last"));
        }
        Ok(IdRange { first, last })
    }
}

/// One node of the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    /// The libvirt URI of each hypervisor's driver on the node, as given
    /// (`uri.qemu` serves kvm too, and `uri.kvm` qemu, when only one is).
    pub uris: BTreeMap<Hypervisor, String>,
    /// The IDs this node gives out.
    pub ids: IdRange,
    /// Where ssh reaches the node's files and its mkve-vm: `root@node2`.
    pub ssh: Option<String>,
    /// The mkve-vm command on the node (`mkve-vm`, found in its PATH).
    pub mkve_vm: String,
    /// The node's address on the link between nodes, which a guest's
    /// memory and disk travel to when it migrates there; `None`: the host
    /// of `ssh`.
    pub address: Option<String>,
    /// The line of mkve.conf that first names the node, for messages.
    pub line: usize,
}

impl Node {
    /// The URI of `hv`'s driver on the node, if mkve.conf gives one.
    pub fn uri(&self, hv: Hypervisor) -> Option<&str> {
        let twin = match hv {
            Hypervisor::Qemu => Some(Hypervisor::Kvm),
            Hypervisor::Kvm => Some(Hypervisor::Qemu),
            _ => None,
        };
        self.uris
            .get(&hv)
            .or_else(|| twin.and_then(|t| self.uris.get(&t)))
            .map(String::as_str)
    }

    /// Each distinct URI of the node, in the order of the hypervisors.
    pub fn uri_list(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for u in self.uris.values() {
            if !out.contains(u) {
                out.push(u.clone());
            }
        }
        out
    }

    /// The host a migrating guest's streams go to: `address`, else the
    /// host part of the ssh destination (`root@10.0.0.2` → `10.0.0.2`).
    pub fn migration_host(&self) -> Option<String> {
        if let Some(a) = &self.address {
            return Some(a.clone());
        }
        let dest = self.ssh.as_deref()?;
        let host = dest.rsplit_once('@').map_or(dest, |(_, h)| h);
        Some(host.to_string())
    }

    /// The ssh destination. Errors (65): mkve.conf gives none.
    pub fn ssh_destination(&self, conf: &Path) -> Result<&str> {
        self.ssh.as_deref().ok_or_else(|| {
            Error::InvalidConfig(Problem::new(
                conf,
                Some(self.line),
                format!(
                    "node {}: no node.{}.ssh=DESTINATION, and its files are reached through ssh",
                    self.name, self.name
                ),
            ))
        })
    }
}

/// The nodes mkve.conf lists, and which one this is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nodes {
    /// mkve.conf, for messages.
    pub path: PathBuf,
    /// `this_node=`: the node this host is; `None` on a host that only
    /// manages others.
    pub this: Option<String>,
    /// In the order mkve.conf first names them.
    pub list: Vec<Node>,
    /// `node_ssh_command=`, split into words as a shell would.
    pub ssh_command: Vec<String>,
}

/// A node's keys as given: each key after `node.NAME.`, with its line and
/// value.
type NodeKeys = BTreeMap<String, (usize, String)>;

/// The keys a node takes after `node.NAME.`, for messages.
const NODE_KEYS: &str = "ids, uri.HYPERVISOR, ssh, address, mkve_vm";

/// `$MKVE_CONFDIR/mkve.conf` read whole, the one way every command reads
/// it: the network it describes (the defaults when the file does not
/// exist) and the nodes it lists. Errors (65, file and line): anything
/// `mkveconf::lines`, `NetConfig::from_file` or `Nodes::from_file` refuses.
pub fn load() -> Result<(NetConfig, Nodes)> {
    let path = crate::paths::confdir().join("mkve.conf");
    let net = NetConfig::from_file(&path)?;
    let nodes = Nodes::from_file(&path, &net)?;
    Ok((net, nodes))
}

/// The network of `$MKVE_CONFDIR/mkve.conf`, the whole file checked
/// ([`load`]).
pub fn network() -> Result<NetConfig> {
    load().map(|(net, _)| net)
}

impl Nodes {
    /// The nodes `$MKVE_CONFDIR/mkve.conf` lists; none when it does not
    /// exist or lists none. Errors: see [`Nodes::from_file`].
    pub fn load() -> Result<Nodes> {
        load().map(|(_, nodes)| nodes)
    }

    /// Read the node keys of mkve.conf at `path` (other keys belong to
    /// other parts of mkve and are left alone); `net` is the network the
    /// same file describes, which every node's range must fit.
    /// Errors (65, naming the file and line): a malformed key or value, a
    /// key given twice, an unknown hypervisor, a node without `ids`, a
    /// range outside the network or overlapping another node's, a node
    /// other than this one without a URI, `this_node` naming no node.
    pub fn from_file(path: &Path, net: &NetConfig) -> Result<Nodes> {
        let mut nodes = Nodes {
            path: path.to_path_buf(),
            this: None,
            list: Vec::new(),
            ssh_command: DEFAULT_SSH.iter().map(|s| s.to_string()).collect(),
        };
        let Some(lines) = crate::mkveconf::lines(path)? else {
            return Ok(nodes);
        };
        let bad = |n: usize, msg: String| Error::InvalidConfig(Problem::new(path, Some(n), msg));
        // Each node's keys as given, and where (each key once: mkveconf).
        let mut given: Vec<(String, usize, NodeKeys)> = Vec::new();
        let mut this_line = 0;
        for crate::mkveconf::Line { n, key, value } in lines {
            let (k, v) = (key.as_str(), value.as_str());
            let ours = k == "this_node" || k == "node_ssh_command" || k.starts_with("node.");
            if !ours {
                continue;
            }
            if v.is_empty() {
                return Err(bad(n, format!("{k}: no value")));
            }
            match k {
                "this_node" => {
                    check_name(v).map_err(|m| bad(n, m))?;
                    nodes.this = Some(v.to_string());
                    this_line = n;
                }
                "node_ssh_command" => {
                    let words = shell_words::split(v)
                        .map_err(|e| bad(n, format!("node_ssh_command: {e}")))?;
                    if words.is_empty() {
                        return Err(bad(n, "node_ssh_command: no command".into()));
                    }
                    nodes.ssh_command = words;
                }
                _ => {
                    let rest = &k["node.".len()..];
                    let Some((name, key)) = rest.split_once('.') else {
                        return Err(bad(n, format!("{k}: expected node.NAME.KEY ({NODE_KEYS})")));
                    };
                    check_name(name).map_err(|m| bad(n, m))?;
                    let at = match given.iter().position(|(g, _, _)| g == name) {
                        Some(i) => i,
                        None => {
                            given.push((name.to_string(), n, BTreeMap::new()));
                            given.len() - 1
                        }
                    };
                    given[at].2.insert(key.to_string(), (n, v.to_string()));
                }
            }
        }
        for (name, first_line, keys) in given {
            nodes
                .list
                .push(node(&name, first_line, &keys, net).map_err(|(n, m)| bad(n, m))?);
        }
        for (i, a) in nodes.list.iter().enumerate() {
            if let Some(b) = nodes.list[..i].iter().find(|b| b.ids.overlaps(a.ids)) {
                return Err(bad(
                    a.line,
                    format!(
                        "node {}: IDs {} overlap node {}'s {}: each node gives out IDs of its own",
                        a.name, a.ids, b.name, b.ids
                    ),
                ));
            }
        }
        if let Some(t) = &nodes.this {
            if nodes.get(t).is_err() {
                return Err(bad(
                    this_line,
                    format!("this_node={t}: no node {t} is listed (node.{t}.ids=…)"),
                ));
            }
        }
        for n in &nodes.list {
            if n.uris.is_empty() && nodes.this.as_deref() != Some(&n.name) {
                return Err(bad(
                    n.line,
                    format!(
                        "node {}: no node.{}.uri.HYPERVISOR=URI: how is its libvirt reached?",
                        n.name, n.name
                    ),
                ));
            }
        }
        Ok(nodes)
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The node named `name`. Errors (2): no such node.
    pub fn get(&self, name: &str) -> Result<&Node> {
        self.list.iter().find(|n| n.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.list.iter().map(|n| n.name.as_str()).collect();
            Error::Usage(if names.is_empty() {
                format!(
                    "no node {name}: {} lists no nodes (node.NAME.ids=…)",
                    self.path.display()
                )
            } else {
                format!(
                    "no node {name} in {} (nodes: {})",
                    self.path.display(),
                    names.join(", ")
                )
            })
        })
    }

    /// This node, when `this_node` names one.
    pub fn this_node(&self) -> Option<&Node> {
        self.this.as_deref().and_then(|t| self.get(t).ok())
    }

    /// Whether `name` is this node.
    pub fn is_this(&self, name: &str) -> bool {
        self.this.as_deref() == Some(name)
    }

    /// The listed nodes other than this one.
    pub fn others(&self) -> impl Iterator<Item = &Node> {
        self.list.iter().filter(|n| !self.is_this(&n.name))
    }

    /// The IDs this node may give out: its range when nodes are listed,
    /// `None` (the whole network) when none are. Errors (65): nodes are
    /// listed but `this_node` says not which this is, so no ID is safe to
    /// give out here.
    pub fn local_range(&self) -> Result<Option<IdRange>> {
        if self.is_empty() {
            return Ok(None);
        }
        match self.this_node() {
            Some(n) => Ok(Some(n.ids)),
            None => Err(Error::InvalidConfig(Problem::new(
                &self.path,
                None,
                "lists nodes but not which one this is (this_node=NAME): \
                 its machines' IDs would not be unique across them",
            ))),
        }
    }

    /// The URIs this node's machines are looked for on, when mkve.conf
    /// gives this node any; `None` otherwise (the hypervisors' defaults).
    pub fn local_uris(&self) -> Option<Vec<String>> {
        self.this_node()
            .map(Node::uri_list)
            .filter(|l| !l.is_empty())
    }
}

/// Where to look for machines: the URIs, and whether they were asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uris {
    pub list: Vec<String>,
    /// Given by the user: a connection that fails is an error. Defaults
    /// that do not answer (a hypervisor this node lacks) are skipped.
    pub explicit: bool,
}

/// Which libvirt connection each job opens, decided once per process and
/// asked by every tool (mkve-vm, mkve-net, mkve-web, doctor), so that two
/// tools never look at two libvirtds. In order: the URI given (`-c`),
/// else `LIBVIRT_DEFAULT_URI`, else this node's URIs in mkve.conf
/// (mkve-vm(1) NODES), else the hypervisors' defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connections {
    /// `-c`, else `LIBVIRT_DEFAULT_URI` (when not empty).
    given: Option<String>,
    /// This node, when mkve.conf describes it.
    this: Option<Node>,
}

impl Connections {
    /// Resolve them for `given` (`-c`) from the environment and mkve.conf
    /// (`$MKVE_CONFDIR/mkve.conf`). Errors (65): mkve.conf is unsound
    /// (`Nodes::load`: a file one command refuses, every command refuses).
    pub fn resolve(given: Option<&str>) -> Result<Connections> {
        Ok(Connections::with_nodes(given, &Nodes::load()?))
    }

    /// Resolve them for `given` and the nodes `nodes` (read already).
    pub fn with_nodes(given: Option<&str>, nodes: &Nodes) -> Connections {
        let env = std::env::var("LIBVIRT_DEFAULT_URI")
            .ok()
            .filter(|u| !u.is_empty());
        Connections {
            given: given.map(str::to_string).or(env),
            this: nodes.this_node().cloned(),
        }
    }

    /// The URIs machines are looked for on: the one given; else this
    /// node's in mkve.conf, each of which must answer; else every
    /// hypervisor's default that mkve uses here (`explicit` false).
    pub fn machines(&self) -> Uris {
        if let Some(u) = &self.given {
            return Uris {
                list: vec![u.clone()],
                explicit: true,
            };
        }
        match self.this.as_ref().map(Node::uri_list) {
            Some(list) if !list.is_empty() => Uris {
                list,
                explicit: true,
            },
            _ => Uris {
                list: searched_uris(),
                explicit: false,
            },
        }
    }

    /// The URIs of this node whatever was given: mkve.conf's, else every
    /// hypervisor's default that mkve uses here. What a sweep looks at for
    /// the leftovers of a killed create.
    pub fn node(&self) -> Vec<String> {
        match self.this.as_ref().map(Node::uri_list) {
            Some(list) if !list.is_empty() => list,
            _ => searched_uris(),
        }
    }

    /// The URI `hv`'s machines are made on: the one given, else this
    /// node's for `hv` in mkve.conf, else the hypervisor's default.
    pub fn create(&self, hv: Hypervisor) -> String {
        self.given
            .clone()
            .or_else(|| self.this.as_ref()?.uri(hv).map(str::to_string))
            .unwrap_or_else(|| hv.default_uri().to_string())
    }

    /// The URI `hv` is checked at by `doctor`: where its machines are
    /// made ([`Connections::create`]).
    pub fn doctor(&self, hv: Hypervisor) -> String {
        self.create(hv)
    }

    /// The URI the mkve network is reached on: the one given, else this
    /// node's qemu URI in mkve.conf, else its first, else qemu's default.
    pub fn network(&self) -> String {
        self.given
            .clone()
            .or_else(|| {
                let t = self.this.as_ref()?;
                t.uri(Hypervisor::Qemu)
                    .map(str::to_string)
                    .or_else(|| t.uri_list().into_iter().next())
            })
            .unwrap_or_else(|| Hypervisor::Qemu.default_uri().to_string())
    }
}

/// Every hypervisor's default URI that mkve uses on this node.
fn searched_uris() -> Vec<String> {
    Hypervisor::searched_uris()
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// A node's name: letters, digits, `-` and `_`, starting with a letter or
/// a digit, at most 32 (it is a key in mkve.conf and a column in tables).
fn check_name(s: &str) -> std::result::Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{s}\" is not a node name (letters, digits, - and _, at most 32)"
        ))
    }
}

/// One node from its keys; an error is its line and message.
fn node(
    name: &str,
    first_line: usize,
    keys: &NodeKeys,
    net: &NetConfig,
) -> std::result::Result<Node, (usize, String)> {
    let mut n = Node {
        name: name.to_string(),
        uris: BTreeMap::new(),
        ids: IdRange { first: 0, last: 0 },
        ssh: None,
        mkve_vm: "mkve-vm".into(),
        address: None,
        line: first_line,
    };
    let mut ids = None;
    for (key, (line, v)) in keys {
        let line = *line;
        match key.as_str() {
            "ids" => {
                let r: IdRange = v
                    .parse()
                    .map_err(|e| (line, format!("node.{name}.ids: {e}")))?;
                if r.last > net.last_id() {
                    return Err((
                        line,
                        format!(
                            "node.{name}.ids: {r} does not fit the mkve network {}/{} (IDs {FIRST_ID} to {})",
                            net.network_address(),
                            net.prefix,
                            net.last_id()
                        ),
                    ));
                }
                ids = Some(r);
            }
            "ssh" if v.starts_with('-') || v.contains(char::is_whitespace) => {
                return Err((
                    line,
                    format!("node.{name}.ssh: \"{v}\" is not an ssh destination like root@node2"),
                ));
            }
            "ssh" => n.ssh = Some(v.clone()),
            "address" => n.address = Some(v.clone()),
            "mkve_vm" => n.mkve_vm = v.clone(),
            k if k.starts_with("uri.") => {
                let hv: Hypervisor = k["uri.".len()..]
                    .parse()
                    .map_err(|e| (line, format!("node.{name}.{k}: {e}")))?;
                if v.contains(char::is_whitespace) {
                    return Err((line, format!("node.{name}.{k}: \"{v}\" is not a URI")));
                }
                n.uris.insert(hv, v.clone());
            }
            k => {
                return Err((
                    line,
                    format!("node.{name}.{k}: unknown key (a node takes {NODE_KEYS})"),
                ))
            }
        }
    }
    n.ids = ids.ok_or_else(|| {
        (
            first_line,
            format!("node {name}: no node.{name}.ids=FIRST-LAST: which IDs does it give out?"),
        )
    })?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (tempfile::TempDir, Result<Nodes>) {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("mkve.conf");
        std::fs::write(&f, text).unwrap();
        // As every command reads it: the lines' errors are the whole
        // file's, before the network's or the nodes' own.
        let r = NetConfig::from_file(&f).and_then(|net| Nodes::from_file(&f, &net));
        (d, r)
    }

    #[test]
    fn nodes_with_their_uris_ranges_and_ssh() {
        let (_d, r) = parse(
            "network_address=10.77.0.1/16\n\
             # the site\n\
             this_node=n1\n\
             node_ssh_command=ssh -F '/etc/mkve/ssh config'\n\
             node.n1.ids=100-199\n\
             node.n2.ids = 200-299\n\
             node.n2.uri.qemu=qemu+ssh://root@10.0.0.2/system\n\
             node.n2.uri.lxc=\"lxc+ssh://root@10.0.0.2/\"\n\
             node.n2.ssh=root@10.0.0.2\n\
             node.n2.mkve_vm=/opt/mkve/bin/mkve-vm\n",
        );
        let nodes = r.unwrap();
        assert_eq!(nodes.this.as_deref(), Some("n1"));
        assert_eq!(nodes.ssh_command, ["ssh", "-F", "/etc/mkve/ssh config"]);
        assert_eq!(nodes.list.len(), 2);
        let n2 = nodes.get("n2").unwrap();
        assert_eq!(
            n2.ids,
            IdRange {
                first: 200,
                last: 299
            }
        );
        assert_eq!(n2.line, 6);
        assert_eq!(
            n2.uri(Hypervisor::Kvm),
            Some("qemu+ssh://root@10.0.0.2/system"),
            "kvm shares qemu's driver"
        );
        assert_eq!(n2.uri(Hypervisor::Lxc), Some("lxc+ssh://root@10.0.0.2/"));
        assert_eq!(n2.uri(Hypervisor::Xen), None);
        assert_eq!(n2.uri_list().len(), 2);
        assert_eq!(n2.migration_host().as_deref(), Some("10.0.0.2"));
        assert_eq!(n2.mkve_vm, "/opt/mkve/bin/mkve-vm");
        assert_eq!(
            nodes.local_range().unwrap(),
            Some(IdRange {
                first: 100,
                last: 199
            })
        );
        assert_eq!(nodes.local_uris(), None, "n1 gives no URI: the defaults");
        assert_eq!(
            nodes.others().map(|n| n.name.as_str()).collect::<Vec<_>>(),
            ["n2"]
        );
        assert_eq!(
            nodes.get("n3").unwrap_err().to_string(),
            format!("no node n3 in {} (nodes: n1, n2)", nodes.path.display())
        );
    }

    #[test]
    fn no_nodes_is_the_single_node_of_before() {
        let (_d, r) = parse("network_name=x\n");
        let nodes = r.unwrap();
        assert!(nodes.is_empty());
        assert_eq!(nodes.local_range().unwrap(), None);
        assert_eq!(nodes.ssh_command, DEFAULT_SSH);
        let d = tempfile::tempdir().unwrap();
        let missing = Nodes::from_file(&d.path().join("none"), &NetConfig::default()).unwrap();
        assert!(missing.is_empty());
    }

    #[test]
    fn bad_node_lines_name_the_file_and_line() {
        for (text, want) in [
            ("node.n1.ids=100\n", ":1: node.n1.ids: \"100\" is not an ID range like 200-299"),
            ("node.n1.ids=50-60\n", ":1: node.n1.ids: 50-60: IDs start at 100"),
            ("node.n1.ids=300-200\n", ":1: node.n1.ids: 300-200: the first ID is above the last"),
            (
                "node.n1.ids=100-300\n",
                ":1: node.n1.ids: 100-300 does not fit the mkve network 192.0.2.0/24 (IDs 100 to 254)",
            ),
            (
                "node.n1.ids=100-150\nnode.n1.uri.lxc=lxc:///\nnode.n2.ids=140-200\nnode.n2.uri.lxc=lxc:///\n",
                ":3: node n2: IDs 140-200 overlap node n1's 100-150: each node gives out IDs of its own",
            ),
            (
                "node.n1.ids=100-150\nnode.n1.idz=3\n",
                ":2: node.n1.idz: unknown key (a node takes ids, uri.HYPERVISOR, ssh, address, mkve_vm)",
            ),
            (
                "node.n1.uri.vmware=x\n",
                ":1: node.n1.uri.vmware: unknown hypervisor \"vmware\"",
            ),
            ("node.n1.uri.lxc=lxc:///\n", ":1: node n1: no node.n1.ids=FIRST-LAST"),
            ("\nnode.n1.ids=100-150\n", ":2: node n1: no node.n1.uri.HYPERVISOR=URI"),
            (
                "node.n1.ids=100-150\nthis_node=n1\nnode.n1.ids=100-120\n",
                ":3: node.n1.ids is given twice",
            ),
            ("this_node=n9\nnode.n1.ids=100-150\nnode.n1.uri.lxc=x\n", ":1: this_node=n9: no node n9 is listed"),
            ("node.a b.ids=100-150\n", ":1: \"a b\" is not a node name"),
            ("node.n1=x\n", ":1: node.n1: expected node.NAME.KEY"),
            ("node.n1.ssh=-oProxyCommand=x\n", ":1: node.n1.ssh: \"-oProxyCommand=x\" is not an ssh destination"),
            ("node_ssh_command=ssh 'x\n", ":1: node_ssh_command: "),
            ("this_node=\n", ":1: this_node: no value"),
        ] {
            let (_d, r) = parse(text);
            let e = r.unwrap_err();
            let path = _d.path().join("mkve.conf");
            assert!(
                e.to_string().starts_with(&format!("{}{want}", path.display())),
                "{text:?}: {e}"
            );
            assert_eq!(e.exit_code(), 65, "{e}");
        }
    }

    #[test]
    fn this_node_may_do_without_uris_but_must_be_named_to_give_out_ids() {
        let (_d, r) = parse("this_node=n1\nnode.n1.ids=100-150\n");
        assert!(r.unwrap().local_uris().is_none());
        let (_d, r) = parse("node.n1.ids=100-150\nnode.n1.uri.lxc=lxc:///\n");
        let e = r.unwrap().local_range().unwrap_err();
        assert!(
            e.to_string().ends_with(
                "mkve.conf: lists nodes but not which one this is (this_node=NAME): \
                 its machines' IDs would not be unique across them"
            ),
            "{e}"
        );
        assert_eq!(e.exit_code(), 65);
        let (_d, r) = parse(
            "this_node=n1\nnode.n1.ids=100-150\nnode.n1.uri.lxc=lxc+unix:///?socket=/s\nnode.n1.uri.qemu=qemu+unix:///system?socket=/s\n",
        );
        assert_eq!(r.unwrap().local_uris().unwrap().len(), 2);
    }

    /// Every tool asks one resolver: `-c`, else `LIBVIRT_DEFAULT_URI`,
    /// else this node's URIs in mkve.conf, else the defaults; the network
    /// on the node's qemu URI (mkve-net and mkve-web alike), doctor where
    /// machines are made.
    #[test]
    fn one_resolver_decides_every_connection() {
        let _env = crate::testing::ENV
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        std::env::remove_var("LIBVIRT_DEFAULT_URI");
        let (_d, nodes) = parse(
            "this_node=n1\nnode.n1.ids=100-149\nnode.n1.uri.lxc=lxc+ssh://n1/\n\
             node.n1.uri.qemu=qemu+ssh://n1/system\nnode.n2.ids=150-199\n\
             node.n2.uri.qemu=qemu+ssh://n2/system\n",
        );
        let nodes = nodes.unwrap();
        let c = Connections::with_nodes(None, &nodes);
        assert_eq!(c.network(), "qemu+ssh://n1/system");
        assert_eq!(c.create(Hypervisor::Lxc), "lxc+ssh://n1/");
        assert_eq!(c.create(Hypervisor::Xen), Hypervisor::Xen.default_uri());
        assert_eq!(c.doctor(Hypervisor::Qemu), "qemu+ssh://n1/system");
        let m = c.machines();
        assert!(m.explicit);
        assert_eq!(m.list.len(), 2);
        assert_eq!(c.node(), m.list);

        let given = Connections::with_nodes(Some("test:///default"), &nodes);
        assert_eq!(given.network(), "test:///default");
        assert_eq!(given.create(Hypervisor::Lxc), "test:///default");
        assert_eq!(given.machines().list, ["test:///default"]);
        assert_eq!(given.node(), m.list, "the node's URIs whatever was given");

        std::env::set_var("LIBVIRT_DEFAULT_URI", "test:///env");
        let env = Connections::with_nodes(None, &nodes);
        assert_eq!(env.network(), "test:///env");
        assert_eq!(
            Connections::with_nodes(Some("test:///default"), &nodes).network(),
            "test:///default",
            "-c before the environment"
        );
        std::env::set_var("LIBVIRT_DEFAULT_URI", "");
        let none = Connections::with_nodes(None, &Nodes::default());
        std::env::remove_var("LIBVIRT_DEFAULT_URI");
        assert_eq!(none.network(), Hypervisor::Qemu.default_uri());
        assert!(!none.machines().explicit);
        assert_eq!(none.create(Hypervisor::Lxc), Hypervisor::Lxc.default_uri());
    }
}
