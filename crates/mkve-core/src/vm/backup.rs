//! Backups of a machine and their restore (mkve-vm(1) BACKUPS): what makes
//! a machine different from its base, in a signed archive.
//!
//! A backup is a tar stream like a bundle (mkve-bundle(5)), its members in
//! this order:
//!
//! - `backup.json` ([`Manifest`]): the machine (ID, name, hypervisor,
//!   memory, vCPUs), the bundle it was made from (template, version, the
//!   digest of its root = its base, where it was fetched from), the
//!   template's state paths and which changed paths are state and which
//!   are drift, the parameters (secret ones left out: their names only),
//!   the paths removed from the base, and the sha256 and size of the delta;
//! - `backup.json.sig`: GnuPG's ASCII-armoured detached signature of
//!   `backup.json`, by the default key or `--sign-key` (absent with
//!   `--force-no-sign`); the delta is covered through its digest;
//! - `secrets.json.gpg`, with `--include-secrets KEY` only: the secret
//!   parameters as a JSON object (name: value), encrypted to KEY (OpenPGP,
//!   binary); covered through its digest in the manifest;
//! - `delta.tar.zst`: the files that differ from the base, with their
//!   parent directories (pack.rs: owners, modes, times, xattrs), or with
//!   `--full` the whole root.
//!
//! What differs is read without mounting anything on the node: an lxc
//! machine's upper layer (`image::diff_upper`), a disk machine's files
//! through its qcow2 chain (`image::diff_images`, on a throw-away overlay
//! that replays a journal the guest left). A running machine is read from
//! a snapshot (snapshot.rs): an lxc layer copied while the machine is
//! frozen; a disk frozen by a live external snapshot, the machine going
//! on above it.
//!
//! Restore verifies the signature against the keyring before it reads
//! further, and the delta's digest before anything is made from it; it
//! makes the machine from its bundle (`create`), then lays the delta on it
//! (lxc: through its overlay mount; a disk: `image::Image::write_tree`).
//! Whatever fails, the machine made is deleted again.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::layout::{machine_dir, vms_dir, STAGING_PREFIX};
use super::manage::find_locked;
use super::{Machine, Uris};
use crate::error::{Error, IoContext, Result};
use crate::exec::Report;
use crate::hypervisor::Hypervisor;
use crate::image::{Access, ChangeKind, Image};
use crate::libvirt::{domain, Dom};
use crate::scratch::{remove_tree, Scratch};
use crate::sign::SigStatus;

/// The manifest's member name.
pub const MANIFEST: &str = "backup.json";
/// Its signature's.
pub const SIGNATURE: &str = "backup.json.sig";
/// The delta's.
pub const DELTA: &str = "delta.tar.zst";
/// The encrypted secret parameters' (`--include-secrets`).
pub const SECRETS: &str = "secrets.json.gpg";
const SECRETS_MAX: u64 = 1 << 20;
/// The manifest's format.
pub const FORMAT: u32 = 1;
const MANIFEST_MAX: u64 = 16 << 20;
const SIGNATURE_MAX: u64 = 64 << 10;

/// `backup.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// When it was made, in seconds since the epoch.
    pub made: u64,
    pub machine: MachineRecord,
    /// The bundle's template name and version.
    pub template: String,
    pub version: String,
    /// The digest of the bundle's root: the base the delta stands on.
    pub base: String,
    /// Where the machine's bundle came from (its path or URL at create);
    /// `None`: not recorded (stdin, or a machine made before mkve kept it).
    pub source: Option<String>,
    /// The whole root, not a delta (`--full`).
    pub full: bool,
    /// The template's state paths (template/state).
    pub state: Vec<PathBuf>,
    /// The changed paths under them, and the others (drift).
    pub state_changes: Vec<PathBuf>,
    pub drift: Vec<PathBuf>,
    /// The paths of the base that the machine removed.
    pub removed: Vec<PathBuf>,
    /// The parameters given at create, secret ones left out.
    pub params: BTreeMap<String, String>,
    /// The secret parameters left out: a restore must be given them.
    pub secrets_left_out: Vec<String>,
    /// The secret parameters in `secrets.json.gpg` (`--include-secrets`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets_included: Vec<String>,
    /// The fingerprint of the key they are encrypted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_recipient: Option<String>,
    /// `secrets.json.gpg`'s sha256 (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_sha256: Option<String>,
    /// `delta.tar.zst`'s sha256 (hex) and size in bytes.
    pub delta_sha256: String,
    pub delta_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineRecord {
    pub id: u32,
    pub name: String,
    pub hypervisor: Hypervisor,
    /// MiB.
    pub memory: u64,
    pub vcpus: u32,
}

/// How a backup is made.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// The whole root, not only what differs from the base.
    pub full: bool,
    /// The key to sign with (GnuPG's default key when `None`).
    pub sign_key: Option<String>,
    /// Write it unsigned.
    pub no_sign: bool,
    /// Include the secret parameters, encrypted to this key (a key ID,
    /// fingerprint or user ID in GnuPG's keyring); left out when `None`.
    pub secrets_to: Option<String>,
}

/// What `backup` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct BackupSummary {
    pub machine: u32,
    pub bytes: u64,
    pub changed: usize,
    pub removed: usize,
    pub full: bool,
}

