//! Snapshots' records and the work on a machine whose lock the caller
//! holds (snapshot.rs has the commands; upgrade_undo.rs takes, reverts and
//! deletes them while it holds the machine). One model for both kinds of
//! machine: what the machine holds above its base is frozen as the
//! snapshot, and the machine goes on above it.
//!
//! - **lxc on a base**: the snapshot is a copy of the overlay's upper layer
//!   (`cp -a --reflink=auto`: shared blocks where the file system can),
//!   in `snapshots/NAME/upper/`. A running machine is frozen (libvirt's
//!   suspend: its processes stopped in their freezer cgroup) while it is
//!   copied; its mount is not restacked. The overlay is mounted with
//!   `index=off,metacopy=off,redirect_dir=off` (overlay.rs), so an upper
//!   layer holds whole files and makes sense on its own base, copied.
//!   Revert (stopped) puts a copy of the snapshot's layer in the place of
//!   the machine's, exchanged in one `renameat2(RENAME_EXCHANGE)`.
//! - **qemu and kvm** (on a base or not): the snapshot is the disk's top
//!   image, frozen; a new qcow2 overlay on it becomes the machine's disk
//!   (`layers/N.qcow2`). libvirt makes it, running or not: a disk-only
//!   external snapshot, quiesced when the domain has a guest agent channel
//!   that answers. Revert (stopped) is mkve's own work, as Debian 12's
//!   libvirt 9.0 cannot revert external snapshots: a new overlay on the
//!   snapshot's image, and the domain defined on it. Layers no snapshot and
//!   no chain needs are removed; a stopped machine's layer that only one
//!   image stands on is merged into it (`qemu-img rebase`).
//!
//! `snapshots/NAME/snapshot.json` records each one ([`Record`]). Every
//! step leaves a whole chain: files are made under temporary names and
//! renamed; an image is removed only once nothing names it. A snapshot
//! holds its machine's base like the machine does (the base stays while
//! the machine is there). `migrate` and `detach` refuse a machine with
//! snapshots (2): delete them first.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::layout::{frozen_marker, layers_dir, machine_dir, snapshots_dir, STAGING_PREFIX};
use super::{DomainType, Machine};
use crate::error::{Error, IoContext, Result};
use crate::exec::Report;
use crate::hypervisor::Hypervisor;
use crate::libvirt::{self, domain, Connection, Dom};
use crate::scratch::{remove_tree, Scratch};

/// The record of one snapshot, `snapshots/NAME/snapshot.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    /// When it was taken, in seconds since the epoch.
    pub made: u64,
    /// The machine ran when it was taken (it then holds what a power cut
    /// would have left, or a quiesced file system).
    pub running: bool,
    /// A disk machine's: the frozen image, relative to the machine's
    /// directory, and its format (raw, qcow2). `None` for lxc.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

const RECORD: &str = "snapshot.json";

/// A snapshot's name: 1 to 64 letters, digits, `-`, `_`, `.`, not
/// starting with `.` or `-`. Errors (2): another name.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "\"{}\" is not a snapshot name: 1 to 64 letters, digits, '-', '_' or '.', \
             not starting with '.' or '-'",
            crate::text::printable(name)
        )))
    }
}

/// How a machine's snapshots are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An lxc machine on a base: its upper layer.
    Layer,
    /// A machine booting a disk: its images.
    Disk,
}

fn kind_of(m: &Machine, dir: &Path) -> Result<Kind> {
    match m.hypervisor {
        DomainType::Hypervisor(Hypervisor::Lxc) if super::overlay::is_overlay(dir) => {
            Ok(Kind::Layer)
        }
        DomainType::Hypervisor(Hypervisor::Lxc) => Err(Error::Usage(format!(
            "machine {} has a root of its own (made with --no-base, or detached): \
             snapshots of an lxc machine are of what it holds above its base",
            m.id
        ))),
        DomainType::Hypervisor(h) if h.boots_disk_image() => Ok(Kind::Disk),
        t => Err(Error::Usage(format!(
            "machine {} runs under {t}: snapshots are for lxc, qemu and kvm machines",
            m.id
        ))),
    }
}

