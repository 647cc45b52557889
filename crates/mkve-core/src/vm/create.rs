//! Bundle → machine. The bundle is verified and unpacked (or its base
//! found, base.rs) before anything is made; the ID is taken under the IDs
//! lock and held by the defined domain; a failed create undoes everything
//! it made (`Undo`).

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use super::base::{self, Base, Kind};
use super::disk::{
    disk_bytes, find_boot, machine_bytes, make_disk, reachable_by_others, DiskFormat,
};
use super::layout::{creating_marker, vms_dir};
use super::plan::{self, Placement};
use super::seed;
use super::spec::{BlkioWeight, CpuShares, DiskSize, MachineName, Memory, Vcpus};
use super::staging::staging;
use super::taken::taken_ids;
use crate::access::RootLogin;
use crate::bundle::{self, Check, ReadOptions};
use crate::error::{Error, IoContext, Result};
use crate::exec::Report;
use crate::files;
use crate::hypervisor::Hypervisor;
use crate::ids::{self, MachineId};
use crate::libvirt::{self, domain, network, Connection, Dom};
use crate::net::{mac_of, NetConfig};
use crate::nodes::Nodes;
use crate::scratch::remove_tree;

/// What `create` makes, every value already checked by its type.
pub struct CreateOptions {
    /// A bundle file, `-` for stdin, or the `http://` or `https://` URL
    /// of a published one (`fetch::Url::of_arg`).
    pub bundle: PathBuf,
    /// Refuse a bundle for another hypervisor.
    pub hypervisor: Option<Hypervisor>,
    pub id: Option<MachineId>,
    pub name: Option<MachineName>,
    /// The machine this create makes again (a restore's): its ID when no
    /// `id` is given and the ID is free on every node and in this node's
    /// range, with its name; else the next free ID, named as `name` says.
    pub again: Option<(MachineId, Option<MachineName>)>,
    pub memory: Memory,
    pub vcpus: Vcpus,
    pub cpu_shares: Option<CpuShares>,
    pub blkio_weight: Option<BlkioWeight>,
    pub vnc: bool,
    pub connect: Option<String>,
    pub keyring: Option<PathBuf>,
    pub allow_unsigned: bool,
    pub start: bool,
    /// Root's password and SSH keys to set before the first boot.
    pub access: RootLogin,
    /// The disk image's format for qemu, kvm and xen; `None`: qcow2 on a
    /// base, raw for a private disk.
    pub disk_format: Option<DiskFormat>,
    /// The disk's size for qemu, kvm and xen; `None`: from the root's.
    pub disk_size: Option<DiskSize>,
    /// The template parameters given (`params::read_given`), checked
    /// against what the bundle declares before anything is made.
    pub params: Vec<(String, String)>,
    /// Make a private root or disk instead of standing on the bundle's
    /// base (base.rs).
    pub no_base: bool,
    /// When mkve.conf lists nodes and one does not answer, go on with the
    /// IDs this node knows of instead of failing (site.rs).
    pub local_ids: bool,
    /// Where the bundle can be had again, recorded as the machine's source:
    /// `Some` when `bundle` is not it (a restore from a base's copy of the
    /// bundle's head: where the backup says, if it says); `None`:
    /// `bundle`'s URL or absolute path.
    pub source: Option<Option<String>>,
}

/// Everything a create made so far; dropped without `keep`, it is undone.
struct Undo<'c> {
    report: &'c dyn Report,
    conn: &'c Connection,
    net: &'c NetConfig,
    /// The machine's directory; an overlay mounted in it goes first.
    dir: Option<PathBuf>,
    domain: Option<Dom>,
    host: Option<u32>,
    file: Option<PathBuf>,
    /// The create-in-progress marker, removed last either way.
    marker: Option<PathBuf>,
}

impl<'c> Undo<'c> {
    fn new(conn: &'c Connection, net: &'c NetConfig, report: &'c dyn Report) -> Self {
        Undo {
            report,
            conn,
            net,
            dir: None,
            domain: None,
            host: None,
            file: None,
            marker: None,
        }
    }

