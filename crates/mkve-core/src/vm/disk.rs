//! The disk image a qemu, kvm or xen machine boots: made from the
//! unpacked root without mounting anything (`mkfs.ext4 -d`), with the
//! root's kernel and initrd beside it for direct kernel boot.

use std::path::{Path, PathBuf};

use super::spec::DiskSize;
use crate::error::{Error, IoContext, Result};
use crate::exec::{Cmd, Report};

/// How a qemu, kvm or xen machine's disk image is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DiskFormat {
    /// A plain image, as `mkfs.ext4 -d` makes it (sparse where empty).
    #[default]
    Raw,
    /// Converted with `qemu-img convert`: grows as the guest writes, and
    /// takes snapshots.
    Qcow2,
}

impl DiskFormat {
    /// Every format's name, for help and completion.
    pub const NAMES: [&'static str; 2] = ["raw", "qcow2"];

    pub fn name(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        }
    }

    pub(super) fn file(self) -> &'static str {
        match self {
            DiskFormat::Raw => "disk.img",
            DiskFormat::Qcow2 => "disk.qcow2",
        }
    }
}

impl std::str::FromStr for DiskFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "raw" => Ok(DiskFormat::Raw),
            "qcow2" => Ok(DiskFormat::Qcow2),
            _ => Err(format!("\"{s}\" is not a disk format (raw, qcow2)")),
        }
    }
}

/// qemu runs as its own user (libvirt-qemu on Debian): every directory
/// down to the machine's must let others through, or the guest cannot open
/// its disk. Told before the disk is made, not by qemu after.
pub(super) fn reachable_by_others(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for d in dir.ancestors() {
        if let Ok(m) = std::fs::metadata(d) {
            if m.permissions().mode() & 0o001 == 0 {
                return Err(Error::create(
                    dir,
                    std::io::Error::other(format!(
                        "qemu runs as its own user and cannot pass through {} (mode {:o}): chmod o+x it, or set MKVE_STATEDIR elsewhere",
                        d.display(),
                        m.permissions().mode() & 0o7777
                    )),
                ));
            }
        }
    }
    Ok(())
}

/// The kernel and initrd a machine boots directly, found in the root's
/// /boot: the newest `vmlinuz-VERSION` and its `initrd.img-VERSION`.
/// Checked as soon as the bundle is unpacked: a bundle without them is
/// refused before anything is made.
pub(super) struct Boot {
    pub(super) kernel: PathBuf,
    pub(super) initrd: PathBuf,
}

/// `find_boot_in` the unpacked bundle's `rootfs/`.
pub(super) fn find_boot(unpacked: &Path, label: &Path) -> Result<Boot> {
    find_boot_in(&unpacked.join("rootfs"), label)
}

/// The kernel and initrd in `root`'s /boot. Errors: none there (65).
pub(super) fn find_boot_in(root: &Path, label: &Path) -> Result<Boot> {
    let boot = root.join("boot");
    let mut kernels: Vec<String> = std::fs::read_dir(&boot)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with("vmlinuz-"))
                .collect()
        })
        .unwrap_or_default();
    kernels.sort();
    let Some(kernel) = kernels.pop() else {
        return Err(Error::bundle(
            label,
            "has no kernel in /boot: build it with the qemu package set (a kernel for direct boot)",
        ));
    };
    let version = &kernel["vmlinuz-".len()..];
    let initrd = boot.join(format!("initrd.img-{version}"));
    if !initrd.exists() {
        return Err(Error::bundle(
            label,
            format!("has no initrd.img-{version} in /boot"),
        ));
    }
    Ok(Boot {
        kernel: boot.join(&kernel),
        initrd,
    })
}

/// The smallest disk, in bytes, that holds a root of `used` bytes of
/// files: a tenth and 64 MiB more for the file system's own blocks,
/// rounded up to a MiB. A base's disk is made this size.
pub(super) fn least_bytes(used: u64) -> u64 {
    (used + used / 10 + (64 << 20)).div_ceil(1 << 20) << 20
}

/// A machine's disk size in bytes for a root of `used` bytes: the size
/// asked for, else 1.5 times the root's files plus 512 MiB (at least
/// 1 GiB). Errors: the size asked for is below `least_bytes` (exit 2).
pub(super) fn machine_bytes(used: u64, asked: Option<DiskSize>) -> Result<u64> {
    let least = least_bytes(used);
    match asked {
        Some(s) if s.bytes() < least => Err(Error::Usage(format!(
            "--disk-size {}M: the root needs at least {}M",
            s.mib(),
            least >> 20
        ))),
        Some(s) => Ok(s.bytes()),
        None => Ok((used + used / 2 + (512 << 20)).max(1 << 30)),
    }
}