fn record_path(dir: &Path, name: &str) -> PathBuf {
    snapshots_dir(dir).join(name).join(RECORD)
}

fn read_record(dir: &Path, name: &str) -> Result<Option<Record>> {
    let path = record_path(dir, name);
    match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Other(format!("{}: not a snapshot's record: {e}", path.display()))),
    }
}

/// Every snapshot of the machine in `dir`, oldest first.
pub(super) fn records(dir: &Path) -> Result<Vec<Record>> {
    let mut out: Vec<(u64, Option<std::time::SystemTime>, Record)> = Vec::new();
    let Ok(rd) = std::fs::read_dir(snapshots_dir(dir)) else {
        return Ok(Vec::new());
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if let Some(r) = read_record(dir, &name)? {
            // Within a second, the order the records were written in.
            let written = std::fs::metadata(record_path(dir, &name))
                .and_then(|m| m.modified())
                .ok();
            out.push((r.made, written, r));
        }
    }
    out.sort_by_key(|r| (r.0, r.1));
    Ok(out.into_iter().map(|(_, _, r)| r).collect())
}

/// [`snapshot`](super::snapshot::snapshot) of machine `m` (domain `d`),
/// whose lock the caller holds.
pub(super) fn snapshot_locked(d: &Dom, m: &Machine, name: &str, report: &dyn Report) -> Result<()> {
    let name = name.to_string();
    let dir = machine_dir(m.id);
    let kind = kind_of(m, &dir)?;
    let place = snapshots_dir(&dir).join(&name);
    if place.exists() {
        return Err(Error::Usage(format!(
            "machine {} has a snapshot {name} already",
            m.id
        )));
    }
    let running = d.is_active()?;
    let staging = Scratch::new_in(&snapshots_dir(&dir), STAGING_PREFIX)?;
    let mut record = Record {
        name: name.clone(),
        made: crate::date::now(),
        running,
        image: None,
        format: None,
    };
    match kind {
        Kind::Layer => copy_layer(d, m, &dir, staging.path(), running, report)?,
        Kind::Disk => {
            let (image, format) = freeze_disk(d, m, &dir, running, report)?;
            record.image = Some(image);
            record.format = Some(format);
        }
    }
    // The base it stands on, which it holds (base.rs) and a revert needs.
    if let Some(b) = super::base::of_machine(&dir) {
        let r = staging.path().join(super::base::REF);
        crate::files::write_atomic(&r, format!("{b}\n").as_bytes())?;
    }
    write_record(staging.path(), &record)?;
    std::fs::rename(staging.path(), &place).at(&place)?;
    staging.keep();
    Ok(())
}

fn write_record(dir: &Path, r: &Record) -> Result<()> {
    let path = dir.join(RECORD);
    let mut text = serde_json::to_vec_pretty(r).map_err(|e| Error::Other(e.to_string()))?;
    text.push(b'\n');
    crate::files::write_atomic(&path, &text)
}

/// `cp -a --reflink=auto SRC DEST`: a tree copied whole, owners, modes,
/// times, extended attributes (overlayfs's whiteouts and opaque
/// directories) and device nodes kept, blocks shared where the file
/// system can.
pub(super) fn copy_tree(src: &Path, dest: &Path, report: &dyn Report) -> Result<()> {
    crate::files::copy_tree(src, dest, crate::files::CopyTree::SHARED)
        .report(report)
        .run_checked()
}