/// Back up machine `target` to `out` (a file by temporary name and
/// rename, or `-`). Running or not. Errors: no such machine (2); a
/// machine on no base without `--full` (2); the files cannot be read
/// (65 for a broken file system, 73); signing fails (69, 1).
pub fn backup(
    uris: &Uris,
    target: &str,
    out: &Path,
    o: &BackupOptions,
    report: &dyn Report,
) -> Result<BackupSummary> {
    let (_conn, d, m, _lock) = find_locked(uris, target)?;
    let dir = machine_dir(m.id);
    let what = format!("machine {}", m.id);
    let hv = super::machine::kept_hypervisor(&m, "backups are of lxc, qemu and kvm machines")?;
    let base = super::base::of_machine(&dir);
    if base.is_none() && !o.full {
        return Err(Error::Usage(format!(
            "{what} stands on no base: back it up whole (--full)"
        )));
    }
    let running = d.is_active()?;
    let xml = d.inactive_xml()?;
    let record = domain::record_of(&xml)
        .ok_or_else(|| Error::Other(format!("{what}: its domain carries no record of mkve's")))?;
    let staging = Scratch::new_in(&vms_dir(), STAGING_PREFIX)?;
    let delta = staging.path().join("delta");
    std::fs::create_dir(&delta).map_err(|e| Error::create(&delta, e))?;
    let from = Source {
        d: &d,
        m: &m,
        dir: &dir,
        base: base.as_deref(),
        delta: &delta,
        work: staging.path(),
        running,
        full: o.full,
        report,
    };
    let (changed, removed) = if hv == Hypervisor::Lxc {
        lxc_delta(&from)?
    } else {
        disk_delta(&from)?
    };

    let state = crate::state::of_dir(&dir, &what)?;
    let (mut state_changes, mut drift) = (Vec::new(), Vec::new());
    for p in changed.iter().chain(&removed) {
        if crate::state::covers(&state, p) {
            state_changes.push(p.clone());
        } else {
            drift.push(p.clone());
        }
    }
    // Secret parameters stay out of the delta: left out, or with
    // --include-secrets encrypted to the key named.
    let declared = crate::params::of_unpacked(&dir, &what)?;
    let mut params = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    let mut secrets_left_out = Vec::new();
    for p in &declared {
        let rel = Path::new(crate::params::DIR).join(&p.name);
        let file = delta.join(&rel);
        if p.secret {
            let value = match o.secrets_to {
                Some(_) => read_param(&d, &dir, hv, &rel, &delta).ok(),
                None => None,
            };
            if file.exists() {
                std::fs::remove_file(&file).at(&file)?;
            }
            match value {
                Some(v) => {
                    secrets.insert(p.name.clone(), v);
                }
                None => secrets_left_out.push(p.name.clone()),
            }
            drift.retain(|x| x != &Path::new("/").join(&rel));
        } else if let Ok(v) = read_param(&d, &dir, hv, &rel, &delta) {
            params.insert(p.name.clone(), v);
        }
    }

    let packed = staging.path().join(DELTA);
    let f = std::fs::File::create(&packed).map_err(|e| Error::create(&packed, e))?;
    let opts = crate::pack::PackOptions {
        clamp_mtime: None,
        exclude: Vec::new(),
    };
    let (f, _) = crate::pack::pack_dir_compressed(
        &delta,
        std::io::BufWriter::new(f),
        crate::pack::Compression::Zstd,
        &opts,
    )?;
    f.into_inner()
        .map_err(|e| Error::create(&packed, e.into_error()))?
        .sync_all()
        .map_err(|e| Error::create(&packed, e))?;
    let (delta_sha256, delta_bytes) = sha256_file(&packed)?;
    let sealed = match (&o.secrets_to, secrets.is_empty()) {
        (Some(key), false) => {
            let json = serde_json::to_vec(&secrets).map_err(|e| Error::Other(e.to_string()))?;
            Some(crate::sign::encrypt_to(&json, key, None)?)
        }
        _ => None,
    };
    let (memory, vcpus) = resources_of(&xml);
    let manifest = Manifest {
        format: FORMAT,
        made: crate::date::now(),
        machine: MachineRecord {
            id: m.id.get(),
            name: m.name.clone(),
            hypervisor: hv,
            memory,
            vcpus,
        },
        template: record.template.clone(),
        version: record.version.clone(),
        base: record.bundle.clone(),
        source: record.source.clone(),
        full: o.full,
        state,
        state_changes,
        drift,
        removed: removed.clone(),
        params,
        secrets_left_out,
        secrets_included: secrets.keys().cloned().collect(),
        secrets_recipient: sealed.as_ref().map(|(_, fpr)| fpr.clone()),
        secrets_sha256: sealed.as_ref().map(|(b, _)| hex(&Sha256::digest(b))),
        delta_sha256,
        delta_bytes,
    };
    let mut json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Other(e.to_string()))?;
    json.push(b'\n');
    let sig = if o.no_sign {
        None
    } else {
        Some(crate::sign::sign_detached(&json, o.sign_key.as_deref(), None)?.0)
    };

    let mut output = crate::files::Output::create(out)?;
    {
        let mut ar = tar::Builder::new(&mut output);
        append(
            &mut ar,
            MANIFEST,
            &mut json.as_slice(),
            json.len() as u64,
            out,
        )?;
        if let Some(sig) = &sig {
            append(
                &mut ar,
                SIGNATURE,
                &mut sig.as_slice(),
                sig.len() as u64,
                out,
            )?;
        }
        if let Some((b, _)) = &sealed {
            append(&mut ar, SECRETS, &mut b.as_slice(), b.len() as u64, out)?;
        }
        let mut f = std::fs::File::open(&packed).map_err(|e| Error::io(&packed, e))?;
        append(&mut ar, DELTA, &mut f, delta_bytes, out)?;
        ar.finish().map_err(|e| Error::create(out, e))?;
    }
    output.commit()?;
    drop(staging);
    report.progress(&format!(
        "{what}: {} changed, {} removed, {delta_bytes} bytes of delta",
        changed.len(),
        removed.len()
    ));
    Ok(BackupSummary {
        machine: m.id.get(),
        bytes: delta_bytes,
        changed: changed.len(),
        removed: removed.len(),
        full: o.full,
    })
}

