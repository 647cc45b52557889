//! Machines made from bundles (mkve-vm(1)): create, start, stop, delete,
//! list. A machine is a libvirt domain carrying mkve's record in its
//! metadata, plus `$MKVE_STATEDIR/vms/ID/` holding its root or disk, plus
//! its DHCP entry in the mkve network. Creating verifies the bundle before
//! anything is made, and a failed create undoes everything it made.

use std::path::PathBuf;

use serde::Serialize;
use virt::connect::Connect;
use virt::domain::Domain;

use crate::access::Access;
use crate::bundle::{self, Check, ReadOptions};
use crate::error::{Error, IoContext, Result};
use crate::exec::progress;
use crate::files;
use crate::ids;
use crate::libvirt::{self, domain, failed, network};
use crate::net::{mac_of, NetConfig};
use crate::template::Hypervisor;

/// The libvirt URI a hypervisor's machines live on by default.
pub fn default_uri(h: Hypervisor) -> &'static str {
    match h {
        Hypervisor::Qemu | Hypervisor::Kvm => "qemu:///system",
        Hypervisor::Lxc => "lxc:///",
        Hypervisor::Openvz => "openvz:///system",
        Hypervisor::Xen => "xen:///system",
    }
}

pub struct CreateOptions {
    pub bundle: PathBuf,
    pub hypervisor: Option<Hypervisor>,
    pub id: Option<u32>,
    pub name: Option<String>,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub cpu_shares: Option<u32>,
    pub blkio_weight: Option<u32>,
    pub vnc: bool,
    pub connect: Option<String>,
    pub keyring: Option<PathBuf>,
    pub allow_unsigned: bool,
    pub start: bool,
    /// Root's password and SSH keys to set before the first boot.
    pub access: Access,
    /// The disk image's format for qemu, kvm and xen.
    pub disk_format: DiskFormat,
}

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
    pub fn name(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        }
    }

    fn file(self) -> &'static str {
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

/// Everything a create made so far; dropped without `keep`, it is undone.
struct Undo<'c> {
    conn: &'c Connect,
    net: &'c NetConfig,
    dir: Option<PathBuf>,
    domain: Option<Domain>,
    host: Option<u32>,
    file: Option<PathBuf>,
}

