//! Finding mkve's machines on the node and acting on one: list, info,
//! start, stop, reboot, autostart, console, delete. A machine is named by
//! its ID or its name.

use super::lookup::{find, orphan_machines, orphans, scan};
use super::overlay::prepare_root;
use super::staging::remove_leftovers;
use super::{Machine, MachineInfo, Uris};
use crate::error::{Error, Result};
use crate::exec::Report;
use crate::hypervisor::Hypervisor;
use crate::ids;
use crate::ids::MachineId;
use crate::libvirt::{self, domain, Connection, Dom};
use crate::lock::Lock;

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
        Some((c, d, m)) => match super::moves::resume(uris, m.id, &crate::exec::Silent)? {
            // A snapshot killed while it held the machine frozen.
            _ if super::layout::frozen_marker(&super::layout::machine_dir(m.id)).exists() => {
                super::overlay::thaw_if_left_frozen(
                    &d,
                    &super::layout::machine_dir(m.id),
                    &what(&m),
                )?;
                Ok((c, d, m, lock))
            }
            super::moves::Resumed::Moved(node) => Err(Error::Usage(format!(
                "machine {target} is on node {node}: its move there had been interrupted, \
                 and is finished now (its copy here is removed)"
            ))),
            // An upgrade killed before its probes passed: rolled back, and
            // the machine found again as it is now.
            _ if super::upgrade_undo::interrupted(&m) => {
                super::upgrade_undo::resolve(&c, &d, &m, &crate::exec::Silent)?;
                let now = scan(uris)?
                    .machines
                    .into_iter()
                    .find(|(_, d, m2)| m2.id == m.id && d.uuid().is_ok_and(|u| u == uuid));
                match now {
                    Some((c, d, m)) => Ok((c, d, m, lock)),
                    None => Err(Error::NotFound(format!(
                        "no machine {target}: it was deleted meanwhile"
                    ))),
                }
            }
            _ => Ok((c, d, m, lock)),
        },
        None => Err(Error::NotFound(format!(
            "no machine {target}: it was deleted meanwhile"
        ))),
    }
}