fn append<W: Write>(
    ar: &mut tar::Builder<W>,
    name: &str,
    data: &mut dyn Read,
    size: u64,
    out: &Path,
) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    ar.append_data(&mut h, name, data)
        .map_err(|e| Error::create(out, e))
}

fn sha256_file(p: &Path) -> Result<(String, u64)> {
    let mut f = std::fs::File::open(p).map_err(|e| Error::io(p, e))?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h).map_err(|e| Error::io(p, e))?;
    Ok((hex(&h.finalize()), n))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The domain's memory (MiB) and vCPUs, as its XML says.
fn resources_of(xml: &str) -> (u64, u32) {
    let doc = roxmltree::Document::parse(xml).ok();
    let text = |tag: &str| {
        doc.as_ref().and_then(|d| {
            d.descendants()
                .find(|n| {
                    n.has_tag_name(tag) && n.parent().is_some_and(|p| p.has_tag_name("domain"))
                })
                .and_then(|n| Some((n.text()?.trim().parse::<u64>().ok()?, n.attribute("unit"))))
        })
    };
    let memory = match text("memory") {
        Some((v, Some("MiB" | "M"))) => v,
        Some((v, Some("GiB" | "G"))) => v << 10,
        Some((v, _)) => v >> 10,
        None => 256,
    };
    let vcpus = text("vcpu").map_or(1, |(v, _)| v as u32);
    (memory, vcpus)
}

/// A parameter's value: from the delta when the machine changed it, else
/// from the machine's root as made.
fn read_param(_d: &Dom, dir: &Path, hv: Hypervisor, rel: &Path, delta: &Path) -> Result<String> {
    let in_delta = delta.join(rel);
    if in_delta.exists() {
        return std::fs::read_to_string(&in_delta).at(&in_delta);
    }
    if hv == Hypervisor::Lxc {
        for root in [dir.join("upper"), dir.join("rootfs")] {
            if let Ok(v) = std::fs::read_to_string(root.join(rel)) {
                return Ok(v);
            }
        }
    }
    Err(Error::Other(format!("{}: not found", rel.display())))
}

/// What a delta is read from and written to.
#[derive(Clone, Copy)]
pub(super) struct Source<'a> {
    pub d: &'a Dom,
    pub m: &'a Machine,
    /// The machine's directory.
    pub dir: &'a Path,
    /// The digest of the base it stands on.
    pub base: Option<&'a str>,
    /// Where the delta's files go.
    pub delta: &'a Path,
    /// A scratch directory beside it.
    pub work: &'a Path,
    pub running: bool,
    pub full: bool,
    pub report: &'a dyn Report,
}

/// An lxc machine's delta into `delta`: its upper layer (copied while it
/// is frozen when it runs) without overlayfs's own marks, and the paths it
/// removed from the base; `--full`: its whole merged root.
fn lxc_delta(f: &Source) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let Source {
        d,
        m,
        dir,
        base,
        delta,
        work,
        running,
        full,
        report,
    } = *f;
    let (Some(digest), false) = (base, full) else {
        // The whole root: through the overlay mount, or the private root.
        super::overlay::prepare_root(m)?;
        let root = super::overlay::mount_point(dir);
        super::snapshot_store::copy_tree(&root, delta, report).or_else(|_| {
            // copy_tree wants `delta` absent.
            std::fs::remove_dir(delta).at(delta)?;
            super::snapshot_store::copy_tree(&root, delta, report)
        })?;
        return Ok((vec![PathBuf::from("/")], Vec::new()));
    };
    let upper = if running {
        let into = work.join("frozen");
        std::fs::create_dir(&into).map_err(|e| Error::create(&into, e))?;
        super::snapshot_store::copy_layer(d, m, dir, &into, true, report)?;
        into.join("upper")
    } else {
        dir.join("upper")
    };
    let lower = super::layout::bases_dir().join(digest).join("rootfs");
    let changes = crate::image::diff_upper(&upper, &lower)?;
    std::fs::remove_dir(delta).at(delta)?;
    if running {
        // The frozen copy is the backup's own: moved, not copied again.
        std::fs::rename(&upper, delta).at(delta)?;
    } else {
        super::snapshot_store::copy_tree(&upper, delta, report)?;
    }
    strip_overlay_marks(delta)?;
    Ok(split(changes))
}