impl Undo<'_> {
    fn keep(mut self) {
        self.dir = None;
        self.domain = None;
        self.host = None;
        self.file = None;
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if let Some(d) = self.domain.take() {
            let _ = d.destroy();
            let _ = d.undefine();
        }
        if let Some(id) = self.host.take() {
            let _ = network::remove_host(self.conn, self.net, id);
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(f) = self.file.take() {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// `$MKVE_STATEDIR/vms`, made absolute: its paths go into domain XML,
/// which libvirt reads from its own working directory.
fn vms_dir() -> PathBuf {
    let dir = crate::paths::statedir().join("vms");
    if dir.is_relative() {
        if let Ok(cwd) = std::env::current_dir() {
            return cwd.join(dir);
        }
    }
    dir
}

/// A thread doing work on the side, joined when dropped.
struct Background(Option<std::thread::JoinHandle<()>>);

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}

/// The prefix of the directories bundles are unpacked into, in `vms/`.
const STAGING: &str = ".new.";

/// Remove the staging directories of creates that were killed: those no
/// create holds the lock of, and older than a minute (a create makes its
/// directory a moment before it locks it).
fn sweep_staging(vms: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(vms) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let old = e
            .metadata()
            .ok()
            .filter(|m| m.is_dir())
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() >= 60);
        if !old || !name.to_string_lossy().starts_with(STAGING) {
            continue;
        }
        let lock =
            crate::lock::Lock::at(&e.path().join(".lock"), crate::lock::Mode::Exclusive, false);
        if let Ok(Some(_held)) = lock {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Create a machine from a bundle; return its ID.
pub fn create(o: &CreateOptions) -> Result<u32> {
    if let Some(hv) = o.hypervisor {
        // Told before the bundle is read, when it can be.
        check_name(o, hv)?;
        check_node(hv)?;
    }
    let vms = vms_dir();
    std::fs::create_dir_all(&vms).map_err(|e| Error::create(&vms, e))?;
    // Verify and unpack first: nothing is made from a bundle that fails.
    sweep_staging(&vms);
    let staging = tempfile::Builder::new()
        .prefix(STAGING)
        .tempdir_in(&vms)
        .map_err(|e| Error::create(&vms, e))?;
    // Held while this create runs: a sweep removes only unlocked ones.
    let _staging_lock = crate::lock::Lock::at(
        &staging.path().join(".lock"),
        crate::lock::Mode::Exclusive,
        true,
    )?;
    let unpacked = staging.path().join("bundle");
    progress("verifying and unpacking the bundle");
    let meta = read_bundle(o, Check::Digests, Some(&unpacked))?;
    let hv = meta.hypervisor;
    check_name(o, hv)?;
    check_node(hv)?;
    let label = files::display_name(&o.bundle);
    o.access.apply(&unpacked.join("rootfs"), &label)?;
    // The root a disk image was made from goes while the domain is
    // defined; joined before this function returns, whichever way.
    let _removing = match hv {
        Hypervisor::Lxc | Hypervisor::Openvz => Background(None),
        Hypervisor::Qemu | Hypervisor::Kvm | Hypervisor::Xen => {
            reachable_by_others(&vms)?;
            make_disk(&unpacked, &label, o.disk_format)?;
            let trash = staging.path().join("made-into-disk");
            let root = unpacked.join("rootfs");
            std::fs::rename(&root, &trash).at(&root)?;
            Background(Some(std::thread::spawn(move || {
                let _ = std::fs::remove_dir_all(trash);
            })))
        }
    };
    let uri = libvirt::uri(o.connect.as_deref(), default_uri(hv));
    let conn = libvirt::connect(&uri)?;
    let net = NetConfig::load()?;
    if !network::status(&conn, &net)?.defined {
        return Err(Error::Unavailable {
            what: format!("network {}", net.name),
            why: format!("not defined on {uri}: run mkve-net create"),
        });
    }

    let _ids = ids::lock()?;
    let used = used_ids(&conn)?;
    let id = match o.id {
        Some(id) if used.contains(&id) => return Err(Error::Usage(format!("ID {id} is taken"))),
        Some(id) if id < ids::first_for(hv) => {
            return Err(Error::Usage(format!(
                "ID {id} is below {}, the first for {hv}",
                ids::first_for(hv)
            )))
        }
        Some(id) => id,
        None => ids::next_free(&used, &net, hv)?,
    };
    net.address_of(id)?; // the ID must fit the network before anything is made
    if hv == Hypervisor::Openvz {
        return create_openvz(o, &conn, &net, &meta, id, &unpacked, _ids);
    }
    let dir = vms.join(id.to_string());
    if dir.exists() {
        // Left by a create that was killed before its domain was defined.
        std::fs::remove_dir_all(&dir).at(&dir)?;
    }
    std::fs::rename(&unpacked, &dir).map_err(|e| Error::create(&dir, e))?;
    // Made as a private temporary directory; qemu runs as its own user and
    // must reach the disk, kernel and initrd inside.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).at(&dir)?;
    let mut undo = Undo {
        conn: &conn,
        net: &net,
        dir: Some(dir.clone()),
        domain: None,
        host: None,
        file: None,
    };

    let spec = spec_for(o, &meta, id, &net, &dir)?;
    let dom = conn
        .define_domain_xml(&define_note(&spec))
        .map_err(|e| failed(format!("defining machine {id} ({})", spec.name), e))?;
    undo.domain = Some(dom);
    finish(undo, id, _ids, o.start)
}

/// The end of every create, once the domain is defined: its DHCP entry,
/// the ID lock let go (the domain now holds the ID), the start when asked;
/// then everything made is kept.
fn finish(mut undo: Undo, id: u32, ids_lock: crate::lock::Lock, start: bool) -> Result<u32> {
    network::add_host(undo.conn, undo.net, id)?;
    undo.host = Some(id);
    drop(ids_lock);
    if start {
        progress(format!("starting machine {id}"));
        undo.domain
            .as_ref()
            .expect("defined before finish")
            .create()
            .map_err(|e| failed(format!("starting machine {id}"), e))?;
    }
    undo.keep();
    Ok(id)
}

/// Refuse `--name` for OpenVZ: vzctl names containers by their ID.
fn check_name(o: &CreateOptions, hv: Hypervisor) -> Result<()> {
    if hv == Hypervisor::Openvz && o.name.is_some() {
        return Err(Error::Usage(
            "--name: OpenVZ containers are named by their ID".into(),
        ));
    }
    Ok(())
}

/// Refuse what this node cannot make for `hv` before anything is made:
/// OpenVZ without vzctl (looked for before OpenVZ is touched at all).
fn check_node(hv: Hypervisor) -> Result<()> {
    if hv == Hypervisor::Openvz && !crate::exec::on_path("vzctl") {
        return Err(Error::Unavailable {
            what: "OpenVZ machines".into(),
            why: "vzctl is not installed on this node".into(),
        });
    }
    Ok(())
}

/// The rest of `create` for OpenVZ (see openvz.rs): the root goes to
/// vzctl's template cache for the define and is removed after it; the
/// bundle's vps.conf defaults and mkve's record go into the container's
/// configuration.
fn create_openvz(
    o: &CreateOptions,
    conn: &Connect,
    net: &NetConfig,
    meta: &bundle::Meta,
    id: u32,
    unpacked: &std::path::Path,
    ids_lock: crate::lock::Lock,
) -> Result<u32> {
    let node = crate::openvz::Node::system();
    let cached = node
        .cache_dir
        .join(format!("{}.tar.gz", crate::openvz::template_name(id)));
    let mut undo = Undo {
        conn,
        net,
        dir: None,
        domain: None,
        host: None,
        file: Some(cached.clone()),
    };
    progress(format!("packing the root into {}", cached.display()));
    let (out, _) = crate::pack::pack_dir_compressed(
        &unpacked.join("rootfs"),
        files::Output::create(&cached)?,
        crate::pack::Compression::Gzip,
        &crate::pack::PackOptions::default(),
    )?;
    out.commit()?;
    let spec = spec_for(o, meta, id, net, unpacked)?;
    let dom = conn
        .define_domain_xml(&define_note(&spec))
        .map_err(|e| failed(format!("defining container {id}"), e))?;
    undo.domain = Some(dom);
    // vzctl has unpacked it: the cache entry is not needed any more.
    if let Some(f) = undo.file.take() {
        let _ = std::fs::remove_file(f);
    }
    let conf = node.conf_of(id);
    let base = std::fs::read_to_string(&conf).at(&conf)?;
    let defaults = match unpacked.join("conf/config") {
        c if c.exists() => {
            let mut problems = Vec::new();
            crate::template::parse_vps_conf(&c, &mut problems)
                .ok_or_else(|| Error::InvalidBundle(problems.remove(0)))?
        }
        _ => Vec::new(),
    };
    let merged = crate::openvz::merge(&base, &defaults, &spec.record);
    let mut out = files::Output::create(&conf)?;
    std::io::Write::write_all(&mut out, merged.as_bytes()).at(&conf)?;
    out.commit()?;
    finish(undo, id, ids_lock, o.start)
}

/// The domain XML of `spec`, told on stderr with -v.
fn define_note(spec: &domain::VmSpec) -> String {
    let x = domain::xml(spec);
    crate::exec::note(format!("defining {}:\n{x}", spec.name));
    x
}

/// Where a machine's root lives, for each hypervisor: the root directory
/// for lxc; a disk image and the kernel and initrd copied out of its /boot
/// for qemu, kvm and xen; a template cache named after the ID for openvz.
fn storage_for(
    hv: Hypervisor,
    dir: &std::path::Path,
    id: u32,
    disk: DiskFormat,
) -> domain::Storage {
    match hv {
        Hypervisor::Lxc => domain::Storage::Dir(dir.join("rootfs")),
        Hypervisor::Openvz => domain::Storage::OpenvzTemplate(crate::openvz::template_name(id)),
        Hypervisor::Qemu | Hypervisor::Kvm | Hypervisor::Xen => domain::Storage::Disk {
            image: dir.join(disk.file()),
            format: disk.name().into(),
            kernel: dir.join("vmlinuz"),
            initrd: Some(dir.join("initrd.img")),
        },
    }
}

fn spec_for(
    o: &CreateOptions,
    meta: &bundle::Meta,
    id: u32,
    net: &NetConfig,
    dir: &std::path::Path,
) -> Result<domain::VmSpec> {
    let hv = meta.hypervisor;
    Ok(domain::VmSpec {
        record: domain::Record {
            id,
            address: net.address_of(id)?,
            template: meta.template.name.clone(),
            version: meta.template.version.clone(),
            bundle: meta
                .members
                .get(bundle::ROOTFS)
                .cloned()
                .unwrap_or_default(),
        },
        name: match (hv, &o.name) {
            (Hypervisor::Openvz, _) => id.to_string(),
            (_, Some(n)) => n.clone(),
            (_, None) => format!("{}-{id}", meta.template.name),
        },
        hypervisor: hv,
        memory_mib: o.memory_mib,
        vcpus: o.vcpus,
        cpu_shares: o.cpu_shares,
        blkio_weight: o.blkio_weight,
        vnc: o.vnc && matches!(hv, Hypervisor::Qemu | Hypervisor::Kvm | Hypervisor::Xen),
        mac: mac_of(id),
        network: net.name.clone(),
        bridge: net.bridge.clone(),
        storage: storage_for(hv, dir, id, o.disk_format),
    })
}

/// Read the bundle of `o`: its signature against the keyring first, then
/// as much as `check` asks, unpacking into `unpack_to`; and refuse it when
/// it is for another hypervisor than `--hypervisor` says.
fn read_bundle(
    o: &CreateOptions,
    check: Check,
    unpack_to: Option<&std::path::Path>,
) -> Result<bundle::Meta> {
    let default_keyring = crate::paths::default_keyring();
    let report = bundle::read(
        files::open_input(&o.bundle)?,
        &files::display_name(&o.bundle),
        &ReadOptions {
            keyring: Some(o.keyring.as_deref().unwrap_or(&default_keyring)),
            require_signature: true,
            allow_unsigned: o.allow_unsigned,
            check,
            unpack_to,
        },
    )?;
    let hv = report.meta.hypervisor;
    if let Some(h) = o.hypervisor.filter(|h| *h != hv) {
        return Err(Error::bundle(
            &o.bundle,
            format!("is a bundle for {hv}, not {h}"),
        ));
    }
    Ok(report.meta)
}

/// The domain XML `create` would define, touching nothing: no ID is
/// taken, no file made. The bundle's signature is checked, its payload not
/// read. The ID is `--id`, or the next free one on the node as it is now.
pub fn print_xml(o: &CreateOptions) -> Result<String> {
    let meta = read_bundle(o, Check::Meta, None)?;
    let hv = meta.hypervisor;
    check_name(o, hv)?;
    let net = NetConfig::load()?;
    let id = match o.id {
        Some(id) => id,
        None => {
            let conn = libvirt::connect(&libvirt::uri(o.connect.as_deref(), default_uri(hv)))?;
            ids::next_free(&used_ids(&conn)?, &net, hv)?
        }
    };
    Ok(domain::xml(&spec_for(
        o,
        &meta,
        id,
        &net,
        &vms_dir().join(id.to_string()),
    )?))
}

/// qemu runs as its own user (libvirt-qemu on Debian): every directory
/// down to the machine's must let others through, or the guest cannot open
/// its disk. Told before the disk is made, not by qemu after.
fn reachable_by_others(dir: &std::path::Path) -> Result<()> {
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

/// Turn an unpacked bundle's `rootfs/` into what a qemu guest boots: the
/// kernel and initrd of its /boot beside it (direct kernel boot), and an
/// ext4 disk image made from the root without mounting anything
/// (`mkfs.ext4 -d`). The caller removes the root directory.
fn make_disk(
    unpacked: &std::path::Path,
    label: &std::path::Path,
    format: DiskFormat,
) -> Result<()> {
    let root = unpacked.join("rootfs");
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
    std::fs::copy(boot.join(&kernel), unpacked.join("vmlinuz")).at(boot.join(&kernel))?;
    let initrd = boot.join(format!("initrd.img-{version}"));
    if initrd.exists() {
        std::fs::copy(&initrd, unpacked.join("initrd.img")).at(&initrd)?;
    } else {
        return Err(Error::bundle(
            label,
            format!("has no initrd.img-{version} in /boot"),
        ));
    }
    // Room for the root and for the machine's own writes: 1.5 times the
    // files plus 512 MiB, at least 1 GiB.
    let used: u64 = walkdir::WalkDir::new(&root)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    let size = (used + used / 2 + (512 << 20)).max(1 << 30);
    let image = unpacked.join("disk.img");
    progress(format!("making a {} MiB disk image", size >> 20));
    let f = std::fs::File::create(&image).map_err(|e| Error::create(&image, e))?;
    f.set_len(size).map_err(|e| Error::create(&image, e))?;
    drop(f);
    crate::exec::Cmd::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "mkve-root", "-d"])
        .arg(&root)
        .arg(&image)
        .run()?;
    if format == DiskFormat::Qcow2 {
        let qcow2 = unpacked.join(DiskFormat::Qcow2.file());
        progress("converting the disk image to qcow2");
        crate::exec::Cmd::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "qcow2"])
            .arg(&image)
            .arg(&qcow2)
            .run()?;
        std::fs::remove_file(&image).at(&image)?;
    }
    Ok(())
}

