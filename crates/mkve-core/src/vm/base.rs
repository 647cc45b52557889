//! Bases: what the machines made from one bundle share on a node
//! (mkve-vm(1), BASES). A base is keyed by the sha256 of the bundle's
//! `rootfs.tar.zst` as its signed meta.json states it, and lives in
//! `$MKVE_STATEDIR/bases/DIGEST/`:
//!
//! - for qemu, kvm and xen (`Kind::Disk`): `disk.img`, a raw ext4 image of
//!   the root made as small as the root allows, and the root's `vmlinuz`
//!   and `initrd.img`; a machine is a qcow2 overlay whose backing file is
//!   `disk.img`, plus its seed disk (seed.rs);
//! - for lxc (`Kind::Root`): `rootfs/`, the unpacked root; a machine is an
//!   overlayfs mount with `rootfs/` as its lower layer and the machine's
//!   own `upper/` (which starts as its seed).
//!
//! Rules: a base is made from a bundle whose digests were all checked, in a
//! scratch directory (`bases/.new.XXXXXX`) renamed into place once whole,
//! so a killed create leaves nothing that looks finished; under the lock
//! `base-DIGEST.lock`, so concurrent first creates make it once; and it is
//! never written afterwards (its files are read-only). `base.json` records
//! a cheap fingerprint (each file's path, size, mtime and inode), checked
//! at every create, and the full digest (each file's contents, modes and
//! link targets), checked by `mkve-vm bases --verify`. A machine on a base
//! holds it by the file `vms/ID/base` (its digest); the base is removed
//! when the last machine holding it goes. Beside its files, a base keeps
//! the heads of the bundles made on it (`bundles/`: each bundle without
//! its root), so that a backup can be restored on it without the bundle.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::layout::{bases_dir, vms_dir};
use crate::digest::hex;
use crate::error::{Error, IoContext, Problem, Result};
use crate::exec::Report;
use crate::hypervisor::Hypervisor;
use crate::lock::{Lock, Mode};
use crate::scratch::{remove_tree, Scratch};

/// The file in a machine's directory naming the base it stands on.
pub(super) const REF: &str = "base";
/// The record in a base's directory, written last.
const RECORD: &str = "base.json";
/// The executable a root must have for its machines to share a disk base:
/// what lays a machine's seed over the root at its first boot (hook
/// 06-mkve-seed).
pub(super) const SEED_PROGRAM: &str = "usr/lib/mkve/seed";

/// What a base holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `disk.img`, `vmlinuz`, `initrd.img`: qemu, kvm, xen.
    Disk,
    /// `rootfs/`: lxc.
    Root,
}

impl Kind {
    /// The kind of base machines of `hv` stand on; `None` for openvz,
    /// whose roots vzctl keeps.
    pub fn of(hv: Hypervisor) -> Option<Kind> {
        if hv.boots_disk_image() {
            Some(Kind::Disk)
        } else if hv == Hypervisor::Lxc {
            Some(Kind::Root)
        } else {
            None
        }
    }
}

/// `base.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The sha256 of the bundle's rootfs.tar.zst: the base's name.
    pub digest: String,
    pub kind: Kind,
    pub template: String,
    pub version: String,
    /// When it was made, in seconds since the epoch.
    pub made: u64,
    /// The size of the root's regular files, in bytes: what machines'
    /// disk sizes are reckoned from.
    pub root_bytes: u64,
    /// sha256 over each file's path, size, mtime and inode (see
    /// `fingerprint`), and its ctime when `fingerprint_ctime`.
    pub fingerprint: String,
    /// Whether `fingerprint` covers each file's ctime: for a root base
    /// made since ctime was added (an edit that keeps a file's size and
    /// puts its mtime back still moves its ctime, which no one can set
    /// back). Not for a disk base: libvirt gives a running guest's
    /// backing file to the qemu user and back, which moves its ctime.
    #[serde(default)]
    pub fingerprint_ctime: bool,
    /// sha256 over each file's path, type, mode, owner (for a root) and
    /// contents or link target (see `full_digest`).
    pub content: String,
}