/// Copy an lxc machine's upper layer into `into/upper`, the machine frozen
/// meanwhile if it runs (thawed whatever happens, and by the next command
/// if this run is killed: the frozen marker).
pub(super) fn copy_layer(
    d: &Dom,
    m: &Machine,
    dir: &Path,
    into: &Path,
    running: bool,
    report: &dyn Report,
) -> Result<()> {
    let what = format!("machine {}", m.id);
    let marker = frozen_marker(dir);
    let frozen = if running && !d.is_paused()? {
        let snapshots = snapshots_dir(dir);
        std::fs::create_dir_all(&snapshots).map_err(|e| Error::create(&snapshots, e))?;
        crate::files::write_atomic(&marker, b"")?;
        if let Err(e) = d.suspend(&what) {
            let _ = std::fs::remove_file(&marker);
            return Err(e);
        }
        true
    } else {
        false
    };
    report.progress(&format!("copying {what}'s layer"));
    let copied = copy_tree(&dir.join("upper"), &into.join("upper"), report);
    if frozen {
        d.resume(&what)?;
        let _ = std::fs::remove_file(&marker);
    }
    copied
}

/// The next free `layers/N.qcow2` of the machine in `dir`.
fn next_layer(dir: &Path) -> Result<PathBuf> {
    let layers = layers_dir(dir);
    std::fs::create_dir_all(&layers).map_err(|e| Error::create(&layers, e))?;
    let n = std::fs::read_dir(&layers)
        .map_err(|e| Error::io(&layers, e))?
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".qcow2")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .map_or(1, |n| n + 1);
    Ok(layers.join(format!("{n}.qcow2")))
}

/// Freeze a disk machine's top image: libvirt puts a new overlay on it.
/// Returns the frozen image (relative to `dir`) and its format.
pub(super) fn freeze_disk(
    d: &Dom,
    m: &Machine,
    dir: &Path,
    running: bool,
    report: &dyn Report,
) -> Result<(String, String)> {
    let what = format!("machine {}", m.id);
    let xml = if running { d.xml()? } else { d.inactive_xml()? };
    let top = super::disk::top_of(&xml, &what)?;
    let rel = top
        .path
        .strip_prefix(dir)
        .map_err(|_| {
            Error::Other(format!(
                "{what}: its disk {} is not in {}",
                top.path.display(),
                dir.display()
            ))
        })?
        .to_string_lossy()
        .into_owned();
    let new = next_layer(dir)?;
    let mut disks = format!(
        "<disk name='{}' snapshot='external'><driver type='qcow2'/><source file='{}'/></disk>",
        libvirt::esc(&top.path.to_string_lossy()),
        libvirt::esc(&new.to_string_lossy()),
    );
    for f in domain::files_of(&xml).unwrap_or_default() {
        if !f.writable && !f.format.is_empty() {
            disks.push_str(&format!(
                "<disk name='{}' snapshot='no'/>",
                libvirt::esc(&f.path.to_string_lossy())
            ));
        }
    }
    let snap = format!("<domainsnapshot><disks>{disks}</disks></domainsnapshot>");
    // Quiesced when the guest has an agent to freeze its file systems.
    let agent = running && xml.contains("org.qemu.guest_agent.0");
    report.progress(&format!("freezing {what}'s disk"));
    match d.disk_snapshot(&snap, agent, &what) {
        Err(e) if agent => {
            report.warning(&format!(
                "{what}: its guest agent did not quiesce it ({e}): taken without"
            ));
            d.disk_snapshot(&snap, false, &what)?;
        }
        r => r?,
    }
    Ok((rel, top.format))
}

fn snapshot_named(m: &Machine, dir: &Path, name: &str) -> Result<Record> {
    check_name(name)?;
    read_record(dir, name)?
        .ok_or_else(|| Error::NotFound(format!("machine {} has no snapshot {name}", m.id)))
}