/// IDs in use on the node: on `conn` and on every other hypervisor's
/// default connection that answers.
fn used_ids(conn: &Connect) -> Result<std::collections::BTreeSet<u32>> {
    let mut used = ids::used_on(conn)?;
    for uri in others() {
        if let Ok(c) = Connect::open(Some(uri)) {
            used.extend(ids::used_on(&c).unwrap_or_default());
        }
    }
    Ok(used)
}

/// The default URIs worth asking besides the one in use. OpenVZ only when
/// vzctl exists (the original probed it without looking, and failed).
fn others() -> Vec<&'static str> {
    let mut v = vec!["lxc:///", "qemu:///system"];
    if crate::exec::on_path("vzctl") {
        v.push("openvz:///system");
    }
    v
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub id: u32,
    pub name: String,
    pub hypervisor: String,
    pub state: String,
    pub address: String,
    pub template: String,
    pub version: String,
    #[serde(skip)]
    pub uri: String,
}

/// Where to look for machines.
#[derive(Debug, Clone)]
pub struct Uris {
    pub list: Vec<String>,
    /// Given by the user: a connection that fails is an error. Defaults
    /// that do not answer (a hypervisor this node lacks) are skipped.
    pub explicit: bool,
}

/// Every mkve machine on `uris`, with its connection and domain.
fn machines(uris: &Uris) -> Result<Vec<(Connect, Domain, Machine)>> {
    let mut out = Vec::new();
    for uri in &uris.list {
        let conn = match libvirt::connect(uri) {
            Ok(c) => c,
            Err(e) if uris.explicit => return Err(e),
            Err(_) => continue,
        };
        for d in conn
            .list_all_domains(0)
            .map_err(|e| failed("listing domains", e))?
        {
            if let Some(m) = machine(&d, uri) {
                // Each domain holds its own reference to the connection.
                out.push((conn.clone(), d, m));
            }
        }
    }
    out.sort_by_key(|(_, _, m)| m.id);
    Ok(out)
}

