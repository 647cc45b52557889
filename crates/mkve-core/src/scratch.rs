//! Directories mkve makes to work in and removes again: roots being built
//! or changed, bundles being unpacked, machines, bases, staging. Two rules
//! hold for all of them:
//!
//! - A removal never enters a mount point of any kind: another file
//!   system, or a bind mount of a directory of the same one (which has the
//!   same device number, so the device cannot tell it). A mount is told by
//!   its mount ID (`statx(2)`'s `STATX_MNT_ID`, Linux 5.8; before it, the
//!   `mnt_id` of `/proc/self/fdinfo`) and `STATX_ATTR_MOUNT_ROOT`, checked
//!   on each directory *after* it is opened, relative to its parent's
//!   descriptor with `O_NOFOLLOW`: a mount or a symbolic link put in place
//!   while the removal runs is not followed either. What a mount point
//!   leaves is kept, with what leads to it, and named in the error.
//! - A scratch directory is locked (an `flock` on `.lock` inside it) while
//!   its run lives; one found unlocked was left by a run that was killed,
//!   and the next run beside it sweeps it.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{AtFlags, Mode as FileMode, OFlags, StatxAttributes, StatxFlags};

use crate::error::{Error, Result};
use crate::lock::{Lock, Mode};

/// How old an unlocked scratch directory must be before a sweep takes it:
/// a run makes its directory a moment (microseconds) before it locks it.
pub const SWEEP_AGE: Duration = Duration::from_secs(10);

/// Remove `path` and everything below it, never entering a mount point
/// (see the module's rules). A mount point found inside is left in place,
/// with the directories that lead to it, and the first one is named in the
/// error; `path` itself being a mount point is refused the same way. A
/// symbolic link is removed, never followed. A missing `path` is fine.
///
/// A directory of the user's own that its owner may not read, write or
/// enter (an unpacked root can hold one: its modes are the archive's) is
/// opened to its owner before it is entered, so a user other than root
/// removes it too.
///
/// Errors: the first mount point kept (`ErrorKind::Other`, its path in the
/// message), or the first system call that failed.
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    let (parent, name) = split(path)?;
    let pfd = match rustix::fs::open(parent.as_path(), dir_flags(), FileMode::empty()) {
        Ok(fd) => fd,
        Err(e) if e == rustix::io::Errno::NOENT => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let st = match statx_at(&pfd, &name) {
        Ok(st) => st,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !is_dir(&st) {
        return Ok(rustix::fs::unlinkat(&pfd, &name, AtFlags::empty())?);
    }
    let outer = mount_id(&pfd)?;
    if crosses(&st, outer) {
        return Err(kept(path, path));
    }
    let mut left = Vec::new();
    empty_dir(&pfd, name.clone(), path, outer, &mut left)?;
    match left.first() {
        None => Ok(rustix::fs::unlinkat(&pfd, &name, AtFlags::REMOVEDIR)?),
        Some(m) => Err(kept(m, path)),
    }
}

/// Whether `path` is a mount point (the root of any mount, a bind mount of
/// a directory of the same file system included), told as
/// [`remove_tree`] tells it. A path that cannot be examined is not.
pub fn is_mount_point(path: &Path) -> bool {
    let Ok((parent, name)) = split(path) else {
        return false;
    };
    let Ok(pfd) = rustix::fs::open(parent.as_path(), dir_flags(), FileMode::empty()) else {
        return false;
    };
    match (statx_at(&pfd, &name), mount_id(&pfd)) {
        (Ok(st), Ok(outer)) => crosses(&st, outer),
        _ => false,
    }
}

fn kept(mount: &Path, path: &Path) -> std::io::Error {
    std::io::Error::other(format!(
        "{} is a mount point: not removed, nor what leads to it (unmount it, then remove {})",
        mount.display(),
        path.display()
    ))
}

/// `path` as its parent directory and its last component (`.` and `..`
/// refused: neither names what is to go).
fn split(path: &Path) -> std::io::Result<(PathBuf, CString)> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other(format!("{}: no name to remove", path.display())))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = CString::new(name.as_bytes()).map_err(std::io::Error::other)?;
    Ok((parent, name))
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
}

/// `statx` of `name` in `dir`, not following a link: type, mode, owner,
/// mount ID and attributes.
fn statx_at(dir: impl AsFd, name: &CStr) -> std::io::Result<rustix::fs::Statx> {
    let mask = StatxFlags::TYPE | StatxFlags::MODE | StatxFlags::UID | StatxFlags::MNT_ID;
    Ok(rustix::fs::statx(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
        mask,
    )?)
}