/// Refused (2) for a machine with snapshots: `what` (a detach, a move)
/// would leave them standing on what is no longer there.
pub(super) fn refuse_snapshots(m: &Machine, dir: &std::path::Path, what: &str) -> Result<()> {
    if super::layout::has_snapshots(dir) {
        return Err(Error::Usage(format!(
            "machine {} has snapshots: a {what} does not take them; \
             delete them first (mkve-vm snapshots {}, mkve-vm snapshot --delete {} NAME)",
            m.id, m.id, m.id
        )));
    }
    Ok(())
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

pub fn info(uris: &Uris, target: &str) -> Result<MachineInfo> {
    let (_, d, m) = find(uris, target)?;
    // An upgrade a killed run left is resolved first (under the lock), so
    // what is shown is where the machine stays.
    let (d, m) = if super::upgrade_undo::interrupted(&m) {
        let (_, d, m, _lock) = find_locked(uris, target)?;
        (d, m)
    } else {
        (d, m)
    };
    let mut i = info_of(&d, m)?;
    i.upgrade = super::upgrade_undo::pending(&i.machine);
    i.probes = super::wait::probe_once(&i.machine)?;
    Ok(i)
}

/// `info` without the probes (`probes` empty).
fn info_of(d: &Dom, m: Machine) -> Result<MachineInfo> {
    let xml = d.xml()?;
    let record = domain::record_of(&xml)
        .ok_or_else(|| Error::Other(format!("machine {}: no mkve record", m.id)))?;
    Ok(MachineInfo {
        autostart: d.autostart().unwrap_or(false),
        bundle: record.bundle,
        signed_by: record.signed_by,
        source: record.source,
        uri: m.uri.clone(),
        probes: Vec::new(),
        upgrade: None,
        machine: m,
    })
}

/// Every machine as `info` shows it, in one scan of the node, with no
/// probe run (`probes` empty: they take seconds and reach the machines'
/// addresses), for a page that shows them all often (the web
/// front-end). Orphans are there as `list` has them (autostart false,
/// bundle and URI empty).
pub fn infos(uris: &Uris) -> Result<Vec<MachineInfo>> {
    let scan = scan(uris)?;
    let mut all: Vec<MachineInfo> = orphan_machines(&scan)?
        .into_iter()
        .map(|m| MachineInfo {
            machine: m,
            autostart: false,
            bundle: String::new(),
            signed_by: None,
            source: None,
            uri: String::new(),
            probes: Vec::new(),
            upgrade: None,
        })
        .collect();
    for (_, d, m) in scan.machines {
        // A domain undefined meanwhile is not shown.
        if let Ok(mut i) = info_of(&d, m) {
            i.upgrade = super::upgrade_undo::pending(&i.machine);
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
    delete_with(uris, target, false, report)
}

/// [`delete`]; with `remove_storage`, an adopted machine's disks go too
/// (the writable file-backed disks its domain names, as virsh's undefine removes all
/// storage when asked). Without it an adopted machine's
/// storage, which mkve did not make, is kept. A machine mkve made has
/// nothing outside its directory: the flag changes nothing for it.
pub fn delete_with(
    uris: &Uris,
    target: &str,
    remove_storage: bool,
    report: &dyn Report,
) -> Result<MachineId> {
    let (conn, d, m, _lock) = match find_locked(uris, target) {
        Ok(found) => found,
        Err(e) => return delete_orphan(uris, target, report).ok_or(e)?,
    };
    let xml = d.inactive_xml()?;
    let adopted = domain::record_of(&xml).is_some_and(|r| r.adopted);
    if d.is_active()? {
        d.destroy(&what(&m))?;
    }
    d.undefine(&what(&m))?;
    remove_leftovers(&conn, m.id, report)?;
    if adopted {
        let disks: Vec<_> = domain::files_of(&xml)
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f.writable)
            .collect();
        for f in disks {
            if remove_storage {
                match std::fs::remove_file(&f.path) {
                    Ok(()) => report.note(&format!("{}: removed", f.path.display())),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(&f.path, e)),
                }
            } else {
                report.note(&format!(
                    "{}: kept (an adopted machine's disk; --remove-storage removes it)",
                    f.path.display()
                ));
            }
        }
    }
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
    let dir = super::layout::machine_dir(m.id);
    refuse_snapshots(&m, &dir, "detach")?;
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
    let base_dir = super::layout::bases_dir().join(&digest);
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
        // The disk it boots now: disk.qcow2, or a layer a snapshot's
        // revert put on top (snapshot.rs), made whole as disk.qcow2.
        let mut xml = d.xml()?;
        let top = super::disk::top_of(&xml, &what(&m))?;
        let disk = dir.join(super::DiskFormat::Qcow2.file());
        let tmp = dir.join(".disk.qcow2.detach");
        report.progress(&format!("copying {}'s disk out of its base", what(&m)));
        super::qemu_img::convert(&top.path, "qcow2", &tmp, "qcow2", report)?;
        std::fs::rename(&tmp, &disk).map_err(|e| Error::create(&disk, e))?;
        xml = xml.replace(
            &libvirt::esc(&top.path.to_string_lossy()),
            &libvirt::esc(&disk.to_string_lossy()),
        );
        for f in ["vmlinuz", "initrd.img"] {
            xml = xml.replace(
                &libvirt::esc(&base_dir.join(f).to_string_lossy()),
                &libvirt::esc(&dir.join(f).to_string_lossy()),
            );
        }
        conn.define(&xml, &what(&m))?;
        let _ = crate::scratch::remove_tree(&super::layout::layers_dir(&dir));
    } else if hv == Some(Hypervisor::Lxc) {
        super::overlay::mount(&dir)?;
        let tmp = dir.join(".rootfs.detach");
        crate::scratch::remove_tree(&tmp).map_err(|e| Error::io(&tmp, e))?;
        report.progress(&format!("copying {}'s root out of its base", what(&m)));
        let root = super::overlay::mount_point(&dir);
        crate::files::copy_tree(&root, &tmp, Default::default())
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
    use crate::libvirt::network;
    use crate::vm::layout::vms_dir;
    use crate::vm::lookup::list;
    use crate::vm::MachineState;

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