/// Every mkve machine, by ID.
pub fn list(uris: &Uris) -> Result<Vec<Machine>> {
    Ok(machines(uris)?.into_iter().map(|(_, _, m)| m).collect())
}

fn machine(d: &Domain, uri: &str) -> Option<Machine> {
    let xml = d.xml_desc(0).ok()?;
    let doc = roxmltree::Document::parse(&xml).ok()?;
    let ty = doc
        .root_element()
        .attribute("type")
        .unwrap_or("")
        .to_string();
    let r = record(&xml, &ty, d)?;
    let state = if d.is_active().ok()? {
        "running"
    } else {
        "shut off"
    };
    Some(Machine {
        id: r.id,
        name: d.name().ok()?,
        hypervisor: ty,
        state: state.into(),
        address: r.address.to_string(),
        template: r.template,
        version: r.version,
        uri: uri.to_string(),
    })
}

/// mkve's record of a domain: in its metadata, or for OpenVZ (whose driver
/// forgets metadata when libvirtd restarts) in the container's own
/// configuration.
fn record(xml: &str, ty: &str, d: &Domain) -> Option<domain::Record> {
    domain::record_of(xml).or_else(|| {
        (ty == "openvz")
            .then(|| d.name().ok())
            .flatten()
            .and_then(|n| {
                std::fs::read_to_string(crate::openvz::Node::system().conf_of(n.parse().ok()?)).ok()
            })
            .and_then(|c| crate::openvz::record_from_conf(&c))
    })
}