/// A finished base.
#[derive(Debug, Clone)]
pub struct Base {
    pub dir: PathBuf,
    pub record: Record,
}

impl Base {
    pub fn disk(&self) -> PathBuf {
        self.dir.join("disk.img")
    }
    pub fn root(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
}

/// Whether `s` can name a base: 64 lowercase hex digits.
fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The lock every maker, user and remover of base `digest` holds.
pub(super) fn lock(digest: &str) -> Result<Lock> {
    Lock::acquire(&format!("base-{digest}.lock"), Mode::Exclusive)
}

fn changed(path: &Path, why: impl Into<String>) -> Error {
    Error::InvalidBundle(Problem::new(path, None, why))
}

/// The finished base `digest`, its fingerprint checked; `None` if there is
/// none. Errors: the base was changed after it was made (65), its record
/// is unreadable.
pub(super) fn open(digest: &str) -> Result<Option<Base>> {
    let dir = bases_dir().join(digest);
    let Some(record) = read_record(&dir)? else {
        return Ok(None);
    };
    if !unchanged(&dir, &record)? {
        return Err(changed(
            &dir,
            format!(
                "base of {} {} was changed after it was made (a file's size, time or inode differs): \
                 mkve-vm bases --verify checks it in full; --no-base makes a machine without it",
                record.template, record.version
            ),
        ));
    }
    Ok(Some(Base { dir, record }))
}

/// The record of the base in `dir`; `None` when it has none (not there, or
/// not whole). Errors: unreadable (65) or cannot be read (1).
fn read_record(dir: &Path) -> Result<Option<Record>> {
    let rec_path = dir.join(RECORD);
    let text = match std::fs::read(&rec_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&rec_path, e)),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| changed(&rec_path, format!("unreadable base record: {e}")))
}

/// Whether the base in `dir` still has the fingerprint `record` states.
fn unchanged(dir: &Path, record: &Record) -> Result<bool> {
    Ok(fingerprint(dir, record.kind, record.fingerprint_ctime)? == record.fingerprint)
}

/// The base `digest` that machines stand on, checked before anything acts
/// on one of them (start, the lxc hook, detach, migrate): there, and its
/// fingerprint as recorded. `vms` is the machines' directory, `bases` the
/// bases' (the lxc hook finds both from a machine's directory, without
/// mkve's environment). Errors (65), naming the base and its machines:
/// the base is missing (removed under them), or changed since it was made.
pub(super) fn check_for_machines(vms: &Path, bases: &Path, digest: &str) -> Result<Base> {
    let dir = bases.join(digest);
    let machines = holders_in(vms).remove(digest).unwrap_or_default();
    let on = if machines.is_empty() {
        String::new()
    } else {
        format!(" (machines on it: {})", machines.join(", "))
    };
    let Some(record) = read_record(&dir)? else {
        return Err(changed(
            &dir,
            format!(
                "base {} is missing{on}: it was removed while machines stand on it; \
                 restore it, or delete its machines (mkve-vm bases lists it as missing)",
                short(digest)
            ),
        ));
    };
    let same = unchanged(&dir, &record).map_err(|e| {
        changed(
            &dir,
            format!("base {} is not whole{on}: {e}", short(digest)),
        )
    })?;
    if !same {
        return Err(changed(
            &dir,
            format!(
                "base {} of {} {} was changed after it was made{on} (a file's size, time or inode differs): \
                 mkve-vm bases --verify checks it in full",
                short(digest),
                record.template,
                record.version
            ),
        ));
    }
    Ok(Base { dir, record })
}

