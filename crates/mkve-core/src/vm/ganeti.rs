//! mkve's bundles as a Ganeti OS definition (ganeti-os-interface(7), API
//! 20): the OS `mkve`, whose variants are the bundles synced to every node
//! of the cluster, and whose OS parameters are the bundles' template
//! parameters. The definition's scripts (`ganeti/os/mkve/` in the tree)
//! only run `mkve-vm __ganeti-os ACTION`; what they do is here.
//!
//! Owns: the node's copy of the variants (`$MKVE_STATEDIR/ganeti/`:
//! `bundles/NAME.bun` and their `SHA256SUMS`, `variants.list`,
//! `parameters.list`, and each disk bundle's kernel and initrd under
//! `boot/DIGEST/`), the sync that brings a published directory to every
//! node, and the five actions. Not owned: reading and verifying bundles
//! (bundle/read.rs), the safe unpack (pack.rs), the per-machine edits
//! (seed.rs, access.rs, params.rs), the signed list (sums.rs, sign.rs,
//! fetch.rs).
//!
//! Ganeti runs the scripts with a cleaned environment (its own variables
//! and PATH only), as root, on the instance's primary node; what they print
//! goes to the instance's OS log (`/var/log/ganeti/os/`), so nothing here
//! prints a parameter's value.

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::disk;
use super::seed;
use crate::access::RootLogin;
use crate::bundle::{self, Check, HashTee, ReadOptions};
use crate::error::{Error, IoContext, Result};
use crate::exec::{Cmd, Report};
use crate::files::{CopyingReader, Output};
use crate::lock::{Lock, Mode};
use crate::params::{self, Param};
use crate::sums::{self, Sums};

/// The OS definition's name, as Ganeti knows it (`mkve+VARIANT`).
pub const OS_NAME: &str = "mkve";
/// The OS parameter that sets root's password (secret: give it with
/// `--os-parameters-secret`); no template parameter may be named so.
pub const ROOT_PASSWORD: &str = "mkve-root-password";
/// The OS parameter holding root's SSH public keys, one a line.
pub const SSH_KEYS: &str = "mkve-ssh-keys";
/// Ganeti's ssconf directory: which nodes the cluster has.
const SSCONF: &str = "/var/lib/ganeti";

/// `$MKVE_STATEDIR/ganeti`: this node's copy of the variants.
pub fn state_dir() -> PathBuf {
    crate::paths::statedir().join("ganeti")
}

fn bundles_dir() -> PathBuf {
    state_dir().join("bundles")
}

/// Where a disk bundle's kernel and initrd are, by its root's digest: the
/// same path on every node, for the instance's `kernel_path` and
/// `initrd_path`.
pub fn boot_dir(digest: &str) -> PathBuf {
    state_dir().join("boot").join(digest)
}

/// The lock the sync takes exclusively and the actions shared.
fn lock(mode: Mode) -> Result<Lock> {
    let path = state_dir().join(".lock");
    Lock::at(&path, mode, true)?
        .ok_or_else(|| Error::create(&path, std::io::Error::other("lock not taken")))
}

/// What the OS definition's scripts ask mkve-vm to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OsAction {
    Create,
    Verify,
    Import,
    Export,
    Rename,
}

impl OsAction {
    pub const NAMES: [&'static str; 5] = ["create", "verify", "import", "export", "rename"];
}

impl std::str::FromStr for OsAction {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "create" => OsAction::Create,
            "verify" => OsAction::Verify,
            "import" => OsAction::Import,
            "export" => OsAction::Export,
            "rename" => OsAction::Rename,
            _ => {
                return Err(format!(
                    "\"{s}\" is not an OS action ({})",
                    OsAction::NAMES.join(", ")
                ))
            }
        })
    }
}

/// The variables Ganeti gives a script (ganeti-os-interface(7)).
struct Env(BTreeMap<String, String>);

impl Env {
    fn from_process() -> Result<Env> {
        let mut vars = BTreeMap::new();
        for (k, v) in std::env::vars_os() {
            let (Some(k), Some(v)) = (k.to_str(), v.to_str()) else {
                continue;
            };
            vars.insert(k.to_string(), v.to_string());
        }
        Ok(Env(vars))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn need(&self, name: &str) -> Result<&str> {
        self.get(name).ok_or_else(|| {
            Error::Usage(format!(
                "${name} is not set: mkve-vm __ganeti-os is run by Ganeti's node daemon for the OS {OS_NAME} (ganeti-os-interface(7))"
            ))
        })
    }

    /// The variant asked for (`OS_VARIANT`), checked as a name.
    fn variant(&self) -> Result<String> {
        let v = self.get("OS_VARIANT").ok_or_else(|| {
            Error::Usage(format!(
                "no variant given: name one of the bundles synced to the cluster, as {OS_NAME}+NAME (gnt-os info {OS_NAME})"
            ))
        })?;
        check_variant(v).map_err(Error::Usage)?;
        Ok(v.to_string())
    }

    /// The OS parameters given (`OSP_NAME`), by Ganeti's name (`-` for
    /// `_`, lower case; mkve's own as they are spelled).
    fn os_params(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .filter_map(|(k, v)| {
                let n = k.strip_prefix("OSP_")?.to_ascii_lowercase();
                let name = match n.as_str() {
                    "mkve_root_password" => ROOT_PASSWORD.to_string(),
                    "mkve_ssh_keys" => SSH_KEYS.to_string(),
                    _ => n,
                };
                Some((name, v.clone()))
            })
            .collect()
    }
}

/// Whether `v` may be a variant: `[a-z0-9][a-z0-9._-]*`, at most 64
/// bytes (a bundle's file name in a published directory, without `.bun`).
pub fn check_variant(v: &str) -> std::result::Result<(), String> {
    let mut b = v.bytes();
    let ok = v.len() <= 64
        && b.next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{v}\" is not a variant name ([a-z0-9][a-z0-9._-]*, at most 64 bytes)"
        ))
    }
}