/// The machine named by `target` (an ID or a name).
pub fn find(uris: &Uris, target: &str) -> Result<(Connect, Domain, Machine)> {
    machines(uris)?
        .into_iter()
        .find(|(_, _, m)| m.id.to_string() == target || m.name == target)
        .ok_or_else(|| Error::Usage(format!("no machine {target}")))
}

pub fn start(uris: &Uris, target: &str) -> Result<()> {
    let (_, d, m) = find(uris, target)?;
    if !d.is_active().map_err(|e| failed(m.id, e))? {
        d.create()
            .map_err(|e| failed(format!("starting machine {}", m.id), e))?;
    }
    Ok(())
}

/// Attach to the machine's console (see console.rs). `force` takes it
/// from another client attached to it.
pub fn console(uris: &Uris, target: &str, force: bool) -> Result<()> {
    let (conn, d, m) = find(uris, target)?;
    if !d.is_active().map_err(|e| failed(m.id, e))? {
        return Err(Error::Unavailable {
            what: format!("machine {}", m.id),
            why: "not running: mkve-vm start it first".into(),
        });
    }
    let stream = virt::stream::Stream::new(&conn, 0).map_err(|e| failed("console", e))?;
    // Only the qemu driver knows SAFE (refuse a console that cannot be
    // used safely); the others refuse the flag itself.
    let mut flags = 0;
    if matches!(m.hypervisor.as_str(), "qemu" | "kvm") {
        flags |= virt::sys::VIR_DOMAIN_CONSOLE_SAFE;
    }
    if force {
        flags |= virt::sys::VIR_DOMAIN_CONSOLE_FORCE;
    }
    d.open_console(None, &stream, flags)
        .map_err(|e| failed(format!("console of machine {}", m.id), e))?;
    crate::console::attach(stream, &format!("machine {} ({})", m.id, m.name))
}