/// Before a create makes base `digest` of `kind`: refuse (65) to make a
/// disk base again while machines stand on the one that is gone. Their
/// qcow2 overlays hold blocks of that disk image, and an image made again
/// (mkfs.ext4 lays files out anew) is not it: they would start on a
/// corrupt disk. A root base is made again from the same files, which an
/// overlay's upper layer stands on as well as on the old.
pub(super) fn refuse_remaking(kind: Kind, digest: &str) -> Result<()> {
    if kind != Kind::Disk {
        return Ok(());
    }
    let machines: Vec<String> = holders()
        .remove(digest)
        .unwrap_or_default()
        .into_iter()
        .filter(|m| !m.starts_with('.'))
        .collect();
    if machines.is_empty() {
        return Ok(());
    }
    Err(changed(
        &bases_dir().join(digest),
        format!(
            "base {} is missing (machines on it: {}): a disk base made again would not be the one \
             their overlays were written on; restore it, or delete those machines first",
            short(digest),
            machines.join(", ")
        ),
    ))
}

/// [`check_for_machines`] for the machine in `dir` (`vms/ID`): `None` when
/// it stands on no base.
pub(super) fn check_of_machine(dir: &Path) -> Result<Option<Base>> {
    let Some(digest) = of_machine(dir) else {
        return Ok(None);
    };
    let vms = dir.parent().unwrap_or(Path::new("."));
    let bases = vms.parent().unwrap_or(Path::new("/")).join("bases");
    check_for_machines(vms, &bases, &digest).map(Some)
}

/// The files of a disk base, in the order they are covered.
const DISK_FILES: [&str; 3] = ["disk.img", "initrd.img", "vmlinuz"];

/// The files of a base that its fingerprint and digest cover, in order:
/// `DISK_FILES`, or everything under `rootfs/` (sorted by name). Nothing
/// else in its directory (its record, a maker's lock) counts.
fn payload(dir: &Path, kind: Kind) -> Result<Vec<Entry>> {
    let paths: Vec<PathBuf> = match kind {
        Kind::Disk => DISK_FILES.iter().map(|f| dir.join(f)).collect(),
        Kind::Root => walkdir::WalkDir::new(dir.join("rootfs"))
            .follow_links(false)
            .same_file_system(true)
            .sort_by_file_name()
            .into_iter()
            .map(|e| {
                e.map(|e| e.into_path())
                    .map_err(|e| changed(dir, e.to_string()))
            })
            .collect::<Result<_>>()?,
    };
    paths
        .into_iter()
        .map(|path| {
            let meta = path
                .symlink_metadata()
                .map_err(|e| changed(&path, format!("base file: {e}")))?;
            let rel = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
            Ok(Entry { path, rel, meta })
        })
        .collect()
}

/// A file of a base: where it is, its path in the base, what it is.
struct Entry {
    path: PathBuf,
    rel: PathBuf,
    meta: std::fs::Metadata,
}

/// sha256 over `path size mtime_ns inode` of every file of the base, and
/// its `ctime_ns` when `ctime`: no file's contents are read. Not the
/// owner: libvirt gives a running guest's backing files to the qemu user
/// and back (and so not the ctime of a disk base's files either).
pub(super) fn fingerprint(dir: &Path, kind: Kind, ctime: bool) -> Result<String> {
    let mut h = Sha256::new();
    for Entry { rel, meta: m, .. } in payload(dir, kind)? {
        h.update(rel.as_os_str().as_encoded_bytes());
        h.update(format!("\0{} {} {} {}", m.len(), m.mtime(), m.mtime_nsec(), m.ino()).as_bytes());
        if ctime {
            h.update(format!(" {} {}", m.ctime(), m.ctime_nsec()).as_bytes());
        }
        h.update(b"\n");
    }
    Ok(hex(&h.finalize()))
}

/// sha256 over every file of the base: its path, type, mode, owner (for a
/// root: a disk's owner is libvirt's to change), and contents or link
/// target. Reads everything: `mkve-vm bases --verify`, and once as the
/// base is made.
pub(super) fn full_digest(dir: &Path, kind: Kind) -> Result<String> {
    let mut h = Sha256::new();
    for Entry {
        path: p,
        rel,
        meta: m,
    } in payload(dir, kind)?
    {
        h.update(rel.as_os_str().as_encoded_bytes());
        let owner = match kind {
            Kind::Root => format!("{}:{}", m.uid(), m.gid()),
            Kind::Disk => String::new(),
        };
        h.update(format!("\0{:o} {owner} ", m.mode()).as_bytes());
        let ft = m.file_type();
        if ft.is_symlink() {
            let t = std::fs::read_link(&p).at(&p)?;
            h.update(t.as_os_str().as_encoded_bytes());
        } else if ft.is_file() {
            let mut f = std::fs::File::open(&p).at(&p)?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf).at(&p)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        } else if !ft.is_dir() {
            h.update(format!("{}", m.rdev()).as_bytes());
        }
        h.update(b"\n");
    }
    Ok(hex(&h.finalize()))
}