    fn keep(mut self) {
        self.dir = None;
        self.domain = None;
        self.host = None;
        self.file = None;
        if let Some(m) = self.marker.take() {
            let _ = std::fs::remove_file(m);
        }
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if let Some(d) = self.domain.take() {
            d.discard();
        }
        if let Some(id) = self.host.take() {
            let _ = network::remove_host(self.conn, self.net, id, self.report);
        }
        if let Some(dir) = self.dir.take() {
            let _ = super::overlay::remove_machine_dir(&dir);
        }
        if let Some(f) = self.file.take() {
            let _ = std::fs::remove_file(f);
        }
        if let Some(m) = self.marker.take() {
            let _ = std::fs::remove_file(m);
        }
    }
}

/// The base a create made and its staging directory's hold on it
/// (`bundle/base`): dropped set, the create failed, and the base goes
/// unless another machine or create holds it by then ([`base::release`]).
struct MadeBase<'r>(Option<(String, PathBuf, &'r dyn Report)>);

impl Drop for MadeBase<'_> {
    fn drop(&mut self) {
        if let Some((digest, hold, report)) = self.0.take() {
            let _ = std::fs::remove_file(hold);
            if let Err(e) = base::release(&digest, report) {
                report.warning(&format!("base {}: {e}", base::short(&digest)));
            }
        }
    }
}

/// A machine's seed disk, in its directory (seed.rs).
const SEED_DISK: &str = "seed.img";