/// The bundle file a variant is on this node.
fn bundle_of(variant: &str) -> PathBuf {
    bundles_dir().join(format!("{variant}.bun"))
}

/// Variant `variant`'s bundle on this node, read to its `conf/` (its
/// signature and digests checked), and its path. Errors: its file (74), a
/// bundle that does not verify (65).
fn read_variant(variant: &str) -> Result<(PathBuf, bundle::ReadResult)> {
    let path = bundle_of(variant);
    let keyring = keyring();
    let got = bundle::read(
        std::fs::File::open(&path).at(&path)?,
        &path,
        &read_options(Check::Conf, None, &keyring),
    )?;
    Ok((path, got))
}

/// This node's list of its variants' bundles (empty before a sync).
fn local_list() -> Result<Sums> {
    let path = bundles_dir().join(sums::FILE);
    match std::fs::read(&path) {
        Ok(t) => Sums::parse(&t, &path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Sums::new()),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// The sha256 of variant `variant`'s bundle on this node. Errors: not
/// synced here (69).
fn local_sha256(variant: &str) -> Result<String> {
    local_list()?
        .get(&format!("{variant}.bun"))
        .filter(|_| bundle_of(variant).is_file())
        .map(str::to_string)
        .ok_or_else(|| Error::Unavailable {
            what: format!("variant {variant}"),
            why: format!(
                "not on this node ({}): bring the published directory to every node with mkve-vm ganeti sync",
                bundles_dir().display()
            ),
        })
}

/// Run what Ganeti asked (`mkve-vm __ganeti-os ACTION`).
pub fn os_action(action: OsAction, report: &dyn Report) -> Result<()> {
    let env = Env::from_process()?;
    match action {
        OsAction::Verify => verify(&env),
        OsAction::Create => create(&env, report),
        OsAction::Export => export(&env),
        OsAction::Import => import(&env),
        OsAction::Rename => rename(&env, report),
    }
}

/// The keyring bundles are checked against on this node.
fn keyring() -> PathBuf {
    crate::paths::default_keyring()
}

fn read_options<'a>(
    check: Check,
    unpack_to: Option<&'a Path>,
    keyring: &'a Path,
) -> ReadOptions<'a> {
    ReadOptions {
        keyring: Some(keyring),
        require_signature: true,
        allow_unsigned: false,
        check,
        unpack_to,
        skip_root: None,
    }
}

/// The template parameters given (every OS parameter but mkve's own), in
/// params.rs's form.
fn template_params(env: &Env) -> Vec<(String, String)> {
    env.os_params()
        .into_iter()
        .filter(|(n, _)| n != ROOT_PASSWORD && n != SSH_KEYS)
        .collect()
}

/// Root's password and keys from mkve's own OS parameters.
fn access_of(env: &Env) -> Result<RootLogin> {
    let given = env.os_params();
    let pw = given.get(ROOT_PASSWORD);
    let keys = given.get(SSH_KEYS);
    RootLogin::from_texts(
        pw.map(|p| (Path::new(ROOT_PASSWORD), p.as_str())),
        keys.map(|k| (Path::new(SSH_KEYS), k.as_str())),
    )
}

/// `verify parameters`: the variant is here and the same on every node,
/// its signature holds, and the parameters given are those it declares,
/// its required ones given, in params.rs's words.
fn verify(env: &Env) -> Result<()> {
    let variant = env.variant()?;
    let _lock = lock(Mode::Shared)?;
    let sha = local_sha256(&variant)?;
    let (path, got) = read_variant(&variant)?;
    let declared = got.declared_params(&path)?;
    params::resolve(&declared, &template_params(env), &label(&variant))?;
    access_of(env)?;
    same_on_every_node(&variant, &sha)
}

fn label(variant: &str) -> String {
    format!("{OS_NAME}+{variant}")
}

/// NIC 0 as Ganeti gives it: the address from the network's pool (or
/// given), the network's prefix length and gateway, the MAC.
struct Nic {
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
    mac: Option<String>,
}

fn nic0(env: &Env) -> Result<Option<Nic>> {
    let Some(ip) = env.get("NIC_0_IP") else {
        return Ok(None);
    };
    let bad = |what: &str, v: &str| Error::Usage(format!("{what}: \"{v}\" is not an address"));
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad("NIC_0_IP", ip))?;
    let prefix = match env.get("NIC_0_NETWORK_SUBNET") {
        Some(s) => s
            .split_once('/')
            .and_then(|(_, p)| p.parse::<u8>().ok())
            .filter(|p| *p <= 32)
            .ok_or_else(|| bad("NIC_0_NETWORK_SUBNET", s))?,
        None => 24,
    };
    let gateway = match env.get("NIC_0_NETWORK_GATEWAY") {
        Some(g) => Some(g.parse().map_err(|_| bad("NIC_0_NETWORK_GATEWAY", g))?),
        None => None,
    };
    let mac = env
        .get("NIC_0_MAC")
        .filter(|m| m.len() == 17 && m.bytes().all(|c| c.is_ascii_hexdigit() || c == b':'))
        .map(str::to_string);
    Ok(Some(Nic {
        ip,
        prefix,
        gateway,
        mac,
    }))
}

