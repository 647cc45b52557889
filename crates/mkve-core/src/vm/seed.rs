//! A machine's own data: its host name and resolver (`access::set_identity`),
//! root's password and SSH keys (`RootLogin`), the template's parameters
//! (`params::Values`). One set of edits, made by mkve on the node, for
//! every kind of machine:
//!
//! - a private root (`--no-base`, openvz, a bundle without the seed
//!   program) is edited in place before it becomes a disk or a container;
//! - a machine on a base gets a **seed**: the files those edits change or
//!   add, as whole files with their modes and owners, made by editing a
//!   copy of the base's `/etc` and root's home (the *view*). For lxc the
//!   seed is the overlay's upper layer; for qemu, kvm and xen it is an ext4
//!   image (label `mkve-seed`, made without mounting, 0600) attached as a
//!   second, read-only disk, whose `root/` tree `mkve-seed.service` (hook
//!   06-mkve-seed) lays over the root at the first boot.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::access::RootLogin;
use crate::error::{Error, IoContext, Result};
use crate::exec::Report;
use crate::image::{Access, Image};
use crate::params::Values;

/// What differs per machine.
pub(super) struct Data<'a> {
    pub access: &'a RootLogin,
    pub params: &'a Values,
    /// The machine's (domain's) name: its host name.
    pub name: &'a str,
    /// The mkve network's address on the node: the machine's resolver.
    pub resolver: Ipv4Addr,
    /// The bundle, for messages.
    pub label: &'a Path,
}

impl Data<'_> {
    /// Make every edit in `root`.
    pub fn apply(&self, root: &Path) -> Result<()> {
        self.access.apply(root, self.label)?;
        self.params.write(root)?;
        crate::access::set_identity(root, self.name, self.resolver)?;
        set_machine_id(root)
    }
}

/// Give the machine in `root` a machine ID of its own (machine-id(5): 32
/// lower-case hex digits from the kernel's random source), so that no two
/// machines of a bundle share one (DHCP client IDs, journald). A link
/// there is replaced, never followed.
fn set_machine_id(root: &Path) -> Result<()> {
    use std::io::Read;
    let etc = root.join("etc");
    if !std::fs::symlink_metadata(&etc).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .at("/dev/urandom")?;
    let path = etc.join("machine-id");
    if std::fs::symlink_metadata(&path).is_ok_and(|m| !m.is_file()) {
        std::fs::remove_file(&path).at(&path)?;
    }
    let text = format!("{}\n", crate::digest::hex(&bytes));
    let tmp = etc.join(".machine-id.mkve");
    std::fs::write(&tmp, text).map_err(|e| Error::create(&tmp, e))?;
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o444)).at(&tmp)?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::create(&path, e))
}

/// The files the seed writes or replaces (besides root's
/// `.ssh/authorized_keys` and the parameters under `/etc/mkve/params`),
/// relative to the root: what `pack` takes out of a machine by record.
pub(super) const SEEDED: [&str; 6] = [
    "etc/passwd",
    "etc/shadow",
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "etc/machine-id",
];

/// Where a view's files come from.
pub(super) enum Source<'a> {
    /// A root directory (an lxc base's `rootfs/`).
    Dir(&'a Path),
    /// An ext4 image (a disk base's `disk.img`), read with debugfs.
    Image(&'a Path),
}

/// What the edits read or replace in `/etc`: a view holds these, not all
/// of it (an lxc base's /etc is copied at every create).
const EDITED: [&str; 7] = [
    "etc/machine-id",
    "etc/passwd",
    "etc/shadow",
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "etc/mkve",
];

impl Source<'_> {
    /// Copy into `view` what the edits read under `/etc` (for an image, all
    /// of `/etc`, in one debugfs run), keeping modes, owners and links,
    /// and the directories leading to it.
    fn bring_etc(&self, view: &Path, report: &dyn Report) -> Result<()> {
        match self {
            Source::Dir(root) => {
                let there: Vec<&str> = EDITED
                    .into_iter()
                    .filter(|r| root.join(r).symlink_metadata().is_ok())
                    .collect();
                if there.is_empty() {
                    return Ok(());
                }
                crate::files::copy_parents(root, there, view)
                    .report(report)
                    .run_checked()
            }
            Source::Image(_) => self.bring_dir(Path::new("etc"), view, report),
        }
    }

    /// Copy `/REL/.ssh` of the source (or, without it, `/REL` alone: a
    /// directory, empty) into `view`, with the directories leading to it.
    fn bring_home(&self, rel: &Path, view: &Path, report: &dyn Report) -> Result<()> {
        match self {
            Source::Dir(root) => {
                let ssh = rel.join(".ssh");
                if root.join(&ssh).symlink_metadata().is_ok() {
                    return crate::files::copy_parents(root, [&ssh], view)
                        .report(report)
                        .run_checked();
                }
                // The directories, each as the root has it.
                let mut at = PathBuf::new();
                for c in rel.components() {
                    at.push(c);
                    let Ok(m) = root.join(&at).symlink_metadata() else {
                        break;
                    };
                    let made = view.join(&at);
                    if !m.is_dir() || made.exists() {
                        break;
                    }
                    std::fs::create_dir(&made).map_err(|e| Error::create(&made, e))?;
                    copy_owner_and_mode(&made, &m)?;
                }
                Ok(())
            }
            Source::Image(_) => self.bring_dir(rel, view, report),
        }
    }

    /// Copy the directory `/REL` of an image (recursively, with owners,
    /// modes and times) into `view`, with the directories leading to it;
    /// nothing if the image has none. Errors: the image's (`Image::open`).
    fn bring_dir(&self, rel: &Path, view: &Path, report: &dyn Report) -> Result<()> {
        let Source::Image(image) = self else {
            return Ok(());
        };
        let dest = view.join(rel);
        let parent = dest.parent().unwrap_or(view);
        std::fs::create_dir_all(parent).map_err(|e| Error::create(parent, e))?;
        let image = Image::open(image, Access::ReadOnly, report)?;
        let abs = Path::new("/").join(rel);
        if image.stat(&abs)?.is_some() {
            image.extract(&abs, &dest)?;
        }
        image.close()
    }
}