/// [`revert`](super::snapshot::revert) of machine `m` (domain `d` on
/// `conn`), whose lock the caller holds.
pub(super) fn revert_locked(
    conn: &Connection,
    d: &Dom,
    m: &Machine,
    name: &str,
    report: &dyn Report,
) -> Result<()> {
    let dir = machine_dir(m.id);
    let kind = kind_of(m, &dir)?;
    let r = snapshot_named(m, &dir, name)?;
    on_the_machine_s_base(m, &dir, name)?;
    if d.is_active()? {
        return Err(Error::Usage(format!(
            "machine {} runs: stop it first (mkve-vm stop {})",
            m.id, m.id
        )));
    }
    match kind {
        Kind::Layer => revert_layer(&dir, &r, report),
        Kind::Disk => revert_disk(conn, d, m, &dir, &r, report),
    }
}

/// Refuse (2) snapshot `name` of machine `m` (in `dir`) when it was taken
/// on another base than the one the machine stands on now (before an
/// upgrade): what it holds is a delta of that base.
fn on_the_machine_s_base(m: &Machine, dir: &Path, name: &str) -> Result<()> {
    let place = snapshots_dir(dir).join(name);
    if let (Some(was), Some(is)) = (
        super::base::of_machine(&place),
        super::base::of_machine(dir),
    ) {
        if was != is {
            return Err(Error::Usage(format!(
                "snapshot {name} of machine {} was taken on base {} before an upgrade; \
                 the machine stands on {} now (mkve-vm upgrade --rollback goes back while the upgrade is not committed)",
                m.id,
                super::base::short(&was),
                super::base::short(&is)
            )));
        }
    }
    Ok(())
}

/// What snapshot `name` of machine `m` (in `dir`) froze, to be read while
/// the machine goes on above it (pack.rs).
pub(super) enum Frozen {
    /// An lxc machine's upper layer, as copied.
    Layer(PathBuf),
    /// A disk machine's image and its format (raw, qcow2).
    Disk(PathBuf, String),
}

/// [`Frozen`] of snapshot `name`; the caller holds the machine's lock.
/// Errors (2): no such snapshot, a bad name, one taken on another base;
/// a record without its image (65).
pub(super) fn frozen(m: &Machine, dir: &Path, name: &str) -> Result<Frozen> {
    let r = snapshot_named(m, dir, name)?;
    on_the_machine_s_base(m, dir, name)?;
    Ok(match kind_of(m, dir)? {
        Kind::Layer => Frozen::Layer(snapshots_dir(dir).join(name).join("upper")),
        Kind::Disk => {
            let (Some(image), Some(format)) = (r.image, r.format) else {
                return Err(Error::InvalidBundle(crate::error::Problem::new(
                    record_path(dir, name),
                    None,
                    "a disk machine's snapshot without its image",
                )));
            };
            Frozen::Disk(dir.join(image), format)
        }
    })
}

/// An lxc machine's layer (in `dir`, stopped) put back as snapshot
/// `name` holds it; the snapshot stays. Errors: no such snapshot.
pub(super) fn revert_layer_named(dir: &Path, name: &str, report: &dyn Report) -> Result<()> {
    let r = read_record(dir, name)?
        .ok_or_else(|| Error::NotFound(format!("{}: no snapshot {name}", dir.display())))?;
    revert_layer(dir, &r, report)
}

fn revert_layer(dir: &Path, r: &Record, report: &dyn Report) -> Result<()> {
    // Nothing is removed from the machine's directory while its overlay
    // is mounted (overlay.rs): unmounted first; start mounts it again.
    super::overlay::unmount(dir)?;
    let staging = Scratch::new_in(&snapshots_dir(dir), STAGING_PREFIX)?;
    let copy = staging.path().join("upper");
    report.progress(&format!("copying snapshot {}", r.name));
    copy_tree(
        &snapshots_dir(dir).join(&r.name).join("upper"),
        &copy,
        report,
    )?;
    // One step: the machine has its layer or the snapshot's, never none.
    let upper = dir.join("upper");
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        &copy,
        rustix::fs::CWD,
        &upper,
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .map_err(|e| Error::create(&upper, std::io::Error::from(e)))?;
    // overlayfs's work directory belongs to the layer that went.
    let work = dir.join("work");
    remove_tree(&work).map_err(|e| Error::io(&work, e))?;
    // The old layer goes with the staging directory.
    drop(staging);
    Ok(())
}

