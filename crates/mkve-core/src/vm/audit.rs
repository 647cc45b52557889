//! Which machines a vulnerability reaches (mkve-vm(1), AUDIT): the SBOM of
//! each machine's bundle against a feed, on this node or on every node
//! mkve.conf lists. What is affected, and the accepted decisions, are
//! `audit.rs`'s; this module only finds each machine's SBOM.
//!
//! A machine keeps its bundle's signed `meta.json` and, from format 3,
//! its `sbom.spdx.json` in its directory (`vms/ID/`: a create unpacks
//! them there, bundle/read.rs, and a move carries them). A machine's SBOM
//! is taken from there only when that meta.json is its bundle's (the root
//! digest in it is the one the machine's record names) and the SBOM's
//! sha256 is the one meta.json states; a changed one is refused (65). A
//! machine whose bundle had no SBOM (format 1 or 2), or whose directory
//! keeps none, is told as having none: nothing is guessed for it.
//!
//! Another node's machines are asked of that node (`mkve-vm __audit-data`
//! over ssh, as `vm/remote.rs` reaches nodes): it answers its machines and
//! their packages ([`NodeSboms`]), and the feed and the accepted file are
//! applied here, once.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::layout::vms_dir;
use super::site::Unreachable;
use super::Uris;
use crate::audit::{self, Accepted, Feed, Finding, Installed};
use crate::bundle::{self, Meta};
use crate::digest::hex;
use crate::error::{Error, Result};
use crate::exec::Report;
use crate::nodes::{Node, Nodes};

/// A machine and what is known of its bundle's packages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineSbom {
    pub id: u32,
    pub name: String,
    pub template: String,
    pub version: String,
    /// The sha256 of its bundle's root, as its record names it.
    pub bundle: String,
    /// The sha256 of its bundle's SBOM: its key in
    /// [`NodeSboms::packages`]; `None` when it has none.
    pub sbom: Option<String>,
    /// Why it has no SBOM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_sbom: Option<String>,
}

/// A node's machines and, once for each SBOM they share, its Debian
/// packages: what `mkve-vm __audit-data` prints, as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSboms {
    pub machines: Vec<MachineSbom>,
    pub packages: BTreeMap<String, Vec<Installed>>,
}

/// The machines on `uris` (this node's files: `$MKVE_STATEDIR/vms`), by
/// ID, each with its SBOM's packages or why it has none. Orphans (no
/// domain) are left out. Errors: a URI given does not answer; a kept
/// SBOM was changed or does not read (65, naming the file).
pub fn node_sboms(uris: &Uris) -> Result<NodeSboms> {
    let vms = vms_dir();
    let mut out = NodeSboms::default();
    for i in super::manage::infos(uris)? {
        if i.machine.state == super::MachineState::Orphan {
            continue;
        }
        let dir = vms.join(i.machine.id.to_string());
        let (sbom, no_sbom) = match kept_sbom(&dir, &i.bundle)? {
            Kept::Sbom { sha256, bytes } => {
                if !out.packages.contains_key(&sha256) {
                    let path = dir.join(bundle::sbom::MEMBER);
                    out.packages
                        .insert(sha256.clone(), packages(&bytes, &path)?);
                }
                (Some(sha256), None)
            }
            Kept::None(why) => (None, Some(why)),
        };
        out.machines.push(MachineSbom {
            id: i.machine.id.get(),
            name: i.machine.name,
            template: i.machine.template,
            version: i.machine.version,
            bundle: i.bundle,
            sbom,
            no_sbom,
        });
    }
    Ok(out)
}

/// What a machine's directory keeps of its bundle's SBOM.
enum Kept {
    /// Its bytes, their sha256 the one its meta.json states.
    Sbom { sha256: String, bytes: Vec<u8> },
    /// None, and why.
    None(String),
}