fn is_dir(st: &rustix::fs::Statx) -> bool {
    u32::from(st.stx_mode) & libc::S_IFMT == libc::S_IFDIR
}

/// The mount ID of the open file `fd`: `statx`'s, or on a kernel older
/// than 5.8 the `mnt_id` line of `/proc/self/fdinfo/FD` (Linux 3.15).
fn mount_id(fd: &OwnedFd) -> std::io::Result<u64> {
    let st = rustix::fs::statx(fd, c"", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)?;
    if st.stx_mask & StatxFlags::MNT_ID.bits() != 0 {
        return Ok(st.stx_mnt_id);
    }
    use std::os::fd::AsRawFd;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))?;
    info.lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| std::io::Error::other("the kernel tells no mount ID (statx or fdinfo)"))
}

/// Whether what `st` describes is the root of a mount, or on another
/// mount than `outer`.
fn crosses(st: &rustix::fs::Statx, outer: u64) -> bool {
    let has_id = st.stx_mask & StatxFlags::MNT_ID.bits() != 0;
    let root_known = st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT);
    (has_id && st.stx_mnt_id != outer)
        || (root_known && st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT))
}

/// One directory being emptied: its descriptor, its entries being read,
/// its name in its parent, its path (for messages), and whether something
/// in it must stay (it leads to a mount point).
struct Frame {
    fd: OwnedFd,
    entries: rustix::fs::Dir,
    name: CString,
    path: PathBuf,
    keep: bool,
}

/// Open directory `name` in `parent` (not following a link) for emptying,
/// first giving its owner rwx when the owner is this user and lacks them.
/// `None` (its path pushed to `left`) when what was opened is on another
/// mount than `outer`: a mount made over it since it was examined.
fn open_dir(
    parent: impl AsFd,
    name: CString,
    path: PathBuf,
    st: &rustix::fs::Statx,
    outer: u64,
    left: &mut Vec<PathBuf>,
) -> std::io::Result<Option<Frame>> {
    let me = nix::unistd::geteuid().as_raw();
    let mode = u32::from(st.stx_mode) & 0o7777;
    if me != 0 && st.stx_uid == me && mode & 0o700 != 0o700 {
        rustix::fs::chmodat(
            &parent,
            &name,
            FileMode::from_raw_mode(mode | 0o700),
            AtFlags::empty(),
        )?;
    }
    let fd = rustix::fs::openat(
        &parent,
        &name,
        dir_flags() | OFlags::NOFOLLOW,
        FileMode::empty(),
    )?;
    if mount_id(&fd)? != outer {
        left.push(path);
        return Ok(None);
    }
    let entries = rustix::fs::Dir::read_from(&fd)?;
    Ok(Some(Frame {
        fd,
        entries,
        name,
        path,
        keep: false,
    }))
}

