//! Finding mkve's machines on the node: every domain that carries mkve's
//! record on the URIs looked at (`scan`), by ID or name (`find`), by ID
//! and domain UUID (`by_id`), and the orphans (mkve's leftovers without a
//! domain). Only reads.

use std::collections::{BTreeMap, BTreeSet};

use super::layout::{ids_with_files, vms_dir};
use super::{DomainType, Machine, MachineState, Uris};
use crate::error::{Error, Result};
use crate::ids::MachineId;
use crate::libvirt::{self, domain, network, Connection, Dom};

/// What is on the node: every mkve machine on `uris` with its connection
/// and domain, the URIs that did not answer, and one connection that did
/// (for the network).
pub(super) struct Scan {
    pub(super) machines: Vec<(Connection, Dom, Machine)>,
    pub(super) unreachable: Vec<String>,
    pub(super) any: Option<Connection>,
}

pub(super) fn scan(uris: &Uris) -> Result<Scan> {
    let mut out = Scan {
        machines: Vec::new(),
        unreachable: Vec::new(),
        any: None,
    };
    for uri in &uris.list {
        let conn = match libvirt::connect(uri) {
            Ok(c) => c,
            Err(e) if uris.explicit => return Err(e),
            Err(_) => {
                out.unreachable.push(uri.clone());
                continue;
            }
        };
        for d in conn.domains()? {
            if let Some(m) = machine(&d, uri) {
                // Each domain holds its own reference to the connection.
                out.machines.push((conn.clone(), d, m));
            }
        }
        out.any.get_or_insert(conn);
    }
    out.machines.sort_by_key(|(_, _, m)| m.id);
    Ok(out)
}

/// The mkve machines on `conn` (reached at `uri`), running or not.
pub(super) fn machines_on(conn: &Connection, uri: &str) -> Result<Vec<Machine>> {
    Ok(conn
        .domains()?
        .iter()
        .filter_map(|d| machine(d, uri))
        .collect())
}

/// mkve's leftovers without a domain: IDs with a DHCP entry of mkve's MAC
/// or files in `vms/`, and no machine. Told only when every URI answered:
/// a machine on a hypervisor that did not answer is no orphan.
pub(super) fn orphans(scan: &Scan) -> Result<BTreeMap<u32, Vec<&'static str>>> {
    let mut out: BTreeMap<u32, Vec<&'static str>> = BTreeMap::new();
    if !scan.unreachable.is_empty() {
        return Ok(out);
    }
    let machines: BTreeSet<u32> = scan.machines.iter().map(|(_, _, m)| m.id.get()).collect();
    if let Some(conn) = &scan.any {
        let net = crate::nodes::network()?;
        if network::status(conn, &net)?.defined {
            for h in network::status(conn, &net)?.hosts {
                if let Some(id) = h.id.filter(|id| !machines.contains(id)) {
                    out.entry(id).or_default().push("DHCP entry");
                }
            }
        }
    }
    for id in ids_with_files(&vms_dir()) {
        if !machines.contains(&id) {
            out.entry(id).or_default().push("files");
        }
    }
    Ok(out)
}

/// Every mkve machine, by ID, and the orphans among them (state
/// `orphan`).
pub fn list(uris: &Uris) -> Result<Vec<Machine>> {
    let scan = scan(uris)?;
    let mut all = orphan_machines(&scan)?;
    all.extend(scan.machines.into_iter().map(|(_, _, m)| m));
    all.sort_by_key(|m| m.id);
    Ok(all)
}

/// The orphans of `scan`, as machines in state `orphan`.
pub(super) fn orphan_machines(scan: &Scan) -> Result<Vec<Machine>> {
    let net = crate::nodes::network()?;
    let mut all: Vec<Machine> = Vec::new();
    for (id, what) in orphans(scan)? {
        let Ok(mid) = MachineId::new(id) else {
            continue;
        };
        all.push(Machine {
            id: mid,
            name: String::new(),
            hypervisor: DomainType::None,
            state: MachineState::Orphan,
            address: net
                .address_of(id)
                .map(|a| a.to_string())
                .unwrap_or_default(),
            template: format!("({})", what.join(", ")),
            version: String::new(),
            uri: String::new(),
            bundle: String::new(),
        });
    }
    Ok(all)
}

fn machine(d: &Dom, uri: &str) -> Option<Machine> {
    let xml = d.xml().ok()?;
    let doc = roxmltree::Document::parse(&xml).ok()?;
    let ty = DomainType::parse(doc.root_element().attribute("type")?)?;
    let r = record(&xml, ty, d)?;
    let state = if d.is_active().ok()? {
        MachineState::Running
    } else {
        MachineState::ShutOff
    };
    Some(Machine {
        id: MachineId::new(r.id).ok()?,
        name: d.name().ok()?,
        hypervisor: ty,
        state,
        address: r.address.to_string(),
        template: r.template,
        version: r.version,
        uri: uri.to_string(),
        bundle: r.bundle,
    })
}

/// mkve's record of a domain: in its metadata, or for OpenVZ (whose driver
/// forgets metadata when libvirtd restarts) in the container's own
/// configuration.
fn record(xml: &str, ty: DomainType, d: &Dom) -> Option<domain::Record> {
    domain::record_of(xml).or_else(|| {
        if ty != DomainType::Hypervisor(crate::hypervisor::Hypervisor::Openvz) {
            return None;
        }
        let id = d.name().ok()?.parse().ok()?;
        let conf = std::fs::read_to_string(crate::openvz::Node::system().conf_of(id)).ok()?;
        crate::openvz::record_from_conf(&conf)
    })
}

/// The machine named by `target` (an ID or a name).
pub fn find(uris: &Uris, target: &str) -> Result<(Connection, Dom, Machine)> {
    scan(uris)?
        .machines
        .into_iter()
        .find(|(_, _, m)| m.id.to_string() == target || m.name == target)
        .ok_or_else(|| Error::NotFound(format!("no machine {target}")))
}

/// A machine with its connection and domain.
pub(super) type Found = (Connection, Dom, Machine);

/// Machine `id` on `uris` if its domain has the UUID `uuid`, and a
/// connection that answered (for the network), whether or not it is
/// there. Errors: a URI given does not answer, libvirt fails.
pub(super) fn by_id(
    uris: &Uris,
    id: MachineId,
    uuid: &str,
) -> Result<(Option<Found>, Option<Connection>)> {
    let scan = scan(uris)?;
    let found = scan
        .machines
        .into_iter()
        .find(|(_, d, m)| m.id == id && d.uuid().is_ok_and(|u| u == uuid));
    Ok((found, scan.any))
}
