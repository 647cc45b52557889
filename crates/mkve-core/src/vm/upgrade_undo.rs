//! An upgrade's record and the way back (upgrade.rs has the commands):
//! `upgrade/upgrade.json` and what it names, the rollback each step of
//! which is safe to repeat, and the resolution of an upgrade a killed run
//! left, which `find_locked` asks for before any command works on the
//! machine.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::layout::{machine_dir, upgrade_dir, STAGING_PREFIX};
use super::{Machine, Pending};
use crate::bundle;
use crate::error::{Error, IoContext, Result};
use crate::exec::Report;
use crate::libvirt::{Connection, Dom};
use crate::scratch::remove_tree;

/// Where an upgrade is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Phase {
    /// Being switched or probed: a run that ends here is rolled back.
    Switching,
    /// Its probes answered: held until a commit or a rollback.
    Done,
}

/// `upgrade/upgrade.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Record {
    pub phase: Phase,
    /// When it began, in seconds since the epoch.
    pub made: u64,
    pub from_version: String,
    pub to_version: String,
    /// The root digests (bases) before and after.
    pub from: String,
    pub to: String,
    /// The snapshot taken before the switch.
    pub snapshot: String,
    /// The machine ran before: a rollback starts it again.
    pub running: bool,
    /// Bundle files the new bundle has and the old one had not.
    pub added: Vec<String>,
    /// A disk machine's new overlay, relative to its directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
}

pub(super) const RECORD: &str = "upgrade.json";
/// `upgrade/` while it is being made, renamed when whole.
pub(super) const MAKING: &str = "upgrade.new";
/// In `upgrade.new/`: the machine ran before the upgrade stopped it.
pub(super) const RAN: &str = "running";
/// In `upgrade.new/`: the name of the snapshot it takes.
pub(super) const SNAPSHOT: &str = "snapshot";
pub(super) const OLD_XML: &str = "domain.xml";

/// The bundle's files a machine's directory keeps (create.rs unpacks
/// them there; audit.rs, wait.rs and params read them).
pub(super) const BUNDLE_FILES: [&str; 5] = [
    bundle::META,
    bundle::SIGNATURE,
    bundle::CONF,
    bundle::sbom::MEMBER,
    bundle::provenance::MEMBER,
];

pub(super) fn read_record(dir: &Path) -> Result<Option<Record>> {
    let path = upgrade_dir(dir).join(RECORD);
    match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Other(format!("{}: not an upgrade's record: {e}", path.display()))),
    }
}

pub(super) fn write_record(up: &Path, r: &Record) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(r).map_err(|e| Error::Other(e.to_string()))?;
    text.push(b'\n');
    crate::files::write_atomic(&up.join(RECORD), &text)
}

/// The way back, each step safe to repeat (a rollback killed is done
/// again by the next command): stopped (pulled), the old domain XML, the old
/// bundle's files and base reference, the snapshot's layer (lxc) or the
/// new overlay removed (disk), then the snapshot and `upgrade/`.
pub(super) fn rollback_locked(
    conn: &Connection,
    d: &Dom,
    m: &Machine,
    dir: &Path,
    report: &dyn Report,
) -> Result<()> {
    let Some(r) = read_record(dir)? else {
        return Ok(());
    };
    let what = format!("machine {}", m.id);
    let up = upgrade_dir(dir);
    // Pulled, not asked: what it wrote since the snapshot goes anyway.
    if d.is_active()? {
        d.destroy(&what)?;
    }
    let lxc = super::overlay::is_overlay(dir);
    if lxc {
        super::overlay::unmount(dir)?;
    }
    let xml = std::fs::read_to_string(up.join(OLD_XML)).at(up.join(OLD_XML))?;
    conn.define(&xml, &what)?;
    for f in BUNDLE_FILES {
        let (here, old) = (dir.join(f), up.join("old").join(f));
        if old.symlink_metadata().is_ok() {
            remove_any(&here)?;
            std::fs::rename(&old, &here).at(&here)?;
        }
    }
    for f in &r.added {
        remove_any(&dir.join(f))?;
    }
    crate::files::write_atomic(
        &dir.join(super::base::REF),
        format!("{}\n", r.from).as_bytes(),
    )?;
    let snap = super::layout::snapshots_dir(dir).join(&r.snapshot);
    if lxc && snap.exists() {
        report.progress(&format!(
            "{what}: its layer back from snapshot {}",
            r.snapshot
        ));
        super::snapshot_store::revert_layer_named(dir, &r.snapshot, report)?;
    }
    if let Some(layer) = &r.layer {
        let p = dir.join(layer);
        if p.exists() {
            std::fs::remove_file(&p).at(&p)?;
        }
    }
    if snap.exists() {
        super::snapshot_store::delete_locked(d, m, &r.snapshot, report)?;
    }
    let trash = dir.join(format!("{STAGING_PREFIX}upgrade"));
    let _ = remove_tree(&trash);
    std::fs::rename(&up, &trash).at(&trash)?;
    remove_tree(&trash).map_err(|e| Error::io(&trash, e))?;
    super::base::release(&r.to, report)?;
    Ok(())
}