/// Whiteouts (character devices 0:0) and `trusted.overlay.*` attributes
/// out of a copied upper layer: the removals are in the manifest.
fn strip_overlay_marks(tree: &Path) -> Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    for e in walkdir::WalkDir::new(tree).follow_links(false) {
        let e = e.map_err(|e| Error::io(tree, std::io::Error::other(e.to_string())))?;
        let md = e
            .path()
            .symlink_metadata()
            .map_err(|x| Error::io(e.path(), x))?;
        if md.file_type().is_char_device() && md.rdev() == 0 {
            std::fs::remove_file(e.path()).at(e.path())?;
            continue;
        }
        let mut names = vec![0u8; 64 << 10];
        let n = rustix::fs::llistxattr(e.path(), &mut names).unwrap_or(0);
        for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
            if name.starts_with(b"trusted.overlay.") {
                let name = std::ffi::OsStr::from_bytes(name);
                rustix::fs::lremovexattr(e.path(), name)
                    .map_err(|x| Error::io(e.path(), std::io::Error::from(x)))?;
            }
        }
    }
    Ok(())
}

use std::os::unix::ffi::OsStrExt;

/// The changed and added paths, and the removed ones.
fn split(changes: Vec<crate::image::Change>) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (mut changed, mut removed) = (Vec::new(), Vec::new());
    for c in changes {
        match c.kind {
            ChangeKind::Removed => removed.push(c.path),
            ChangeKind::Added | ChangeKind::Changed => changed.push(c.path),
        }
    }
    (changed, removed)
}

/// A disk machine's delta into `delta`, read through its qcow2 chain on a
/// throw-away overlay (which replays a journal the guest left and keeps
/// the machine's images untouched). A running machine's disk is frozen
/// first by a live external snapshot (snapshot.rs).
pub(super) fn disk_delta(f: &Source) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (d, m, dir, report) = (f.d, f.m, f.dir, f.report);
    let (frozen, format) = if f.running {
        let (rel, format) = super::snapshot_store::freeze_disk(d, m, dir, true, report)?;
        (dir.join(rel), format)
    } else {
        let top = super::disk::top_of(&d.inactive_xml()?, &format!("machine {}", m.id))?;
        (top.path, top.format)
    };
    let view = f.work.join("view.qcow2");
    super::snapshot_store::overlay_on(&frozen, &format, &view, report)?;
    let image = Image::open(&view, Access::ReadWrite, report)?;
    let (changed, removed) = match (f.base, f.full) {
        (Some(digest), false) => {
            let base_disk = super::layout::bases_dir().join(digest).join("disk.img");
            let b = Image::open(&base_disk, Access::ReadOnly, report)?;
            let changes = crate::image::diff_images(&image, &b)?;
            b.close()?;
            split(changes)
        }
        _ => (
            image
                .walk(Path::new("/"))?
                .into_iter()
                .map(|e| e.path)
                .collect(),
            Vec::new(),
        ),
    };
    // Each changed entry with its parents, as the image has them.
    let mut dirs: Vec<PathBuf> = Vec::new();
    for p in &changed {
        let mut chain: Vec<&Path> = p.ancestors().collect();
        chain.reverse();
        for a in chain {
            let to = f.delta.join(a.strip_prefix("/").unwrap_or(a));
            if a == Path::new("/") || to.symlink_metadata().is_ok() {
                continue;
            }
            image.extract_entry(a, &to)?;
            if to.is_dir() && !to.is_symlink() {
                dirs.push(a.to_path_buf());
            }
        }
    }
    // Directories' times last, deepest first (what went in changed them).
    dirs.sort();
    for a in dirs.iter().rev() {
        if let Some(e) = image.stat(a)? {
            let to = f.delta.join(a.strip_prefix("/").unwrap_or(a));
            crate::image::set_mtime(&to, e.mtime)?;
        }
    }
    image.close()?;
    Ok((changed, removed))
}

/// How a backup is restored.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// The ID to restore to; `None`: the backup's when free, else the
    /// next free one.
    pub id: Option<crate::ids::MachineId>,
    /// The bundle to make the machine from; `None`: where the backup says
    /// it came from.
    pub bundle: Option<PathBuf>,
    pub keyring: Option<PathBuf>,
    pub allow_unsigned: bool,
    /// Parameters given (the secret ones a backup left out).
    pub params: Vec<(String, String)>,
    pub connect: Option<String>,
    pub start: bool,
}

/// Restore the backup read from `input` (a file or `-`). Returns the new
/// machine's ID. Errors: a signature that is not good (65; unsigned: 65
/// unless `allow_unsigned`), a manifest or delta that is not the one
/// signed (65), a secret parameter not given (2), no bundle to make the
/// base from (69, naming it), what `create` refuses; nothing is left
/// made then.
pub fn restore(
    input: &Path,
    o: &RestoreOptions,
    report: &dyn Report,
) -> Result<crate::ids::MachineId> {
    if input == Path::new("-") && o.bundle.as_deref() == Some(Path::new("-")) {
        return Err(Error::Usage(
            "restore - --bundle -: only one of them can come from stdin".into(),
        ));
    }
    let reader = crate::files::open_input(input)?;
    restore_from(reader, &crate::files::display_name(input), o, report)
}

