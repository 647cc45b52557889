//! An open disk (`Image`): a qcow2 chain or a raw image holding one ext4
//! file system, read through this crate's reader (`ext4.rs`) over the
//! bytes `export.rs` gives, written through debugfs; and the same
//! entries of a directory on the node (`host_entry`, for lxc).
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::export::Export;
use super::ext4::{self, FileKind};
use crate::error::{Error, Result};
use crate::exec::{Cmd, Report};

/// How an image is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    /// Writes go to the top of the chain (a machine's overlay); the
    /// machine must be stopped (qemu's image locks refuse otherwise).
    ReadWrite,
}

/// One file of an image (or of a directory on the node, for lxc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Absolute, in the machine's root.
    pub path: PathBuf,
    pub kind: FileKind,
    /// Permission, set-id and sticky bits (07777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// In bytes (a symbolic link's: its target's length).
    pub size: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
    /// A symbolic link's target.
    pub target: Option<PathBuf>,
    /// A device's major and minor numbers.
    pub rdev: Option<(u32, u32)>,
}

/// An open disk: a qcow2 chain or a raw image holding one ext4 file system.
pub struct Image {
    pub(super) fs: ext4::Fs,
    /// The raw bytes: the image itself, or the export's view of the chain.
    view: PathBuf,
    /// The disk as given, for messages.
    label: PathBuf,
    access: Access,
    /// Where written files wait for debugfs.
    work: Option<crate::scratch::Scratch>,
    /// Last: the export ends after everything reading it is closed.
    export: Option<Export>,
}