/// What a file looked like: inode, size, mtime (s, ns), mode.
type Stamp = (u64, u64, i64, i64, u32);

fn stamps(view: &Path) -> BTreeMap<PathBuf, Stamp> {
    walkdir::WalkDir::new(view)
        .follow_links(false)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let m = e.path().symlink_metadata().ok()?;
            Some((
                e.path().strip_prefix(view).ok()?.to_path_buf(),
                (m.ino(), m.len(), m.mtime(), m.mtime_nsec(), m.mode()),
            ))
        })
        .collect()
}

/// Make the seed of `data` in `dest` (which must not exist), from a view
/// of `source` made in `work`: the files the edits change or add, in
/// their directories (whose modes and owners are the source's).
pub(super) fn make_tree(
    source: &Source,
    data: &Data,
    work: &Path,
    dest: &Path,
    report: &dyn Report,
) -> Result<()> {
    let view = work.join("view");
    std::fs::create_dir(&view).map_err(|e| Error::create(&view, e))?;
    source.bring_etc(&view, report)?;
    let home = crate::access::root_home(&view);
    let home = home.strip_prefix("/").unwrap_or(&home).to_path_buf();
    if !home.as_os_str().is_empty() && !home.starts_with("etc") {
        source.bring_home(&home, &view, report)?;
    }
    let before = stamps(&view);
    data.apply(&view)?;
    std::fs::create_dir(dest).map_err(|e| Error::create(dest, e))?;
    for e in walkdir::WalkDir::new(&view).follow_links(false) {
        let e = e.map_err(|e| Error::Other(format!("{}: {e}", view.display())))?;
        if e.file_type().is_dir() {
            continue;
        }
        let rel = e.path().strip_prefix(&view).unwrap_or(e.path());
        let m = e.path().symlink_metadata().at(e.path())?;
        let now = (m.ino(), m.len(), m.mtime(), m.mtime_nsec(), m.mode());
        if before.get(rel) == Some(&now) {
            continue;
        }
        // Its directories first, as the view has them.
        let mut made = dest.to_path_buf();
        for c in rel.parent().into_iter().flat_map(Path::components) {
            made.push(c);
            if made.exists() {
                continue;
            }
            let vd = view.join(made.strip_prefix(dest).unwrap_or(&made));
            let vm = vd.symlink_metadata().at(&vd)?;
            std::fs::create_dir(&made).map_err(|e| Error::create(&made, e))?;
            copy_owner_and_mode(&made, &vm)?;
        }
        let to = dest.join(rel);
        std::fs::rename(e.path(), &to).map_err(|e| Error::create(&to, e))?;
    }
    let _ = crate::scratch::remove_tree(&view);
    Ok(())
}

/// Give `path` the owner (when run as root) and mode of what `like`
/// describes.
pub(super) fn copy_owner_and_mode(path: &Path, like: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::lchown(path, Some(like.uid()), Some(like.gid())).at(path)?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(like.mode() & 0o7777)).at(path)
}

