//! Directories mkve makes to work in and removes again: roots being built
//! or changed, bundles being unpacked. Two rules hold for all of them:
//!
//! - A removal never crosses into another file system (`rm
//!   --one-file-system`): a mount left inside a root (a hook's tmpfs, a
//!   bind of a host directory) stops the removal there, and is named in
//!   the error, instead of being emptied through.
//! - A scratch directory is locked (an `flock` on `.lock` inside it) while
//!   its run lives; one found unlocked was left by a run that was killed,
//!   and the next run beside it sweeps it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::lock::{Lock, Mode};

/// How old an unlocked scratch directory must be before a sweep takes it:
/// a run makes its directory a moment (microseconds) before it locks it.
pub const SWEEP_AGE: Duration = Duration::from_secs(10);

/// Remove `path` and everything below it that is on the same file system.
/// A directory on another file system (a mount point) is left in place,
/// with what leads to it, and the first one is named in the error. A
/// symbolic link is removed, never followed. A missing `path` is fine.
///
/// A directory its owner may not read, write or enter (an unpacked root
/// can hold one: its modes are the archive's) stops a user other than root
/// short; such directories of the user's own are then opened to their
/// owner, and the removal tried again.
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    match remove_tree_once(path) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            open_to_owner(path);
            remove_tree_once(path)
        }
        done => done,
    }
}

/// Give the owner read, write and search permission on each directory of
/// theirs under `path` (on its file system) that lacks one, each before it
/// is read.
fn open_to_owner(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(top) = std::fs::symlink_metadata(path) else {
        return;
    };
    let me = nix::unistd::geteuid().as_raw();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(m) = std::fs::symlink_metadata(&dir) else {
            continue;
        };
        if !m.is_dir() || m.dev() != top.dev() {
            continue;
        }
        if m.uid() == me && m.mode() & 0o700 != 0o700 {
            let mode = (m.mode() | 0o700) & 0o7777;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode));
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(e.path());
            }
        }
    }
}

fn remove_tree_once(path: &Path) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return std::fs::remove_file(path);
    }
    let dev = meta.dev();
    let mut mounts: Vec<PathBuf> = Vec::new();
    let walk = walkdir::WalkDir::new(path)
        .follow_links(false)
        .same_file_system(true)
        .contents_first(true);
    for entry in walk {
        let entry = entry.map_err(std::io::Error::from)?;
        let p = entry.path();
        if entry.file_type().is_dir() {
            let m = entry.metadata().map_err(std::io::Error::from)?;
            if m.dev() != dev {
                mounts.push(p.to_path_buf());
                continue;
            }
            if mounts.iter().any(|mnt| mnt.starts_with(p)) {
                continue; // it leads to a mount point: kept
            }
            std::fs::remove_dir(p)?;
        } else {
            std::fs::remove_file(p)?;
        }
    }
    match mounts.first() {
        None => Ok(()),
        Some(m) => Err(std::io::Error::other(format!(
            "{} is a mount point: not removed, nor what leads to it (unmount it, then remove {})",
            m.display(),
            path.display()
        ))),
    }
}

/// A locked scratch directory, removed with [`remove_tree`] when dropped.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
    _lock: Lock,
    kept: bool,
}