/// Rename `root` into `staging` out of the way and remove it on a thread
/// of its own, joined when the result is dropped.
fn remove_in_background(staging: &crate::scratch::Scratch, root: &Path) -> Result<Background> {
    let trash = staging.path().join("made-into-disk");
    std::fs::rename(root, &trash).at(root)?;
    Ok(Background(Some(std::thread::spawn(move || {
        let _ = remove_tree(&trash);
    }))))
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

/// Refuse an `--id` the network has no address for, or (once the
/// hypervisor is known) below that hypervisor's first ID.
fn check_id(o: &CreateOptions, hv: Option<Hypervisor>) -> Result<()> {
    let Some(id) = o.id.map(MachineId::get) else {
        return Ok(());
    };
    crate::nodes::network()?.address_of(id)?;
    ids::check_range(id, Nodes::load()?.local_range()?)?;
    match hv {
        Some(hv) if id < hv.first_id() => Err(Error::Usage(format!(
            "ID {id} is below {}, the first for {hv}",
            hv.first_id()
        ))),
        _ => Ok(()),
    }
}

/// Refuse a name for a hypervisor that names machines itself.
fn check_name(o: &CreateOptions, hv: Hypervisor) -> Result<()> {
    if !hv.takes_names() && o.name.is_some() {
        return Err(Error::Usage(format!(
            "--name: {} machines are named by their ID",
            hv.title()
        )));
    }
    Ok(())
}

/// Refuse what `o` cannot make for `hv` on this node, before anything is
/// made: see `check_name`, a disk size for a machine without a disk image,
/// and a hypervisor the node lacks.
fn check(o: &CreateOptions, hv: Hypervisor) -> Result<()> {
    check_name(o, hv)?;
    if o.disk_size.is_some() && !hv.boots_disk_image() {
        return Err(Error::Usage(format!(
            "--disk-size: {} machines have no disk image (their root is a directory)",
            hv.title()
        )));
    }
    if let Some(why) = hv.node_lacks() {
        return Err(Error::Unavailable {
            what: format!("{} machines", hv.title()),
            why,
        });
    }
    Ok(())
}

/// The base a create's machine is to stand on, decided once the bundle's
/// signature holds (plan.rs), with the base's lock held from then until
/// the machine's directory names the base.
struct Held {
    placement: Placement,
    /// The base found on the node (`Placement::OnBase`).
    found: Option<Base>,
    digest: String,
    lock: crate::lock::Lock,
}

/// Create a machine from a bundle; return its ID.
pub fn create(o: &CreateOptions, report: &dyn Report) -> Result<MachineId> {
    create_with(o, report, &mut |_, _| Ok(()))
}

/// [`create`], with `finish` run on the defined machine (its domain and
/// directory) before it is started and kept: while the machine's lock and
/// the create's marker are held, so that a `finish` that fails undoes the
/// create like any of its steps, and one killed leaves what the next
/// create's sweep undoes (a restore lays a backup's files this way).
pub(super) fn create_with(
    o: &CreateOptions,
    report: &dyn Report,
    finish: &mut dyn FnMut(&Dom, &Path) -> Result<()>,
) -> Result<MachineId> {
    // Told before the bundle is read, as far as they can be.
    check_id(o, o.hypervisor)?;
    if let Some(hv) = o.hypervisor {
        check(o, hv)?;
    }
    // When mkve.conf lists nodes: this node's range, and the IDs held on
    // the others (a machine that moved keeps its ID), asked once before
    // anything is made: the ranges are disjoint, so only a migration
    // changes what another node holds of this one's range, and a
    // migration never lands on an ID its target holds.
    let nodes = Nodes::load()?;
    let range = nodes.local_range()?;
    let elsewhere =
        super::taken::used_elsewhere(&nodes, &crate::nodes::network()?, o.local_ids, report)?;
    let vms = vms_dir();
    // Verify and unpack first: nothing is made from a bundle that fails.
    let staging = staging(&vms)?;
    let unpacked = staging.path().join("bundle");
    let mut v = verify(o, &unpacked, report)?;
    let hv = v.meta.hypervisor;
    let rootfs = unpacked.join("rootfs");
    let mut boot = None;
    if hv.boots_disk_image() {
        reachable_by_others(&vms)?;
        if v.plan.private_disk {
            boot = Some((
                find_boot(&unpacked, &v.label)?,
                disk_bytes(&unpacked, o.disk_size)?,
            ));
        }
    }
    // The root a disk image was made from goes while the domain is
    // defined (`removing`); joined before this function returns, whichever
    // way. A base this create made goes again if the create fails.
    let (base, mut removing, mut made_base) =
        hold_base(&mut v, o.disk_size, &staging, &unpacked, report)?;
    // A signal caught (a create from a URL: interrupt.rs) stops the create
    // at the next of these checks, and what it made is undone.
    let stop = || crate::interrupt::check(&v.label.to_string_lossy());
    let disk_size = match &base {
        Some(b) if hv.boots_disk_image() => Some(machine_bytes(b.record.root_bytes, o.disk_size)?),
        _ => None,
    };
    let (conn, net) = connect_with_network(o, hv)?;
    stop()?;
    let (id, _machine_lock) = claim_id(o, hv, &conn, &net, &elsewhere, range, report)?;
    // Until the machine is whole, this marker says a create is making it:
    // if this process is killed, the next create undoes what it made.
    // Owned by the undo at once: a create refused from here on (a bad
    // name, a seed that cannot be made) leaves no marker, only a killed
    // one does.
    let mut undo = Undo::new(&conn, &net, report);
    let marker = creating_marker(&vms, id);
    std::fs::write(&marker, b"").map_err(|e| Error::create(&marker, e))?;
    undo.marker = Some(marker);
    let name = machine_name(o, &v.meta, id)?;
    let data = seed::Data {
        access: &o.access,
        params: &v.params,
        name: &name,
        resolver: net.host,
        label: &v.label,
    };
    match &base {
        None => {
            data.apply(&rootfs)?;
            if let Some((boot, size)) = &boot {
                make_disk(&unpacked, boot, v.plan.disk_format, *size, report)?;
                removing = remove_in_background(&staging, &rootfs)?;
            }
        }
        Some(b) if b.record.kind == Kind::Disk => {
            place_on_disk_base(b, &data, staging.path(), &unpacked, disk_size, report)?
        }
        Some(b) => place_on_root_base(b, &data, staging.path(), &unpacked, report)?,
    }
    stop()?;
    let dir = move_into_place(hv, id, &unpacked, &vms, &mut undo, report)?;

    stop()?;
    let spec = spec_for(o, &v.meta, v.signed_by, id, &net, &dir, base.as_ref())?;
    let xml = domain::xml(&spec);
    report.note(&format!("defining {}:\n{xml}", spec.name));
    let what = format!("machine {id} ({})", spec.name);
    undo.domain = Some(conn.define(&xml, &what)?);
    drop(removing);
    if hv == Hypervisor::Openvz {
        // vzctl has unpacked it: the cache entry is not needed any more.
        if let Some(f) = undo.file.take() {
            let _ = std::fs::remove_file(f);
        }
        crate::openvz::configure(
            &crate::openvz::Node::system(),
            id,
            &unpacked.join("conf/config"),
            &spec.record,
        )?;
    }
    network::add_host(&conn, &net, id, &spec.name, report)?;
    undo.host = Some(id);
    stop()?;
    if let Some(d) = &undo.domain {
        finish(d, &dir)?;
    }
    stop()?;
    if o.start {
        report.progress(&format!("starting machine {id}"));
        if let Some(d) = &undo.domain {
            d.start(&what)?;
        }
    }
    stop()?;
    undo.keep();
    made_base.0 = None;
    MachineId::new(id).map_err(Error::Other)
}

/// The base a create's machine stands on, held for it (its digest in
/// `unpacked`'s `base::REF`, the bundle's head kept): the one `v` found
/// while the bundle was read (`Placement::OnBase`), or one made now from
/// the unpacked root (`MakeBase`); none for `Private`. With it, a disk
/// base's root going in the background (its guard joins it), and the
/// guard that undoes a base made here unless the create keeps it.
/// Errors: the machine's disk would not hold the root (2), no kernel
/// (65), making the base (65, 69, 73).
fn hold_base<'r>(
    v: &mut Verified,
    disk_size: Option<DiskSize>,
    staging: &crate::scratch::Scratch,
    unpacked: &Path,
    report: &'r dyn Report,
) -> Result<(Option<Base>, Background, MadeBase<'r>)> {
    let (placement, meta, label) = (v.plan.placement, &v.meta, v.label.as_path());
    let mut removing = Background(None);
    let mut made_base = MadeBase(None);
    let rootfs = unpacked.join("rootfs");
    // The root's size, walked once: a disk base's size and the machine's
    // are reckoned from it, and told before the base is made.
    let making = match placement {
        Placement::MakeBase(kind) => Some(kind),
        _ => None,
    };
    let root_bytes = making.map(|_| super::disk::root_bytes(&rootfs));
    if let (Some(Kind::Disk), Some(b)) = (making, root_bytes) {
        machine_bytes(b, disk_size)?;
        super::disk::find_boot(unpacked, label)?;
    }
    let base = match (placement, v.held.take()) {
        (Placement::Private, _) => None,
        (Placement::OnBase(_), Some(h)) => Some((
            h.found
                .ok_or_else(|| Error::Other("create: the base found is not held".into()))?,
            h.lock,
        )),
        (Placement::MakeBase(kind), Some(h)) => {
            let bytes = root_bytes.unwrap_or_else(|| super::disk::root_bytes(&rootfs));
            let b = base::make(&h.digest, kind, meta, &rootfs, bytes, label, report)?;
            if kind == Kind::Disk {
                removing = remove_in_background(staging, &rootfs)?;
            }
            Some((b, h.lock))
        }
        (_, None) => return Err(Error::Other("create: no base decided".into())),
    };
    let made = making.is_some();
    // The machine holds its base from now on; the lock can go.
    let base = match base {
        Some((b, _lock)) => {
            base::keep_head(&b, unpacked)?;
            let r = unpacked.join(base::REF);
            std::fs::write(&r, format!("{}\n", b.record.digest))
                .map_err(|e| Error::create(&r, e))?;
            if made {
                made_base.0 = Some((b.record.digest.clone(), r, report));
            }
            Some(b)
        }
        None => None,
    };
    Ok((base, removing, made_base))
}