/// [`restore`] of the backup read from `reader` (`label` names it in
/// errors), which is read to its end before the bundle is: a bundle on
/// stdin may follow it (`restore --node`, remote.rs).
pub(super) fn restore_from(
    reader: Box<dyn Read + Send>,
    label: &Path,
    o: &RestoreOptions,
    report: &dyn Report,
) -> Result<crate::ids::MachineId> {
    let label = label.to_path_buf();
    let bad = |why: String| Error::bundle(&label, why);
    let mut ar = tar::Archive::new(reader);
    let mut entries = ar
        .entries()
        .map_err(|e| bad(format!("not a backup: {e}")))?;
    let mut next = || -> Result<Option<tar::Entry<'_, Box<dyn Read + Send>>>> {
        match entries.next() {
            None => Ok(None),
            Some(Ok(e)) => Ok(Some(e)),
            Some(Err(e)) => Err(bad(format!("broken tar archive: {e}"))),
        }
    };
    let name_of = |e: &tar::Entry<'_, Box<dyn Read + Send>>| {
        String::from_utf8_lossy(&e.path_bytes()).into_owned()
    };
    let Some(mut first) = next()? else {
        return Err(bad("empty: not a backup".into()));
    };
    if name_of(&first) != MANIFEST {
        return Err(bad(format!(
            "first member is \"{}\", not {MANIFEST}: not an mkve backup",
            name_of(&first)
        )));
    }
    let json = read_small(&mut first, MANIFEST_MAX).map_err(|e| bad(format!("{MANIFEST}: {e}")))?;
    drop(first);
    let mut pending = next()?;
    let mut sig = None;
    if let Some(e) = pending.as_mut().filter(|e| name_of(e) == SIGNATURE) {
        sig = Some(read_small(e, SIGNATURE_MAX).map_err(|e| bad(format!("{SIGNATURE}: {e}")))?);
        pending = next()?;
    }
    let manifest = checked_manifest(&json, sig.as_deref(), o, &label)?;
    // The encrypted secrets: the member the signed manifest names.
    let mut sealed = None;
    if manifest.secrets_sha256.is_some() {
        let Some(e) = pending.as_mut().filter(|e| name_of(e) == SECRETS) else {
            return Err(bad(format!("no {SECRETS}, which {MANIFEST} names")));
        };
        sealed = Some(read_small(e, SECRETS_MAX).map_err(|e| bad(format!("{SECRETS}: {e}")))?);
        pending = next()?;
    } else if pending.as_ref().is_some_and(|e| name_of(e) == SECRETS) {
        return Err(bad(format!("{SECRETS}, which {MANIFEST} does not name")));
    }
    let secrets = opened_secrets(&manifest, sealed.as_deref(), &o.params, &label)?;
    // Everything the restore needs is asked for before anything is made.
    let (bundle, source) = bundle_for(&manifest, o.bundle.as_deref(), report)?;
    let Some(mut e) = pending.filter(|e| name_of(e) == DELTA) else {
        return Err(bad(format!("no {DELTA} after {MANIFEST}")));
    };
    let staging = Scratch::new_in(&vms_dir(), STAGING_PREFIX)?;
    let packed = staging.path().join(DELTA);
    received_delta(&mut e, &manifest, &packed, &label)?;
    // The archive read to its end: what follows it on a stream (a bundle)
    // is the create's.
    drop(e);
    std::io::copy(&mut ar.into_inner(), &mut std::io::sink())
        .map_err(|x| bad(format!("after {DELTA}: {x}")))?;
    let delta = staging.path().join("delta");
    std::fs::create_dir(&delta).map_err(|e| Error::create(&delta, e))?;
    let f = std::fs::File::open(&packed).map_err(|e| Error::io(&packed, e))?;
    let z = crate::pack::decompressor(std::io::BufReader::new(f))
        .map_err(|e| bad(format!("{DELTA}: {e}")))?;
    crate::pack::unpack(
        z,
        Some(&delta),
        &label.join(DELTA),
        crate::pack::UnpackOptions::ROOTFS,
    )?;

    // The machine, from its bundle, stopped; with its ID and name when the
    // ID is free on every node and this node gives it out (mkve.conf's
    // range: a backup of another node's machine gets one of this node's),
    // else the next (create's claim_id).
    let co = restore_create_options(&manifest, &secrets, bundle, source, o, &label)?;
    // Laid while the create holds the machine: a failure undoes the
    // create, a kill leaves its marker for the next create's sweep.
    let mut lay = |d: &Dom, dir: &Path| lay_delta(d, dir, &manifest, &delta, &label, report);
    let made = super::create::create_with(&co, report, &mut lay)?;
    drop(staging);
    Ok(made)
}