/// Make base `digest` of `kind` from an unpacked, verified root (which is
/// moved or consumed: the caller removes what is left of it) whose files
/// take `bytes` (`root_bytes`), with the lock of `digest` held by the
/// caller.
pub(super) fn make(
    digest: &str,
    kind: Kind,
    meta: &crate::bundle::Meta,
    root: &Path,
    bytes: u64,
    label: &Path,
    report: &dyn Report,
) -> Result<Base> {
    let bases = bases_dir();
    let scratch = Scratch::new_in(&bases, ".new.")?;
    let s = scratch.path();
    match kind {
        Kind::Disk => {
            let boot = super::disk::find_boot_in(root, label)?;
            let size = super::disk::least_bytes(bytes);
            let image = s.join("disk.img");
            report.progress(&format!(
                "making the base disk of {} {} ({} MiB)",
                meta.template.name,
                meta.template.version,
                size >> 20
            ));
            super::disk::mkfs(root, &image, size, report)?;
            std::fs::copy(&boot.kernel, s.join("vmlinuz")).at(&boot.kernel)?;
            std::fs::copy(&boot.initrd, s.join("initrd.img")).at(&boot.initrd)?;
            for f in ["disk.img", "vmlinuz", "initrd.img"] {
                read_only(&s.join(f))?;
            }
        }
        Kind::Root => {
            report.progress(&format!(
                "keeping the root of {} {} as a base",
                meta.template.name, meta.template.version
            ));
            std::fs::rename(root, s.join("rootfs")).at(root)?;
        }
    }
    report.progress("recording the base's digest");
    let record = Record {
        digest: digest.to_string(),
        kind,
        template: meta.template.name.clone(),
        version: meta.template.version.clone(),
        made: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        root_bytes: bytes,
        fingerprint: fingerprint(s, kind, kind == Kind::Root)?,
        fingerprint_ctime: kind == Kind::Root,
        content: full_digest(s, kind)?,
    };
    let json = serde_json::to_vec_pretty(&record).map_err(|e| Error::Other(e.to_string()))?;
    std::fs::write(s.join(RECORD), json).map_err(|e| Error::create(s.join(RECORD), e))?;
    std::fs::set_permissions(s, std::os::unix::fs::PermissionsExt::from_mode(0o755)).at(s)?;
    let dir = bases.join(digest);
    std::fs::rename(s, &dir).map_err(|e| Error::create(&dir, e))?;
    scratch.keep();
    let _ = std::fs::remove_file(dir.join(".lock"));
    Ok(Base { dir, record })
}

/// The directory of a base where it keeps the heads of the bundles its
/// machines were made from (`bundle::head_of`), each named by the sha256
/// of its meta.json: `bundles/SHA256.bundle`. Outside what its
/// fingerprint and digest cover: added to by later creates, never changed.
const HEADS: &str = "bundles";

/// Keep the head of the bundle unpacked in `unpacked`, whose root `base`
/// is, unless it is kept already: written whole under a temporary name and
/// renamed. A restore then makes a machine on the base without the bundle.
/// Errors: it cannot be written (73).
pub(super) fn keep_head(base: &Base, unpacked: &Path) -> Result<()> {
    let meta = unpacked.join(crate::bundle::META);
    let digest = hex(&Sha256::digest(std::fs::read(&meta).at(&meta)?));
    let dir = base.dir.join(HEADS);
    let path = dir.join(format!("{digest}.bundle"));
    if path.is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::create(&dir, e))?;
    crate::files::write_atomic(&path, &crate::bundle::head_of(unpacked)?)
}