/// What a create knows once its bundle is verified and unpacked: the
/// bundle's meta.json and signer, its name for messages, the parameters
/// resolved, the base decided (and locked) while it was read, the plan.
struct Verified {
    meta: bundle::Meta,
    signed_by: Option<String>,
    label: PathBuf,
    params: crate::params::Values,
    held: Option<Held>,
    plan: plan::Plan,
}

/// The create's bundle read and verified into `unpacked` (its root read
/// past when a base on the node holds it), for a hypervisor and ID that
/// `o` can have, with parameters that resolve. Errors: the bundle's (65,
/// 69, 1), a hypervisor or an ID `o` cannot have (2, 69), the parameters
/// (2), a signal caught.
fn verify(o: &CreateOptions, unpacked: &Path, report: &dyn Report) -> Result<Verified> {
    report.progress("verifying the bundle");
    let held: RefCell<Option<Held>> = RefCell::new(None);
    let decide = |meta: &bundle::Meta| -> Result<bool> {
        let digest = meta.members.get(bundle::ROOTFS);
        let kind = plan::base_kind(meta.hypervisor, o.no_base, digest.is_some());
        let (Some(kind), Some(digest)) = (kind, digest) else {
            return Ok(false);
        };
        let lock = base::lock(digest)?;
        let found = base::open(digest)?;
        let placement = plan::placement(Some(kind), found.is_some());
        if found.is_some() {
            report.progress(&format!("on base {}", base::short(digest)));
        } else {
            base::refuse_remaking(kind, digest)?;
            report.progress("unpacking the bundle");
        }
        let on_base = found.is_some();
        *held.borrow_mut() = Some(Held {
            placement,
            found,
            digest: digest.clone(),
            lock,
        });
        Ok(on_base)
    };
    let (meta, signed_by) = read_bundle(o, Check::Digests, Some(unpacked), Some(&decide), report)?;
    check(o, meta.hypervisor)?;
    check_id(o, Some(meta.hypervisor))?;
    let label = files::display_name(&o.bundle);
    crate::interrupt::check(&label.to_string_lossy())?;
    let params = crate::params::resolve(
        &crate::params::of_unpacked(unpacked, &label.to_string_lossy())?,
        &o.params,
        &label.to_string_lossy(),
    )?;
    let held = held.into_inner();
    let plan = plan::settle(
        meta.hypervisor,
        held.as_ref().map_or(Placement::Private, |h| h.placement),
        unpacked.join("rootfs").join(base::SEED_PROGRAM).is_file(),
        o.disk_format,
    )?;
    if plan.no_seed_program {
        report.warning(&format!(
            "{}: its root has no /{} (hook 06-mkve-seed): the machine gets a private disk, as with --no-base",
            label.display(),
            base::SEED_PROGRAM
        ));
    }
    Ok(Verified {
        meta,
        signed_by,
        label,
        params,
        held,
        plan,
    })
}