fn remove_any(p: &Path) -> Result<()> {
    match p.symlink_metadata() {
        Ok(md) if md.is_dir() => remove_tree(p).map_err(|e| Error::io(p, e)),
        Ok(_) => std::fs::remove_file(p).at(p),
        Err(_) => Ok(()),
    }
}

/// What an upgrade did before its record was whole (`upgrade.new/`),
/// undone: its snapshot deleted, the machine started again if it ran.
pub(super) fn undo_making(d: &Dom, m: &Machine, dir: &Path, report: &dyn Report) -> Result<()> {
    let making = dir.join(MAKING);
    if !making.exists() {
        return Ok(());
    }
    if let Ok(name) = std::fs::read_to_string(making.join(SNAPSHOT)) {
        if super::layout::snapshots_dir(dir).join(&name).exists() {
            super::snapshot_store::delete_locked(d, m, &name, report)?;
        }
    }
    if making.join(RAN).exists() && !d.is_active()? {
        super::overlay::prepare_root(m)?;
        d.start(&format!("machine {}", m.id))?;
    }
    remove_tree(&making).map_err(|e| Error::io(&making, e))
}

/// An upgrade of the machine in `dir` that a killed run left before its
/// probes passed is rolled back, and the machine started again if it ran
/// (called with the machine's lock held, by `find_locked`). An
/// `upgrade.new/` a run left before its record was whole goes.
pub(super) fn resolve(conn: &Connection, d: &Dom, m: &Machine, report: &dyn Report) -> Result<()> {
    let dir = machine_dir(m.id);
    undo_making(d, m, &dir, report)?;
    let trash = dir.join(format!("{STAGING_PREFIX}upgrade"));
    if trash.exists() {
        remove_tree(&trash).map_err(|e| Error::io(&trash, e))?;
    }
    let Some(r) = read_record(&dir)? else {
        return Ok(());
    };
    if r.phase == Phase::Done {
        return Ok(());
    }
    report.warning(&format!(
        "machine {}: its upgrade to {} had been interrupted: rolled back",
        m.id, r.to_version
    ));
    rollback_locked(conn, d, m, &dir, report)?;
    if r.running {
        super::overlay::prepare_root(m)?;
        d.start(&format!("machine {}", m.id))?;
    }
    Ok(())
}

/// The upgrade machine `m` holds, whose probes passed.
pub fn pending(m: &Machine) -> Option<Pending> {
    let r = read_record(&machine_dir(m.id)).ok()??;
    (r.phase == Phase::Done).then_some(Pending {
        from_version: r.from_version,
        to_version: r.to_version,
        made: r.made,
    })
}

/// Whether machine `m` has an upgrade a killed run left (resolved by the
/// next command that locks it).
pub(super) fn interrupted(m: &Machine) -> bool {
    let dir = machine_dir(m.id);
    dir.join(MAKING).exists()
        || read_record(&dir).is_ok_and(|r| r.is_some_and(|r| r.phase != Phase::Done))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_with_its_phase() {
        let t = tempfile::tempdir().unwrap();
        let up = upgrade_dir(t.path());
        std::fs::create_dir_all(&up).unwrap();
        let r = Record {
            phase: Phase::Switching,
            made: 1,
            from_version: "1".into(),
            to_version: "2".into(),
            from: "a".repeat(64),
            to: "b".repeat(64),
            snapshot: "upgrade-1".into(),
            running: true,
            added: vec![],
            layer: None,
        };
        write_record(&up, &r).unwrap();
        let back = read_record(t.path()).unwrap().unwrap();
        assert_eq!(back.phase, Phase::Switching);
        assert_eq!(back.to, r.to);
        std::fs::write(up.join(RECORD), "{").unwrap();
        assert!(read_record(t.path()).is_err());
    }
}