/// The heads the base `digest` keeps (`keep_head`), when the node has the
/// base whole (its record written): the bundle files a machine can be
/// made from on it. Its fingerprint is not checked here: the create that
/// reads a head checks it as it stands on the base. Errors: its record is
/// unreadable (65).
pub(super) fn heads(digest: &str) -> Result<Vec<PathBuf>> {
    let dir = bases_dir().join(digest);
    if read_record(&dir)?.is_none() {
        return Ok(Vec::new());
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir.join(HEADS))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "bundle") && p.is_file())
        .collect();
    out.sort();
    Ok(out)
}

fn read_only(p: &Path) -> Result<()> {
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o444)).at(p)
}

/// The base a machine's directory names (`vms/ID/base`), if any.
pub(super) fn of_machine(dir: &Path) -> Option<String> {
    let d = std::fs::read_to_string(dir.join(REF)).ok()?;
    let d = d.trim();
    is_digest(d).then(|| d.to_string())
}

/// The bases the machine in `dir` holds: the one it stands on, those its
/// snapshots were taken on (snapshot.rs) and the one an upgrade not
/// committed keeps (upgrade.rs); each once.
pub(super) fn held_by(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = of_machine(dir).into_iter().collect();
    let snapshots = std::fs::read_dir(super::layout::snapshots_dir(dir))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|s| of_machine(&s.path()));
    for d in snapshots.chain(of_machine(&super::layout::upgrade_dir(dir).join("old"))) {
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

/// Who holds each base: the machines' IDs (as their directories in
/// `vms/` are named), creates in progress included (`.new.…`).
fn holders() -> BTreeMap<String, Vec<String>> {
    holders_in(&vms_dir())
}

fn holders_in(vms: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(vms) {
        for e in rd.flatten() {
            // A machine's directory, or a create's staging directory
            // (its machine's directory-to-be is `bundle/` in it).
            let mut named = held_by(&e.path());
            named.extend(of_machine(&e.path().join("bundle")));
            let name = e.file_name().to_string_lossy().into_owned();
            for d in named {
                let v = out.entry(d).or_default();
                if !v.contains(&name) {
                    v.push(name.clone());
                }
            }
        }
    }
    for v in out.values_mut() {
        v.sort_by_key(|n| (n.parse::<u64>().unwrap_or(u64::MAX), n.clone()));
    }
    out
}

/// Remove base `digest` if no machine holds it any more. Errors: it could
/// not be removed (a mount inside it, say).
pub(super) fn release(digest: &str, report: &dyn Report) -> Result<bool> {
    let _lock = lock(digest)?;
    if holders().contains_key(digest) {
        return Ok(false);
    }
    remove(digest, report)?;
    Ok(true)
}

/// Remove base `digest` (the caller holds its lock): renamed out of the
/// way first, so what is left if this is killed does not look finished.
fn remove(digest: &str, report: &dyn Report) -> Result<()> {
    let dir = bases_dir().join(digest);
    if !dir.exists() {
        return Ok(());
    }
    report.progress(&format!("removing base {}", short(digest)));
    let trash = bases_dir().join(format!(".old.{digest}"));
    // A remover killed before it was done left its trash: with the lock
    // held, no one else is removing it, and it would stop the rename.
    remove_tree(&trash).at(&trash)?;
    std::fs::rename(&dir, &trash).at(&dir)?;
    remove_tree(&trash).at(&trash)
}

/// The first 12 digits of a digest, as bases are shown.
pub fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

/// A base as `mkve-vm bases` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BaseInfo {
    pub digest: String,
    /// `None` (JSON `null`) for a missing base.
    pub kind: Option<Kind>,
    pub template: String,
    pub version: String,
    /// Disk space it takes, in bytes (allocated blocks).
    pub bytes: u64,
    /// The IDs of the machines on it (`.new.…` for creates in progress).
    pub machines: Vec<String>,
    /// With `--verify`: `ok`, or what differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<String>,
    /// Machines stand on it but it is gone (removed under them): its
    /// kind, template and version are unknown (`-`), its size 0.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub missing: bool,
}

