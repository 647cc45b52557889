//! Where machines' files live (`$MKVE_STATEDIR/vms/ID/`), and where creates
//! unpack bundles: `vms/.new.XXXXXX/`, a scratch directory (scratch.rs)
//! beside the machines' directories, renamed to `vms/ID/` when the machine
//! is defined. Killed creates leave theirs behind; the next create sweeps
//! them.

use std::path::Path;

use super::layout::{
    creating_marker, ids_named, machine_dir, moving_mark, vms_dir, CREATING, STAGING_PREFIX,
};
use crate::error::Result;
use crate::exec::Report;
use crate::hypervisor::Hypervisor;
use crate::ids::MachineId;
use crate::libvirt::{self, domain, network, Connection};
use crate::lock::Lock;
use crate::net::NetConfig;
use crate::scratch::Scratch;

/// A create's staging directory in `vms`, after the sweep of killed ones.
pub(super) fn staging(vms: &Path) -> Result<Scratch> {
    Scratch::new_in(vms, STAGING_PREFIX)
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
    let dir = machine_dir(id);
    let bases = super::base::held_by(&dir);
    super::overlay::remove_machine_dir(&dir)?;
    let _ = std::fs::remove_file(creating_marker(&vms_dir(), id.get()));
    // Last: an interrupted move's mark says what is left until then.
    let _ = std::fs::remove_file(moving_mark(&vms_dir(), id.get()));
    for digest in bases {
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
    for id in ids_named(&vms, CREATING) {
        let lock = crate::paths::lockdir().join(format!("machine-{id}.lock"));
        let Some(_lock) = killed_create(&vms, id, &lock) else {
            continue; // a create is making it now, or has just made it
        };
        report.warning(&format!(
            "undoing what a killed create left of machine {id}"
        ));
        for c in libvirt::node_connections(conn).unwrap_or_default() {
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
        let _ = std::fs::remove_file(creating_marker(&vms, id));
    }
}

/// The machine lock at `lock` (machine `id`'s) if a killed create left
/// its marker in `vms`: the marker is looked for again once the lock is
/// held, as a create removes its marker before it lets go of its lock. A
/// marker listed before the lock was taken may be of a create that has
/// finished since, whose machine is whole (CI's 50 creates at once: one
/// swept another's machine as killed).
fn killed_create(vms: &Path, id: u32, lock: &Path) -> Option<Lock> {
    let held = Lock::at(lock, crate::lock::Mode::Exclusive, false).ok()??;
    std::fs::symlink_metadata(creating_marker(vms, id))
        .is_ok()
        .then_some(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_is_killed_only_while_its_marker_is_there_and_its_lock_free() {
        let vms = tempfile::tempdir().unwrap();
        let locks = tempfile::tempdir().unwrap();
        let lock = locks.path().join("machine-102.lock");
        // A create that has finished: its marker gone, its lock free.
        assert!(killed_create(vms.path(), 102, &lock).is_none());
        // A create at work: its marker there, its lock held.
        std::fs::write(creating_marker(vms.path(), 102), "").unwrap();
        let working = Lock::at(&lock, crate::lock::Mode::Exclusive, false)
            .unwrap()
            .unwrap();
        assert!(killed_create(vms.path(), 102, &lock).is_none());
        // Killed: the marker left, the lock free.
        drop(working);
        let held = killed_create(vms.path(), 102, &lock);
        assert!(held.is_some(), "a killed create's marker is swept");
        // Held by the sweep meanwhile: no create takes the ID.
        assert!(Lock::at(&lock, crate::lock::Mode::Exclusive, false)
            .unwrap()
            .is_none());
    }
}
