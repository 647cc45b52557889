//! What a machine changed against its base, file by file: the delta a
//! backup carries (issue 22). One answer for both kinds of machine:
//!
//! - on a disk (qemu, kvm, xen), both file systems are walked, the
//!   machine's through its chain and the base's `disk.img`, and compared
//!   path by path; a file whose inode record is the base's byte for byte
//!   (all but its access time and checksums: the overlay holds the base's
//!   blocks until the guest writes) is unchanged without its contents
//!   being read, and one whose type, mode, owner and size are the base's
//!   is changed only if its contents' sha256 differ;
//! - on an lxc base, the overlay's upper layer is the change: a whiteout
//!   (a character device 0:0) is a removal, an opaque directory hides what
//!   was under it, anything else is added or, when the base has it, changed
//!   under the same rules.
//!
//! A directory that is added is listed with everything under it; one that
//! is removed is listed alone (what was under it goes with it).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::disk::{Access, Entry, Image};
use super::ext4::{self, FileKind};
use crate::error::{Error, Result};
use crate::exec::Report;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Changed,
    Removed,
}

/// One path that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Absolute, in the machine's root.
    pub path: PathBuf,
    pub kind: ChangeKind,
    /// What the base has there (not for `Added`).
    pub before: Option<Entry>,
    /// What the machine has there (not for `Removed`).
    pub after: Option<Entry>,
}

/// What the machine whose disk is `machine` (its qcow2 overlay) changed
/// against the base image `base` (the raw `disk.img` it stands on), both
/// opened read-only and closed again. Errors: see `Image::open`.
pub fn diff(machine: &Path, base: &Path, report: &dyn Report) -> Result<Vec<Change>> {
    let b = Image::open(base, Access::ReadOnly, report)?;
    let m = Image::open(machine, Access::ReadOnly, report)?;
    let changes = diff_images(&m, &b)?;
    m.close()?;
    b.close()?;
    Ok(changes)
}

/// Every inode of `image` by path, parents first.
fn inodes(image: &Image) -> Result<BTreeMap<PathBuf, ext4::Inode>> {
    let mut out = BTreeMap::new();
    image.walk_inodes(Path::new("/"), &mut |p, i| {
        out.insert(p.to_path_buf(), i.clone());
        Ok(())
    })?;
    Ok(out)
}

/// What `machine` changed against `base` (see the module's rules).
pub fn diff_images(machine: &Image, base: &Image) -> Result<Vec<Change>> {
    let before = inodes(base)?;
    let after = inodes(machine)?;
    let mut out = Vec::new();
    let mut removed: Option<PathBuf> = None;
    for (path, b) in &before {
        if removed.as_ref().is_some_and(|r| path.starts_with(r)) {
            continue;
        }
        match after.get(path) {
            None => {
                out.push(Change {
                    path: path.clone(),
                    kind: ChangeKind::Removed,
                    before: Some(base.entry(path.clone(), b)?),
                    after: None,
                });
                removed = Some(path.clone());
            }
            Some(a) if a.same_record(b) => {}
            Some(a) => {
                let (eb, ea) = (
                    base.entry(path.clone(), b)?,
                    machine.entry(path.clone(), a)?,
                );
                let same = same_meta(&eb, &ea)
                    && (a.kind != FileKind::File
                        || image_digest(base, b)? == image_digest(machine, a)?);
                if !same {
                    // What was under a directory that is no longer one
                    // goes with it.
                    if b.kind == FileKind::Dir && a.kind != FileKind::Dir {
                        removed = Some(path.clone());
                    }
                    out.push(Change {
                        path: path.clone(),
                        kind: ChangeKind::Changed,
                        before: Some(eb),
                        after: Some(ea),
                    });
                }
            }
        }
    }
    for (path, a) in &after {
        if !before.contains_key(path) {
            out.push(Change {
                path: path.clone(),
                kind: ChangeKind::Added,
                before: None,
                after: Some(machine.entry(path.clone(), a)?),
            });
        }
    }
    out.sort_by(|x, y| x.path.cmp(&y.path));
    Ok(out)
}