/// The backup's manifest from its bytes `json`, once its detached
/// signature `sig` is valid against `o.keyring` (or there is none and
/// `o.allow_unsigned`), and it is of this mkve's [`FORMAT`]. Errors: the
/// signature (69, 1), the manifest (65).
fn checked_manifest(
    json: &[u8],
    sig: Option<&[u8]>,
    o: &RestoreOptions,
    label: &Path,
) -> Result<Manifest> {
    let status = match sig {
        None => SigStatus::None,
        Some(s) => {
            let keyring = o
                .keyring
                .clone()
                .unwrap_or_else(crate::paths::default_keyring);
            crate::sign::verify_detached(json, s, Some(&keyring))?
        }
    };
    if !(status.is_valid() || o.allow_unsigned && status == SigStatus::None) {
        let hint = if status == SigStatus::None {
            " (--allow-unsigned accepts it)"
        } else {
            ""
        };
        return Err(Error::signature(
            label,
            format!("{}{hint}", status.describe()),
        ));
    }
    let manifest: Manifest = serde_json::from_slice(json)
        .map_err(|e| Error::bundle(label, format!("{MANIFEST}: not a backup's manifest: {e}")))?;
    if manifest.format != FORMAT {
        return Err(Error::bundle(
            label,
            format!(
                "{MANIFEST}: format {}, this mkve reads format {FORMAT}",
                manifest.format
            ),
        ));
    }
    Ok(manifest)
}

/// The secret parameters the backup carries `sealed` that `given` does
/// not give (checked against the manifest's digest, decrypted only when
/// one of them is not given); every secret it left out must be given. Errors: the sealed member is another one (65), cannot be
/// decrypted (69), a secret is neither given nor carried (2, naming
/// them all).
fn opened_secrets(
    manifest: &Manifest,
    sealed: Option<&[u8]>,
    given: &[(String, String)],
    label: &Path,
) -> Result<BTreeMap<String, String>> {
    let bad = |why: String| Error::bundle(label, why);
    let given = |s: &String| given.iter().any(|(n, _)| n == s);
    let mut secrets: BTreeMap<String, String> = BTreeMap::new();
    if let (Some(want), Some(sealed)) = (&manifest.secrets_sha256, sealed) {
        if &hex(&Sha256::digest(sealed)) != want {
            return Err(bad(format!(
                "{SECRETS} is not the one {MANIFEST} names (its sha256 differs): changed since it was made"
            )));
        }
        if !manifest.secrets_included.iter().all(given) {
            let json = crate::sign::decrypt(sealed, None)?;
            secrets = serde_json::from_slice(&json)
                .map_err(|e| bad(format!("{SECRETS}: not the secret parameters: {e}")))?;
            secrets.retain(|k, _| !given(k));
        }
    }
    let missing: Vec<&str> = manifest
        .secrets_left_out
        .iter()
        .chain(&manifest.secrets_included)
        .filter(|s| !given(s) && !secrets.contains_key(*s))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        let one = missing.len() == 1;
        return Err(Error::Usage(format!(
            "the backup left out the secret parameter{} {}: give {} with --param NAME=VALUE \
             (or --param-file)",
            if one { "" } else { "s" },
            missing.join(", "),
            if one { "it" } else { "them" }
        )));
    }
    Ok(secrets)
}

/// The bundle to restore from, and the source to record when it is a
/// base's head: `given` (`--bundle`); else the head of it that the
/// machine's base keeps, when this node has the base (base.rs); else
/// where the backup says it came from (`-`: a bundle that follows the
/// backup on stdin, `restore --node`). Errors: none of them is there (69).
fn bundle_for(
    manifest: &Manifest,
    given: Option<&Path>,
    report: &dyn Report,
) -> Result<(PathBuf, Option<Option<String>>)> {
    let head = match given {
        Some(_) => None,
        None => head_for(manifest)?,
    };
    let (bundle, source) = match (given, head, &manifest.source) {
        (Some(b), _, _) => (b.to_path_buf(), None),
        (None, Some(h), s) => {
            report.progress(&format!(
                "on base {}, which this node has: made from the bundle's head the base keeps, without the bundle",
                super::base::short(&manifest.base)
            ));
            (h, Some(s.clone()))
        }
        (None, None, Some(s)) => (PathBuf::from(s), None),
        (None, None, None) => return Err(Error::Unavailable {
            what: format!("the bundle of {} {}", manifest.template, manifest.version),
            why:
                "the backup does not say where it came from, and this node does not have its base: \
                      give it with --bundle"
                    .into(),
        }),
    };
    if crate::fetch::Url::of_arg(&bundle).is_none() && bundle != Path::new("-") && !bundle.exists()
    {
        return Err(Error::Unavailable {
            what: format!(
                "the bundle of {} {} ({})",
                manifest.template,
                manifest.version,
                bundle.display()
            ),
            why: "not there, and this node does not have its base: give it with --bundle FILE|URL"
                .into(),
        });
    }
    Ok((bundle, source))
}

/// The delta member read from `r` into the file `packed`, checked against
/// the manifest's signed digest and size before it is used. Errors:
/// reading it, or another delta (65); writing `packed` (73).
fn received_delta(
    r: &mut impl Read,
    manifest: &Manifest,
    packed: &Path,
    label: &Path,
) -> Result<()> {
    let bad = |why: String| Error::bundle(label, why);
    let mut f = std::fs::File::create(packed).map_err(|e| Error::create(packed, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf).map_err(|x| bad(format!("{DELTA}: {x}")))?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
        f.write_all(&buf[..k])
            .map_err(|x| Error::create(packed, x))?;
    }
    if hex(&h.finalize()) != manifest.delta_sha256 || n != manifest.delta_bytes {
        return Err(bad(format!(
            "{DELTA} is not the one {MANIFEST} names (its sha256 or size differs): changed since it was made"
        )));
    }
    Ok(())
}