fn revert_disk(
    conn: &Connection,
    d: &Dom,
    m: &Machine,
    dir: &Path,
    r: &Record,
    report: &dyn Report,
) -> Result<()> {
    let what = format!("machine {}", m.id);
    let (Some(image), Some(format)) = (&r.image, &r.format) else {
        return Err(Error::Other(format!(
            "{}: names no image",
            record_path(dir, &r.name).display()
        )));
    };
    let xml = d.inactive_xml()?;
    let top = super::disk::top_of(&xml, &what)?;
    let new = next_layer(dir)?;
    let tmp = new.with_extension("qcow2.new");
    let _ = std::fs::remove_file(&tmp);
    report.progress(&format!("putting a new layer on snapshot {}", r.name));
    let made = overlay_on(&dir.join(image), format, &tmp, report)
        .and_then(|()| std::fs::rename(&tmp, &new).at(&new));
    if let Err(e) = made {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let xml = xml.replace(
        &libvirt::esc(&top.path.to_string_lossy()),
        &libvirt::esc(&new.to_string_lossy()),
    );
    if let Err(e) = conn.define(&xml, &what) {
        let _ = std::fs::remove_file(&new);
        return Err(e);
    }
    tidy_layers(dir, &new, report)
}

/// `qemu-img create`: a qcow2 overlay at `overlay` on `backing` (of
/// `format`), of its size.
pub(super) fn overlay_on(
    backing: &Path,
    format: &str,
    overlay: &Path,
    report: &dyn Report,
) -> Result<()> {
    super::qemu_img::create(overlay, "qcow2", None, Some((backing, format)), report)
}

/// [`delete`](super::snapshot::delete) of machine `m` (domain `d`), whose
/// lock the caller holds.
pub(super) fn delete_locked(d: &Dom, m: &Machine, name: &str, report: &dyn Report) -> Result<()> {
    let dir = machine_dir(m.id);
    let kind = kind_of(m, &dir)?;
    snapshot_named(m, &dir, name)?;
    // Out of the list first: a killed delete leaves garbage, not half a
    // snapshot.
    let place = snapshots_dir(&dir).join(name);
    let trash = snapshots_dir(&dir).join(format!("{STAGING_PREFIX}deleted-{name}"));
    std::fs::rename(&place, &trash).at(&place)?;
    remove_tree(&trash).map_err(|e| Error::io(&trash, e))?;
    if kind == Kind::Disk && !d.is_active()? {
        let top = super::disk::top_of(&d.inactive_xml()?, &format!("machine {}", m.id))?;
        tidy_layers(&dir, &top.path, report)?;
    }
    Ok(())
}

/// The backing file a qcow2 image names in its header (QEMU's qcow2
/// format, docs/interop/qcow2.txt: the offset at byte 8, the size at 16,
/// big-endian); `None` for a raw image or one without.
pub(super) fn backing_of(image: &Path) -> Result<Option<PathBuf>> {
    use std::io::{Read, Seek};
    let mut f = std::fs::File::open(image).map_err(|e| Error::io(image, e))?;
    let mut h = [0u8; 20];
    if f.read_exact(&mut h).is_err() || &h[..4] != b"QFI\xfb" {
        return Ok(None);
    }
    let off = u64::from_be_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
    let len = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
    if off == 0 || len == 0 {
        return Ok(None);
    }
    if len > 4096 {
        return Err(Error::Other(format!(
            "{}: a backing file name of {len} bytes",
            image.display()
        )));
    }
    let mut name = vec![0u8; len as usize];
    f.seek(std::io::SeekFrom::Start(off))
        .and_then(|_| f.read_exact(&mut name))
        .map_err(|e| Error::io(image, e))?;
    let p = PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(name));
    Ok(Some(if p.is_relative() {
        image.parent().unwrap_or(Path::new("/")).join(p)
    } else {
        p
    }))
}

