//! Finding mkve's machines on the node and acting on one: list, info,
//! start, stop, reboot, autostart, console, delete. A machine is named by
//! its ID or its name.

use super::staging::vms_dir;
use super::{DomainType, Info, Machine, MachineState, Uris};
use crate::error::{Error, IoContext, Result};
use crate::exec::Report;
use crate::ids::MachineId;
use crate::libvirt::{self, domain, network, Connection, Dom};
use crate::net::NetConfig;

/// Every mkve machine on `uris`, with its connection and domain.
fn machines(uris: &Uris) -> Result<Vec<(Connection, Dom, Machine)>> {
    let mut out = Vec::new();
    for uri in &uris.list {
        let conn = match libvirt::connect(uri) {
            Ok(c) => c,
            Err(e) if uris.explicit => return Err(e),
            Err(_) => continue,
        };
        for d in conn.domains()? {
            if let Some(m) = machine(&d, uri) {
                // Each domain holds its own reference to the connection.
                out.push((conn.clone(), d, m));
            }
        }
    }
    out.sort_by_key(|(_, _, m)| m.id);
    Ok(out)
}

/// Every mkve machine, by ID.
pub fn list(uris: &Uris) -> Result<Vec<Machine>> {
    Ok(machines(uris)?.into_iter().map(|(_, _, m)| m).collect())
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
    machines(uris)?
        .into_iter()
        .find(|(_, _, m)| m.id.to_string() == target || m.name == target)
        .ok_or_else(|| Error::Usage(format!("no machine {target}")))
}

/// `machine 101`, for messages.
fn what(m: &Machine) -> String {
    format!("machine {}", m.id)
}

pub fn start(uris: &Uris, target: &str) -> Result<()> {
    let (_, d, m) = find(uris, target)?;
    if !d.is_active()? {
        d.start(&what(&m))?;
    }
    Ok(())
}

/// Attach to the machine's console (see console.rs). `force` takes it
/// from another client attached to it.
pub fn console(uris: &Uris, target: &str, force: bool) -> Result<()> {
    let (conn, d, m) = find(uris, target)?;
    if !d.is_active()? {
        return Err(Error::Unavailable {
            what: what(&m),
            why: "not running: mkve-vm start it first".into(),
        });
    }
    // Only the qemu driver knows SAFE; the others refuse the flag itself.
    let safe = m
        .hypervisor
        .hypervisor()
        .is_some_and(|h| h.driver() == "QEMU");
    d.console(
        &conn,
        safe,
        force,
        &format!("machine {} ({})", m.id, m.name),
    )
}

/// Restart the machine.
pub fn reboot(uris: &Uris, target: &str) -> Result<()> {
    let (_, d, m) = find(uris, target)?;
    d.reboot(&what(&m))
}

/// Start the machine with libvirt, or not (`on` false).
pub fn autostart(uris: &Uris, target: &str, on: bool) -> Result<()> {
    let (_, d, m) = find(uris, target)?;
    d.set_autostart(on, &what(&m))
}

pub fn info(uris: &Uris, target: &str) -> Result<Info> {
    let (_, d, m) = find(uris, target)?;
    let xml = d.xml()?;
    let record = domain::record_of(&xml)
        .ok_or_else(|| Error::Other(format!("machine {}: no mkve record", m.id)))?;
    Ok(Info {
        autostart: d.autostart().unwrap_or(false),
        bundle: record.bundle,
        uri: m.uri.clone(),
        machine: m,
    })
}

/// Ask the machine to shut down, or with `force` pull the plug.
pub fn stop(uris: &Uris, target: &str, force: bool) -> Result<()> {
    let (_, d, m) = find(uris, target)?;
    if d.is_active()? {
        if force {
            d.destroy(&what(&m))?;
        } else {
            d.shutdown(&what(&m))?;
        }
    }
    Ok(())
}

/// Stop, undefine, remove the DHCP entry and the machine's files.
pub fn delete(uris: &Uris, target: &str, report: &dyn Report) -> Result<MachineId> {
    let (conn, d, m) = find(uris, target)?;
    if d.is_active()? {
        d.destroy(&what(&m))?;
    }
    d.undefine(&what(&m))?;
    let net = NetConfig::load()?;
    if network::status(&conn, &net)?.defined {
        network::remove_host(&conn, &net, m.id.get(), report)?;
    }
    let dir = vms_dir().join(m.id.to_string());
    if dir.exists() {
        crate::scratch::remove_tree(&dir).at(&dir)?;
    }
    Ok(m.id)
}