/// Every base on the node. With `verify`, each one's full digest is
/// checked against its record (`verified`).
pub fn list(verify: bool, report: &dyn Report) -> Result<Vec<BaseInfo>> {
    let holders = holders();
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(bases_dir()) else {
        return Ok(out);
    };
    let mut names: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_digest(n))
        .collect();
    names.sort();
    for digest in names {
        let dir = bases_dir().join(&digest);
        let rec_path = dir.join(RECORD);
        let Ok(record) = std::fs::read(&rec_path)
            .map_err(drop)
            .and_then(|t| serde_json::from_slice::<Record>(&t).map_err(drop))
        else {
            continue;
        };
        let verified = if verify {
            report.progress(&format!("verifying base {}", short(&digest)));
            Some(check_in_full(&dir, &record)?)
        } else {
            None
        };
        out.push(BaseInfo {
            bytes: disk_usage(&dir),
            machines: holders.get(&digest).cloned().unwrap_or_default(),
            digest,
            kind: Some(record.kind),
            template: record.template,
            version: record.version,
            verified,
            missing: false,
        });
    }
    // Bases machines name that are not there (or not whole: no record).
    for (digest, machines) in holders {
        if out.iter().any(|b| b.digest == digest) {
            continue;
        }
        // A create making it holds it before it is there: not missing.
        if machines.iter().all(|m| m.starts_with('.')) {
            continue;
        }
        out.push(BaseInfo {
            digest,
            kind: None,
            template: "-".into(),
            version: "-".into(),
            bytes: 0,
            machines,
            verified: verify.then(|| "MISSING: removed while machines stand on it".into()),
            missing: true,
        });
    }
    out.sort_by(|a, b| a.digest.cmp(&b.digest));
    Ok(out)
}

/// `ok`, or what differs from the record.
fn check_in_full(dir: &Path, record: &Record) -> Result<String> {
    Ok(if full_digest(dir, record.kind)? != record.content {
        "CHANGED: its contents differ from what was made".into()
    } else if fingerprint(dir, record.kind, record.fingerprint_ctime)? != record.fingerprint {
        "CHANGED: a file's size, time or inode differs (contents as made)".into()
    } else {
        "ok".into()
    })
}

/// Remove every base no machine holds; their digests.
pub fn prune(report: &dyn Report) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for b in list(false, report)? {
        if b.machines.is_empty() && release(&b.digest, report)? {
            removed.push(b.digest);
        }
    }
    // What killed makers and removers left.
    crate::scratch::sweep(&bases_dir(), ".new.");
    if let Ok(rd) = std::fs::read_dir(bases_dir()) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(d) = n.strip_prefix(".old.") {
                if let Ok(_l) = lock(d) {
                    let _ = remove_tree(&e.path());
                }
            }
        }
    }
    Ok(removed)
}