/// The instance's name, as its host name: letters, digits, `-` and `.`.
fn host_name(env: &Env, var: &str) -> Result<String> {
    let n = env.need(var)?;
    let ok = n.len() <= 253
        && !n.starts_with(['-', '.'])
        && n.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.');
    if !ok {
        return Err(Error::Usage(format!(
            "{var}: \"{n}\" is not a host name (letters, digits, - and .)"
        )));
    }
    Ok(n.to_string())
}

/// The first disk's path. Errors: the instance has none, or it is reached
/// only through a userspace URI.
fn disk0(env: &Env) -> Result<PathBuf> {
    if env.get("DISK_COUNT") == Some("0") {
        return Err(Error::Usage(
            "the instance has no disk: give it one (--disk 0:size=…)".into(),
        ));
    }
    Ok(PathBuf::from(env.need("DISK_0_PATH")?))
}

/// The size of the file or block device at `path`, in bytes.
fn size_of(path: &Path) -> Result<u64> {
    let mut f = std::fs::File::open(path).at(path)?;
    f.seek(std::io::SeekFrom::End(0)).at(path)
}

/// `create`: the variant's bundle verified against this node's keyring and
/// unpacked (the safe unpack), the machine's data applied to its root
/// (host name, NIC 0's address, root's password and keys, the template's
/// parameters, secret ones 0600), and the root written onto disk 0 as ext4
/// without mounting it. The bundle's kernel and initrd are (already) in
/// `boot/DIGEST/`, where the instance's `kernel_path` and `initrd_path`
/// point.
fn create(env: &Env, report: &dyn Report) -> Result<()> {
    let variant = env.variant()?;
    let name = host_name(env, "INSTANCE_NAME")?;
    let disk = disk0(env)?;
    let nic = nic0(env)?;
    let access = access_of(env)?;
    let given = template_params(env);
    let sha = {
        let _lock = lock(Mode::Shared)?;
        local_sha256(&variant)?
    };
    same_on_every_node(&variant, &sha)?;
    let _lock = lock(Mode::Shared)?;
    let path = bundle_of(&variant);
    let label = PathBuf::from(label(&variant));
    let staging = crate::scratch::Scratch::new_in(&state_dir().join("staging"), "create.")?;
    let unpacked = staging.path().join("bundle");
    report.progress(&format!("verifying and unpacking {}", path.display()));
    let keyring = keyring();
    let mut input = HashTee::new(std::fs::File::open(&path).at(&path)?);
    let got = bundle::read(
        &mut input,
        &path,
        &read_options(Check::Digests, Some(&unpacked), &keyring),
    )?;
    if input.finish() != sha {
        return Err(Error::bundle(
            &path,
            "is not the bundle this node's list names: run mkve-vm ganeti sync again",
        ));
    }
    let meta = got.meta;
    if !meta.hypervisor.boots_disk_image() {
        return Err(Error::bundle(&label, not_a_disk_bundle(meta.hypervisor)));
    }
    let lbl = label.to_string_lossy().to_string();
    let values = params::resolve(&params::of_unpacked(&unpacked, &lbl)?, &given, &lbl)?;
    let rootfs = unpacked.join("rootfs");
    let boot = disk::find_boot(&unpacked, &label)?;
    if let Some(digest) = meta.members.get(bundle::ROOTFS) {
        keep_boot(digest, &boot.kernel, &boot.initrd)?;
        check_kernel_path(env, digest, report);
    }
    let resolver = nic
        .as_ref()
        .and_then(|n| n.gateway)
        .unwrap_or(Ipv4Addr::LOCALHOST);
    seed::Data {
        access: &access,
        params: &values,
        name: &name,
        resolver,
        label: &label,
    }
    .apply(&rootfs)?;
    if let Some(n) = &nic {
        write_network(&rootfs, n)?;
    }
    let size = size_of(&disk)?;
    let least = disk::least_bytes(disk::root_bytes(&rootfs));
    if size < least {
        return Err(Error::create(
            &disk,
            std::io::Error::other(format!(
                "{} MiB is too small for the root of {lbl}: it needs at least {} MiB (--disk 0:size=…)",
                size >> 20,
                least >> 20
            )),
        ));
    }
    report.progress(&format!(
        "writing the root onto {} ({} MiB)",
        disk.display(),
        size >> 20
    ));
    disk::mkfs_ext4(&rootfs, &disk, "mkve-root", true, report)?;
    report.progress(&format!(
        "{name}: {lbl} ({} {}) written{}",
        meta.template.name,
        meta.template.version,
        nic.map(|n| format!(", address {}/{}", n.ip, n.prefix))
            .unwrap_or_default()
    ));
    Ok(())
}

fn not_a_disk_bundle(hv: crate::hypervisor::Hypervisor) -> String {
    format!(
        "is a bundle for {hv}: a Ganeti instance boots a disk image (a bundle for qemu, kvm or xen); keep {} machines on mkve's own nodes",
        hv.title()
    )
}

/// Say so when the instance does not boot its bundle's own kernel (its
/// `kernel_path` is another): it may not fit the root.
fn check_kernel_path(env: &Env, digest: &str, report: &dyn Report) {
    let want = boot_dir(digest).join("vmlinuz");
    match env.get("INSTANCE_HV_kernel_path") {
        Some(k) if Path::new(k) == want => {}
        Some(k) => report.warning(&format!(
            "the instance boots {k}, not its bundle's kernel: give it -H kvm:kernel_path={},initrd_path={}",
            want.display(),
            boot_dir(digest).join("initrd.img").display()
        )),
        None => {}
    }
}

