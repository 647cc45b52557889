//! Where a node keeps its machines and bases: every path under
//! `$MKVE_STATEDIR` that `vm/` uses, named once here (mkve-vm(1) FILES).
//!
//! ```text
//! $MKVE_STATEDIR/
//!   vms/                    StateDir::Vms
//!     ID/                   a machine's files: its root or disk, seed,
//!                           `base` (the digest it stands on), an lxc
//!                           machine's `upper/`, `work/`, `rootfs/`
//!       snapshots/NAME/     a snapshot (snapshot.rs)
//!       snapshots/.frozen   a snapshot holds the machine frozen
//!       layers/N.qcow2      a disk machine's overlays since its snapshots
//!     ID.creating           a create is making machine ID (staging.rs)
//!     ID.moving             a move of machine ID from this node (moves.rs)
//!     .new.XXXXXX/          a create's staging directory (staging.rs)
//!   bases/                  StateDir::Bases
//!     DIGEST/               a base (base.rs)
//!     .new.XXXXXX/          a base being made
//!     .old.DIGEST/          a base being removed
//! ```
//!
//! The directories are absolute (made so from the working directory when
//! `$MKVE_STATEDIR` is relative): their paths go into domain XML and qcow2
//! headers, read by libvirt and qemu from their own working directories.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::ids::MachineId;

/// A directory of `$MKVE_STATEDIR` that `vm/` owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateDir {
    /// `vms/`: the machines' directories and their markers.
    Vms,
    /// `bases/`: what the machines of one bundle share.
    Bases,
}

impl StateDir {
    /// Its name under the state directory.
    pub fn name(self) -> &'static str {
        match self {
            StateDir::Vms => "vms",
            StateDir::Bases => "bases",
        }
    }

    /// It under `$MKVE_STATEDIR`, absolute.
    pub fn path(self) -> PathBuf {
        let dir = crate::paths::statedir().join(self.name());
        if dir.is_relative() {
            if let Ok(cwd) = std::env::current_dir() {
                return cwd.join(dir);
            }
        }
        dir
    }

    /// It under the state directory `state` (as found from a machine's
    /// directory by [`state_of`], where mkve's environment is not known).
    pub fn under(self, state: &Path) -> PathBuf {
        state.join(self.name())
    }
}

/// `$MKVE_STATEDIR/vms`, absolute.
pub(crate) fn vms_dir() -> PathBuf {
    StateDir::Vms.path()
}

/// `$MKVE_STATEDIR/bases`, absolute.
pub fn bases_dir() -> PathBuf {
    StateDir::Bases.path()
}

/// `vms/ID/`: machine `id`'s files.
pub(super) fn machine_dir(id: MachineId) -> PathBuf {
    vms_dir().join(id.to_string())
}

/// The state directory a machine's directory `dir` (`STATE/vms/ID`) is in:
/// its grandparent. libvirt's lxc hook, which runs without mkve's
/// environment, finds the bases this way.
pub(super) fn state_of(dir: &Path) -> &Path {
    dir.parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/"))
}

/// `vms/ID/snapshots/`: the machine's snapshots, one directory each
/// (snapshot.rs), and `.frozen` while a snapshot holds the machine frozen.
pub(super) fn snapshots_dir(dir: &Path) -> PathBuf {
    dir.join("snapshots")
}

/// `vms/ID/upgrade/`: there while an upgrade of the machine is not
/// committed (upgrade.rs): its record, the domain's XML before it, and in
/// `old/` the bundle's files and base the machine had.
pub(super) fn upgrade_dir(dir: &Path) -> PathBuf {
    dir.join("upgrade")
}

/// `vms/ID/layers/`: a disk machine's overlays made by snapshots,
/// reverts and upgrades (the disk it was made with stays where it was).
pub(super) fn layers_dir(dir: &Path) -> PathBuf {
    dir.join("layers")
}

/// There while a snapshot holds the machine in `dir` frozen: a run killed
/// then leaves it, and the next command that locks the machine thaws it.
pub(super) fn frozen_marker(dir: &Path) -> PathBuf {
    snapshots_dir(dir).join(".frozen")
}

/// Whether the machine in `dir` has snapshots.
pub(super) fn has_snapshots(dir: &Path) -> bool {
    std::fs::read_dir(snapshots_dir(dir)).is_ok_and(|rd| {
        rd.flatten()
            .any(|e| !e.file_name().to_string_lossy().starts_with('.'))
    })
}

/// The prefix of staging directories (a create's in `vms`, a base's in
/// `bases`): `scratch.rs` names and sweeps them.
pub(super) const STAGING_PREFIX: &str = ".new.";

/// `vms/ID.creating`: there while a create makes machine ID.
pub(super) fn creating_marker(vms: &Path, id: u32) -> PathBuf {
    vms.join(format!("{id}{CREATING}"))
}

/// The suffix of [`creating_marker`]s.
pub(super) const CREATING: &str = ".creating";

/// `vms/ID.moving`: the mark of a move of machine `id` from this node.
pub(super) fn moving_mark(vms: &Path, id: u32) -> PathBuf {
    vms.join(format!("{id}{MOVING}"))
}

/// The suffix of [`moving_mark`]s.
pub(super) const MOVING: &str = ".moving";

/// The IDs of `vms`' entries named `ID` + `suffix` (`""`: the machines'
/// directories; [`CREATING`], [`MOVING`]: the markers), unordered
/// entries skipped.
pub(super) fn ids_named(vms: &Path, suffix: &str) -> BTreeSet<u32> {
    std::fs::read_dir(vms)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.strip_suffix(suffix)?.parse().ok())
                .filter(|id| MachineId::new(*id).is_ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The IDs that have a directory in `vms` (a machine's, or an orphan's).
pub(super) fn ids_with_files(vms: &Path) -> BTreeSet<u32> {
    ids_named(vms, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_read_from_names_of_their_kind_only() {
        let d = tempfile::tempdir().unwrap();
        for n in [
            "101",
            "102.creating",
            "103.moving",
            ".new.x",
            "abc",
            "99",
            "104.moving.tmp",
        ] {
            std::fs::write(d.path().join(n), "").unwrap();
        }
        assert_eq!(ids_with_files(d.path()), BTreeSet::from([101]));
        assert_eq!(ids_named(d.path(), CREATING), BTreeSet::from([102]));
        assert_eq!(ids_named(d.path(), MOVING), BTreeSet::from([103]));
        assert_eq!(
            creating_marker(d.path(), 102).file_name().unwrap(),
            "102.creating"
        );
        assert_eq!(state_of(Path::new("/s/vms/101")), Path::new("/s"));
    }
}