/// Restart the machine.
pub fn reboot(uris: &Uris, target: &str) -> Result<()> {
    let (_, d, m) = find(uris, target)?;
    d.reboot(0)
        .map_err(|e| failed(format!("rebooting machine {}", m.id), e))
}

/// Start the machine with libvirt, or not (`on` false).
pub fn autostart(uris: &Uris, target: &str, on: bool) -> Result<()> {
    let (_, d, m) = find(uris, target)?;
    d.set_autostart(on)
        .map_err(|e| failed(format!("autostart of machine {}", m.id), e))
        .map(drop)
}

/// A machine, with its autostart flag and the bundle's digest.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    #[serde(flatten)]
    pub machine: Machine,
    pub autostart: bool,
    pub bundle: String,
    pub uri: String,
}

pub fn info(uris: &Uris, target: &str) -> Result<Info> {
    let (_, d, m) = find(uris, target)?;
    let xml = d.xml_desc(0).map_err(|e| failed(m.id, e))?;
    let record = domain::record_of(&xml)
        .ok_or_else(|| Error::Other(format!("machine {}: no mkve record", m.id)))?;
    Ok(Info {
        autostart: d.autostart().unwrap_or(false),
        bundle: record.bundle,
        uri: m.uri.clone(),
        machine: m,
    })
}

/// Ask the machine to shut down, or with `force` pull the plug.
pub fn stop(uris: &Uris, target: &str, force: bool) -> Result<()> {
    let (_, d, m) = find(uris, target)?;
    if d.is_active().map_err(|e| failed(m.id, e))? {
        let r = if force { d.destroy() } else { d.shutdown() };
        r.map_err(|e| failed(format!("stopping machine {}", m.id), e))?;
    }
    Ok(())
}

/// Stop, undefine, remove the DHCP entry and the machine's files.
pub fn delete(uris: &Uris, target: &str) -> Result<u32> {
    let (conn, d, m) = find(uris, target)?;
    if d.is_active().map_err(|e| failed(m.id, e))? {
        d.destroy()
            .map_err(|e| failed(format!("stopping machine {}", m.id), e))?;
    }
    d.undefine()
        .map_err(|e| failed(format!("undefining machine {}", m.id), e))?;
    let net = NetConfig::load()?;
    if network::status(&conn, &net)?.defined {
        network::remove_host(&conn, &net, m.id)?;
    }
    let dir = vms_dir().join(m.id.to_string());
    if dir.exists() {
        std::fs::remove_dir_all(&dir).at(&dir)?;
    }
    Ok(m.id)
}

/// The URIs to look for machines on: the one given (or
/// `LIBVIRT_DEFAULT_URI`), else every hypervisor's default that mkve uses
/// on this node.
pub fn uris(given: Option<&str>) -> Uris {
    let env = std::env::var("LIBVIRT_DEFAULT_URI")
        .ok()
        .filter(|u| !u.is_empty());
    match given.map(str::to_string).or(env) {
        Some(u) => Uris {
            list: vec![u],
            explicit: true,
        },
        None => Uris {
            list: others().into_iter().map(str::to_string).collect(),
            explicit: false,
        },
    }
}