/// Copy a disk bundle's kernel and initrd into `boot/DIGEST/` once (a
/// directory made beside and renamed into place).
fn keep_boot(digest: &str, kernel: &Path, initrd: &Path) -> Result<()> {
    let dir = boot_dir(digest);
    if dir.join("vmlinuz").is_file() && dir.join("initrd.img").is_file() {
        return Ok(());
    }
    let parent = state_dir().join("boot");
    let tmp = crate::scratch::Scratch::new_in(&parent, ".new.")?;
    for (from, to) in [(kernel, "vmlinuz"), (initrd, "initrd.img")] {
        let dest = tmp.path().join(to);
        std::fs::copy(from, &dest).map_err(|e| Error::create(&dest, e))?;
        std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .at(&dest)?;
    }
    let _ = std::fs::remove_file(tmp.path().join(".lock"));
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .at(tmp.path())?;
    match std::fs::rename(tmp.path(), &dir) {
        Ok(()) => {
            tmp.keep();
            Ok(())
        }
        // Another create or sync put it there meanwhile.
        Err(_) if dir.join("vmlinuz").is_file() => Ok(()),
        Err(e) => Err(Error::create(&dir, e)),
    }
}

/// A file in the root, written as a new regular file (what is at its
/// place, a symbolic link included, is replaced, not followed), its
/// directory made if missing.
fn put(root: &Path, rel: &str, text: &str) -> Result<()> {
    let rel = Path::new(rel);
    let parent = rel.parent().unwrap_or(Path::new(""));
    let dir = crate::hooks::resolve_in_root(root, &Path::new("/").join(parent))?;
    std::fs::create_dir_all(&dir).map_err(|e| Error::create(&dir, e))?;
    let Some(file) = rel.file_name() else {
        return Ok(());
    };
    let path = dir.join(file);
    if let Ok(m) = std::fs::symlink_metadata(&path) {
        if m.is_dir() {
            return Err(Error::create(
                &path,
                std::io::Error::other("is a directory"),
            ));
        }
        std::fs::remove_file(&path).at(&path)?;
    }
    std::fs::write(&path, text).map_err(|e| Error::create(&path, e))?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).at(&path)
}

/// NIC 0's address, written where the root looks for it: always
/// `/etc/mkve/network` (KEY=VALUE lines, mkve-vm(1)); a systemd-networkd
/// unit that comes before the template's DHCP one (hook 03-network-dhcp);
/// else ifupdown's interfaces, when the root has them.
fn write_network(root: &Path, n: &Nic) -> Result<()> {
    let gw = n.gateway.map(|g| g.to_string()).unwrap_or_default();
    put(
        root,
        "etc/mkve/network",
        &format!(
            "# NIC 0 as Ganeti gave it (mkve's Ganeti OS definition, mkve-vm(1))\naddress={}\nprefix={}\ngateway={gw}\nmac={}\n",
            n.ip,
            n.prefix,
            n.mac.as_deref().unwrap_or("")
        ),
    )?;
    let networkd = [
        "etc/systemd/network",
        "lib/systemd/network",
        "usr/lib/systemd/network",
    ]
    .iter()
    .any(|d| root.join(d).is_dir());
    if networkd {
        let matching = match &n.mac {
            Some(m) => format!("MACAddress={m}"),
            None => "Name=en* eth*".into(),
        };
        let route = n
            .gateway
            .map(|g| format!("Gateway={g}\nDNS={g}\n"))
            .unwrap_or_default();
        put(
            root,
            "etc/systemd/network/40-mkve-ganeti.network",
            &format!(
                "[Match]\n{matching}\n\n[Network]\nAddress={}/{}\n{route}",
                n.ip, n.prefix
            ),
        )?;
    } else if root.join("etc/network/interfaces").is_file() {
        let route = n
            .gateway
            .map(|g| format!("    gateway {g}\n"))
            .unwrap_or_default();
        put(
            root,
            "etc/network/interfaces",
            &format!(
                "auto lo\niface lo inet loopback\n\nallow-hotplug eth0\niface eth0 inet static\n    address {}/{}\n{route}",
                n.ip, n.prefix
            ),
        )?;
    }
    Ok(())
}

/// `export`: the disk, raw, to stdout; its size told first on
/// `EXP_SIZE_FD` when Ganeti gives one.
fn export(env: &Env) -> Result<()> {
    let disk = PathBuf::from(
        env.need("EXPORT_DISK_PATH")
            .or_else(|_| env.need("EXPORT_DEVICE"))?,
    );
    let size = size_of(&disk)?;
    if let Some(fd) = env.get("EXP_SIZE_FD").and_then(|f| f.parse::<i32>().ok()) {
        let path = PathBuf::from(format!("/proc/self/fd/{fd}"));
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&path) {
            let _ = writeln!(f, "{size}");
        }
    }
    let mut f = std::fs::File::open(&disk).at(&disk)?;
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut f, &mut out).map_err(|e| Error::io(&disk, e))?;
    out.flush().map_err(|e| Error::io("(stdout)", e))
}