impl Scratch {
    /// Sweep the scratch directories named `PREFIX*` in `parent` that
    /// killed runs left, then make and lock a new one.
    pub fn new_in(parent: &Path, prefix: &str) -> Result<Scratch> {
        std::fs::create_dir_all(parent).map_err(|e| Error::create(parent, e))?;
        sweep(parent, prefix);
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(parent)
            .map_err(|e| Error::create(parent, e))?;
        let lock = Lock::at(&dir.path().join(".lock"), Mode::Exclusive, true)?
            .ok_or_else(|| Error::create(dir.path(), std::io::Error::other("lock not taken")))?;
        Ok(Scratch {
            path: dir.keep(),
            _lock: lock,
            kept: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keep the directory (it was renamed into place): its path, no longer
    /// removed or locked.
    pub fn keep(mut self) -> PathBuf {
        self.kept = true;
        let _ = std::fs::remove_file(self.path.join(".lock"));
        self.path.clone()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        // A mount left in it is reported by remove_tree; nothing can be
        // done about it here but leave it.
        let _ = remove_tree(&self.path);
    }
}

/// Whether what `m` describes was last changed [`SWEEP_AGE`] ago or more:
/// old enough that a run which is not holding its lock is gone.
pub(crate) fn stale(m: &std::fs::Metadata) -> bool {
    m.modified()
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age >= SWEEP_AGE)
}

/// Remove the scratch directories named `PREFIX*` in `parent` that no run
/// holds the lock of, and older than [`SWEEP_AGE`]. Returns what it removed.
pub fn sweep(parent: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut swept = Vec::new();
    let Ok(entries) = std::fs::read_dir(parent) else {
        return swept;
    };
    for e in entries.flatten() {
        let old = e.metadata().is_ok_and(|m| m.is_dir() && stale(&m));
        if !old || !e.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        if let Ok(Some(_held)) = Lock::at(&e.path().join(".lock"), Mode::Exclusive, false) {
            if remove_tree(&e.path()).is_ok() {
                swept.push(e.path());
            }
        }
    }
    swept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_unlocked_scratch_directories_are_swept() {
        let parent = tempfile::tempdir().unwrap();
        let make = |name: &str, age_secs: u64| {
            let d = parent.path().join(name);
            std::fs::create_dir_all(d.join("bundle/rootfs")).unwrap();
            let t = std::time::SystemTime::now() - Duration::from_secs(age_secs);
            std::fs::File::open(&d).unwrap().set_modified(t).unwrap();
            d
        };
        let killed = make(".new.killed", 600);
        let running = make(".new.running", 600);
        let young = make(".new.young", 0);
        let machine = make("100", 600);
        let _held = Lock::at(&running.join(".lock"), Mode::Exclusive, true).unwrap();
        assert_eq!(sweep(parent.path(), ".new."), vec![killed.clone()]);
        assert!(!killed.exists(), "a killed run's directory goes");
        assert!(running.exists(), "a running one's stays");
        assert!(young.exists(), "one not yet locked stays");
        assert!(machine.exists(), "others are not touched");
    }

    #[test]
    fn a_scratch_directory_goes_when_dropped() {
        let parent = tempfile::tempdir().unwrap();
        let s = Scratch::new_in(parent.path(), ".work.").unwrap();
        std::fs::create_dir_all(s.path().join("a/b")).unwrap();
        std::os::unix::fs::symlink("/etc", s.path().join("a/etc")).unwrap();
        let p = s.path().to_path_buf();
        drop(s);
        assert!(!p.exists());
        assert!(Path::new("/etc/passwd").exists(), "links are not followed");
    }

    /// As a user other than root, for whom a directory's modes count: as
    /// root, the test drops to nobody (65534) in a child process.
    #[test]
    fn directories_closed_to_their_owner_are_removed_too() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let top = d.path().join("root");
        for (dir, mode) in [("a", 0o000), ("b", 0o500), ("c", 0o300), ("c/d", 0o100)] {
            std::fs::create_dir_all(top.join(dir)).unwrap();
            std::fs::write(top.join(dir).join("f"), "x").unwrap();
            std::fs::set_permissions(top.join(dir), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        // As root, the removal runs as nobody in a process of its own: this
        // test binary again, running only this test with CHILD set (no
        // fork in a threaded process, which can deadlock).
        const CHILD: &str = "MKVE_SCRATCH_TEST_AS_NOBODY";
        if let Some(dir) = std::env::var_os(CHILD) {
            let top = std::path::PathBuf::from(dir);
            assert!(remove_tree(&top).is_ok() && !top.exists());
            return;
        }
        if !nix::unistd::geteuid().is_root() {
            assert!(remove_tree(&top).is_ok() && !top.exists());
            return;
        }
        let nobody = 65534;
        // A copy nobody can run wherever this binary was built.
        let exe = d.path().join("test-exe");
        std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        for e in walkdir::WalkDir::new(d.path()) {
            let e = e.unwrap();
            std::os::unix::fs::lchown(e.path(), Some(nobody), None).unwrap();
        }
        let status = std::os::unix::process::CommandExt::uid(
            std::process::Command::new(&exe)
                .stdout(std::process::Stdio::null())
                .args([
                    "scratch::tests::directories_closed_to_their_owner_are_removed_too",
                    "--exact",
                    "--test-threads=1",
                ])
                .env(CHILD, &top),
            nobody,
        )
        .status()
        .unwrap();
        assert!(status.success(), "{status}");
        assert!(!top.exists());
    }

    #[test]
    #[ignore = "needs root: mounts a tmpfs"]
    fn removal_stops_at_a_mount_and_names_it() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let mnt = root.join("mnt/host");
        std::fs::create_dir_all(&mnt).unwrap();
        std::fs::write(root.join("file"), "x").unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            &mnt,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        std::fs::write(mnt.join("precious"), "host data").unwrap();
        let e = remove_tree(&root).unwrap_err();
        let kept = mnt.join("precious").exists();
        nix::mount::umount(&mnt).unwrap();
        assert!(kept, "nothing on the mounted file system is removed");
        assert!(e.to_string().contains("mnt/host is a mount point"), "{e}");
        assert!(!root.join("file").exists(), "the rest is removed");
        remove_tree(&root).unwrap();
        assert!(!root.exists());
    }
}