/// Whether `path` starts with qcow2's magic.
fn is_qcow2(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    match f.read_exact(&mut magic) {
        Ok(()) => Ok(&magic == b"QFI\xfb"),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

impl Image {
    /// Open the disk `disk`: a qcow2 image (with the chain its header
    /// names, a machine's overlay on its base) or a raw one. Errors: it
    /// cannot be opened or exported (69 when qemu-storage-daemon is
    /// missing), it holds no ext4 (65), or its journal holds writes not
    /// yet applied and it is opened read-only (65: the machine runs, or was
    /// stopped hard; open a copy or a snapshot's overlay read-write, which
    /// replays them). A qcow2 image's helper is killed when the thread
    /// that opened it ends (`PR_SET_PDEATHSIG`): use it on that thread.
    pub fn open(disk: &Path, access: Access, report: &dyn Report) -> Result<Image> {
        let writable = access == Access::ReadWrite;
        let export = if is_qcow2(disk)? {
            Some(Export::start(disk, writable, report)?)
        } else {
            None
        };
        let view = export
            .as_ref()
            .map_or_else(|| disk.to_path_buf(), |e| e.view().to_path_buf());
        let mut image = Image {
            fs: open_fs(&view, disk, writable)?,
            view,
            label: disk.to_path_buf(),
            access,
            work: None,
            export,
        };
        if image.fs.needs_recovery {
            if !writable {
                return Err(Error::InvalidBundle(crate::error::Problem::new(
                    disk,
                    None,
                    "its file system's journal holds writes not yet applied (the machine is running, or was stopped hard): open it read-write to replay them",
                )));
            }
            image.replay_journal(report)?;
        }
        Ok(image)
    }

    /// Replay the journal (`e2fsck -E journal_only`), then read the file
    /// system again.
    fn replay_journal(&mut self, report: &dyn Report) -> Result<()> {
        let out = Cmd::new("e2fsck")
            .args(["-p", "-E", "journal_only"])
            .arg(&self.view)
            .what(format!(
                "e2fsck (replaying the journal of {})",
                self.label.display()
            ))
            .report(report)
            .output()?;
        // 0: nothing to do, 1: errors corrected (the journal replayed).
        if !matches!(out.status.code(), Some(0 | 1)) {
            return Err(Error::Other(format!(
                "{}: e2fsck could not replay the journal: {}",
                self.label.display(),
                crate::process_error::tail(&[out.stdout, out.stderr].concat())
            )));
        }
        self.reload()
    }

    /// Read the file system again after debugfs wrote to it.
    fn reload(&mut self) -> Result<()> {
        self.fs = open_fs(&self.view, &self.label, self.access == Access::ReadWrite)?;
        Ok(())
    }

    /// The disk as given.
    pub fn disk(&self) -> &Path {
        &self.label
    }

    /// The file at the absolute path `path` (a symbolic link is not
    /// followed), `None` when there is none.
    pub fn stat(&self, path: &Path) -> Result<Option<Entry>> {
        match self.fs.lookup(path)? {
            Some(i) => Ok(Some(self.entry(path.to_path_buf(), &i)?)),
            None => Ok(None),
        }
    }

    pub(super) fn entry(&self, path: PathBuf, i: &ext4::Inode) -> Result<Entry> {
        let target = if i.kind == FileKind::Symlink {
            let mut t = Vec::new();
            self.fs.read_to(i, &mut t, false)?;
            Some(PathBuf::from(std::ffi::OsStr::from_bytes(&t)))
        } else {
            None
        };
        Ok(Entry {
            path,
            kind: i.kind,
            mode: i.perm,
            uid: i.uid,
            gid: i.gid,
            size: i.size,
            mtime: i.mtime,
            target,
            rdev: matches!(i.kind, FileKind::CharDev | FileKind::BlockDev).then(|| i.rdev()),
        })
    }

    /// Every file at and under the absolute path `under`, parents before
    /// their children, each directory's entries in byte order of their
    /// names; none when `under` is missing.
    pub fn walk(&self, under: &Path) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        self.walk_inodes(under, &mut |path, i| {
            out.push(self.entry(path.to_path_buf(), i)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// `walk`, handing each file's path and inode to `visit`.
    pub(super) fn walk_inodes(
        &self,
        under: &Path,
        visit: &mut dyn FnMut(&Path, &ext4::Inode) -> Result<()>,
    ) -> Result<()> {
        let Some(top) = self.fs.lookup(under)? else {
            return Ok(());
        };
        let mut stack = vec![(under.to_path_buf(), top)];
        while let Some((path, inode)) = stack.pop() {
            visit(&path, &inode)?;
            if inode.kind == FileKind::Dir {
                let mut entries = self.fs.read_dir(&inode)?;
                entries.sort_by(|a, b| b.name.cmp(&a.name));
                for e in entries {
                    if let Some(child) = self.fs.inode(e.ino)? {
                        stack.push((path.join(std::ffi::OsStr::from_bytes(&e.name)), child));
                    }
                }
            }
        }
        Ok(())
    }

    /// Copy the contents of the regular file at `path` to `out`. Errors:
    /// missing, or not a regular file (65).
    pub fn read_to(&self, path: &Path, out: &mut dyn Write) -> Result<()> {
        let i = self.regular(path)?;
        self.fs.read_to(&i, out, false)
    }

    /// The contents of the regular file at `path` (see `read_to`).
    pub fn read(&self, path: &Path) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_to(path, &mut out)?;
        Ok(out)
    }

    fn regular(&self, path: &Path) -> Result<ext4::Inode> {
        match self.fs.lookup(path)? {
            Some(i) if i.kind == FileKind::File => Ok(i),
            Some(_) => Err(self.missing(path, "not a regular file")),
            None => Err(self.missing(path, "no such file")),
        }
    }

    fn missing(&self, path: &Path, why: &str) -> Error {
        Error::InvalidBundle(crate::error::Problem::new(
            self.label.join(path.strip_prefix("/").unwrap_or(path)),
            None,
            why,
        ))
    }

    /// Copy the tree at the absolute path `path` into `to` on the node
    /// (made; it must not exist): files, directories, symbolic links,
    /// devices and FIFOs with their modes, owners and modification times
    /// (sockets are left out). Errors: `path` is missing, `to` cannot be
    /// made.
    pub fn extract(&self, path: &Path, to: &Path) -> Result<()> {
        if self.fs.lookup(path)?.is_none() {
            return Err(self.missing(path, "no such file"));
        }
        let mut dirs = Vec::new();
        self.walk_inodes(path, &mut |p, i| {
            let rel = p.strip_prefix(path).unwrap_or(Path::new(""));
            let dest = if rel.as_os_str().is_empty() {
                to.to_path_buf()
            } else {
                to.join(rel)
            };
            self.extract_one(&dest, i)?;
            if i.kind == FileKind::Dir {
                dirs.push((dest, i.mtime));
            }
            Ok(())
        })?;
        // A directory's time once everything is in it, deepest first.
        for (d, mtime) in dirs.into_iter().rev() {
            set_mtime(&d, mtime)?;
        }
        Ok(())
    }

    /// Copy the one entry at the absolute path `path` to `to` on the node,
    /// as [`Image::extract`] copies each: a directory without what is in
    /// it (its mode and owner set when `to` is a directory already).
    /// Errors: `path` is missing, `to` cannot be made.
    pub fn extract_entry(&self, path: &Path, to: &Path) -> Result<()> {
        let Some(i) = self.fs.lookup(path)? else {
            return Err(self.missing(path, "no such file"));
        };
        if i.kind == FileKind::Dir && to.is_dir() {
            use std::os::unix::fs::PermissionsExt;
            std::os::unix::fs::lchown(to, Some(i.uid), Some(i.gid))
                .map_err(|e| Error::create(to, e))?;
            return std::fs::set_permissions(to, std::fs::Permissions::from_mode(i.perm))
                .map_err(|e| Error::create(to, e));
        }
        self.extract_one(to, &i)?;
        if i.kind == FileKind::Dir {
            set_mtime(to, i.mtime)?;
        }
        Ok(())
    }

    fn extract_one(&self, dest: &Path, i: &ext4::Inode) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let made = |e: std::io::Error| Error::create(dest, e);
        match i.kind {
            FileKind::Dir => std::fs::create_dir(dest).map_err(made)?,
            FileKind::File => {
                let mut f = std::fs::File::create(dest).map_err(made)?;
                self.fs.read_to(i, &mut f, false)?;
                f.flush().map_err(made)?;
            }
            FileKind::Symlink => {
                let mut t = Vec::new();
                self.fs.read_to(i, &mut t, false)?;
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&t), dest).map_err(made)?;
            }
            FileKind::CharDev | FileKind::BlockDev | FileKind::Fifo => {
                let (major, minor) = i.rdev();
                let kind = match i.kind {
                    FileKind::CharDev => nix::sys::stat::SFlag::S_IFCHR,
                    FileKind::BlockDev => nix::sys::stat::SFlag::S_IFBLK,
                    _ => nix::sys::stat::SFlag::S_IFIFO,
                };
                nix::sys::stat::mknod(
                    dest,
                    kind,
                    nix::sys::stat::Mode::from_bits_truncate(i.perm),
                    nix::sys::stat::makedev(u64::from(major), u64::from(minor)),
                )
                .map_err(|e| made(e.into()))?;
            }
            FileKind::Socket => return Ok(()),
        }
        std::os::unix::fs::lchown(dest, Some(i.uid), Some(i.gid)).map_err(made)?;
        if i.kind != FileKind::Symlink {
            std::fs::set_permissions(dest, std::fs::Permissions::from_mode(i.perm))
                .map_err(made)?;
        }
        if i.kind != FileKind::Dir {
            set_mtime(dest, i.mtime)?;
        }
        Ok(())
    }

    fn writable(&self) -> Result<()> {
        if self.access != Access::ReadWrite {
            return Err(Error::Usage(format!(
                "{}: opened read-only, not written",
                self.label.display()
            )));
        }
        Ok(())
    }

    /// A scratch directory for the files debugfs copies in.
    fn work(&mut self) -> Result<PathBuf> {
        if self.work.is_none() {
            let parent = std::env::temp_dir();
            self.work = Some(crate::scratch::Scratch::new_in(&parent, "mkve-image-w.")?);
        }
        self.work
            .as_ref()
            .map(|w| w.path().to_path_buf())
            .ok_or_else(|| Error::Other("no scratch directory".into()))
    }

    /// Write a regular file at the absolute path `path` (its directory
    /// must exist), replacing what is there, with the contents `contents`
    /// and the mode, owner and time of `like` (its path and kind are not
    /// looked at). Errors: opened read-only (2), a debugfs failure.
    pub fn write_file(
        &mut self,
        path: &Path,
        contents: &mut dyn std::io::Read,
        like: &Entry,
        report: &dyn Report,
    ) -> Result<()> {
        self.writable()?;
        let host = self.work()?.join("file");
        let mut f = std::fs::File::create(&host).map_err(|e| Error::create(&host, e))?;
        std::io::copy(contents, &mut f).map_err(|e| Error::create(&host, e))?;
        drop(f);
        let mut script = Script::default();
        self.remove_into(path, &mut script)?;
        script.put(
            path,
            &Entry {
                kind: FileKind::File,
                ..like.clone()
            },
            Some(&host),
        )?;
        self.run(script, report)?;
        std::fs::remove_file(&host).map_err(|e| Error::io(&host, e))
    }

    /// Copy the tree `from` on the node into the image at the absolute
    /// path `to` (its parent must exist): directories are merged, what
    /// else is in the way is replaced; modes, owners and modification
    /// times are kept, hard links become copies, sockets are left out.
    /// One debugfs run. Errors: opened read-only (2), a name debugfs
    /// cannot be given (a newline in it), a debugfs failure.
    pub fn write_tree(&mut self, from: &Path, to: &Path, report: &dyn Report) -> Result<()> {
        self.writable()?;
        let mut script = Script::default();
        for e in walkdir::WalkDir::new(from)
            .follow_links(false)
            .sort_by_file_name()
        {
            let e = e.map_err(|e| Error::io(from, std::io::Error::other(e.to_string())))?;
            let rel = e.path().strip_prefix(from).unwrap_or(Path::new(""));
            let dest = if rel.as_os_str().is_empty() {
                to.to_path_buf()
            } else {
                to.join(rel)
            };
            let Some(entry) = host_entry(e.path(), &dest)? else {
                continue;
            };
            let there = self.fs.lookup(&dest)?;
            match there {
                Some(i) if i.kind == FileKind::Dir && entry.kind == FileKind::Dir => {
                    script.meta(&dest, &entry)?;
                    continue;
                }
                Some(_) => self.remove_into(&dest, &mut script)?,
                None => {}
            }
            script.put(&dest, &entry, Some(e.path()))?;
        }
        self.run(script, report)
    }

    /// Remove the file or tree at the absolute path `path`; nothing when
    /// it is missing. Errors: opened read-only (2), `path` is `/`, a
    /// debugfs failure.
    pub fn remove(&mut self, path: &Path, report: &dyn Report) -> Result<()> {
        self.writable()?;
        if path.parent().is_none() {
            return Err(Error::Usage(format!(
                "{}: the root directory is not removed",
                self.label.display()
            )));
        }
        let mut script = Script::default();
        self.remove_into(path, &mut script)?;
        self.run(script, report)
    }

    /// The debugfs commands that remove `path` and what is under it,
    /// children before their directory.
    fn remove_into(&self, path: &Path, script: &mut Script) -> Result<()> {
        let mut found = Vec::new();
        self.walk_inodes(path, &mut |p, i| {
            found.push((p.to_path_buf(), i.kind == FileKind::Dir));
            Ok(())
        })?;
        for (p, dir) in found.into_iter().rev() {
            script.line(if dir { "rmdir" } else { "rm" }, &[&p])?;
        }
        Ok(())
    }

    /// Run `script` in one `debugfs -w`, then read the file system again.
    /// debugfs exits 0 whatever its commands did: each failed command says
    /// so on stderr, which is the error.
    fn run(&mut self, script: Script, report: &dyn Report) -> Result<()> {
        if script.text.is_empty() {
            return Ok(());
        }
        let file = self.work()?.join("commands");
        std::fs::write(&file, &script.text).map_err(|e| Error::create(&file, e))?;
        let out = Cmd::new("debugfs")
            .arg("-w")
            .arg("-f")
            .arg(&file)
            .arg(&self.view)
            .what(format!("debugfs (writing {})", self.label.display()))
            .report(report)
            .output_checked()?;
        let reload = self.reload();
        let errors: Vec<String> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        if !errors.is_empty() {
            return Err(Error::Other(format!(
                "{}: debugfs: {}",
                self.label.display(),
                errors.join("; ")
            )));
        }
        reload
    }

    /// Close the image: the export stopped, a failure of its daemon told
    /// (a write it could not flush). Dropping it stops it too, quietly.
    pub fn close(mut self) -> Result<()> {
        match self.export.take() {
            Some(e) => {
                // The file is closed before the export goes.
                let Image { fs, .. } = self;
                drop(fs);
                e.stop()
            }
            None => Ok(()),
        }
    }
}

fn open_fs(view: &Path, label: &Path, writable: bool) -> Result<ext4::Fs> {
    let _ = writable;
    let f = std::fs::File::open(view).map_err(|e| Error::io(label, e))?;
    ext4::Fs::open(f, label)
}

/// Set `p`'s modification (and access) time to `mtime` seconds, not
/// following a symbolic link. Errors (73): it cannot be set.
pub fn set_mtime(p: &Path, mtime: i64) -> Result<()> {
    let t = nix::sys::time::TimeSpec::new(mtime, 0);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        p,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| Error::create(p, e.into()))
}