/// `import`: what `export` wrote, from stdin onto the disk. Errors: more
/// bytes than the disk holds.
fn import(env: &Env) -> Result<()> {
    let disk = PathBuf::from(
        env.need("IMPORT_DISK_PATH")
            .or_else(|_| env.need("IMPORT_DEVICE"))?,
    );
    let size = size_of(&disk)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&disk)
        .map_err(|e| Error::create(&disk, e))?;
    let mut input = std::io::stdin().lock().take(size + 1);
    let n = std::io::copy(&mut input, &mut f).map_err(|e| Error::create(&disk, e))?;
    if n > size {
        return Err(Error::create(
            &disk,
            std::io::Error::other(format!(
                "the image is larger than the disk ({} MiB)",
                size >> 20
            )),
        ));
    }
    f.sync_all().map_err(|e| Error::create(&disk, e))
}

/// `rename`: the new name in the disk's /etc/hostname and /etc/hosts,
/// written with debugfs (mkve_core::image), nothing mounted.
fn rename(env: &Env, report: &dyn Report) -> Result<()> {
    let name = host_name(env, "INSTANCE_NAME")?;
    let disk = disk0(env)?;
    let mut image = crate::image::Image::open(&disk, crate::image::Access::ReadWrite, report)?;
    let hosts_path = Path::new("/etc/hosts");
    let old = match image.stat(hosts_path)? {
        Some(_) => String::from_utf8_lossy(&image.read(hosts_path)?).into_owned(),
        None => String::new(),
    };
    for (path, text) in [
        ("/etc/hostname", format!("{name}\n")),
        ("/etc/hosts", crate::access::hosts_naming(&old, &name)),
    ] {
        let path = Path::new(path);
        let like = image.stat(path)?.unwrap_or(crate::image::Entry {
            path: path.to_path_buf(),
            kind: crate::image::FileKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            target: None,
            rdev: None,
        });
        image.write_file(path, &mut text.as_bytes(), &like, report)?;
    }
    image.close()
}

// --- the nodes -----------------------------------------------------------

/// This node's name as Ganeti's ssconf has it: the entry of `online_nodes`
/// that is the host name, or starts with it and a dot.
fn this_node(names: &[String]) -> Option<String> {
    // The UTS namespace's, as hostname(1) says it.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let host = host.trim().to_string();
    names
        .iter()
        .find(|n| **n == host || n.strip_prefix(&host).is_some_and(|r| r.starts_with('.')))
        .or_else(|| {
            names.iter().find(|n| {
                host.strip_prefix(n.as_str())
                    .is_some_and(|r| r.starts_with('.'))
            })
        })
        .cloned()
}

/// The other online nodes of the cluster this node is in (ssconf), none
/// when it is in none.
fn other_nodes() -> Result<Vec<String>> {
    let path = Path::new(SSCONF).join("ssconf_online_nodes");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let me = this_node(&names);
    Ok(names
        .into_iter()
        .filter(|n| Some(n) != me.as_ref())
        .collect())
}

/// ssh to `node` as root, the cluster's way (its keys, no questions).
fn ssh<'r>(node: &str) -> Cmd<'r> {
    Cmd::new("ssh")
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=15",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg(format!("root@{node}"))
}

/// The list of variants' bundles `node` has (empty: none synced there).
fn list_on(node: &str) -> Result<Sums> {
    let path = bundles_dir().join(sums::FILE);
    let out = ssh(node)
        .arg(format!(
            "cat {} 2>/dev/null || true",
            shell_word(&path.to_string_lossy())
        ))
        .what(format!("ssh to node {node}"))
        .output()?;
    if !out.status.success() {
        return Err(Error::Unavailable {
            what: format!("node {node}"),
            why: format!(
                "does not answer over ssh: {}",
                crate::process_error::tail(&out.stderr)
            ),
        });
    }
    Sums::parse(
        &out.stdout,
        Path::new(&format!("{node}:{}", path.display())),
    )
}

fn shell_word(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Refuse a variant whose bundle is not the same (`sha256`) on every other
/// online node of the cluster, naming the node: an instance must be able
/// to move, fail over and be reinstalled there.
fn same_on_every_node(variant: &str, sha256: &str) -> Result<()> {
    let file = format!("{variant}.bun");
    for node in other_nodes()? {
        let theirs = list_on(&node).map_err(|e| match e {
            Error::Unavailable { what, why } => Error::Unavailable {
                what,
                why: format!("{why}; cannot tell whether variant {variant} is the same there"),
            },
            e => e,
        })?;
        match theirs.get(&file) {
            Some(s) if s == sha256 => {}
            Some(s) => {
                return Err(Error::bundle(
                    format!("variant {variant}"),
                    format!(
                        "not the same on node {node} (its bundle's sha256 is {}… there, {}… here): run mkve-vm ganeti sync",
                        &s[..s.len().min(12)],
                        &sha256[..sha256.len().min(12)]
                    ),
                ))
            }
            None => {
                return Err(Error::bundle(
                    format!("variant {variant}"),
                    format!("not on node {node}: run mkve-vm ganeti sync"),
                ))
            }
        }
    }
    Ok(())
}

// --- the sync --------------------------------------------------------------

/// What `sync` brings.
pub struct SyncOptions {
    /// A published directory (`mkve-bundle --publish`), or its http(s) URL.
    pub source: String,
    /// The keyring the list and bundles are checked against; `None`:
    /// mkve's (`trusted.gpg`). Each other node checks them against its own.
    pub keyring: Option<PathBuf>,
    /// Only this node (what the sync runs on each other node).
    pub this_node_only: bool,
}

/// A variant as synced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Variant {
    pub name: String,
    pub template: String,
    pub version: String,
    pub hypervisor: String,
    pub sha256: String,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub params: Vec<Param>,
}

/// What a sync did: the variants now, and the nodes it brought them to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Synced {
    pub variants: Vec<Variant>,
    pub nodes: Vec<String>,
}