/// The connection a create of `hv` opens, and mkve's network, which must
/// be defined on it. Errors: libvirt's; the network not defined (69).
fn connect_with_network(o: &CreateOptions, hv: Hypervisor) -> Result<(Connection, NetConfig)> {
    let conn =
        libvirt::connect(&crate::nodes::Connections::resolve(o.connect.as_deref())?.create(hv))?;
    let net = crate::nodes::network()?;
    if !network::status(&conn, &net)?.defined {
        return Err(Error::Unavailable {
            what: format!("network {}", net.name),
            why: format!("not defined on {}: run mkve-net create", conn.uri()),
        });
    }
    Ok((conn, net))
}

/// The machine's ID: `o.id`, `o.again`'s when free, or the first free one of this node's `range`
/// (`elsewhere`: the IDs the other nodes hold), with its machine lock held
/// until the machine is whole (or undone): no delete or other operation
/// on it runs meanwhile, and other creates pass it by, so the IDs lock is
/// needed only to choose. Errors: the ID asked is taken or out of range
/// (2), none is free (75).
fn claim_id(
    o: &CreateOptions,
    hv: Hypervisor,
    conn: &Connection,
    net: &NetConfig,
    elsewhere: &std::collections::BTreeSet<u32>,
    range: Option<crate::nodes::IdRange>,
    report: &dyn Report,
) -> Result<(u32, crate::lock::Lock)> {
    let _ids_lock = ids::lock()?;
    super::staging::sweep_killed_creates(conn, net, report);
    let mut used = taken_ids(conn, net, &vms_dir())?;
    used.extend(elsewhere);
    if let Some(id) = o.id.map(MachineId::get) {
        return Ok((id, ids::claim(id, &used, net, hv, range)?));
    }
    if let Some((id, _)) = &o.again {
        // Not free (taken here or on another node, outside the range, or
        // past the network): the next free one, as for any create.
        match ids::claim(id.get(), &used, net, hv, range) {
            Ok(lock) => return Ok((id.get(), lock)),
            Err(Error::Usage(_)) => {}
            Err(e) => return Err(e),
        }
    }
    ids::allocate(&used, net, hv, range)
}

