//! An lxc machine on a base: its root `vms/ID/rootfs` is an overlayfs
//! mount, the base's `rootfs/` its lower layer, `vms/ID/upper` (which
//! starts as the machine's seed) its upper, `vms/ID/work` overlayfs's own.
//! The mount lives in the node's mount namespace, where libvirt finds it
//! at start; mkve mounts it when it makes the machine and before each
//! start (`mkve-vm start`, `create --start`), and libvirt's lxc hook
//! (`mkve-lxc-hook`, installed as `/etc/libvirt/hooks/lxc.d/mkve`) does
//! before a start mkve did not ask for: autostart at the node's boot,
//! `virsh start`. Nothing else is ever removed from a machine's directory
//! while the mount is there.

use std::path::{Path, PathBuf};

use super::layout::{machine_dir, state_of, StateDir};
use super::Machine;
use crate::error::{Error, IoContext, Result};

/// The mount point in a machine's directory.
pub(super) fn mount_point(dir: &Path) -> PathBuf {
    dir.join("rootfs")
}

/// Whether a file system is mounted at `path`: told by its mount ID, as
/// every removal tells it (`scratch::is_mount_point`), not its device.
pub(super) fn is_mounted(path: &Path) -> bool {
    crate::scratch::is_mount_point(path)
}

/// Whether the machine in `dir` is an overlay on a base.
pub(super) fn is_overlay(dir: &Path) -> bool {
    dir.join("upper").is_dir() && super::base::of_machine(dir).is_some()
}

/// The mount options for `dir` on the base root `lower`. Errors: a path
/// overlayfs cannot take in its options (`,`, `:` or `\`).
fn options(lower: &Path, dir: &Path) -> Result<String> {
    let mut parts = Vec::new();
    for (key, p) in [
        ("lowerdir", lower.to_path_buf()),
        ("upperdir", dir.join("upper")),
        ("workdir", dir.join("work")),
    ] {
        let s = p
            .to_str()
            .filter(|s| !s.contains([',', ':', '\\']))
            .ok_or_else(|| {
                Error::create(
                    &p,
                    std::io::Error::other(
                        "overlayfs cannot take this path (a comma, colon or backslash in it): set MKVE_STATEDIR elsewhere",
                    ),
                )
            })?;
        parts.push(format!("{key}={s}"));
    }
    // Pinned off whatever the kernel's defaults: with them an upper
    // layer would hold files only by reference to the lower one (metacopy),
    // renamed directories by redirect (redirect_dir), or tie its inodes to
    // this mount (index); a snapshot, a backup or a copy of the layer
    // must make sense on its own above the base.
    parts.push("index=off,metacopy=off,redirect_dir=off".to_string());
    Ok(parts.join(","))
}

/// Mount the machine in `dir` on its base, unless it is mounted. Errors:
/// the base is gone, the mount fails.
pub(super) fn mount(dir: &Path) -> Result<()> {
    let point = mount_point(dir);
    undo_killed_detach(dir)?;
    let digest = super::base::of_machine(dir)
        .ok_or_else(|| Error::Other(format!("{}: names no base", dir.display())))?;
    // The state directory is the machine's directory's grandparent: from
    // libvirt's hook, which runs without mkve's environment, too.
    let state = state_of(dir);
    // Missing or changed, it is refused (65) before anything is mounted
    // or started, a mount made before it changed included.
    let base = super::base::check_for_machines(
        &StateDir::Vms.under(state),
        &StateDir::Bases.under(state),
        &digest,
    )?;
    if is_mounted(&point) {
        return Ok(());
    }
    let lower = base.root();
    std::fs::create_dir_all(dir.join("work")).map_err(|e| Error::create(dir.join("work"), e))?;
    let opts = options(&lower, dir)?;
    nix::mount::mount(
        Some("overlay"),
        &point,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(opts.as_str()),
    )
    .map_err(|e| Error::create(&point, std::io::Error::from(e)))
}

/// What `detach` of an lxc machine killed midway left, undone (the caller
/// holds the machine's lock): detach copies the merged root to
/// `.rootfs.detach`, moves the mount point away to `.rootfs.empty`, moves
/// the copy into its place, and only then drops the machine's hold on its
/// base. Killed between the two moves, the machine has no `rootfs`: the
/// mount point is put back (the machine is on its base as before, its
/// upper layer untouched) and the copy removed. Errors: a move fails.
pub(super) fn undo_killed_detach(dir: &Path) -> Result<()> {
    let (point, empty, copy) = (
        mount_point(dir),
        dir.join(".rootfs.empty"),
        dir.join(".rootfs.detach"),
    );
    if std::fs::symlink_metadata(&point).is_err() && empty.is_dir() {
        std::fs::rename(&empty, &point).map_err(|e| Error::io(&empty, e))?;
    }
    if copy.exists() && super::base::of_machine(dir).is_some() {
        crate::scratch::remove_tree(&copy).map_err(|e| Error::io(&copy, e))?;
    }
    Ok(())
}

/// Unmount the machine in `dir` if it is mounted. Errors: it is busy.
pub(super) fn unmount(dir: &Path) -> Result<()> {
    let point = mount_point(dir);
    if !is_mounted(&point) {
        return Ok(());
    }
    nix::mount::umount(&point).map_err(|e| Error::io(&point, std::io::Error::from(e)))?;
    Ok(())
}

/// Remove a machine's directory: unmounted first, then everything in it
/// on its own file system (never the base).
pub(super) fn remove_machine_dir(dir: &Path) -> Result<()> {
    unmount(dir)?;
    crate::scratch::remove_tree(dir).at(dir)
}

/// libvirt's lxc hook, before a domain starts (`prepare begin`, its XML on
/// stdin): mount the root of an lxc machine of mkve's on a base. Any
/// other domain is left alone. Errors (the start is then refused by
/// libvirt): the base is gone, the mount fails.
pub fn prepare_from_hook(domain_xml: &str) -> Result<()> {
    if crate::libvirt::domain::record_of(domain_xml).is_none() {
        return Ok(());
    }
    let Ok(doc) = roxmltree::Document::parse(domain_xml) else {
        return Ok(());
    };
    let root = doc.descendants().find(|n| {
        n.has_tag_name("filesystem")
            && n.children()
                .any(|t| t.has_tag_name("target") && t.attribute("dir") == Some("/"))
    });
    let Some(source) = root
        .and_then(|f| f.children().find(|c| c.has_tag_name("source")))
        .and_then(|s| s.attribute("dir"))
    else {
        return Ok(());
    };
    let Some(dir) = Path::new(source).parent() else {
        return Ok(());
    };
    if is_overlay(dir) {
        mount(dir)?;
    }
    Ok(())
}

/// Before a start: an lxc machine on a base has its overlay mounted (the
/// node may have rebooted since).
pub(super) fn prepare_root(m: &Machine) -> Result<()> {
    let dir = machine_dir(m.id);
    if super::overlay::is_overlay(&dir) {
        super::overlay::mount(&dir)?;
    } else {
        // A disk machine's base: missing or changed, refused (65) here,
        // not by qemu after a timeout.
        super::base::check_of_machine(&dir)?;
    }
    Ok(())
}

/// A machine frozen by a snapshot that was killed, thawed (the caller
/// holds its lock). Called before any command acts on a machine.
pub(super) fn thaw_if_left_frozen(d: &crate::libvirt::Dom, dir: &Path, what: &str) -> Result<()> {
    let marker = super::layout::frozen_marker(dir);
    if marker.exists() {
        if d.is_paused()? {
            d.resume(what)?;
        }
        std::fs::remove_file(&marker).at(&marker)?;
    }
    Ok(())
}