/// Where the list and the bundles come from.
enum Source {
    Dir(PathBuf),
    Url(String),
}

impl Source {
    fn of(s: &str) -> Source {
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            Source::Url(s.trim_end_matches('/').to_string())
        } else {
            Source::Dir(PathBuf::from(s))
        }
    }

    fn small(&self, name: &str, max: u64) -> Result<Vec<u8>> {
        match self {
            Source::Dir(d) => {
                let p = d.join(name);
                let f = std::fs::File::open(&p).at(&p)?;
                let mut v = Vec::new();
                f.take(max + 1).read_to_end(&mut v).at(&p)?;
                if v.len() as u64 > max {
                    return Err(Error::bundle(&p, format!("is larger than {max} bytes")));
                }
                Ok(v)
            }
            Source::Url(u) => crate::fetch::get_file(&format!("{u}/{name}"), max),
        }
    }
}

/// Bring the published directory `o.source` to this node and (unless
/// `o.this_node_only`) to every other online node of the cluster: its
/// signed `SHA256SUMS` checked against the keyring, each bundle for a
/// hypervisor that boots a disk verified (signature and digests) as it is
/// copied, its kernel and initrd kept by digest; then, under the lock,
/// the bundles put in place, those no longer listed removed, and
/// `variants.list` and `parameters.list` rewritten. A bundle this node
/// has already (the same sha256) is not copied again.
pub fn sync(o: &SyncOptions, report: &dyn Report) -> Result<Synced> {
    let keyring = o.keyring.clone().unwrap_or_else(keyring);
    let source = Source::of(&o.source);
    let text = source.small(sums::FILE, sums::MAX_BYTES)?;
    let sig = source.small(sums::SIGNATURE, sums::SIGNATURE_MAX_BYTES)?;
    let status = crate::sign::verify_detached(&text, &sig, Some(&keyring))?;
    if !status.is_valid() {
        return Err(Error::signature(
            format!("{}/{}", o.source, sums::SIGNATURE),
            format!("{} (keyring {})", status.describe(), keyring.display()),
        ));
    }
    let list = Sums::parse(&text, Path::new(&format!("{}/{}", o.source, sums::FILE)))?;
    let state = state_dir();
    std::fs::create_dir_all(&state).map_err(|e| Error::create(&state, e))?;
    let staging = crate::scratch::Scratch::new_in(&state, ".sync.")?;
    let before = local_list()?;
    let mut variants = Vec::new();
    let mut new_list = Sums::new();
    for (file, sha) in list.iter() {
        let Some(name) = file.strip_suffix(".bun") else {
            continue;
        };
        if let Err(why) = check_variant(name) {
            report.warning(&format!("{file}: left out: {why}"));
            continue;
        }
        let have = bundle_of(name);
        let (path, fresh) = if before.get(file) == Some(sha) && have.is_file() {
            (have, false)
        } else if let Source::Dir(d) = &source {
            // A node is sent only the variants it lacks, not the bundles
            // the sending node left out; a directory missing a bundle it
            // lists is told.
            if !d.join(file).exists() {
                report.warning(&format!(
                    "{file}: left out: listed in {}, but not there",
                    d.join(sums::FILE).display()
                ));
                continue;
            }
            report.progress(&format!("verifying {file}"));
            (staging.path().join(file), true)
        } else {
            report.progress(&format!("verifying {file}"));
            (staging.path().join(file), true)
        };
        match bring(
            &source,
            file,
            sha,
            &path,
            fresh,
            &keyring,
            staging.path(),
            report,
        )? {
            Some(mut v) => {
                v.name = name.to_string();
                new_list.insert(file, sha).map_err(Error::Other)?;
                variants.push((v, path, fresh));
            }
            None => continue,
        }
    }
    // In place, under the lock: the creates read what a sync finished.
    {
        let _lock = lock(Mode::Exclusive)?;
        let dir = bundles_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::create(&dir, e))?;
        for (v, path, fresh) in &variants {
            if *fresh {
                let dest = bundle_of(&v.name);
                std::fs::rename(path, &dest).map_err(|e| Error::create(&dest, e))?;
            }
        }
        for e in std::fs::read_dir(&dir).at(&dir)?.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.ends_with(".bun") && new_list.get(&n).is_none() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        crate::files::write_atomic(&dir.join(sums::FILE), &new_list.to_bytes())?;
        let names: String = variants
            .iter()
            .map(|(v, _, _)| format!("{}\n", v.name))
            .collect();
        crate::files::write_atomic(&state.join("variants.list"), names.as_bytes())?;
        crate::files::write_atomic(
            &state.join("parameters.list"),
            parameters_list(variants.iter().map(|(v, _, _)| v)).as_bytes(),
        )?;
        // Kernels stay: instances of a variant no longer listed may still
        // boot theirs.
    }
    let variants: Vec<Variant> = variants.into_iter().map(|(v, _, _)| v).collect();
    let mut nodes = Vec::new();
    if !o.this_node_only {
        for node in other_nodes()? {
            report.progress(&format!("bringing the variants to node {node}"));
            sync_node(&node, &text, &sig, &variants, report)?;
            nodes.push(node);
        }
    }
    Ok(Synced { variants, nodes })
}