/// The unpacked machine (`unpacked`) moved where it lives: OpenVZ's root
/// packed into vzctl's template cache (the unpacked tree stays its
/// directory until vzctl has it); any other hypervisor's renamed to
/// `vms/ID` (reachable by qemu's user; an lxc overlay mounted). What it
/// made is `undo`'s from here.
fn move_into_place(
    hv: Hypervisor,
    id: u32,
    unpacked: &Path,
    vms: &Path,
    undo: &mut Undo,
    report: &dyn Report,
) -> Result<PathBuf> {
    if hv == Hypervisor::Openvz {
        let node = crate::openvz::Node::system();
        let cached = node.cache_path(id);
        undo.file = Some(cached.clone());
        report.progress(&format!("packing the root into {}", cached.display()));
        crate::openvz::cache_root(&unpacked.join("rootfs"), &cached)?;
        return Ok(unpacked.to_path_buf());
    }
    // Not there: an ID with files left is not given out (taken_ids).
    let dir = vms.join(id.to_string());
    std::fs::rename(unpacked, &dir).map_err(|e| Error::create(&dir, e))?;
    // Made as a private temporary directory; qemu runs as its own user
    // and must reach the disk, kernel and initrd inside.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).at(&dir)?;
    undo.dir = Some(dir.clone());
    if super::overlay::is_overlay(&dir) {
        super::overlay::mount(&dir)?;
    }
    Ok(dir)
}

/// A machine on disk base `b`: its seed (`data`) as a seed disk and a
/// qcow2 overlay of the base's disk of `size` bytes (`None`: the base's),
/// in `unpacked`, the machine's directory-to-be; `work` for the seed's
/// tree.
fn place_on_disk_base(
    b: &Base,
    data: &seed::Data,
    work: &Path,
    unpacked: &Path,
    size: Option<u64>,
    report: &dyn Report,
) -> Result<()> {
    report.progress("making the machine's seed and overlay");
    let tree = work.join("seed");
    seed::make_tree(&seed::Source::Image(&b.disk()), data, work, &tree, report)?;
    seed::make_disk(&tree, &unpacked.join(SEED_DISK), report)?;
    super::disk::make_overlay(
        &b.disk(),
        &unpacked.join(DiskFormat::Qcow2.file()),
        size.unwrap_or(0),
        report,
    )
}

/// A machine on root base `b` (lxc): its seed (`data`) as the overlay's
/// upper layer, with the mode and owner of the base's root, and the
/// overlay's work directory and mount point, in `unpacked`.
fn place_on_root_base(
    b: &Base,
    data: &seed::Data,
    work: &Path,
    unpacked: &Path,
    report: &dyn Report,
) -> Result<()> {
    report.progress("making the machine's seed");
    let upper = unpacked.join("upper");
    seed::make_tree(&seed::Source::Dir(&b.root()), data, work, &upper, report)?;
    // The merged root's own mode and owner are the upper layer's.
    let like = std::fs::symlink_metadata(b.root()).at(b.root())?;
    seed::copy_owner_and_mode(&upper, &like)?;
    for d in ["work", "rootfs"] {
        let p = unpacked.join(d);
        std::fs::create_dir(&p).map_err(|e| Error::create(&p, e))?;
    }
    Ok(())
}

