//! Where creates unpack bundles: `vms/.new.XXXXXX/` beside the machines'
//! directories, locked while its create runs, renamed to `vms/ID/` when
//! the machine is defined. Killed creates leave theirs behind; the next
//! create sweeps them.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::lock::{Lock, Mode};

/// `$MKVE_STATEDIR/vms`, made absolute: its paths go into domain XML,
/// which libvirt reads from its own working directory.
pub(crate) fn vms_dir() -> PathBuf {
    let dir = crate::paths::statedir().join("vms");
    if dir.is_relative() {
        if let Ok(cwd) = std::env::current_dir() {
            return cwd.join(dir);
        }
    }
    dir
}

/// A create's staging directory, locked until dropped (then removed,
/// unless its contents were moved out).
pub(super) struct Staging {
    pub dir: tempfile::TempDir,
    _lock: Lock,
}

impl Staging {
    /// Sweep killed creates' directories in `vms`, then make and lock a
    /// new one.
    pub fn new(vms: &Path) -> Result<Staging> {
        std::fs::create_dir_all(vms).map_err(|e| Error::create(vms, e))?;
        sweep_staging(vms);
        let dir = tempfile::Builder::new()
            .prefix(STAGING)
            .tempdir_in(vms)
            .map_err(|e| Error::create(vms, e))?;
        // Held while this create runs: a sweep removes only unlocked ones.
        let lock = Lock::at(&dir.path().join(".lock"), Mode::Exclusive, true)?
            .ok_or_else(|| Error::Other(format!("{}: lock not taken", dir.path().display())))?;
        Ok(Staging { dir, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The prefix of the directories bundles are unpacked into, in `vms/`.
const STAGING: &str = ".new.";

/// Remove the staging directories of creates that were killed: those no
/// create holds the lock of, and older than a minute (a create makes its
/// directory a moment before it locks it).
fn sweep_staging(vms: &Path) {
    let Ok(entries) = std::fs::read_dir(vms) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let old = e
            .metadata()
            .ok()
            .filter(|m| m.is_dir())
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() >= 60);
        if !old || !name.to_string_lossy().starts_with(STAGING) {
            continue;
        }
        let lock = Lock::at(&e.path().join(".lock"), Mode::Exclusive, false);
        if let Ok(Some(_held)) = lock {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_unlocked_staging_directories_are_swept() {
        let vms = tempfile::tempdir().unwrap();
        let make = |name: &str, age_secs: u64| {
            let d = vms.path().join(name);
            std::fs::create_dir_all(d.join("bundle/rootfs")).unwrap();
            let t = std::time::SystemTime::now() - std::time::Duration::from_secs(age_secs);
            std::fs::File::open(&d).unwrap().set_modified(t).unwrap();
            d
        };
        let killed = make(".new.killed", 600);
        let running = make(".new.running", 600);
        let young = make(".new.young", 0);
        let machine = make("100", 600);
        let _held = Lock::at(&running.join(".lock"), Mode::Exclusive, true).unwrap();
        sweep_staging(vms.path());
        assert!(!killed.exists(), "a killed create's directory goes");
        assert!(running.exists(), "a running create's stays");
        assert!(young.exists(), "one not yet locked stays");
        assert!(machine.exists(), "machines are not touched");
    }
}