/// The entry of the node's file `host`, named `path` in the image; `None`
/// for a socket.
pub(super) fn host_entry(host: &Path, path: &Path) -> Result<Option<Entry>> {
    let m = std::fs::symlink_metadata(host).map_err(|e| Error::io(host, e))?;
    let ft = m.file_type();
    use std::os::unix::fs::FileTypeExt;
    let kind = if ft.is_dir() {
        FileKind::Dir
    } else if ft.is_file() {
        FileKind::File
    } else if ft.is_symlink() {
        FileKind::Symlink
    } else if ft.is_char_device() {
        FileKind::CharDev
    } else if ft.is_block_device() {
        FileKind::BlockDev
    } else if ft.is_fifo() {
        FileKind::Fifo
    } else {
        return Ok(None);
    };
    let rdev = m.rdev();
    Ok(Some(Entry {
        path: path.to_path_buf(),
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        size: m.len(),
        mtime: m.mtime(),
        target: if kind == FileKind::Symlink {
            Some(std::fs::read_link(host).map_err(|e| Error::io(host, e))?)
        } else {
            None
        },
        rdev: matches!(kind, FileKind::CharDev | FileKind::BlockDev).then(|| {
            (
                nix::sys::stat::major(rdev) as u32,
                nix::sys::stat::minor(rdev) as u32,
            )
        }),
    }))
}