/// The seed disk at `image`: an ext4 file system (label `mkve-seed`, no
/// journal) holding `tree` as `root/`, readable by root only.
pub(super) fn make_disk(tree: &Path, image: &Path, report: &dyn Report) -> Result<()> {
    let top = image.with_extension("tree");
    std::fs::create_dir(&top).map_err(|e| Error::create(&top, e))?;
    std::fs::rename(tree, top.join("root")).at(tree)?;
    let bytes = super::disk::root_bytes(&top);
    let size = ((2 * bytes + (4 << 20)).div_ceil(1 << 20)) << 20;
    let f = std::fs::File::create(image).map_err(|e| Error::create(image, e))?;
    f.set_len(size).map_err(|e| Error::create(image, e))?;
    std::fs::set_permissions(image, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .at(image)?;
    drop(f);
    super::disk::mkfs_ext4(&top, image, "mkve-seed", false, report)?;
    crate::scratch::remove_tree(&top).at(&top)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Silent;
    use std::os::unix::fs::PermissionsExt;

    /// The seed holds exactly what the edits changed or added, under the
    /// base's own directory modes; the base is not touched.
    #[test]
    #[ignore = "needs root: root's .ssh in the seed is made root's (chown)"]
    fn the_seed_is_what_the_edits_change() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("rootfs");
        std::fs::create_dir_all(base.join("etc/ssh")).unwrap();
        std::fs::create_dir_all(base.join("root")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(base.join("root"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        std::fs::write(base.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(base.join("etc/shadow"), "root:*:1:0:99999:7:::\n").unwrap();
        std::fs::write(base.join("etc/hostname"), "buildhost\n").unwrap();
        std::fs::write(base.join("etc/ssh/sshd_config"), "x\n").unwrap();
        let pw = d.path().join("pw");
        std::fs::write(&pw, "secret\n").unwrap();
        let key = d.path().join("key");
        std::fs::write(&key, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq1 me@host\n").unwrap();
        let access = RootLogin::read(Some(&pw), Some(&key)).unwrap();
        let mut values = Values::default();
        values.0.insert("token".into(), ("s3".into(), true));
        let data = Data {
            access: &access,
            params: &values,
            name: "ntp-100",
            resolver: "192.0.2.1".parse().unwrap(),
            label: Path::new("b.bun"),
        };
        let work = d.path().join("work");
        std::fs::create_dir(&work).unwrap();
        let seed = d.path().join("seed");
        make_tree(&Source::Dir(&base), &data, &work, &seed, &Silent).unwrap();
        let mut got: Vec<String> = walkdir::WalkDir::new(&seed)
            .min_depth(1)
            .sort_by_file_name()
            .into_iter()
            .map(|e| {
                e.unwrap()
                    .path()
                    .strip_prefix(&seed)
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                "etc",
                "etc/hostname",
                "etc/hosts",
                "etc/machine-id",
                "etc/mkve",
                "etc/mkve/params",
                "etc/mkve/params/token",
                "etc/resolv.conf",
                "etc/shadow",
                "root",
                "root/.ssh",
                "root/.ssh/authorized_keys"
            ]
        );
        let mode = |p: &str| {
            std::fs::metadata(seed.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("root"), 0o700);
        assert_eq!(mode("root/.ssh/authorized_keys"), 0o600);
        assert_eq!(mode("etc/mkve/params/token"), 0o600);
        assert_eq!(
            std::fs::read_to_string(seed.join("etc/hostname")).unwrap(),
            "ntp-100\n"
        );
        assert!(std::fs::read_to_string(seed.join("etc/shadow"))
            .unwrap()
            .starts_with("root:$6$"));
        // The base is as it was, and the view is gone.
        assert_eq!(
            std::fs::read_to_string(base.join("etc/hostname")).unwrap(),
            "buildhost\n"
        );
        assert!(!base.join("root/.ssh").exists());
        assert!(!work.join("view").exists());
    }

    /// The same seed from an ext4 image read by debugfs, and the seed disk
    /// made of it holds the tree under root/.
    #[test]
    fn a_disk_base_s_view_is_read_without_mounting() {
        if !crate::exec::on_path("debugfs") || !crate::exec::on_path("mkfs.ext4") {
            panic!("e2fsprogs (debugfs, mkfs.ext4) is needed: apt-get install e2fsprogs");
        }
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/hostname"), "buildhost\n").unwrap();
        std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
        let image = d.path().join("disk.img");
        super::super::disk::mkfs(&root, &image, 16 << 20, &Silent).unwrap();
        let access = RootLogin::default();
        let values = Values::default();
        let data = Data {
            access: &access,
            params: &values,
            name: "web-7",
            resolver: "192.0.2.1".parse().unwrap(),
            label: Path::new("b.bun"),
        };
        let work = d.path().join("work");
        std::fs::create_dir(&work).unwrap();
        let seed = d.path().join("seed");
        make_tree(&Source::Image(&image), &data, &work, &seed, &Silent).unwrap();
        assert_eq!(
            std::fs::read_to_string(seed.join("etc/hostname")).unwrap(),
            "web-7\n"
        );
        assert_eq!(
            std::fs::read_to_string(seed.join("etc/hosts")).unwrap(),
            "127.0.0.1 localhost\n127.0.1.1\tweb-7\n"
        );
        let disk = d.path().join("seed.img");
        make_disk(&seed, &disk, &Silent).unwrap();
        assert_eq!(
            std::fs::metadata(&disk).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let seed = Image::open(&disk, Access::ReadOnly, &Silent).unwrap();
        assert_eq!(
            seed.read(Path::new("/root/etc/hostname")).unwrap(),
            b"web-7\n"
        );
    }
}