/// A stopped disk machine's images tidied: the images in its directory
/// that neither its disk `top` nor any snapshot stands on are removed,
/// and one that a single other image stands on and no snapshot names is
/// merged into that image (`qemu-img rebase` onto its own backing file,
/// which copies what it held; then removed).
fn tidy_layers(dir: &Path, top: &Path, report: &dyn Report) -> Result<()> {
    loop {
        let named: Vec<PathBuf> = records(dir)?
            .into_iter()
            .filter_map(|r| r.image.map(|i| dir.join(i)))
            .collect();
        // Every image in the machine's directory that a chain holds.
        let mut chains: Vec<Vec<PathBuf>> = Vec::new();
        for start in named.iter().chain([&top.to_path_buf()]) {
            let mut chain = vec![start.clone()];
            let mut at = start.clone();
            while let Some(b) = backing_of(&at)? {
                if !b.starts_with(dir) || chain.contains(&b) {
                    break;
                }
                chain.push(b.clone());
                at = b;
            }
            chains.push(chain);
        }
        let held: std::collections::BTreeSet<&PathBuf> = chains.iter().flatten().collect();
        // Images no chain holds: in layers/ only (the disk the machine
        // was made with is held until it stands on nothing).
        let mut removed = false;
        if let Ok(rd) = std::fs::read_dir(layers_dir(dir)) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "qcow2") && !held.contains(&p) {
                    std::fs::remove_file(&p).at(&p)?;
                    removed = true;
                }
            }
        }
        // An image no snapshot names, the backing of exactly one other.
        let mut merge = None;
        for &img in &held {
            // The disk the machine was made with stays its bottom.
            if named.contains(img) || img.as_path() == top || !img.starts_with(layers_dir(dir)) {
                continue;
            }
            let mut above = Vec::new();
            for &other in &held {
                if backing_of(other)?.as_ref() == Some(img) {
                    above.push(other.clone());
                }
            }
            if above.len() == 1 {
                merge = Some((img.clone(), above.remove(0)));
                break;
            }
        }
        let Some((img, child)) = merge else {
            if removed {
                continue;
            }
            return Ok(());
        };
        let (base, format) = match backing_of(&img)? {
            Some(b) => {
                let f = if backing_of(&b)?.is_some() || is_qcow2(&b)? {
                    "qcow2"
                } else {
                    "raw"
                };
                (b, f)
            }
            None => {
                // The bottom of a private disk: nothing to merge it into.
                return Ok(());
            }
        };
        report.progress(&format!(
            "merging {} into {}",
            img.display(),
            child.display()
        ));
        super::qemu_img::rebase(&child, &base, format, report)?;
        std::fs::remove_file(&img).at(&img)?;
    }
}

fn is_qcow2(image: &Path) -> Result<bool> {
    use std::io::Read;
    let mut f = std::fs::File::open(image).map_err(|e| Error::io(image, e))?;
    let mut magic = [0u8; 4];
    Ok(f.read_exact(&mut magic).is_ok() && &magic == b"QFI\xfb")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_qcow2_header_names_its_backing_file() {
        let d = tempfile::tempdir().unwrap();
        let raw = d.path().join("base.img");
        std::fs::write(&raw, vec![0u8; 1 << 20]).unwrap();
        assert_eq!(backing_of(&raw).unwrap(), None);
        let top = d.path().join("top.qcow2");
        overlay_on(&raw, "raw", &top, &crate::exec::Silent).unwrap();
        assert_eq!(backing_of(&top).unwrap(), Some(raw.clone()));
        assert!(is_qcow2(&top).unwrap());
        assert!(!is_qcow2(&raw).unwrap());
    }
}