/// The machine's (domain's) name: `--name`, else TEMPLATE-ID; OpenVZ's
/// containers are named by their ID.
/// Where the bundle `bundle` (as `create` was given it) can be had
/// again: its URL, or its absolute path; `None` for stdin.
pub(super) fn source_of(bundle: &Path) -> Option<String> {
    if crate::fetch::Url::of_arg(bundle).is_some() {
        return bundle.to_str().map(str::to_string);
    }
    if bundle == Path::new("-") {
        return None;
    }
    std::fs::canonicalize(bundle)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

fn machine_name(o: &CreateOptions, meta: &bundle::Meta, id: u32) -> Result<String> {
    let again = o
        .again
        .as_ref()
        .filter(|(again, _)| again.get() == id)
        .and_then(|(_, name)| name.as_ref());
    Ok(match o.name.as_ref().or(again) {
        _ if !meta.hypervisor.takes_names() => id.to_string(),
        Some(n) => n.to_string(),
        None => MachineName::new(&format!("{}-{id}", meta.template.name))
            .map_err(|e| Error::bundle(&o.bundle, format!("template name: {e}")))?
            .to_string(),
    })
}

fn spec_for(
    o: &CreateOptions,
    meta: &bundle::Meta,
    signed_by: Option<String>,
    id: u32,
    net: &NetConfig,
    dir: &Path,
    base: Option<&Base>,
) -> Result<domain::DomainSpec> {
    let hv = meta.hypervisor;
    let name = machine_name(o, meta, id)?;
    Ok(domain::DomainSpec {
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
            signed_by,
            source: match &o.source {
                Some(s) => s.clone(),
                None => source_of(&o.bundle),
            },
            adopted: false,
        },
        name,
        hypervisor: hv,
        memory_mib: o.memory.mib(),
        vcpus: o.vcpus.get(),
        cpu_shares: o.cpu_shares.map(CpuShares::get),
        blkio_weight: o.blkio_weight.map(BlkioWeight::get),
        vnc: o.vnc && hv.boots_disk_image(),
        mac: mac_of(id),
        network: net.name.clone(),
        bridge: net.bridge.clone(),
        storage: storage_for(
            hv,
            dir,
            id,
            o.disk_format.unwrap_or_default(),
            base.map(|b| b.dir.as_path()),
        ),
    })
}

/// Where a machine's root lives, for each hypervisor: the root directory
/// (an overlay's mount point on a base) for lxc; a disk image and the
/// kernel and initrd copied out of its /boot for the hypervisors that boot
/// one, or on a base (`base`: its directory) a qcow2 overlay, the seed
/// disk, and the base's kernel and initrd; a template cache named after
/// the ID for openvz.
fn storage_for(
    hv: Hypervisor,
    dir: &Path,
    id: u32,
    disk: DiskFormat,
    base: Option<&Path>,
) -> domain::Storage {
    if hv.boots_disk_image() {
        return match base {
            None => domain::Storage::Disk {
                image: dir.join(disk.file()),
                format: disk.name().into(),
                kernel: dir.join("vmlinuz"),
                initrd: Some(dir.join("initrd.img")),
                seed: None,
            },
            Some(b) => domain::Storage::Disk {
                image: dir.join(DiskFormat::Qcow2.file()),
                format: DiskFormat::Qcow2.name().into(),
                kernel: b.join("vmlinuz"),
                initrd: Some(b.join("initrd.img")),
                seed: Some(dir.join(SEED_DISK)),
            },
        };
    }
    match hv {
        Hypervisor::Openvz => domain::Storage::OpenvzTemplate(crate::openvz::template_name(id)),
        _ => domain::Storage::Dir(dir.join("rootfs")),
    }
}

/// Read the bundle of `o`: its signature against the keyring first, then
/// as much as `check` asks, unpacking into `unpack_to`; and refuse it when
/// it is for another hypervisor than `--hypervisor` says. Its meta, and
/// the fingerprint of the key whose good signature it bears (`None`: taken
/// unsigned, with `--allow-unsigned`). A URL's bundle
/// is streamed from its server once the signed list beside it names its
/// sha256, and with `Check::Digests` every byte of it is read and matched
/// against the list before this returns (fetch.rs).
fn read_bundle(
    o: &CreateOptions,
    check: Check,
    unpack_to: Option<&Path>,
    skip_root: Option<&bundle::SkipRoot>,
    progress: &dyn Report,
) -> Result<(bundle::Meta, Option<String>)> {
    let src = BundleSource {
        bundle: &o.bundle,
        keyring: o.keyring.as_deref(),
        allow_unsigned: o.allow_unsigned,
        hypervisor: o.hypervisor,
    };
    read_bundle_from(&src, check, unpack_to, skip_root, progress)
}

