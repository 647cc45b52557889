//! Locks: `flock`s on files in `$MKVE_LOCKDIR` that are never removed. The
//! kernel drops a lock when its holder dies, so a killed process cannot
//! leave a stale lock, and there is no lock directory for anyone to remove
//! at the wrong time (the original tool's bug). The directory is made on
//! first use: `/var/lock` is a tmpfs, emptied at every boot.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};

/// A held lock; dropping it releases the lock (the file stays).
#[derive(Debug)]
pub struct Lock {
    _flock: Flock<File>,
    path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Shared,
    Exclusive,
}

impl Lock {
    /// Wait for the lock `name` in `$MKVE_LOCKDIR`.
    pub fn acquire(name: &str, mode: Mode) -> Result<Lock> {
        let path = crate::paths::lockdir().join(name);
        Self::at(&path, mode, true)?
            .ok_or_else(|| Error::io(&path, std::io::Error::other("lock not taken")))
    }

    /// Take the lock `name` if no one holds it; `None` otherwise.
    pub fn try_acquire(name: &str, mode: Mode) -> Result<Option<Lock>> {
        Self::at(&crate::paths::lockdir().join(name), mode, false)
    }

    /// Lock the file at `path`, creating it (and its directory) if needed.
    pub fn at(path: &Path, mode: Mode, wait: bool) -> Result<Option<Lock>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::create(dir, e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| Error::create(path, e))?;
        let arg = match (mode, wait) {
            (Mode::Shared, true) => FlockArg::LockShared,
            (Mode::Exclusive, true) => FlockArg::LockExclusive,
            (Mode::Shared, false) => FlockArg::LockSharedNonblock,
            (Mode::Exclusive, false) => FlockArg::LockExclusiveNonblock,
        };
        loop {
            match Flock::lock(file.try_clone().map_err(|e| Error::io(path, e))?, arg) {
                Ok(flock) => {
                    return Ok(Some(Lock {
                        _flock: flock,
                        path: path.to_path_buf(),
                    }))
                }
                Err((_, Errno::EWOULDBLOCK)) if !wait => return Ok(None),
                Err((_, Errno::EINTR)) => continue,
                Err((_, e)) => return Err(Error::io(path, e.into())),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn an_exclusive_lock_excludes_and_is_released_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/ids.lock");
        let held = Lock::at(&p, Mode::Exclusive, true).unwrap().unwrap();
        assert!(Lock::at(&p, Mode::Exclusive, false).unwrap().is_none());
        assert!(Lock::at(&p, Mode::Shared, false).unwrap().is_none());
        drop(held);
        assert!(p.exists(), "the lock file is never removed");
        let a = Lock::at(&p, Mode::Shared, false).unwrap();
        let b = Lock::at(&p, Mode::Shared, false).unwrap();
        assert!(a.is_some() && b.is_some(), "shared locks share");
        assert!(Lock::at(&p, Mode::Exclusive, false).unwrap().is_none());
    }

    #[test]
    fn a_killed_holder_leaves_no_stale_lock() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ids.lock");
        std::fs::write(&p, "").unwrap();
        // One process that takes the lock and then sleeps holding it.
        let mut child = Command::new("sh")
            .args(["-c", "exec 9>\"$1\" && flock 9 && exec sleep 60", "sh"])
            .arg(&p)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the child holds it.
        let start = std::time::Instant::now();
        while Lock::at(&p, Mode::Exclusive, false).unwrap().is_some() {
            assert!(
                start.elapsed().as_secs() < 10,
                "flock(1) never took the lock"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.kill().unwrap(); // SIGKILL: no chance to clean up
        child.wait().unwrap();
        assert!(
            Lock::at(&p, Mode::Exclusive, false).unwrap().is_some(),
            "the lock is free once its holder died"
        );
    }
}