/// One listed bundle: verified while copied to `path` (when `fresh`) or
/// read again where it is, unpacked into `work` to keep its kernel and
/// initrd and read its parameters. `None`: not a bundle a Ganeti instance
/// can boot (told, left out).
#[allow(clippy::too_many_arguments)]
fn bring(
    source: &Source,
    file: &str,
    sha: &str,
    path: &Path,
    fresh: bool,
    keyring: &Path,
    work: &Path,
    report: &dyn Report,
) -> Result<Option<Variant>> {
    let unpacked = work.join(format!("{file}.d"));
    let opts = read_options(Check::Digests, Some(&unpacked), keyring);
    let got = if !fresh {
        bundle::read(std::fs::File::open(path).at(path)?, path, &opts)?
    } else {
        match source {
            Source::Url(u) => {
                let url = crate::fetch::Url::parse(&format!("{u}/{file}"))?;
                let mut out = Output::create(path)?;
                let got = crate::fetch::read(&url, &opts, Some(&mut out), report)?;
                out.commit()?;
                got
            }
            Source::Dir(d) => {
                let from = d.join(file);
                let mut out = Output::create(path)?;
                let mut input = HashTee::new(std::fs::File::open(&from).at(&from)?);
                let mut copy = CopyingReader::new(&mut input, Some(&mut out));
                let read = bundle::read(&mut copy, &from, &opts);
                if let Some(e) = copy.take_write_error() {
                    return Err(e);
                }
                let got = read?;
                copy.finish(&from)?;
                if input.finish() != sha {
                    return Err(Error::signature(
                        &from,
                        format!("its sha256 is not the one {} gives it", sums::FILE),
                    ));
                }
                out.commit()?;
                got
            }
        }
    };
    let hv = got.meta.hypervisor;
    if !hv.boots_disk_image() {
        report.warning(&format!("{file}: left out: {}", not_a_disk_bundle(hv)));
        let _ = crate::scratch::remove_tree(&unpacked);
        if fresh {
            let _ = std::fs::remove_file(path);
        }
        return Ok(None);
    }
    let params = params::of_unpacked(&unpacked, file)?;
    if let Some(p) = params
        .iter()
        .find(|p| p.name.replace('_', "-") == ROOT_PASSWORD || p.name.replace('_', "-") == SSH_KEYS)
    {
        return Err(Error::bundle(
            path,
            format!(
                "declares the parameter {}, which is mkve's own on Ganeti",
                p.name
            ),
        ));
    }
    let boot = disk::find_boot(&unpacked, Path::new(file))?;
    let digest = got
        .meta
        .members
        .get(bundle::ROOTFS)
        .cloned()
        .ok_or_else(|| Error::bundle(path, "has no root"))?;
    keep_boot(&digest, &boot.kernel, &boot.initrd)?;
    crate::scratch::remove_tree(&unpacked).at(&unpacked)?;
    Ok(Some(Variant {
        name: String::new(),
        template: got.meta.template.name.clone(),
        version: got.meta.template.version.clone(),
        hypervisor: hv.to_string(),
        sha256: sha.to_string(),
        kernel: boot_dir(&digest).join("vmlinuz"),
        initrd: boot_dir(&digest).join("initrd.img"),
        params,
    }))
}

/// `parameters.list`: mkve's own parameters, then the union of the
/// variants' template parameters (Ganeti declares parameters per OS, not
/// per variant), each with the first description met.
fn parameters_list<'a>(variants: impl Iterator<Item = &'a Variant>) -> String {
    let mut out = format!(
        "{ROOT_PASSWORD} root's password (secret: --os-parameters-secret)\n{SSH_KEYS} root's SSH public keys, one a line\n"
    );
    let mut seen: Vec<&str> = Vec::new();
    for v in variants {
        for p in &v.params {
            if !seen.contains(&p.name.as_str()) {
                seen.push(&p.name);
                let flags = match (p.required, p.secret) {
                    (true, true) => " (required, secret)",
                    (true, false) => " (required)",
                    (false, true) => " (secret)",
                    _ => "",
                };
                out.push_str(&format!("{} {}{flags}\n", p.name, p.description));
            }
        }
    }
    out
}

/// The variants to `node`: the signed list and the bundles it does not
/// have already copied into a directory there (scp), and its mkve-vm's
/// sync run on that, which checks them against its own keyring.
fn sync_node(
    node: &str,
    text: &[u8],
    sig: &[u8],
    variants: &[Variant],
    report: &dyn Report,
) -> Result<()> {
    let theirs = list_on(node)?;
    let out = ssh(node)
        .args(["mktemp", "-d", "/var/tmp/mkve-ganeti-sync.XXXXXX"])
        .what(format!("ssh to node {node}"))
        .report(report)
        .output_checked()?;
    let remote_dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let result = (|| {
        let here = crate::scratch::Scratch::new_in(&state_dir(), ".send.")?;
        let list = here.path().join(sums::FILE);
        let signature = here.path().join(sums::SIGNATURE);
        std::fs::write(&list, text).map_err(|e| Error::create(&list, e))?;
        std::fs::write(&signature, sig).map_err(|e| Error::create(&signature, e))?;
        let mut files = vec![list, signature];
        for v in variants {
            let file = format!("{}.bun", v.name);
            if theirs.get(&file) != Some(v.sha256.as_str()) {
                files.push(bundle_of(&v.name));
            }
        }
        Cmd::new("scp")
            .args([
                "-q",
                "-B",
                "-o",
                "ConnectTimeout=15",
                "-o",
                "LogLevel=ERROR",
            ])
            .args(&files)
            .arg(format!("root@{node}:{remote_dir}/"))
            .what(format!("scp to node {node}"))
            .report(report)
            .run_checked()?;
        let exe = std::env::current_exe().map_err(|e| Error::io("/proc/self/exe", e))?;
        let out = ssh(node)
            .arg(shell_word(&exe.to_string_lossy()))
            .args(["-q", "ganeti", "sync", "--this-node-only"])
            .arg(shell_word(&remote_dir))
            .what(format!("mkve-vm ganeti sync on node {node}"))
            .output()?;
        if !out.status.success() {
            return Err(Error::Remote {
                node: node.to_string(),
                what: "mkve-vm ganeti sync".into(),
                status: out.status.code().unwrap_or(1),
                detail: format!("\n  {}", crate::process_error::tail(&out.stderr)),
            });
        }
        Ok(())
    })();
    let _ = ssh(node)
        .args(["rm", "-rf", "--one-file-system"])
        .arg(shell_word(&remote_dir))
        .output();
    result
}