/// The SBOM kept in the machine directory `dir`, whose record names the
/// bundle with root digest `bundle`. Errors (65): its meta.json does not
/// read, or is another bundle's; the SBOM's sha256 is not meta.json's;
/// (1) a file cannot be read.
fn kept_sbom(dir: &Path, bundle: &str) -> Result<Kept> {
    let meta_path = dir.join(bundle::META);
    let meta_bytes = match std::fs::read(&meta_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Kept::None(format!(
                "{} is not there: its bundle's metadata was not kept with the machine",
                meta_path.display()
            )))
        }
        Err(e) => return Err(Error::io(&meta_path, e)),
    };
    let meta = Meta::from_json(&meta_bytes, dir)?;
    let root = meta
        .members
        .get(bundle::ROOTFS)
        .map(String::as_str)
        .unwrap_or("");
    if root != bundle {
        return Err(Error::bundle(
            &meta_path,
            format!(
                "names the root {}, not the machine's bundle {}: it is not its bundle's metadata",
                super::base::short(root),
                super::base::short(bundle)
            ),
        ));
    }
    let Some(expected) = meta.members.get(bundle::sbom::MEMBER) else {
        return Ok(Kept::None(format!(
            "made from a bundle of format {} (bundles carry an SBOM from format 3)",
            meta.format
        )));
    };
    let path = dir.join(bundle::sbom::MEMBER);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Kept::None(format!(
                "{} is not there, though its bundle had one",
                path.display()
            )))
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    let sha256 = hex(&Sha256::digest(&bytes));
    if &sha256 != expected {
        return Err(Error::bundle(
            &path,
            format!(
                "sha256 {sha256} is not the one its bundle's meta.json states ({expected}): changed since the machine was made"
            ),
        ));
    }
    Ok(Kept::Sbom { sha256, bytes })
}

/// The Debian packages of the SBOM `bytes` (read from `path`). Errors
/// (65): not an SPDX document mkve reads.
fn packages(bytes: &[u8], path: &Path) -> Result<Vec<Installed>> {
    let bad = |why: String| Error::bundle(path, why);
    let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    bundle::sbom::check_spdx(&doc).map_err(bad)?;
    audit::installed_from_spdx(&doc, path)
}

/// The machine a finding or a missing SBOM is of: where it is and what it
/// was made from (mkve-vm(1), AUDIT: the `--json` keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MachineRef {
    pub node: String,
    pub id: u32,
    pub name: String,
    pub template: String,
    pub version: String,
    pub bundle: String,
}

/// One open vulnerability of one machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MachineFinding {
    #[serde(flatten)]
    pub machine: MachineRef,
    #[serde(flatten)]
    pub finding: Finding,
}

/// A machine whose packages are not known, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoSbom {
    #[serde(flatten)]
    pub machine: MachineRef,
    pub why: String,
}

/// The audit of a node or of every node.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SiteAudit {
    /// By node, then ID, then CVE and package.
    pub findings: Vec<MachineFinding>,
    pub no_sbom: Vec<NoSbom>,
    pub unreachable: Vec<Unreachable>,
    /// How many findings the accepted decisions hide.
    #[serde(skip)]
    pub accepted: usize,
    /// How many machines were audited (with or without an SBOM).
    #[serde(skip)]
    pub machines: usize,
}

impl SiteAudit {
    /// Findings of `node`'s machines, as `feed` and `accepted` say.
    fn add(&mut self, node: &str, sboms: NodeSboms, feed: &Feed, accepted: &[Accepted]) {
        let mut memo: BTreeMap<&str, (Vec<Finding>, usize)> = BTreeMap::new();
        for m in &sboms.machines {
            self.machines += 1;
            let at = MachineRef {
                node: node.to_string(),
                id: m.id,
                name: m.name.clone(),
                template: m.template.clone(),
                version: m.version.clone(),
                bundle: m.bundle.clone(),
            };
            let installed = m
                .sbom
                .as_deref()
                .and_then(|s| sboms.packages.get(s).map(|p| (s, p)));
            let Some((key, installed)) = installed else {
                let why = m
                    .no_sbom
                    .clone()
                    .unwrap_or_else(|| "its node sent no packages for its SBOM".to_string());
                self.no_sbom.push(NoSbom { machine: at, why });
                continue;
            };
            let (open, hidden) = memo
                .entry(key)
                .or_insert_with(|| audit::open_findings(feed, installed, accepted));
            self.accepted += *hidden;
            self.findings.extend(open.iter().map(|f| MachineFinding {
                machine: at.clone(),
                finding: f.clone(),
            }));
        }
    }
}

/// The open findings of each machine on this node (`uris`), named `node`,
/// against `feed`, the findings `accepted` covers hidden.
pub fn audit_node(
    node: &str,
    uris: &Uris,
    feed: &Feed,
    accepted: &[Accepted],
) -> Result<SiteAudit> {
    let mut out = SiteAudit::default();
    out.add(node, node_sboms(uris)?, feed, accepted);
    Ok(out)
}