/// debugfs commands, one a line, each argument quoted as debugfs's parser
/// reads it (`"` around, a `"` in it doubled).
#[derive(Default)]
struct Script {
    text: Vec<u8>,
}

impl Script {
    fn line(&mut self, cmd: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Result<()> {
        self.text.extend_from_slice(cmd.as_bytes());
        for a in args {
            let b = a.as_ref().as_bytes();
            if b.contains(&b'\n') || b.contains(&0) {
                return Err(Error::Usage(format!(
                    "{}: debugfs cannot be given a name with a newline",
                    Path::new(a.as_ref()).display()
                )));
            }
            self.text.extend_from_slice(b" \"");
            for &c in b {
                if c == b'"' {
                    self.text.push(b'"');
                }
                self.text.push(c);
            }
            self.text.push(b'"');
        }
        self.text.push(b'\n');
        Ok(())
    }

    /// Make `entry` at `path` (its parent exists, it does not), from the
    /// node's file `host` for a regular file. debugfs links what `mknod`
    /// makes into its working directory by the name given, whatever
    /// slashes it holds: each is made from its parent.
    fn put(&mut self, path: &Path, entry: &Entry, host: Option<&Path>) -> Result<()> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(Error::Usage(format!("{}: no name", path.display())));
        };
        self.line("cd", &[&parent])?;
        match entry.kind {
            FileKind::Dir => self.line("mkdir", &[&name])?,
            FileKind::File => {
                let host = host.ok_or_else(|| Error::Other("no file to write".into()))?;
                self.line("write", &[&host, &name])?
            }
            FileKind::Symlink => {
                let t = entry.target.clone().unwrap_or_default();
                self.line("symlink", &[&name, &t])?
            }
            FileKind::CharDev | FileKind::BlockDev => {
                let (major, minor) = entry.rdev.unwrap_or((0, 0));
                let c = if entry.kind == FileKind::CharDev {
                    "c"
                } else {
                    "b"
                };
                self.line(
                    "mknod",
                    &[&name, &c, &major.to_string(), &minor.to_string()],
                )?
            }
            FileKind::Fifo => self.line("mknod", &[&name, &"p"])?,
            FileKind::Socket => {}
        }
        self.line("cd", &[&"/"])?;
        self.meta(path, entry)
    }

    /// Set the mode, owner and modification time of `path` to `entry`'s.
    fn meta(&mut self, path: &Path, e: &Entry) -> Result<()> {
        let mode = format!("0{:o}", e.kind.mode_bits() | e.mode);
        self.line("sif", &[&path, &"mode", &mode])?;
        self.line("sif", &[&path, &"uid", &e.uid.to_string()])?;
        self.line("sif", &[&path, &"gid", &e.gid.to_string()])?;
        if (0..1 << 31).contains(&e.mtime) {
            self.line("sif", &[&path, &"mtime", &e.mtime.to_string()])?;
            self.line("sif", &[&path, &"mtime_extra", &"0"])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Silent;
    use crate::image::{diff, diff_upper, Change, ChangeKind};
    use std::os::unix::fs::PermissionsExt;

    /// A small root on the node: files of every kind the reader meets.
    fn small_root(dir: &Path) {
        let w = |p: &str, data: &[u8], mode: u32| {
            let p = dir.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, data).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        w("etc/motd", b"hello\n", 0o644);
        w("etc/gone", b"to be removed\n", 0o644);
        w("etc/shadow", b"root:*:1::::::\n", 0o640);
        w("etc/touched", b"same bytes\n", 0o644);
        w("etc/chmodded", b"mode only\n", 0o644);
        w("usr/bin/tool", &vec![0x7f; 70_000], 0o4755);
        w("var/empty-file", b"", 0o600);
        w("var/olddir/a/b", b"deep\n", 0o644);
        w("srv/a \"quoted\" name", b"q\n", 0o644);
        std::os::unix::fs::symlink("motd", dir.join("etc/short")).unwrap();
        std::os::unix::fs::symlink("/".to_string() + &"long/".repeat(20), dir.join("etc/long"))
            .unwrap();
        nix::unistd::mkfifo(
            &dir.join("var/fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        // A sparse file of many extents: an extent tree deeper than the
        // inode's own four slots.
        let f = std::fs::File::create(dir.join("var/sparse")).unwrap();
        for i in 0..12u64 {
            use std::os::unix::fs::FileExt;
            f.write_all_at(format!("chunk {i}").as_bytes(), i * 1_048_576)
                .unwrap();
        }
        f.set_len(13 * 1_048_576).unwrap();
        for p in ["etc/motd", "usr/bin/tool", "var/sparse"] {
            set_mtime(&dir.join(p), 1_600_000_000).unwrap();
        }
    }

    fn mkfs(src: &Path, img: &Path) {
        let f = std::fs::File::create(img).unwrap();
        f.set_len(96 << 20).unwrap();
        Cmd::new("mkfs.ext4")
            .args(["-q", "-F", "-d"])
            .arg(src)
            .arg(img)
            .run_checked()
            .unwrap();
    }

    fn fsck_clean(img: &Path) {
        let out = Cmd::new("e2fsck").args(["-fn"]).arg(img).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&[out.stdout, out.stderr].concat())
        );
    }

    /// The node's tree `dir` as entries, like `Image::walk`'s.
    fn host_walk(dir: &Path) -> Vec<Entry> {
        walkdir::WalkDir::new(dir)
            .sort_by_file_name()
            .into_iter()
            .map(|e| {
                let e = e.unwrap();
                let rel = e.path().strip_prefix(dir).unwrap();
                host_entry(e.path(), &Path::new("/").join(rel))
                    .unwrap()
                    .unwrap()
            })
            .filter(|e| e.path != Path::new("/lost+found"))
            .collect()
    }

    fn without_root_and_lost_found(mut v: Vec<Entry>) -> Vec<Entry> {
        v.retain(|e| !e.path.starts_with("/lost+found") && e.path != Path::new("/"));
        dir_sizes_out(v)
    }

    /// A directory's size is its file system's block size: not compared.
    fn dir_sizes_out(v: Vec<Entry>) -> Vec<Entry> {
        v.into_iter()
            .map(|e| Entry {
                size: if e.kind == FileKind::Dir { 0 } else { e.size },
                ..e
            })
            .collect()
    }

    #[test]
    fn a_raw_image_reads_as_the_tree_it_was_made_from() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        small_root(&src);
        let img = d.path().join("disk.img");
        mkfs(&src, &img);
        let image = Image::open(&img, Access::ReadOnly, &Silent).unwrap();
        let got = without_root_and_lost_found(image.walk(Path::new("/")).unwrap());
        let mut want = dir_sizes_out(host_walk(&src));
        want.remove(0);
        // mkfs.ext4 -d keeps the owners, modes, times and link targets.
        assert_eq!(got, want);
        for e in &want {
            if e.kind == FileKind::File {
                let rel = e.path.strip_prefix("/").unwrap();
                assert_eq!(
                    image.read(&e.path).unwrap(),
                    std::fs::read(src.join(rel)).unwrap(),
                    "{}",
                    e.path.display()
                );
            }
        }
        let long = image.stat(Path::new("/etc/long")).unwrap().unwrap();
        assert_eq!(
            long.target.unwrap(),
            Path::new(&("/".to_string() + &"long/".repeat(20)))
        );
        assert_eq!(image.stat(Path::new("/etc/nothing")).unwrap(), None);
        assert_eq!(image.stat(Path::new("/etc/motd/x")).unwrap(), None);
        let e = image.read(Path::new("/etc")).unwrap_err().to_string();
        assert!(e.ends_with("disk.img/etc: not a regular file"), "{e}");
        // Extracted, the tree is the one it was made from.
        let out = d.path().join("out");
        image.extract(Path::new("/var"), &out).unwrap();
        let mut want = dir_sizes_out(host_walk(&src.join("var")));
        let mut got = dir_sizes_out(host_walk(&out));
        for v in [&mut want, &mut got] {
            v.retain(|e| e.kind != FileKind::Dir || e.path != Path::new("/"));
        }
        assert_eq!(got, want);
        image.close().unwrap();
    }

    #[test]
    fn a_raw_image_that_is_not_ext4_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("disk.img");
        std::fs::write(&img, vec![0u8; 8192]).unwrap();
        let e = Image::open(&img, Access::ReadOnly, &Silent).err().unwrap();
        assert_eq!(e.exit_code(), 65);
        assert!(
            e.to_string()
                .ends_with("disk.img: not an ext2/3/4 file system (no superblock magic)"),
            "{e}"
        );
    }

    /// Make in `image` the changes the tests expect `diff` to find, and a
    /// few it must not (a touched file, a rewrite of the same bytes).
    fn change(image: &mut Image, d: &Path) {
        let motd = image.stat(Path::new("/etc/motd")).unwrap().unwrap();
        image
            .write_file(
                Path::new("/etc/motd"),
                &mut &b"changed\n"[..],
                &motd,
                &Silent,
            )
            .unwrap();
        let touched = image.stat(Path::new("/etc/touched")).unwrap().unwrap();
        image
            .write_file(
                Path::new("/etc/touched"),
                &mut &b"same bytes\n"[..],
                &Entry {
                    mtime: 1_700_000_000,
                    ..touched
                },
                &Silent,
            )
            .unwrap();
        let tree = d.join("tree");
        std::fs::create_dir_all(tree.join("srv/new/sub")).unwrap();
        std::fs::write(tree.join("srv/new/sub/file"), b"new\n").unwrap();
        std::fs::write(tree.join("etc/chmodded").with_file_name("x"), b"").ok();
        std::fs::create_dir_all(tree.join("etc")).unwrap();
        std::fs::write(tree.join("etc/chmodded"), b"mode only\n").unwrap();
        std::fs::set_permissions(
            tree.join("etc/chmodded"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::os::unix::fs::symlink("gone-now", tree.join("etc/short")).unwrap();
        let _ = std::fs::remove_file(tree.join("etc/x"));
        image.write_tree(&tree, Path::new("/"), &Silent).unwrap();
        image.remove(Path::new("/etc/gone"), &Silent).unwrap();
        image.remove(Path::new("/var/olddir"), &Silent).unwrap();
    }

    fn summary(changes: &[Change]) -> Vec<(String, ChangeKind)> {
        changes
            .iter()
            .map(|c| (c.path.display().to_string(), c.kind))
            .collect()
    }

    fn expected() -> Vec<(String, ChangeKind)> {
        use ChangeKind::*;
        [
            ("/etc/chmodded", Changed),
            ("/etc/gone", Removed),
            ("/etc/motd", Changed),
            ("/etc/short", Changed),
            ("/srv/new", Added),
            ("/srv/new/sub", Added),
            ("/srv/new/sub/file", Added),
            ("/var/olddir", Removed),
        ]
        .map(|(p, k)| (p.to_string(), k))
        .to_vec()
    }

    #[test]
    fn writes_to_a_raw_image_are_read_back_and_diffed_exactly() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        small_root(&src);
        let base = d.path().join("base.img");
        mkfs(&src, &base);
        let machine = d.path().join("machine.img");
        std::fs::copy(&base, &machine).unwrap();
        let mut image = Image::open(&machine, Access::ReadWrite, &Silent).unwrap();
        change(&mut image, d.path());
        assert_eq!(image.read(Path::new("/etc/motd")).unwrap(), b"changed\n");
        assert_eq!(
            image.stat(Path::new("/etc/motd")).unwrap().unwrap().mtime,
            1_600_000_000
        );
        assert_eq!(
            image.read(Path::new("/srv/new/sub/file")).unwrap(),
            b"new\n"
        );
        assert_eq!(
            image
                .stat(Path::new("/etc/chmodded"))
                .unwrap()
                .unwrap()
                .mode,
            0o600
        );
        image.close().unwrap();
        fsck_clean(&machine);
        let changes = diff(&machine, &base, &Silent).unwrap();
        // The tree written gives "/" its owner: mkfs made "/" root's, so a
        // normal user's tree changes it.
        let mut want = expected();
        if std::fs::metadata(d.path().join("tree")).unwrap().uid() != 0 {
            want.insert(0, ("/".into(), ChangeKind::Changed));
        }
        assert_eq!(summary(&changes), want);
        let short = changes
            .iter()
            .find(|c| c.path == Path::new("/etc/short"))
            .unwrap();
        assert_eq!(
            short.before.as_ref().unwrap().target.as_deref(),
            Some(Path::new("motd"))
        );
        assert_eq!(
            short.after.as_ref().unwrap().target.as_deref(),
            Some(Path::new("gone-now"))
        );
        // Nothing changed, nothing told.
        assert_eq!(diff(&base, &base, &Silent).unwrap(), vec![]);
        // Read-only is read-only.
        let mut ro = Image::open(&machine, Access::ReadOnly, &Silent).unwrap();
        let e = ro.remove(Path::new("/etc"), &Silent).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn a_journal_not_replayed_is_refused_read_only_and_replayed_read_write() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        small_root(&src);
        let img = d.path().join("disk.img");
        mkfs(&src, &img);
        // What a machine stopped hard leaves: the flag that the journal
        // holds writes not yet in place.
        Cmd::new("debugfs")
            .args(["-w", "-R", "feature needs_recovery"])
            .arg(&img)
            .run_checked()
            .unwrap();
        let e = Image::open(&img, Access::ReadOnly, &Silent).err().unwrap();
        assert_eq!(e.exit_code(), 65);
        assert!(
            e.to_string()
                .contains("journal holds writes not yet applied"),
            "{e}"
        );
        let image = Image::open(&img, Access::ReadWrite, &Silent).unwrap();
        assert_eq!(image.read(Path::new("/etc/motd")).unwrap(), b"hello\n");
        image.close().unwrap();
        assert!(Image::open(&img, Access::ReadOnly, &Silent).is_ok());
    }

    /// The qemu processes of this test's image, by their command line.
    fn helpers_of(img: &Path) -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains("qemu-storage-daemon") && c.contains(&*img.to_string_lossy()))
            .collect()
    }

    #[test]
    #[ignore = "needs root: qemu-storage-daemon's FUSE export in a mount namespace"]
    fn a_qcow2_overlay_is_written_and_diffed_against_its_base_untouched() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        small_root(&src);
        let base = d.path().join("base.img");
        mkfs(&src, &base);
        let before = std::fs::read(&base).unwrap();
        let top = d.path().join("disk.qcow2");
        Cmd::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(&base)
            .arg(&top)
            .arg((128u64 << 20).to_string())
            .run_checked()
            .unwrap();
        let mut image = Image::open(&top, Access::ReadWrite, &Silent).unwrap();
        assert_eq!(helpers_of(&top).len(), 1);
        change(&mut image, d.path());
        image.close().unwrap();
        assert_eq!(helpers_of(&top), Vec::<String>::new(), "left running");
        let changes = diff(&top, &base, &Silent).unwrap();
        assert_eq!(summary(&changes), expected());
        assert!(
            std::fs::read(&base).unwrap() == before,
            "the base was written"
        );
        let image = Image::open(&top, Access::ReadOnly, &Silent).unwrap();
        assert_eq!(image.read(Path::new("/etc/motd")).unwrap(), b"changed\n");
        // Dropped on an error's path: the helper goes too, and nothing is
        // mounted on the node.
        drop(image);
        assert_eq!(helpers_of(&top), Vec::<String>::new(), "left running");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains("mkve-image."), "{mounts}");
        // A chain that holds no ext4: refused, the helper stopped.
        let empty = d.path().join("empty.qcow2");
        Cmd::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&empty)
            .arg("16M")
            .run_checked()
            .unwrap();
        let e = Image::open(&empty, Access::ReadOnly, &Silent)
            .err()
            .unwrap();
        assert_eq!(e.exit_code(), 65, "{e}");
        assert_eq!(helpers_of(&empty), Vec::<String>::new(), "left running");
        // One in use (qemu's lock) is refused with qemu's words.
        let held = Image::open(&top, Access::ReadWrite, &Silent).unwrap();
        let e = Image::open(&top, Access::ReadWrite, &Silent).err().unwrap();
        assert!(e.to_string().contains("lock"), "{e}");
        held.close().unwrap();
    }

    #[test]
    #[ignore = "needs root: whiteouts (mknod) and trusted.overlay xattrs"]
    fn an_upper_layer_is_the_same_kind_of_diff() {
        let d = tempfile::tempdir().unwrap();
        let lower = d.path().join("lower");
        small_root(&lower);
        let upper = d.path().join("upper");
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::create_dir_all(upper.join("srv/new/sub")).unwrap();
        std::fs::write(upper.join("srv/new/sub/file"), b"new\n").unwrap();
        std::fs::write(upper.join("etc/motd"), b"changed\n").unwrap();
        std::fs::write(upper.join("etc/touched"), b"same bytes\n").unwrap();
        std::fs::write(upper.join("etc/chmodded"), b"mode only\n").unwrap();
        std::fs::set_permissions(
            upper.join("etc/chmodded"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::os::unix::fs::symlink("gone-now", upper.join("etc/short")).unwrap();
        let whiteout = |p: &Path| {
            nix::sys::stat::mknod(
                p,
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::empty(),
                0,
            )
            .unwrap()
        };
        whiteout(&upper.join("etc/gone"));
        std::fs::create_dir_all(upper.join("var")).unwrap();
        whiteout(&upper.join("var/olddir"));
        // A whiteout of what the base never had is nothing.
        whiteout(&upper.join("var/never"));
        let changes = diff_upper(&upper, &lower).unwrap();
        assert_eq!(summary(&changes), expected());
        // An opaque directory hides what the base had under it.
        std::fs::create_dir_all(upper.join("usr/bin")).unwrap();
        xattr::set(upper.join("usr/bin"), diff::OPAQUE, b"y").unwrap();
        let changes = diff_upper(&upper, &lower).unwrap();
        assert!(summary(&changes).contains(&("/usr/bin/tool".into(), ChangeKind::Removed)));
    }
}