/// Whether two entries of one path say the same but for their time: kind,
/// mode, owner, size, link target, device numbers.
fn same_meta(a: &Entry, b: &Entry) -> bool {
    a.kind == b.kind
        && a.mode == b.mode
        && a.uid == b.uid
        && a.gid == b.gid
        && a.size == b.size
        && a.target == b.target
        && a.rdev == b.rdev
}

fn image_digest(image: &Image, i: &ext4::Inode) -> Result<[u8; 32]> {
    let mut h = Sha256::new();
    image.fs.read_to(i, &mut HashWriter(&mut h), false)?;
    Ok(h.finalize().into())
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An overlayfs upper layer's directory marked as hiding the lower one.
pub(super) const OPAQUE: &str = "trusted.overlay.opaque";

/// What the lxc machine whose overlay's upper layer is `upper` changed
/// against its base's root `lower` (see the module's rules): a machine's
/// `vms/ID/upper` and its base's `rootfs/` (vm/overlay.rs), read while the
/// machine is stopped or frozen. Errors: a file cannot be read.
pub fn diff_upper(upper: &Path, lower: &Path) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    let walk = walkdir::WalkDir::new(upper)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name();
    for e in walk {
        let e = e.map_err(|e| Error::io(upper, std::io::Error::other(e.to_string())))?;
        let rel = e.path().strip_prefix(upper).unwrap_or(e.path());
        let path = Path::new("/").join(rel);
        let below = lower.join(rel);
        let was = host_entry(&below, &path)?;
        let m = e
            .path()
            .symlink_metadata()
            .map_err(|x| Error::io(e.path(), x))?;
        if is_whiteout(&m) {
            if let Some(was) = was {
                out.push(Change {
                    path,
                    kind: ChangeKind::Removed,
                    before: Some(was),
                    after: None,
                });
            }
            continue;
        }
        let Some(now) = host_entry(e.path(), &path)? else {
            continue;
        };
        match was {
            None => {
                out.push(Change {
                    path,
                    kind: ChangeKind::Added,
                    before: None,
                    after: Some(now),
                });
                continue;
            }
            Some(was) => {
                let same = same_meta(&was, &now)
                    && (now.kind != FileKind::File
                        || is_metacopy(e.path())
                        || file_digest(&below)? == file_digest(e.path())?);
                if !same {
                    out.push(Change {
                        path: path.clone(),
                        kind: ChangeKind::Changed,
                        before: Some(was.clone()),
                        after: Some(now.clone()),
                    });
                }
                if was.kind == FileKind::Dir && now.kind != FileKind::Dir {
                    continue;
                }
            }
        }
        // An opaque directory hides the lower one's entries it lacks.
        if now.kind == FileKind::Dir && is_opaque(e.path()) {
            let mut hidden: Vec<PathBuf> = std::fs::read_dir(&below)
                .map(|rd| {
                    rd.filter_map(|x| x.ok())
                        .map(|x| x.file_name())
                        .filter(|n| e.path().join(n).symlink_metadata().is_err())
                        .map(|n| path.join(n))
                        .collect()
                })
                .unwrap_or_default();
            hidden.sort();
            for h in hidden {
                let rel = h.strip_prefix("/").unwrap_or(&h);
                if let Some(was) = host_entry(&lower.join(rel), &h)? {
                    out.push(Change {
                        path: h,
                        kind: ChangeKind::Removed,
                        before: Some(was),
                        after: None,
                    });
                }
            }
        }
    }
    out.sort_by(|x, y| x.path.cmp(&y.path));
    Ok(out)
}

fn is_whiteout(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    matches!(xattr::get(p, OPAQUE), Ok(Some(v)) if v.as_slice() == b"y")
}

/// A metacopy upper file holds only metadata: its data is the lower's.
fn is_metacopy(p: &Path) -> bool {
    matches!(xattr::get(p, "trusted.overlay.metacopy"), Ok(Some(_)))
}

fn host_entry(host: &Path, path: &Path) -> Result<Option<Entry>> {
    match host.symlink_metadata() {
        Ok(_) => super::disk::host_entry(host, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(None),
        Err(e) => Err(Error::io(host, e)),
    }
}

fn file_digest(p: &Path) -> Result<[u8; 32]> {
    let mut f = std::fs::File::open(p).map_err(|e| Error::io(p, e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut HashWriter(&mut h)).map_err(|e| Error::io(p, e))?;
    Ok(h.finalize().into())
}