/// A bundle as a command names it, with how its signature is checked.
pub(super) struct BundleSource<'a> {
    /// A file, `-`, or a URL (`fetch::Url::of_arg`).
    pub bundle: &'a Path,
    /// `None`: the default keyring (`paths::default_keyring`).
    pub keyring: Option<&'a Path>,
    pub allow_unsigned: bool,
    /// Refuse a bundle for another hypervisor.
    pub hypervisor: Option<Hypervisor>,
}

/// [`read_bundle`] of `o`.
pub(super) fn read_bundle_from(
    o: &BundleSource,
    check: Check,
    unpack_to: Option<&Path>,
    skip_root: Option<&bundle::SkipRoot>,
    progress: &dyn Report,
) -> Result<(bundle::Meta, Option<String>)> {
    let default_keyring = crate::paths::default_keyring();
    let opts = ReadOptions {
        keyring: Some(o.keyring.unwrap_or(&default_keyring)),
        require_signature: true,
        allow_unsigned: o.allow_unsigned,
        check,
        unpack_to,
        skip_root,
    };
    let report = match crate::fetch::Url::of_arg(o.bundle) {
        Some(url) => crate::fetch::read(&url?, &opts, None, progress)?,
        None => bundle::read(
            files::open_input(o.bundle)?,
            &files::display_name(o.bundle),
            &opts,
        )?,
    };
    let hv = report.meta.hypervisor;
    if let Some(h) = o.hypervisor.filter(|h| *h != hv) {
        return Err(Error::bundle(
            o.bundle,
            format!("is a bundle for {hv}, not {h}"),
        ));
    }
    let signed_by = match report.signature {
        crate::sign::SigStatus::Valid { fingerprint } => Some(fingerprint),
        _ => None,
    };
    Ok((report.meta, signed_by))
}

/// The domain XML `create` would define, touching nothing: no ID is
/// taken, no file made. The bundle's signature is checked, its payload not
/// read. The ID is `--id`, or the next free one on the node as it is now.
pub fn domain_xml(o: &CreateOptions) -> Result<String> {
    check_id(o, o.hypervisor)?;
    let (meta, signed_by) = read_bundle(o, Check::Meta, None, None, &crate::report::Silent)?;
    let hv = meta.hypervisor;
    check_name(o, hv)?;
    check_id(o, Some(hv))?;
    let net = crate::nodes::network()?;
    let id = match o.id {
        Some(id) => id.get(),
        None => {
            let conn = libvirt::connect(
                &crate::nodes::Connections::resolve(o.connect.as_deref())?.create(hv),
            )?;
            let nodes = Nodes::load()?;
            let mut used = taken_ids(&conn, &net, &vms_dir())?;
            used.extend(super::taken::used_elsewhere(
                &nodes,
                &net,
                o.local_ids,
                &crate::exec::Silent,
            )?);
            ids::next_free(&used, &net, hv, nodes.local_range()?)?
        }
    };
    // The base it would stand on (made by the create, if not there).
    let digest = meta.members.get(bundle::ROOTFS);
    let base = match (plan::base_kind(hv, o.no_base, digest.is_some()), digest) {
        (Some(kind), Some(digest)) => Some(Base {
            dir: super::layout::bases_dir().join(digest),
            record: base::Record {
                digest: digest.clone(),
                kind,
                template: meta.template.name.clone(),
                version: meta.template.version.clone(),
                made: 0,
                root_bytes: 0,
                fingerprint: String::new(),
                fingerprint_ctime: false,
                content: String::new(),
            },
        }),
        _ => None,
    };
    Ok(domain::xml(&spec_for(
        o,
        &meta,
        signed_by,
        id,
        &net,
        &vms_dir().join(id.to_string()),
        base.as_ref(),
    )?))
}