/// The create a restore makes: the backup's machine again (`o.id`, or
/// its own ID and name when free), stopped unless `o.start`,
/// from `bundle`, with its parameters, then the secrets carried that are
/// not given, then those given. Errors: the manifest's memory or vcpus (65).
fn restore_create_options(
    manifest: &Manifest,
    secrets: &BTreeMap<String, String>,
    bundle: PathBuf,
    source: Option<Option<String>>,
    o: &RestoreOptions,
    label: &Path,
) -> Result<super::CreateOptions> {
    let bad = |why: String| Error::bundle(label, why);
    let m = &manifest.machine;
    let params = (manifest.params.iter())
        .chain(secrets)
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain(o.params.iter().cloned())
        .collect();
    Ok(super::CreateOptions {
        bundle,
        hypervisor: Some(m.hypervisor),
        id: o.id,
        name: None,
        again: (crate::ids::MachineId::new(m.id).ok()).map(|id| (id, m.name.parse().ok())),
        memory: super::Memory::from_mib(m.memory)
            .map_err(|e| bad(format!("{MANIFEST}: memory: {e}")))?,
        vcpus: (m.vcpus.to_string().parse())
            .map_err(|e: String| bad(format!("{MANIFEST}: vcpus: {e}")))?,
        cpu_shares: None,
        blkio_weight: None,
        vnc: false,
        connect: o.connect.clone(),
        keyring: o.keyring.clone(),
        allow_unsigned: o.allow_unsigned,
        start: o.start,
        access: Default::default(),
        disk_format: None,
        disk_size: None,
        params,
        no_base: manifest.full,
        local_ids: false,
        source,
    })
}

/// The unpacked `delta` laid on the machine the restore's create made
/// (domain `d`, directory `dir`), once its record says it stands on the
/// backup's base: copied over an lxc machine's root, written into a disk
/// machine's top image; then the paths the backup removed removed.
/// Errors: another bundle given (65); the copy or the image (65, 73).
fn lay_delta(
    d: &Dom,
    dir: &Path,
    manifest: &Manifest,
    delta: &Path,
    label: &Path,
    report: &dyn Report,
) -> Result<()> {
    let what = format!("machine in {}", dir.display());
    let record = domain::record_of(&d.inactive_xml()?);
    let base = &manifest.base;
    if record.as_ref().map(|r| r.bundle.as_str()) != Some(base.as_str()) {
        return Err(Error::bundle(
            label,
            format!(
                "the bundle given is not the one the machine was made from (its root {}, the backup's {base})",
                record.map(|r| r.bundle).unwrap_or_default(),
            ),
        ));
    }
    report.progress(&format!("laying the backup on the {what}"));
    if manifest.machine.hypervisor == Hypervisor::Lxc {
        let root = super::overlay::mount_point(dir);
        let how = crate::files::CopyTree {
            replace: true,
            ..Default::default()
        };
        crate::files::copy_tree(delta, &root, how)
            .report(report)
            .run_checked()?;
        for p in &manifest.removed {
            let at = root.join(p.strip_prefix("/").unwrap_or(p));
            if at.is_dir() && !at.is_symlink() {
                remove_tree(&at).map_err(|e| Error::io(&at, e))?;
            } else if at.symlink_metadata().is_ok() {
                std::fs::remove_file(&at).at(&at)?;
            }
        }
    } else {
        let top = super::disk::top_of(&d.inactive_xml()?, &what)?;
        let mut image = Image::open(&top.path, Access::ReadWrite, report)?;
        image.write_tree(delta, Path::new("/"), report)?;
        for p in &manifest.removed {
            image.remove(p, report)?;
        }
        image.close()?;
    }
    Ok(())
}

/// The head of the bundle the machine of `m` was made from that its base
/// keeps, when this node has the base (`base::heads`): the one of the
/// same template, version and hypervisor. Its signature is checked by the
/// create that reads it, as a bundle's is, and the base's fingerprint
/// with it. Errors: the base's record is unreadable (65), a head is not a
/// bundle's (65).
fn head_for(m: &Manifest) -> Result<Option<PathBuf>> {
    for h in super::base::heads(&m.base)? {
        let f = std::fs::File::open(&h).map_err(|e| Error::io(&h, e))?;
        let opts = crate::bundle::ReadOptions::lenient(crate::bundle::Check::Meta);
        let meta = crate::bundle::read(f, &h, &opts)?.meta;
        if meta.template.name == m.template
            && meta.template.version == m.version
            && meta.hypervisor == m.machine.hypervisor
        {
            return Ok(Some(h));
        }
    }
    Ok(None)
}

fn read_small(r: &mut impl Read, max: u64) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.take(max + 1).read_to_end(&mut v)?;
    if v.len() as u64 > max {
        return Err(std::io::Error::other(format!("over {max} bytes")));
    }
    Ok(v)
}