/// Allocated bytes under `dir` (its file system only).
pub(super) fn disk_usage(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .same_file_system(true)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.path().symlink_metadata().ok())
        .map(|m| m.blocks() * 512)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("rootfs");
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("etc/hostname"), "base\n").unwrap();
        std::os::unix::fs::symlink("hostname", r.join("etc/name")).unwrap();
        d
    }

    #[test]
    fn a_changed_file_changes_the_fingerprint_and_the_digest() {
        let d = tree();
        let (f0, c0) = (
            fingerprint(d.path(), Kind::Root, false).unwrap(),
            full_digest(d.path(), Kind::Root).unwrap(),
        );
        assert_eq!(f0, fingerprint(d.path(), Kind::Root, false).unwrap());
        let fc = fingerprint(d.path(), Kind::Root, true).unwrap();
        assert_eq!(fc, fingerprint(d.path(), Kind::Root, true).unwrap());
        // Same size, new contents, same mtime: the fingerprint without
        // ctime misses it (no contents are read), the one with ctime (a
        // root base's since issue 20) and the digest do not.
        let p = d.path().join("rootfs/etc/hostname");
        let t = std::fs::metadata(&p).unwrap().modified().unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        std::os::unix::fs::FileExt::write_at(&f, b"BASE\n", 0).unwrap();
        f.set_modified(t).unwrap();
        drop(f);
        assert_eq!(f0, fingerprint(d.path(), Kind::Root, false).unwrap());
        assert_ne!(fc, fingerprint(d.path(), Kind::Root, true).unwrap());
        assert_ne!(c0, full_digest(d.path(), Kind::Root).unwrap());
        // A new file: both see it.
        std::fs::write(d.path().join("rootfs/etc/new"), "x").unwrap();
        assert_ne!(f0, fingerprint(d.path(), Kind::Root, false).unwrap());
        // A link's target.
        let c1 = full_digest(d.path(), Kind::Root).unwrap();
        std::fs::remove_file(d.path().join("rootfs/etc/name")).unwrap();
        std::os::unix::fs::symlink("hosts", d.path().join("rootfs/etc/name")).unwrap();
        assert_ne!(c1, full_digest(d.path(), Kind::Root).unwrap());
    }

    /// A base is made in a scratch directory and renamed into place: its
    /// fingerprint and digest do not depend on where it is.
    #[test]
    fn a_base_moved_whole_keeps_its_fingerprint() {
        let d = tree();
        let (f, c) = (
            fingerprint(d.path(), Kind::Root, false).unwrap(),
            full_digest(d.path(), Kind::Root).unwrap(),
        );
        let other = tempfile::tempdir().unwrap();
        let moved = other.path().join("moved");
        std::fs::rename(d.path(), &moved).unwrap();
        assert_eq!(f, fingerprint(&moved, Kind::Root, false).unwrap());
        assert_eq!(c, full_digest(&moved, Kind::Root).unwrap());
        std::fs::rename(&moved, d.path()).unwrap();
    }

    #[test]
    fn a_disk_base_s_digest_covers_its_files_not_its_record() {
        let d = tempfile::tempdir().unwrap();
        for f in ["disk.img", "vmlinuz", "initrd.img"] {
            std::fs::write(d.path().join(f), f).unwrap();
        }
        std::fs::write(d.path().join(".lock"), "").unwrap();
        let (f0, c0) = (
            fingerprint(d.path(), Kind::Disk, false).unwrap(),
            full_digest(d.path(), Kind::Disk).unwrap(),
        );
        // What a maker leaves beside the files, or removes, does not count.
        std::fs::write(d.path().join(RECORD), "{}").unwrap();
        std::fs::remove_file(d.path().join(".lock")).unwrap();
        assert_eq!(f0, fingerprint(d.path(), Kind::Disk, false).unwrap());
        assert_eq!(c0, full_digest(d.path(), Kind::Disk).unwrap());
        std::fs::write(d.path().join("vmlinuz"), "other").unwrap();
        assert_ne!(c0, full_digest(d.path(), Kind::Disk).unwrap());
    }

    /// A create holds its base from the moment its staging directory names
    /// it, before it has an ID: a delete of the base's last machine
    /// meanwhile must not remove it.
    #[test]
    fn machines_and_creates_in_progress_hold_bases() {
        let vms = tempfile::tempdir().unwrap();
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        for (dir, digest) in [
            ("101", &a),
            ("100", &a),
            (".new.x1/bundle", &b),
            ("102", &"../x".to_string()),
        ] {
            std::fs::create_dir_all(vms.path().join(dir)).unwrap();
            std::fs::write(vms.path().join(dir).join(REF), format!("{digest}\n")).unwrap();
        }
        let h = holders_in(vms.path());
        assert_eq!(h.get(&a).unwrap(), &["100", "101"]);
        assert_eq!(h.get(&b).unwrap(), &[".new.x1"]);
        assert_eq!(
            h.len(),
            2,
            "a reference that is no digest holds nothing: {h:?}"
        );
    }

    #[test]
    fn only_digests_name_bases() {
        assert!(is_digest(&"a".repeat(64)));
        assert!(!is_digest(&"A".repeat(64)));
        assert!(!is_digest("../../etc"));
        assert!(!is_digest(&"a".repeat(63)));
    }
}