/// `machine_bytes` for the root in `unpacked/rootfs`.
pub(super) fn disk_bytes(unpacked: &Path, asked: Option<DiskSize>) -> Result<u64> {
    machine_bytes(super::disk::root_bytes(&unpacked.join("rootfs")), asked)
}

/// An ext4 image of `size` bytes at `image`, made from `root` without
/// mounting anything (`mkfs.ext4 -d`; sparse where empty).
pub(super) fn mkfs(root: &Path, image: &Path, size: u64, report: &dyn Report) -> Result<()> {
    let f = std::fs::File::create(image).map_err(|e| Error::create(image, e))?;
    f.set_len(size).map_err(|e| Error::create(image, e))?;
    drop(f);
    mkfs_ext4(root, image, "mkve-root", true, report)
}

/// mkfs.ext4(8), the one place mkve runs it: an ext4 file system
/// labelled `label` made in `image` (a file of the size wanted, or a
/// block device) from the tree `root`, without mounting anything (`-d`);
/// `journal`: false for a file system written once and read once (the
/// seed). Errors: the command's (69 when e2fsprogs is missing).
pub(super) fn mkfs_ext4(
    root: &Path,
    image: &Path,
    label: &str,
    journal: bool,
    report: &dyn Report,
) -> Result<()> {
    Cmd::new("mkfs.ext4")
        .args(["-q", "-F"])
        .args(
            (!journal)
                .then_some(["-O", "^has_journal"])
                .into_iter()
                .flatten(),
        )
        .args(["-L", label, "-d"])
        .arg(root)
        .arg(image)
        .report(report)
        .run_checked()
}

/// Make the disk image of the unpacked bundle's `rootfs/`, with the
/// kernel and initrd copied beside it (a private disk: `--no-base`). The
/// caller removes the root directory.
pub(super) fn make_disk(
    unpacked: &Path,
    boot: &Boot,
    format: DiskFormat,
    size: u64,
    report: &dyn Report,
) -> Result<()> {
    let root = unpacked.join("rootfs");
    std::fs::copy(&boot.kernel, unpacked.join("vmlinuz")).at(&boot.kernel)?;
    std::fs::copy(&boot.initrd, unpacked.join("initrd.img")).at(&boot.initrd)?;
    let image = unpacked.join("disk.img");
    report.progress(&format!("making a {} MiB disk image", size >> 20));
    mkfs(&root, &image, size, report)?;
    if format == DiskFormat::Qcow2 {
        let qcow2 = unpacked.join(DiskFormat::Qcow2.file());
        report.progress("converting the disk image to qcow2");
        super::qemu_img::convert(&image, "raw", &qcow2, "qcow2", report)?;
        std::fs::remove_file(&image).at(&image)?;
    }
    Ok(())
}

/// A machine's disk on a base: a qcow2 overlay at `overlay` of `size`
/// bytes whose backing file is the base's raw `disk.img` (no data is
/// copied; the guest's writes go to the overlay).
pub(super) fn make_overlay(
    backing: &Path,
    overlay: &Path,
    size: u64,
    report: &dyn Report,
) -> Result<()> {
    super::qemu_img::create(overlay, "qcow2", Some(size), Some((backing, "raw")), report)
}

/// The size of the regular files under `root`, in bytes.
pub(super) fn root_bytes(root: &Path) -> u64 {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// The disk a machine boots now: the one writable file-backed disk in
/// its domain's XML (`disk.img`, `disk.qcow2`, or a layer a snapshot put
/// on it). Errors: none or several (not a machine mkve made).
pub(super) fn top_of(xml: &str, what: &str) -> Result<crate::libvirt::domain::DomainFile> {
    let files =
        crate::libvirt::domain::files_of(xml).map_err(|e| Error::Other(format!("{what}: {e}")))?;
    let mut disks = files.into_iter().filter(|f| f.writable);
    match (disks.next(), disks.next()) {
        (Some(top), None) => Ok(top),
        _ => Err(Error::Other(format!(
            "{what}: not one writable disk in its domain: not a machine mkve made"
        ))),
    }
}