/// The probes (`conf/probes`) of variant `variant`'s bundle on this node.
/// Errors: not synced here (69), a bundle that does not verify (65).
pub fn probes_of(variant: &str) -> Result<Vec<crate::probe::Probe>> {
    check_variant(variant).map_err(Error::Usage)?;
    let _lock = lock(Mode::Shared)?;
    local_sha256(variant)?;
    let (path, got) = read_variant(variant)?;
    match got.conf.get(crate::probe::MEMBER) {
        Some(t) => {
            crate::probe::parse(t, &path.join(crate::probe::MEMBER)).map_err(Error::InvalidTemplate)
        }
        None => Ok(Vec::new()),
    }
}

/// The variants this node has, as its last sync left them.
pub fn variants() -> Result<Vec<Variant>> {
    let _lock = lock(Mode::Shared)?;
    let list = local_list()?;
    let mut out = Vec::new();
    for (file, sha) in list.iter() {
        let Some(name) = file.strip_suffix(".bun") else {
            continue;
        };
        let (path, got) = read_variant(name)?;
        let params = got.declared_params(&path)?;
        let digest = got
            .meta
            .members
            .get(bundle::ROOTFS)
            .cloned()
            .unwrap_or_default();
        out.push(Variant {
            name: name.to_string(),
            template: got.meta.template.name.clone(),
            version: got.meta.template.version.clone(),
            hypervisor: got.meta.hypervisor.to_string(),
            sha256: sha.to_string(),
            kernel: boot_dir(&digest).join("vmlinuz"),
            initrd: boot_dir(&digest).join("initrd.img"),
            params,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_names() {
        assert!(check_variant("ntp-server").is_ok());
        assert!(check_variant("busybox.2").is_ok());
        for bad in ["", "-x", "a+b", "A", "a/b", &"x".repeat(65)] {
            assert!(check_variant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn os_parameters_come_back_by_their_names() {
        let mut m = BTreeMap::new();
        m.insert("OSP_GREETING".into(), "hi".into());
        m.insert("OSP_ADMIN_PASSWORD".into(), "s".into());
        m.insert("OSP_MKVE_ROOT_PASSWORD".into(), "pw".into());
        m.insert("OS_VARIANT".into(), "svc".into());
        let env = Env(m);
        let p = env.os_params();
        assert_eq!(p.get("greeting").map(String::as_str), Some("hi"));
        assert_eq!(p.get("admin_password").map(String::as_str), Some("s"));
        assert_eq!(p.get(ROOT_PASSWORD).map(String::as_str), Some("pw"));
        assert_eq!(template_params(&env).len(), 2);
        assert_eq!(env.variant().unwrap(), "svc");
    }

    #[test]
    fn the_parameters_list_is_the_union() {
        let p = |n: &str, d: &str| Param {
            name: n.into(),
            required: n == "b",
            secret: false,
            default: None,
            description: d.into(),
        };
        let v = |params| Variant {
            name: "v".into(),
            template: "t".into(),
            version: "1".into(),
            hypervisor: "qemu".into(),
            sha256: String::new(),
            kernel: PathBuf::new(),
            initrd: PathBuf::new(),
            params,
        };
        let a = v(vec![p("a", "first a")]);
        let b = v(vec![p("a", "second a"), p("b", "the b")]);
        let text = parameters_list([a, b].iter());
        assert!(text.starts_with("mkve-root-password "));
        assert!(text.contains("\na first a\n"));
        assert!(!text.contains("second a"));
        assert!(text.contains("\nb the b (required)\n"));
    }

    #[test]
    fn the_network_goes_where_the_root_looks() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("lib/systemd/network")).unwrap();
        // A link planted in the root is replaced, not followed.
        std::fs::create_dir_all(root.join("etc/mkve")).unwrap();
        let outside = d.path().join("outside");
        std::os::unix::fs::symlink(&outside, root.join("etc/mkve/network")).unwrap();
        let n = Nic {
            ip: "10.99.0.3".parse().unwrap(),
            prefix: 24,
            gateway: Some("10.99.0.1".parse().unwrap()),
            mac: Some("aa:00:00:11:22:33".into()),
        };
        write_network(root, &n).unwrap();
        assert!(!outside.exists());
        let t = std::fs::read_to_string(root.join("etc/mkve/network")).unwrap();
        assert!(
            t.contains("address=10.99.0.3\nprefix=24\ngateway=10.99.0.1\n"),
            "{t}"
        );
        let u = std::fs::read_to_string(root.join("etc/systemd/network/40-mkve-ganeti.network"))
            .unwrap();
        assert!(u.contains("MACAddress=aa:00:00:11:22:33"), "{u}");
        assert!(u.contains("Address=10.99.0.3/24\nGateway=10.99.0.1"), "{u}");
    }
}
