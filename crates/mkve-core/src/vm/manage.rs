//! Finding mkve's machines on the node and acting on one: list, info,
//! start, stop, reboot, autostart, console, delete. A machine is named by
//! its ID or its name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::staging::vms_dir;
use super::{DomainType, Info, Machine, MachineState, Uris};
use crate::error::{Error, Result};
use crate::exec::Report;
use crate::hypervisor::Hypervisor;
use crate::ids;
use crate::ids::MachineId;
use crate::libvirt::{self, domain, network, Connection, Dom};
use crate::lock::Lock;
use crate::net::NetConfig;

/// What is on the node: every mkve machine on `uris` with its connection
/// and domain, the URIs that did not answer, and one connection that did
/// (for the network).
struct Scan {
    machines: Vec<(Connection, Dom, Machine)>,
    unreachable: Vec<String>,
    any: Option<Connection>,
}

fn scan(uris: &Uris) -> Result<Scan> {
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

/// The IDs that have a directory in `vms` (a machine's, or an orphan's).
pub(super) fn ids_with_files(vms: &Path) -> BTreeSet<u32> {
    std::fs::read_dir(vms)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|id| MachineId::new(*id).is_ok())
                .collect()
        })
        .unwrap_or_default()
}

/// mkve's leftovers without a domain: IDs with a DHCP entry of mkve's MAC
/// or files in `vms/`, and no machine. Told only when every URI answered:
/// a machine on a hypervisor that did not answer is no orphan.
fn orphans(scan: &Scan) -> Result<BTreeMap<u32, Vec<&'static str>>> {
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
fn orphan_machines(scan: &Scan) -> Result<Vec<Machine>> {
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

/// The machine named by `target`, with its machine lock held: found, then
/// locked, then found again by ID and UUID, so what an operation acts on
/// is the machine that was named, not one made with its ID meanwhile. A
/// move of it that was interrupted here is resolved first (migrate.rs):
/// the machine started again if it ran, or, when the node it moved to
/// took it, its copy here removed and the command refused (2).
pub(super) fn find_locked(uris: &Uris, target: &str) -> Result<(Connection, Dom, Machine, Lock)> {
    let (_, d, m) = find(uris, target)?;
    let uuid = d.uuid()?;
    let lock = ids::machine_lock(m.id.get())?;
    let again = scan(uris)?
        .machines
        .into_iter()
        .find(|(_, d, m2)| m2.id == m.id && d.uuid().is_ok_and(|u| u == uuid));
    match again {
        Some((c, d, m)) => match super::migrate::resume(uris, m.id, &crate::exec::Silent)? {
            super::migrate::Resumed::Moved(node) => Err(Error::Usage(format!(
                "machine {target} is on node {node}: its move there had been interrupted, \
                 and is finished now (its copy here is removed)"
            ))),
            _ => Ok((c, d, m, lock)),
        },
        None => Err(Error::NotFound(format!(
            "no machine {target}: it was deleted meanwhile"
        ))),
    }
}

/// `machine 101`, for messages.
fn what(m: &Machine) -> String {
    format!("machine {}", m.id)
}

pub fn start(uris: &Uris, target: &str) -> Result<()> {
    let (_, d, m, _lock) = find_locked(uris, target)?;
    if !d.is_active()? {
        prepare_root(&m)?;
        d.start(&what(&m))?;
    }
    Ok(())
}

/// Before a start: an lxc machine on a base has its overlay mounted (the
/// node may have rebooted since).
pub(super) fn prepare_root(m: &Machine) -> Result<()> {
    let dir = vms_dir().join(m.id.to_string());
    if super::overlay::is_overlay(&dir) {
        super::overlay::mount(&dir)?;
    } else {
        // A disk machine's base: missing or changed, refused (65) here,
        // not by qemu after a timeout.
        super::base::check_of_machine(&dir)?;
    }
    Ok(())
}

/// Attach to the machine's console (see console.rs). `force` takes it
/// from another client attached to it.
pub fn console(uris: &Uris, target: &str, force: bool) -> Result<()> {
    crate::console::attach(open_console(uris, target, force)?.1)
}

/// Open the machine's console for a caller that copies it itself (the
/// web front-end): the machine and its [`Console`](crate::console::Console).
/// Errors: no such machine (2), not running (69), libvirt refused (1).
pub fn open_console(
    uris: &Uris,
    target: &str,
    force: bool,
) -> Result<(Machine, crate::console::Console)> {
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
    let console = d.open_console(
        &conn,
        safe,
        force,
        &format!("machine {} ({})", m.id, m.name),
    )?;
    Ok((m, console))
}

/// Restart the machine.
pub fn reboot(uris: &Uris, target: &str) -> Result<()> {
    let (_, d, m, _lock) = find_locked(uris, target)?;
    d.reboot(&what(&m))
}

/// Start the machine with libvirt, or not (`on` false).
pub fn autostart(uris: &Uris, target: &str, on: bool) -> Result<()> {
    let (_, d, m, _lock) = find_locked(uris, target)?;
    d.set_autostart(on, &what(&m))
}

pub fn info(uris: &Uris, target: &str) -> Result<Info> {
    let (_, d, m) = find(uris, target)?;
    let mut i = info_of(&d, m)?;
    i.probes = super::wait::probe_once(&i.machine)?;
    Ok(i)
}

/// `info` without the probes (`probes` empty).
fn info_of(d: &Dom, m: Machine) -> Result<Info> {
    let xml = d.xml()?;
    let record = domain::record_of(&xml)
        .ok_or_else(|| Error::Other(format!("machine {}: no mkve record", m.id)))?;
    Ok(Info {
        autostart: d.autostart().unwrap_or(false),
        bundle: record.bundle,
        signed_by: record.signed_by,
        uri: m.uri.clone(),
        probes: Vec::new(),
        machine: m,
    })
}

/// Every machine as `info` shows it, in one scan of the node, with no
/// probe run (`probes` empty: they take seconds and reach the machines'
/// addresses), for a page that shows them all often (the web
/// front-end). Orphans are there as `list` has them (autostart false,
/// bundle and URI empty).
pub fn infos(uris: &Uris) -> Result<Vec<Info>> {
    let scan = scan(uris)?;
    let mut all: Vec<Info> = orphan_machines(&scan)?
        .into_iter()
        .map(|m| Info {
            machine: m,
            autostart: false,
            bundle: String::new(),
            signed_by: None,
            uri: String::new(),
            probes: Vec::new(),
        })
        .collect();
    for (_, d, m) in scan.machines {
        // A domain undefined meanwhile is not shown.
        if let Ok(i) = info_of(&d, m) {
            all.push(i);
        }
    }
    all.sort_by_key(|i| i.machine.id);
    Ok(all)
}

/// Ask the machine to shut down and wait until it is off, for `timeout`
/// at most (asking again every 15 s: a guest still booting may miss the
/// first request); a zero `timeout` only asks. A machine the driver
/// cannot ask yet (an lxc container whose init libvirt does not know yet,
/// just after its start) is asked again every second, for `timeout`, or
/// 10 s when `timeout` is zero. With `force` pull the plug. Errors: the
/// machine is still running at the timeout, or could not be asked (69).
pub fn stop(uris: &Uris, target: &str, force: bool, timeout: std::time::Duration) -> Result<()> {
    use std::time::{Duration, Instant};
    let (_, d, m, lock) = find_locked(uris, target)?;
    if !d.is_active()? {
        return Ok(());
    }
    if force {
        return d.destroy(&what(&m));
    }
    let start = Instant::now();
    let mut why = String::new();
    let ask_for = if timeout.is_zero() {
        Duration::from_secs(10)
    } else {
        timeout
    };
    // Why it is given up on, and what the operator can do.
    let give_up = |why: String| Error::Unavailable {
        what: what(&m),
        why: format!("{why}: mkve-vm stop --force pulls the plug"),
    };
    while !d.shutdown_if_ready(&what(&m), &mut why)? {
        if !d.is_active()? {
            return Ok(());
        }
        if start.elapsed() >= ask_for {
            return Err(give_up(format!(
                "could not be asked to shut down for {} s ({why})",
                ask_for.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    // Waiting needs no lock: the domain handle is this machine's (by UUID).
    drop(lock);
    if timeout.is_zero() {
        return Ok(());
    }
    let mut asked = Instant::now();
    while d.is_active()? {
        if start.elapsed() >= timeout {
            return Err(give_up(format!(
                "still running {} s after it was asked to shut down",
                timeout.as_secs()
            )));
        }
        if asked.elapsed() >= Duration::from_secs(15) {
            let _ = d.shutdown(&what(&m));
            asked = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Stop, undefine, remove the DHCP entry and the machine's files, all
/// under the machine's lock, so its ID is free only once all is gone. An
/// ID with no machine but mkve's leftovers (an orphan) has those removed.
pub fn delete(uris: &Uris, target: &str, report: &dyn Report) -> Result<MachineId> {
    let (conn, d, m, _lock) = match find_locked(uris, target) {
        Ok(found) => found,
        Err(e) => return delete_orphan(uris, target, report).ok_or(e)?,
    };
    if d.is_active()? {
        d.destroy(&what(&m))?;
    }
    d.undefine(&what(&m))?;
    remove_leftovers(&conn, m.id, report)?;
    Ok(m.id)
}

/// Make a machine independent of its base (base.rs), so that it can move
/// to another node: qemu, kvm, xen: its overlay becomes a whole qcow2
/// disk (`qemu-img convert`, to a temporary name, then renamed) with a
/// kernel and initrd of its own; lxc: the merged root is copied into a
/// plain directory. The machine must be off. Every step leaves a machine
/// that boots; its base goes if no other machine holds it.
/// Errors: no base (2), running (69).
pub fn detach(uris: &Uris, target: &str, report: &dyn Report) -> Result<MachineId> {
    let (conn, d, m, _lock) = find_locked(uris, target)?;
    let dir = vms_dir().join(m.id.to_string());
    let Some(digest) = super::base::of_machine(&dir) else {
        return Err(Error::Usage(format!("{} stands on no base", what(&m))));
    };
    // Missing or changed: refused (65) before anything is copied.
    super::base::check_of_machine(&dir)?;
    if d.is_active()? {
        return Err(Error::Unavailable {
            what: what(&m),
            why:
                "running: stop it first (mkve-vm stop); its disk must not change while it is copied"
                    .into(),
        });
    }
    let base_dir = super::base::bases_dir().join(&digest);
    let hv = m.hypervisor.hypervisor();
    if hv.is_some_and(Hypervisor::boots_disk_image) {
        for f in ["vmlinuz", "initrd.img"] {
            let (from, to, tmp) = (
                base_dir.join(f),
                dir.join(f),
                dir.join(format!(".{f}.detach")),
            );
            std::fs::copy(&from, &tmp).map_err(|e| Error::create(&tmp, e))?;
            std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .map_err(|e| Error::io(&tmp, e))?;
            std::fs::rename(&tmp, &to).map_err(|e| Error::create(&to, e))?;
        }
        let disk = dir.join(super::DiskFormat::Qcow2.file());
        let tmp = dir.join(".disk.qcow2.detach");
        report.progress(&format!("copying {}'s disk out of its base", what(&m)));
        crate::exec::Cmd::new("qemu-img")
            .args(["convert", "-f", "qcow2", "-O", "qcow2"])
            .arg(&disk)
            .arg(&tmp)
            .report(report)
            .run_checked()?;
        std::fs::rename(&tmp, &disk).map_err(|e| Error::create(&disk, e))?;
        let mut xml = d.xml()?;
        for f in ["vmlinuz", "initrd.img"] {
            xml = xml.replace(
                &libvirt::esc(&base_dir.join(f).to_string_lossy()),
                &libvirt::esc(&dir.join(f).to_string_lossy()),
            );
        }
        conn.define(&xml, &what(&m))?;
    } else if hv == Some(Hypervisor::Lxc) {
        super::overlay::mount(&dir)?;
        let tmp = dir.join(".rootfs.detach");
        crate::scratch::remove_tree(&tmp).map_err(|e| Error::io(&tmp, e))?;
        report.progress(&format!("copying {}'s root out of its base", what(&m)));
        crate::exec::Cmd::new("cp")
            .args(["-a", "--no-target-directory"])
            .arg(super::overlay::mount_point(&dir))
            .arg(&tmp)
            .report(report)
            .run_checked()?;
        super::overlay::unmount(&dir)?;
        let point = super::overlay::mount_point(&dir);
        let empty = dir.join(".rootfs.empty");
        std::fs::rename(&point, &empty).map_err(|e| Error::io(&point, e))?;
        std::fs::rename(&tmp, &point).map_err(|e| Error::create(&point, e))?;
        let _ = crate::scratch::remove_tree(&empty);
    } else {
        return Err(Error::Usage(format!("{} stands on no base", what(&m))));
    }
    // The decision: from here on the machine is its own.
    let r = dir.join(super::base::REF);
    std::fs::remove_file(&r).map_err(|e| Error::io(&r, e))?;
    for leftover in ["upper", "work"] {
        let _ = crate::scratch::remove_tree(&dir.join(leftover));
    }
    super::base::release(&digest, report)?;
    Ok(m.id)
}

/// The DHCP entry and files of machine `id`.
pub(super) fn remove_leftovers(
    conn: &Connection,
    id: MachineId,
    report: &dyn Report,
) -> Result<()> {
    let net = crate::nodes::network()?;
    if network::status(conn, &net)?.defined {
        network::remove_host(conn, &net, id.get(), report)?;
    }
    let dir = vms_dir().join(id.to_string());
    let base = super::base::of_machine(&dir);
    super::overlay::remove_machine_dir(&dir)?;
    let _ = std::fs::remove_file(super::create::creating_marker(&vms_dir(), id.get()));
    // Last: an interrupted move's mark says what is left until then.
    let _ = std::fs::remove_file(super::migrate::mark_path(&vms_dir(), id.get()));
    if let Some(digest) = base {
        super::base::release(&digest, report)?;
    }
    Ok(())
}

/// Undo what creates that were killed left (see `create::creating_marker`):
/// for each marker whose machine lock is free, the domain with that ID (on
/// `conn` and every default URI), its DHCP entry, its files, OpenVZ's
/// cached root, then the marker. Only what a create of mkve's made, and
/// only while no operation holds the ID.
pub(super) fn sweep_killed_creates(conn: &Connection, net: &NetConfig, report: &dyn Report) {
    let vms = vms_dir();
    let Ok(entries) = std::fs::read_dir(&vms) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".creating"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let lock = Lock::try_acquire(&format!("machine-{id}.lock"), crate::lock::Mode::Exclusive);
        let Ok(Some(_lock)) = lock else {
            continue; // a create is making it now
        };
        report.warning(&format!(
            "undoing what a killed create left of machine {id}"
        ));
        for c in libvirt::node_connections(conn) {
            for d in c.domains().unwrap_or_default() {
                let mine = d
                    .xml()
                    .ok()
                    .and_then(|x| domain::record_of(&x))
                    .is_some_and(|r| r.id == id);
                if mine {
                    d.discard();
                }
            }
        }
        if network::status(conn, net).is_ok_and(|s| s.defined) {
            let _ = network::remove_host(conn, net, id, report);
        }
        let _ = super::overlay::remove_machine_dir(&vms.join(id.to_string()));
        if Hypervisor::Openvz.node_lacks().is_none() {
            let _ = std::fs::remove_file(crate::openvz::Node::system().cache_path(id));
        }
        let _ = std::fs::remove_file(e.path());
    }
}

/// `delete ID` of an orphan: `None` when `target` is no orphan's ID.
fn delete_orphan(uris: &Uris, target: &str, report: &dyn Report) -> Option<Result<MachineId>> {
    let id: MachineId = target.parse().ok()?;
    let run = || -> Result<Option<MachineId>> {
        let _lock = ids::machine_lock(id.get())?;
        let scan = scan(uris)?;
        if !orphans(&scan)?.contains_key(&id.get()) {
            return Ok(None);
        }
        let Some(conn) = &scan.any else {
            return Ok(None);
        };
        report.progress(&format!("removing what is left of machine {id}"));
        remove_leftovers(conn, id, report)?;
        Ok(Some(id))
    };
    run().transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Silent;

    /// A DHCP entry of mkve's and a directory in vms/ with no domain are
    /// orphans: listed, and removed by `delete ID`; an entry another tool
    /// made is not mkve's to remove. On the in-process test driver, with a
    /// network and directories of the test's own.
    #[test]
    fn orphans_are_listed_and_deleted() {
        let _env = crate::testing::ENV
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let d = crate::testing::tree(&[(
            "conf/mkve.conf",
            "network_name=orphans-net\nnetwork_bridge=orphbr0\n",
        )]);
        std::env::set_var("MKVE_CONFDIR", d.path().join("conf"));
        std::env::set_var("MKVE_STATEDIR", d.path().join("state"));
        std::env::set_var("MKVE_LOCKDIR", d.path().join("lock"));
        let net = crate::nodes::network().unwrap();
        let conn = libvirt::connect("test:///default").unwrap();
        network::create(&conn, &net, &Silent).unwrap();
        network::add_host(&conn, &net, 100, "gone-100", &Silent).unwrap();
        std::fs::create_dir_all(vms_dir().join("103/rootfs")).unwrap();
        let uris = Uris {
            list: vec!["test:///default".into()],
            explicit: true,
        };
        let listed: Vec<(u32, MachineState, String)> = list(&uris)
            .unwrap()
            .into_iter()
            .map(|m| (m.id.get(), m.state, m.template))
            .collect();
        assert_eq!(
            listed,
            [
                (100, MachineState::Orphan, "(DHCP entry)".to_string()),
                (103, MachineState::Orphan, "(files)".to_string())
            ]
        );
        assert_eq!(delete(&uris, "100", &Silent).unwrap().get(), 100);
        assert_eq!(delete(&uris, "103", &Silent).unwrap().get(), 103);
        assert!(list(&uris).unwrap().is_empty());
        assert!(!vms_dir().join("103").exists());
        let e = delete(&uris, "100", &Silent).unwrap_err();
        assert_eq!(e.to_string(), "no machine 100");
        network::delete(&conn, &net, true).unwrap();
    }
}