/// Read a backup's manifest from `input` without verifying it (for
/// `backup --prune`, which sorts by date). Errors: not a backup (65).
pub fn manifest_of(input: &Path) -> Result<Manifest> {
    let label = crate::files::display_name(input);
    let f = std::fs::File::open(input).map_err(|e| Error::io(input, e))?;
    let mut ar = tar::Archive::new(f);
    let mut entries = ar
        .entries()
        .map_err(|e| Error::bundle(&label, format!("not a backup: {e}")))?;
    match entries.next() {
        Some(Ok(mut e)) if e.path_bytes().as_ref() == MANIFEST.as_bytes() => {
            let json = read_small(&mut e, MANIFEST_MAX).map_err(|x| Error::io(input, x))?;
            serde_json::from_slice(&json)
                .map_err(|x| Error::bundle(&label, format!("{MANIFEST}: {x}")))
        }
        _ => Err(Error::bundle(&label, "not an mkve backup")),
    }
}

/// What `backup --prune` keeps of each machine's backups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keep {
    /// The newest N.
    pub last: usize,
    /// The newest of each of the last N days (UTC) that have backups.
    pub daily: usize,
    /// The newest of each of the last N weeks (ISO weeks, Monday first).
    pub weekly: usize,
}

/// Which of `made` (the dates, seconds since 1970, of one machine's
/// backups) `keep` keeps: their indices. The rules as restic's and
/// borg's `--keep-last`, `--keep-daily`, `--keep-weekly`: each keeps the
/// newest backup of each of its last N periods that have one, and what
/// any rule keeps stays.
pub fn kept(made: &[u64], keep: Keep) -> std::collections::BTreeSet<usize> {
    let mut order: Vec<usize> = (0..made.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(made[i]));
    let mut out: std::collections::BTreeSet<usize> =
        order.iter().take(keep.last).copied().collect();
    for (n, period) in [(keep.daily, 86_400u64), (keep.weekly, 7 * 86_400)] {
        let mut seen = std::collections::BTreeSet::new();
        for &i in &order {
            if seen.len() == n {
                break;
            }
            // 1970-01-01 was a Thursday: weeks start 3 days after it + 1.
            let key = if period == 86_400 {
                made[i] / period
            } else {
                (made[i] + 3 * 86_400) / period
            };
            if seen.insert(key) {
                out.insert(i);
            }
        }
    }
    out
}

/// Remove the backups in `dir` that `keep` does not keep, machine by
/// machine (told by the ID and name in their manifests; files that are no
/// backups are left alone). Returns the files removed. Errors (2): no
/// rule given (nothing would be kept); `dir` cannot be read (1).
pub fn prune(dir: &Path, keep: Keep) -> Result<Vec<PathBuf>> {
    if keep == Keep::default() {
        return Err(Error::Usage(
            "backup --prune: say what to keep (--keep-last, --keep-daily, --keep-weekly)".into(),
        ));
    }
    let mut by_machine: BTreeMap<(u32, String), Vec<(PathBuf, u64)>> = BTreeMap::new();
    for e in std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .flatten()
    {
        let path = e.path();
        if !path.is_file() {
            continue;
        }
        if let Ok(m) = manifest_of(&path) {
            by_machine
                .entry((m.machine.id, m.machine.name.clone()))
                .or_default()
                .push((path, m.made));
        }
    }
    let mut removed = Vec::new();
    for list in by_machine.values() {
        let made: Vec<u64> = list.iter().map(|(_, t)| *t).collect();
        let keep = kept(&made, keep);
        for (i, (path, _)) in list.iter().enumerate() {
            if !keep.contains(&i) {
                std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
                removed.push(path.clone());
            }
        }
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    #[test]
    fn retention_keeps_the_newest_of_each_period() {
        // Two backups a day for 30 days, from Monday 2026-11-02 00:00 UTC.
        let start = 1_793_577_600;
        let made: Vec<u64> = (0..60)
            .map(|i| start + i / 2 * DAY + (i % 2) * 3600)
            .collect();
        let last = kept(
            &made,
            Keep {
                last: 3,
                ..Keep::default()
            },
        );
        assert_eq!(last, [57, 58, 59].into());
        let daily = kept(
            &made,
            Keep {
                daily: 7,
                ..Keep::default()
            },
        );
        assert_eq!(
            daily,
            [47, 49, 51, 53, 55, 57, 59].into(),
            "the later of each day"
        );
        let weekly = kept(
            &made,
            Keep {
                weekly: 4,
                ..Keep::default()
            },
        );
        // Weeks start on Mondays: days 0-6, 7-13, 14-20, 21-27, 28-29.
        assert_eq!(weekly, [41, 55, 59, 27].into());
        let both = kept(
            &made,
            Keep {
                last: 1,
                daily: 2,
                weekly: 1,
            },
        );
        assert_eq!(both, [57, 59].into());
        assert!(kept(&made, Keep::default()).is_empty());
        assert!(kept(
            &[],
            Keep {
                last: 5,
                daily: 5,
                weekly: 5
            }
        )
        .is_empty());
    }

    #[test]
    fn prune_needs_a_rule_and_leaves_other_files() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(prune(d.path(), Keep::default()).unwrap_err().exit_code(), 2);
        std::fs::write(d.path().join("notes.txt"), "mine").unwrap();
        let removed = prune(
            d.path(),
            Keep {
                last: 1,
                ..Keep::default()
            },
        )
        .unwrap();
        assert!(removed.is_empty());
        assert!(d.path().join("notes.txt").exists());
    }
}