/// Empty directory `name` of `parent` (whose path is `path`), depth first
/// with one descriptor per level and no recursion; the mount points found
/// are pushed to `left` and kept with what leads to them.
fn empty_dir(
    parent: &OwnedFd,
    name: CString,
    path: &Path,
    outer: u64,
    left: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    let st = statx_at(parent, &name)?;
    let Some(top) = open_dir(parent, name, path.to_path_buf(), &st, outer, left)? else {
        return Ok(());
    };
    let mut stack = vec![top];
    while let Some(frame) = stack.last_mut() {
        let Some(entry) = frame.entries.next() else {
            let Some(done) = stack.pop() else { break };
            match stack.last_mut() {
                Some(up) if done.keep => up.keep = true,
                Some(up) => rustix::fs::unlinkat(&up.fd, &done.name, AtFlags::REMOVEDIR)?,
                None => {}
            }
            continue;
        };
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let child = frame
            .path
            .join(std::ffi::OsStr::from_bytes(name.to_bytes()));
        let st = match statx_at(&frame.fd, name) {
            Ok(st) => st,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if crosses(&st, outer) {
            left.push(child);
            frame.keep = true;
            continue;
        }
        if !is_dir(&st) {
            rustix::fs::unlinkat(&frame.fd, name, AtFlags::empty())?;
            continue;
        }
        let name = name.to_owned();
        match open_dir(&frame.fd, name, child, &st, outer, left)? {
            Some(next) => stack.push(next),
            None => frame.keep = true,
        }
    }
    Ok(())
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
        // What cannot go (a mount point left in it) is left, and named:
        // a drop has no report to tell it to but stderr.
        if let Err(e) = remove_tree(&self.path) {
            let me = std::env::args_os()
                .next()
                .map(PathBuf::from)
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "mkve".into());
            let msg = format!("{}: not removed: {e}", self.path.display());
            eprintln!("{me}: warning: {}", crate::text::printable(&msg));
        }
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
    fn what_is_not_there_is_removed_already() {
        let d = tempfile::tempdir().unwrap();
        remove_tree(&d.path().join("none")).unwrap();
        remove_tree(&d.path().join("no/parent/either")).unwrap();
        std::fs::write(d.path().join("file"), "x").unwrap();
        remove_tree(&d.path().join("file")).unwrap();
        assert!(!d.path().join("file").exists());
        std::os::unix::fs::symlink("/etc", d.path().join("link")).unwrap();
        remove_tree(&d.path().join("link")).unwrap();
        assert!(!d.path().join("link").exists() && Path::new("/etc/passwd").exists());
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
        // The copy may be "busy" a moment: another test's fork can hold
        // its write descriptor until that child execs (ETXTBSY).
        let status = (0..50)
            .find_map(|_| {
                match std::os::unix::process::CommandExt::uid(
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
                {
                    Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(100));
                        None
                    }
                    r => Some(r.unwrap()),
                }
            })
            .expect("the test's copy stayed busy for 5 s");
        assert!(status.success(), "{status}");
        assert!(!top.exists());
    }

    /// Bind mounts of the same file system (the device number is the
    /// same): of a directory, of a file, and the tree itself a mount point.
    #[test]
    #[ignore = "needs root: bind mounts"]
    fn removal_never_enters_a_bind_mount_of_the_same_file_system() {
        use nix::mount::{mount, umount, MsFlags};
        let d = tempfile::tempdir().unwrap();
        let host = d.path().join("host");
        std::fs::create_dir_all(host.join("sub")).unwrap();
        std::fs::write(host.join("precious"), "host data").unwrap();
        std::fs::write(host.join("sub/also"), "host data").unwrap();
        let host_file = d.path().join("host-file");
        std::fs::write(&host_file, "host file").unwrap();
        let root = d.path().join("root");
        let mnt = root.join("a/b/mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        std::fs::create_dir_all(root.join("c/d")).unwrap();
        std::fs::write(root.join("c/d/f"), "x").unwrap();
        std::fs::write(root.join("a/file"), "x").unwrap();
        let file_mnt = root.join("c/bound");
        std::fs::write(&file_mnt, "").unwrap();
        let bind = |src: &Path, dst: &Path| {
            mount(Some(src), dst, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap()
        };
        bind(&host, &mnt);
        bind(&host_file, &file_mnt);
        let e = remove_tree(&root).unwrap_err();
        let ok = host.join("precious").exists()
            && host.join("sub/also").exists()
            && std::fs::read_to_string(&host_file).is_ok_and(|s| s == "host file");
        let listed = std::fs::read_dir(&mnt).map(|r| r.count()).unwrap_or(0);
        // The tree's own root a mount point: refused at once.
        bind(&host, &root.join("c"));
        let own = remove_tree(&root.join("c")).unwrap_err();
        for m in [root.join("c"), file_mnt.clone(), mnt.clone()] {
            umount(&m).unwrap();
        }
        assert!(
            ok,
            "nothing of the bind-mounted directory or file is removed"
        );
        assert_eq!(listed, 2, "the mount is still there");
        assert!(e.to_string().contains("is a mount point"), "{e}");
        assert!(own.to_string().contains("c is a mount point"), "{own}");
        assert!(
            !root.join("c/d").exists() && !root.join("a/file").exists(),
            "the rest is removed"
        );
        assert!(is_mount_point(Path::new("/proc")) && !is_mount_point(&root));
        remove_tree(&root).unwrap();
        assert!(!root.exists());
        assert!(host.join("precious").exists());
    }

    /// A tree deeper than PATH_MAX is removed: by descriptors, no path.
    #[test]
    fn a_tree_deeper_than_path_max_is_removed() {
        let d = tempfile::tempdir().unwrap();
        let top = d.path().join("deep");
        std::fs::create_dir(&top).unwrap();
        let mut fd = rustix::fs::open(top.as_path(), dir_flags(), FileMode::empty()).unwrap();
        for _ in 0..300 {
            let name = "d".repeat(40);
            rustix::fs::mkdirat(&fd, name.as_str(), FileMode::from_raw_mode(0o755)).unwrap();
            fd = rustix::fs::openat(&fd, name.as_str(), dir_flags(), FileMode::empty()).unwrap();
        }
        rustix::fs::openat(
            &fd,
            "f",
            OFlags::CREATE | OFlags::WRONLY,
            FileMode::from_raw_mode(0o644),
        )
        .unwrap();
        drop(fd);
        remove_tree(&top).unwrap();
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