/// [`audit_node`] for every node mkve.conf lists (or only the one named
/// `only`): this one through `uris`, the others asked over ssh at once,
/// each on a thread; a node that does not answer, or fails, is in
/// `unreachable` and the others are audited all the same. Errors (2):
/// mkve.conf lists no nodes, or not `only`.
pub fn audit_nodes(
    nodes: &Nodes,
    only: Option<&str>,
    uris: &Uris,
    feed: &Feed,
    accepted: &[Accepted],
    report: &dyn Report,
) -> Result<SiteAudit> {
    if nodes.is_empty() {
        return Err(Error::Usage(format!(
            "--all-nodes: {} lists no nodes (mkve-vm(1), NODES)",
            nodes.path.display()
        )));
    }
    let asked: Vec<&Node> = match only {
        Some(name) => vec![nodes.get(name)?],
        None => nodes.list.iter().collect(),
    };
    let answers: Vec<(&Node, Result<NodeSboms>)> = std::thread::scope(|s| {
        let handles: Vec<_> = asked
            .iter()
            .map(|&n| {
                s.spawn(move || {
                    if nodes.is_this(&n.name) {
                        node_sboms(uris)
                    } else {
                        sboms_of(nodes, n, report)
                    }
                })
            })
            .collect();
        asked
            .iter()
            .copied()
            .zip(handles)
            .map(|(n, h)| {
                let r = h
                    .join()
                    .unwrap_or_else(|_| Err(Error::Other("a thread panicked".into())));
                (n, r)
            })
            .collect()
    });
    let mut out = SiteAudit::default();
    for (n, answer) in answers {
        match answer {
            Ok(sboms) => out.add(&n.name, sboms, feed, accepted),
            Err(e) => out.unreachable.push(Unreachable {
                node: n.name.clone(),
                uri: n.ssh.clone().unwrap_or_default(),
                error: e
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            }),
        }
    }
    out.findings.sort_by(|a, b| {
        (&a.machine.node, a.machine.id, &a.finding).cmp(&(
            &b.machine.node,
            b.machine.id,
            &b.finding,
        ))
    });
    out.no_sbom
        .sort_by(|a, b| (&a.machine.node, a.machine.id).cmp(&(&b.machine.node, b.machine.id)));
    Ok(out)
}

/// Node `n`'s machines and packages, asked of its mkve-vm over ssh.
fn sboms_of(nodes: &Nodes, n: &Node, report: &dyn Report) -> Result<NodeSboms> {
    let cmd = super::remote::ssh_command(nodes, n, &["__audit-data".into()], false)?.report(report);
    let out = cmd.output()?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        let detail = said
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| format!(": {}", l.trim()))
            .unwrap_or_default();
        return Err(super::remote::remote_failure(
            n, "audit", out.status, detail,
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| Error::Remote {
        node: n.name.clone(),
        what: "audit".into(),
        status: 65,
        detail: format!(": its answer does not read: {e}"),
    })
}

/// This node's name: mkve.conf's `this_node`, else the host's name, else
/// `-`.
pub fn this_node_name(nodes: &Nodes) -> String {
    nodes.this.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "-".into())
    })
}

/// The Debian packages of the bundle of the machine `id` on this node,
/// whose record names the bundle with root digest `bundle`; or why they
/// are not known (no SBOM). Errors: as [`node_sboms`].
pub fn machine_packages(
    id: crate::ids::MachineId,
    bundle: &str,
) -> Result<std::result::Result<Vec<Installed>, String>> {
    let dir = vms_dir().join(id.to_string());
    Ok(match kept_sbom(&dir, bundle)? {
        Kept::Sbom { bytes, .. } => Ok(packages(&bytes, &dir.join(bundle::sbom::MEMBER))?),
        Kept::None(why) => Err(why),
    })
}