/// Whether this node can run one hypervisor's machines now, and if not,
/// why.
#[derive(Debug, Clone, Serialize)]
pub struct Capability {
    pub hypervisor: Hypervisor,
    pub uri: String,
    pub usable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// libvirt's name for each hypervisor's driver (virConnectGetType).
fn driver_type(h: Hypervisor) -> &'static str {
    match h {
        Hypervisor::Qemu | Hypervisor::Kvm => "QEMU",
        Hypervisor::Lxc => "LXC",
        Hypervisor::Openvz => "OpenVZ",
        Hypervisor::Xen => "Xen",
    }
}

/// Check every hypervisor: its libvirt driver answers at its URI (`given`
/// for all, else each one's default), plus what each needs of the node:
/// vzctl for OpenVZ (looked for before OpenVZ is touched at all), /proc/xen
/// for Xen, and for KVM a /dev/kvm that runs a one-instruction guest
/// (`kvm_probe` runs `kvm::answers`).
pub fn doctor(
    given: Option<&str>,
    kvm_probe: impl Fn() -> std::result::Result<(), String>,
) -> Vec<Capability> {
    Hypervisor::ALL
        .into_iter()
        .map(|h| {
            let uri = given
                .map(str::to_string)
                .unwrap_or_else(|| default_uri(h).to_string());
            let why = (|| {
                if h == Hypervisor::Openvz && !crate::exec::on_path("vzctl") {
                    return Some("vzctl is not installed".to_string());
                }
                if h == Hypervisor::Xen && !std::path::Path::new("/proc/xen").exists() {
                    return Some("no Xen: /proc/xen is missing (not a Xen dom0)".to_string());
                }
                let conn = match libvirt::connect(&uri) {
                    Ok(c) => c,
                    Err(e) => return Some(e.to_string()),
                };
                match conn.driver_type() {
                    Ok(t) if t.eq_ignore_ascii_case(driver_type(h)) => {}
                    Ok(t) => {
                        return Some(format!(
                            "the libvirt driver at {uri} is {t}, not {}",
                            driver_type(h)
                        ))
                    }
                    Err(e) => return Some(format!("libvirt ({uri}): {}", e.message())),
                }
                if h == Hypervisor::Kvm {
                    return kvm_probe().err();
                }
                None
            })();
            Capability {
                hypervisor: h,
                uri,
                usable: why.is_none(),
                why,
            }
        })
        .collect()
}

/// `512`, `512M`, `1G`: a size in MiB.
pub fn parse_mib(s: &str) -> std::result::Result<u64, String> {
    let (num, mult) = match s.trim().to_ascii_uppercase() {
        t if t.ends_with('G') => (t.trim_end_matches('G').to_string(), 1024),
        t if t.ends_with('M') => (t.trim_end_matches('M').to_string(), 1),
        t => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(|n| n * mult)
        .ok_or_else(|| format!("\"{s}\" is not a size like 512M or 1G"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_unlocked_staging_directories_are_swept() {
        let vms = tempfile::tempdir().unwrap();
        let make = |name: &str, age_secs: u64| {
            let d = vms.path().join(name);
            std::fs::create_dir_all(d.join("bundle/rootfs")).unwrap();
            let t = std::time::SystemTime::now() - std::time::Duration::from_secs(age_secs);
            std::fs::File::open(&d).unwrap().set_modified(t).unwrap();
            d
        };
        let killed = make(".new.killed", 600);
        let running = make(".new.running", 600);
        let young = make(".new.young", 0);
        let machine = make("100", 600);
        let _held =
            crate::lock::Lock::at(&running.join(".lock"), crate::lock::Mode::Exclusive, true)
                .unwrap();
        sweep_staging(vms.path());
        assert!(!killed.exists(), "a killed create's directory goes");
        assert!(running.exists(), "a running create's stays");
        assert!(young.exists(), "one not yet locked stays");
        assert!(machine.exists(), "machines are not touched");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_mib("512").unwrap(), 512);
        assert_eq!(parse_mib("512M").unwrap(), 512);
        assert_eq!(parse_mib("2g").unwrap(), 2048);
        assert!(parse_mib("lots").is_err());
        assert!(parse_mib("0").is_err());
    }
}