/// The machine `target` (an ID or a name) on this node (`uris`) and its
/// open findings against `feed`, those `accepted` covers hidden; or why
/// its packages are not known. Errors: no such machine (2); as
/// [`node_sboms`].
pub fn audit_machine(
    uris: &Uris,
    target: &str,
    feed: &Feed,
    accepted: &[Accepted],
) -> Result<(
    super::MachineInfo,
    std::result::Result<Vec<Finding>, String>,
)> {
    let info = super::manage::infos(uris)?
        .into_iter()
        .filter(|i| i.machine.state != super::MachineState::Orphan)
        .find(|i| i.machine.id.to_string() == target || i.machine.name == target)
        .ok_or_else(|| Error::NotFound(format!("no machine {target}")))?;
    let found = machine_packages(info.machine.id, &info.bundle)?
        .map(|p| audit::open_findings(feed, &p, accepted).0);
    Ok((info, found))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zlib(text: &str) -> Vec<u8> {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(text.as_bytes()).unwrap();
        z.finish().unwrap()
    }

    /// A machine directory as a create leaves it: its bundle's meta.json
    /// and SBOM.
    fn machine_dir(
        format: u32,
        sbom: Option<&[u8]>,
        stated: Option<String>,
    ) -> (tempfile::TempDir, String) {
        let d = tempfile::tempdir().unwrap();
        let root = "ab".repeat(32);
        let mut members = BTreeMap::from([(bundle::ROOTFS.to_string(), root.clone())]);
        if let Some(s) = stated {
            members.insert(bundle::sbom::MEMBER.into(), s);
            members.insert(bundle::provenance::MEMBER.into(), "cd".repeat(32));
        }
        let meta = serde_json::json!({
            "format": format,
            "template": {"name": "t", "version": "1"},
            "hypervisor": "lxc",
            "packages": {"requested": [], "installed": []},
            "hooks": [],
            "created": "2023-11-14T22:13:20Z",
            "members": members,
            "unpacked_size": 1,
        });
        std::fs::write(d.path().join("meta.json"), meta.to_string()).unwrap();
        if let Some(b) = sbom {
            std::fs::write(d.path().join("sbom.spdx.json"), b).unwrap();
        }
        (d, root)
    }

    #[test]
    fn a_kept_sbom_is_taken_only_when_it_is_the_bundle_s() {
        let sbom = b"{}".as_slice();
        let good = hex(&Sha256::digest(sbom));
        let (d, root) = machine_dir(3, Some(sbom), Some(good.clone()));
        match kept_sbom(d.path(), &root).unwrap() {
            Kept::Sbom { sha256, .. } => assert_eq!(sha256, good),
            Kept::None(why) => panic!("{why}"),
        }
        // Another bundle's metadata.
        let e = kept_sbom(d.path(), &"cd".repeat(32)).err().unwrap();
        assert_eq!(e.exit_code(), 65);
        assert!(
            e.to_string()
                .contains("not the machine's bundle cdcdcdcdcdcd"),
            "{e}"
        );
        // A changed SBOM.
        std::fs::write(d.path().join("sbom.spdx.json"), b"{ }").unwrap();
        let e = kept_sbom(d.path(), &root).err().unwrap();
        assert_eq!(e.exit_code(), 65);
        assert!(
            e.to_string().contains("changed since the machine was made"),
            "{e}"
        );
        // A format 2 bundle: none, and why.
        let (d, root) = machine_dir(2, None, None);
        match kept_sbom(d.path(), &root).unwrap() {
            Kept::None(why) => assert_eq!(
                why,
                "made from a bundle of format 2 (bundles carry an SBOM from format 3)"
            ),
            Kept::Sbom { .. } => panic!("a format 2 bundle has no SBOM"),
        }
        // No metadata kept at all.
        let empty = tempfile::tempdir().unwrap();
        assert!(
            matches!(kept_sbom(empty.path(), &root).unwrap(), Kept::None(w) if w.contains("meta.json is not there"))
        );
    }

    #[test]
    fn findings_are_per_machine_and_accepted_ones_hidden() {
        let feed = audit::parse_feed(
            &zlib("VERSION 1\nCVE-2026-1,,x\nCVE-2026-2,,y\n\nchrony,0,SHRF,4.3-2+deb12u4,\nchrony,1,S   ,,\n\n"),
            Path::new("feed"),
        )
        .unwrap();
        let chrony = Installed {
            name: "chrony".into(),
            version: "4.3-2+deb12u1".into(),
            architecture: "amd64".into(),
            source: "chrony".into(),
            source_version: "4.3-2+deb12u1".into(),
        };
        let m = |id: u32, sbom: Option<&str>| MachineSbom {
            id,
            name: format!("m-{id}"),
            template: "t".into(),
            version: "1".into(),
            bundle: "ab".repeat(32),
            sbom: sbom.map(str::to_string),
            no_sbom: sbom
                .is_none()
                .then(|| "made from a bundle of format 2".into()),
        };
        let sboms = NodeSboms {
            machines: vec![m(100, Some("s1")), m(101, None), m(102, Some("s1"))],
            packages: BTreeMap::from([("s1".to_string(), vec![chrony])]),
        };
        let accepted = [Accepted {
            cve: "CVE-2026-2".into(),
            package: "chrony".into(),
            date: "2026-12-01".into(),
            reason: "no fix".into(),
        }];
        let mut a = SiteAudit::default();
        a.add("n1", sboms, &feed, &accepted);
        let got: Vec<(u32, &str)> = a
            .findings
            .iter()
            .map(|f| (f.machine.id, f.finding.cve.as_str()))
            .collect();
        assert_eq!(got, [(100, "CVE-2026-1"), (102, "CVE-2026-1")]);
        assert_eq!((a.accepted, a.machines), (2, 3));
        assert_eq!(a.no_sbom.len(), 1);
        assert_eq!(a.no_sbom[0].machine.id, 101);
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["findings"][0]["node"], "n1");
        assert_eq!(v["findings"][0]["fixed"], "4.3-2+deb12u4");
        assert_eq!(v["no_sbom"][0]["why"], "made from a bundle of format 2");
    }
}
