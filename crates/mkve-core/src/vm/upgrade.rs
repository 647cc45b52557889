//! Upgrades (mkve-vm(1) UPGRADES): a machine moved onto a newer bundle of
//! its template, what it holds above its base kept, gated by the new
//! bundle's probes and rolled back by itself when they stay silent.
//!
//! An upgrade is "the same delta on the new base", with the old base kept
//! as the way back:
//!
//! 1. The new bundle is verified (signature, digests, the same template
//!    and hypervisor, its new required parameters given) and its base
//!    made or reused; the machine's changed files that the new base also
//!    changed (an edited configuration file whose package changed) are
//!    listed as conflicts, refused without `force`.
//! 2. The machine is stopped and a snapshot taken (`upgrade-TIME`,
//!    snapshot.rs); `upgrade/` is written in its directory: the record
//!    ([`Record`]), the domain's XML, and `old/` for the bundle's files
//!    and the base reference it replaces (which keep the old base held,
//!    base.rs).
//! 3. The switch: the kept bundle files (meta, signature, conf/, SBOM,
//!    provenance) and the base reference exchanged for the new bundle's;
//!    an lxc machine's upper layer stays as it is on the new lower one;
//!    a disk machine gets a new qcow2 overlay of the new base with its
//!    file-level delta laid in (`image::Image::write_tree`), the same seed
//!    disk, ID, MAC and parameters. The domain is defined again with its
//!    new record.
//! 4. Started, and `wait` on the new bundle's probes. Silent within the
//!    timeout, or a start that fails: everything goes back (the old XML,
//!    files, base and the snapshot's layer), the machine is started and
//!    probed again, and the upgrade fails (69) naming what failed.
//!
//! `commit` removes `upgrade/`, the snapshot, and the old base when
//! nothing else holds it; `rollback` goes back while it is held. A run
//! killed before its probes passed leaves `upgrade/` with its phase: the
//! next command that locks the machine rolls it back ([`resolve`]), so a
//! machine is always on exactly one base, whole.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::layout::{machine_dir, upgrade_dir, vms_dir, STAGING_PREFIX};
use super::manage::find_locked;
use super::upgrade_undo::{
    read_record, rollback_locked, undo_making, write_record, Phase, Record, BUNDLE_FILES, MAKING,
    OLD_XML, RAN, SNAPSHOT,
};
use super::{Machine, Uris};
use crate::bundle;
use crate::error::{Error, IoContext, Result};
use crate::exec::Report;
use crate::hypervisor::Hypervisor;
use crate::image::{Access, ChangeKind, Image};
use crate::libvirt::{domain, Connection, Dom};
use crate::scratch::{remove_tree, Scratch};

/// How an upgrade is made.
#[derive(Debug, Clone)]
pub struct UpgradeOptions {
    /// The new bundle: a file or URL.
    pub bundle: PathBuf,
    pub keyring: Option<PathBuf>,
    pub allow_unsigned: bool,
    /// Parameters given: the new bundle's new required ones, or new
    /// values for the machine's.
    pub params: Vec<(String, String)>,
    /// How long the new bundle's probes have to answer.
    pub timeout: Duration,
    /// Go on although conflicts were found.
    pub force: bool,
}

/// A path the machine changed that the new base changed too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// Absolute, in the machine's root.
    pub path: PathBuf,
    /// How the new base differs there: "changed" or "removed".
    pub new_base: &'static str,
}

/// What an upgrade did.
#[derive(Debug, Clone, Serialize)]
pub struct UpgradeSummary {
    pub machine: u32,
    pub from_version: String,
    pub to_version: String,
    /// The conflicts found (gone on with `force`).
    pub conflicts: Vec<Conflict>,
    /// The machine's last upgrade, committed first.
    pub committed_previous: bool,
    /// From the stop to the probes answering, in milliseconds.
    pub downtime_ms: u64,
}

/// Paths mkve's seed writes (seed.rs): the machine's own, never a
/// conflict.
fn is_seeds(p: &Path) -> bool {
    const SEED: [&str; 7] = [
        "/etc/hostname",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/etc/shadow",
        "/etc/shadow-",
        "/etc/machine-id",
        "/var/lib/mkve",
    ];
    p.starts_with("/etc/mkve")
        || p.starts_with("/root/.ssh")
        || SEED.iter().any(|s| p.starts_with(s))
}

/// The kind of machine an upgrade works on: lxc on a base, or a disk
/// machine on a base. Errors (2): another.
fn hypervisor_of(m: &Machine, dir: &Path) -> Result<Hypervisor> {
    let what = format!("machine {}", m.id);
    let hv = super::machine::kept_hypervisor(m, "upgrades are of lxc, qemu and kvm machines")?;
    let on_base = if hv == Hypervisor::Lxc {
        super::overlay::is_overlay(dir)
    } else {
        super::base::of_machine(dir).is_some()
    };
    if !on_base {
        return Err(Error::Usage(format!(
            "{what} stands on no base (made with --no-base, or detached): an upgrade lays \
             what it holds above its base on the new one; make a new machine and restore a backup instead"
        )));
    }
    Ok(hv)
}

/// Upgrade machine `target` to the bundle `o.bundle` (mkve-vm(1)
/// UPGRADES). Errors: no such machine (2); a machine an upgrade does not
/// take (2); a bundle that does not verify (65), of another template or
/// hypervisor (65), missing a new required parameter (2); conflicts
/// without `force` (1, listed); the new machine failed to start or its
/// probes stayed silent (69: rolled back, started and probed again).
pub fn upgrade(
    uris: &Uris,
    target: &str,
    o: &UpgradeOptions,
    report: &dyn Report,
) -> Result<UpgradeSummary> {
    let (conn, d, m, lock) = find_locked(uris, target)?;
    let dir = machine_dir(m.id);
    let what = format!("machine {}", m.id);
    let hv = hypervisor_of(&m, &dir)?;
    let mut committed_previous = false;
    if let Some(r) = read_record(&dir)? {
        report.warning(&format!(
            "{what}: its upgrade to {} (its probes passed) is committed first",
            r.to_version
        ));
        commit_locked(&d, &m, &dir, report)?;
        committed_previous = true;
    }
    let xml = d.inactive_xml()?;
    let record = domain::record_of(&xml)
        .ok_or_else(|| Error::Other(format!("{what}: its domain carries no record of mkve's")))?;
    let old_base = super::base::of_machine(&dir)
        .ok_or_else(|| Error::Other(format!("{what}: names no base")))?;

    // The new bundle, verified, and its base.
    let staging = Scratch::new_in(&vms_dir(), STAGING_PREFIX)?;
    let unpacked = staging.path().join("bundle");
    let (meta, signed_by, new_base, made) = base_of_bundle(o, hv, &unpacked, report)?;
    // A base this upgrade made goes again if the upgrade is refused.
    let refused = |e: Error| -> Error {
        if made {
            let _ = std::fs::remove_file(unpacked.join(super::base::REF));
            let _ = super::base::release(&new_base.record.digest, report);
        }
        e
    };
    let checked = check_new(
        &d,
        &m,
        hv,
        &dir,
        &record,
        &old_base,
        &meta,
        &new_base,
        staging.path(),
        o,
        report,
    );
    let Checked {
        params,
        conflicts,
        running,
        started,
    } = checked.map_err(refused)?;

    // The snapshot, and the record of the way back.
    let snapshot = format!("upgrade-{}", crate::date::now());
    let up = upgrade_dir(&dir);
    let way_back = || -> Result<(Record, String)> {
        let making = dir.join(MAKING);
        crate::files::write_atomic(&making.join(SNAPSHOT), snapshot.as_bytes())?;
        super::snapshot_store::snapshot_locked(&d, &m, &snapshot, report)?;
        let xml = d.inactive_xml()?;
        let added: Vec<String> = BUNDLE_FILES
            .iter()
            .filter(|f| unpacked.join(f).symlink_metadata().is_ok())
            .filter(|f| dir.join(f).symlink_metadata().is_err())
            .map(|f| f.to_string())
            .collect();
        let rec = Record {
            phase: Phase::Switching,
            made: crate::date::now(),
            from_version: record.version.clone(),
            to_version: meta.template.version.clone(),
            from: old_base.clone(),
            to: new_base.record.digest.clone(),
            snapshot: snapshot.clone(),
            running,
            added,
            layer: None,
        };
        crate::files::write_atomic(&making.join(OLD_XML), xml.as_bytes())?;
        crate::files::write_atomic(
            &making.join("old").join(super::base::REF),
            format!("{old_base}\n").as_bytes(),
        )?;
        write_record(&making, &rec)?;
        std::fs::rename(&making, &up).at(&up)?;
        Ok((rec, xml))
    };
    let (mut rec, xml) = way_back().map_err(|e| {
        let _ = undo_making(&d, &m, &dir, report);
        refused(e)
    })?;

    // The switch; whatever fails from here is rolled back.
    let switched = switch(
        &conn, &d, &m, hv, &dir, &up, &unpacked, &new_base, &mut rec, &params, &xml, &meta,
        signed_by, o, report,
    );
    drop(staging);
    let failed = match switched {
        Err(e) => Some(format!("the switch failed: {e}")),
        Ok(()) => {
            report.progress(&format!(
                "starting {what} on {} {}",
                meta.template.name, meta.template.version
            ));
            match super::overlay::prepare_root(&m).and_then(|()| d.start(&what)) {
                Err(e) => Some(format!("it did not start: {e}")),
                Ok(()) => {
                    // wait takes no lock: the machine's stays held.
                    match super::wait::wait(uris, &[m.id.to_string()], o.timeout, report) {
                        Ok(()) => {
                            rec.phase = Phase::Done;
                            write_record(&up, &rec)?;
                            // A machine that was stopped is stopped again.
                            if !running {
                                stop_for_upgrade(&d, &what)?;
                            }
                            drop(lock);
                            return Ok(UpgradeSummary {
                                machine: m.id.get(),
                                from_version: rec.from_version,
                                to_version: rec.to_version,
                                conflicts,
                                committed_previous,
                                downtime_ms: started.elapsed().as_millis() as u64,
                            });
                        }
                        Err(e) => Some(format!("its probes did not all answer: {e}")),
                    }
                }
            }
        }
    };
    let why = failed.unwrap_or_default();
    report.warning(&format!("{what}: {why}: rolling back"));
    rollback_locked(&conn, &d, &m, &dir, report)?;
    // Started again under the lock; its probes waited for without it.
    let restarted = rec
        .running
        .then(|| super::overlay::prepare_root(&m).and_then(|()| d.start(&what)));
    drop(lock);
    let again = match restarted {
        None => "back on its old bundle".to_string(),
        Some(Err(e)) => format!("back on its old bundle, but it did not start: {e}"),
        Some(Ok(())) => match super::wait::wait(uris, &[m.id.to_string()], o.timeout, report) {
            Ok(()) => "started again on its old bundle, its probes answer".to_string(),
            Err(e) => format!("started again on its old bundle, but: {e}"),
        },
    };
    Err(Error::Unavailable {
        what: format!(
            "the upgrade of {what} to {} {}",
            meta.template.name, meta.template.version
        ),
        why: format!("{why}; rolled back: {again}"),
    })
}

/// The checks of an upgrade before anything is changed (step 1), the
/// machine stopped for the last of them (and started again when they
/// refuse it).
#[allow(clippy::too_many_arguments)]
fn check_new(
    d: &Dom,
    m: &Machine,
    hv: Hypervisor,
    dir: &Path,
    record: &domain::Record,
    old_base: &str,
    meta: &bundle::Meta,
    new_base: &super::base::Base,
    work: &Path,
    o: &UpgradeOptions,
    report: &dyn Report,
) -> Result<Checked> {
    let unpacked = work.join("bundle");
    let what = format!("machine {}", m.id);
    let label = crate::files::display_name(&o.bundle);
    if meta.template.name != record.template {
        return Err(Error::bundle(
            &label,
            format!(
                "is a bundle of template {}, {what} of {}",
                meta.template.name, record.template
            ),
        ));
    }
    if new_base.record.digest == old_base {
        return Err(Error::Usage(format!(
            "{what} stands on this bundle's root already ({} {})",
            meta.template.name, meta.template.version
        )));
    }
    let params = check_params(dir, &unpacked, &o.params, &label, &what)?;

    // What the machine changed that the new base changed too.
    let old = super::base::open(old_base)?
        .ok_or_else(|| Error::Other(format!("{what}: its base {} is gone", old_base)))?;
    let running = d.is_active()?;
    let started = std::time::Instant::now();
    // From here on, a run killed before the record is whole leaves
    // `upgrade.new/`, whose `running` has the next command start the
    // machine again ([`resolve`]).
    let making = dir.join(MAKING);
    let _ = remove_tree(&making);
    std::fs::create_dir_all(making.join("old")).map_err(|e| Error::create(&making, e))?;
    if running {
        crate::files::write_atomic(&making.join(RAN), b"")?;
        report.progress(&format!("stopping {what}"));
        stop_for_upgrade(d, &what)?;
    }
    // Refused from here on, a machine that ran is started again.
    let again = |e: Error| -> Error {
        if running {
            let _ = super::overlay::prepare_root(m).and_then(|()| d.start(&what));
        }
        let _ = remove_tree(&making);
        e
    };
    let conflicts = conflicts_of(d, m, hv, dir, &old, new_base, work, report).map_err(again)?;
    if !conflicts.is_empty() && !o.force {
        let list = conflicts
            .iter()
            .map(|c| format!("{} ({} in the new base)", c.path.display(), c.new_base))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(again(Error::Other(format!(
            "{what}: {} path{} it changed the new base changes too: {list}; \
             --force upgrades it keeping the machine's",
            conflicts.len(),
            if conflicts.len() == 1 { "" } else { "s" }
        ))));
    }
    Ok(Checked {
        params,
        conflicts,
        running,
        started,
    })
}

/// What [`check_new`] found.
struct Checked {
    /// The parameters given, to be written, and whether each is secret.
    params: Vec<(String, String, bool)>,
    conflicts: Vec<Conflict>,
    /// The machine ran (it is stopped now).
    running: bool,
    /// When it was stopped (or checked, when it did not run).
    started: std::time::Instant,
}

/// Stop a machine for its upgrade: asked to shut down, and asked again
/// every 5 s while it runs (a request that reaches a container whose init
/// is still starting, just after a reboot, is lost), pulled after 60 s.
fn stop_for_upgrade(d: &Dom, what: &str) -> Result<()> {
    let start = std::time::Instant::now();
    let mut why = String::new();
    let mut asked: Option<std::time::Instant> = None;
    while d.is_active()? {
        if start.elapsed() >= Duration::from_secs(60) {
            return d.destroy(what);
        }
        if asked.is_none_or(|t| t.elapsed() >= Duration::from_secs(5))
            && d.shutdown_if_ready(what, &mut why)?
        {
            asked = Some(std::time::Instant::now());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// The new bundle read into `unpacked` (its root only when its base must
/// be made), its signer, and its base, made (true) or reused.
fn base_of_bundle(
    o: &UpgradeOptions,
    hv: Hypervisor,
    unpacked: &Path,
    report: &dyn Report,
) -> Result<(bundle::Meta, Option<String>, super::base::Base, bool)> {
    use super::base::{self, Kind};
    let src = super::create::BundleSource {
        bundle: &o.bundle,
        keyring: o.keyring.as_deref(),
        allow_unsigned: o.allow_unsigned,
        hypervisor: Some(hv),
    };
    let found = std::cell::RefCell::new(None);
    let decide = |meta: &bundle::Meta| -> Result<bool> {
        let Some(digest) = meta.members.get(bundle::ROOTFS) else {
            return Ok(false);
        };
        let lock = base::lock(digest)?;
        let b = base::open(digest)?;
        let reuse = b.is_some();
        *found.borrow_mut() = Some((digest.clone(), b, lock));
        Ok(reuse)
    };
    report.progress("verifying the new bundle");
    let (meta, signed_by) = super::create::read_bundle_from(
        &src,
        bundle::Check::Digests,
        Some(unpacked),
        Some(&decide),
        report,
    )?;
    let label = crate::files::display_name(&o.bundle);
    let Some((digest, b, lock)) = found.into_inner() else {
        return Err(Error::bundle(&label, "has no root"));
    };
    let made = b.is_none();
    let b = match b {
        Some(b) => b,
        None => {
            let kind = Kind::of(hv).unwrap_or(Kind::Root);
            base::refuse_remaking(kind, &digest)?;
            let rootfs = unpacked.join("rootfs");
            if kind == Kind::Disk && !rootfs.join(base::SEED_PROGRAM).is_file() {
                return Err(Error::bundle(
                    &label,
                    format!(
                        "its root has no /{} (hook 06-mkve-seed): its machines cannot share a base, so none can be upgraded onto it",
                        base::SEED_PROGRAM
                    ),
                ));
            }
            let bytes = super::disk::root_bytes(&rootfs);
            let made = base::make(&digest, kind, &meta, &rootfs, bytes, &label, report)?;
            let _ = remove_tree(&rootfs);
            made
        }
    };
    // Held by the staging directory until the machine names it; the lock
    // can go then (a start checks the base under it).
    let r = unpacked.join(base::REF);
    std::fs::write(&r, format!("{digest}\n")).map_err(|e| Error::create(&r, e))?;
    drop(lock);
    Ok((meta, signed_by, b, made))
}

/// The parameters given, checked against the new bundle's declarations:
/// each must be declared, and each required one the old bundle did not
/// declare must be given. Errors (2): one not declared or missing.
fn check_params(
    dir: &Path,
    unpacked: &Path,
    given: &[(String, String)],
    label: &Path,
    what: &str,
) -> Result<Vec<(String, String, bool)>> {
    let label_s = label.to_string_lossy();
    let new = crate::params::of_unpacked(unpacked, &label_s)?;
    let old = crate::params::of_unpacked(dir, what)?;
    for (name, _) in given {
        if !new.iter().any(|p| &p.name == name) {
            return Err(Error::Usage(format!(
                "--param {name}: {} declares no parameter {name}",
                label.display()
            )));
        }
    }
    let missing: Vec<&str> = new
        .iter()
        .filter(|p| p.required && p.default.is_none())
        .filter(|p| !old.iter().any(|q| q.name == p.name))
        .filter(|p| !given.iter().any(|(n, _)| n == &p.name))
        .map(|p| p.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(Error::Usage(format!(
            "{} requires {} that {what} was not made with: give {} with --param NAME=VALUE",
            label.display(),
            missing.join(", "),
            if missing.len() == 1 { "it" } else { "them" }
        )));
    }
    // Each value checked as create checks it.
    let declared: Vec<crate::params::Param> = new
        .into_iter()
        .filter(|p| given.iter().any(|(n, _)| n == &p.name))
        .map(|mut p| {
            p.required = false;
            p
        })
        .collect();
    crate::params::resolve(&declared, given, &label_s)?;
    Ok(given
        .iter()
        .map(|(n, v)| {
            let secret = declared.iter().any(|p| &p.name == n && p.secret);
            (n.clone(), v.clone(), secret)
        })
        .collect())
}

/// The paths the machine changed (its delta over its base `old`) that
/// `new` has otherwise than `old` (changed or removed). Read with the
/// machine stopped.
#[allow(clippy::too_many_arguments)]
fn conflicts_of(
    d: &Dom,
    m: &Machine,
    hv: Hypervisor,
    dir: &Path,
    old: &super::base::Base,
    new: &super::base::Base,
    work: &Path,
    report: &dyn Report,
) -> Result<Vec<Conflict>> {
    let mut out = Vec::new();
    if hv == Hypervisor::Lxc {
        let changes = crate::image::diff_upper(&dir.join("upper"), &old.root())?;
        for c in changes {
            if c.kind != ChangeKind::Changed || is_seeds(&c.path) {
                continue;
            }
            let rel = c.path.strip_prefix("/").unwrap_or(&c.path);
            let (a, b) = (old.root().join(rel), new.root().join(rel));
            if let Some(how) = differs(&a, &b)? {
                out.push(Conflict {
                    path: c.path,
                    new_base: how,
                });
            }
        }
        return Ok(out);
    }
    let top = super::disk::top_of(&d.inactive_xml()?, &format!("machine {}", m.id))?;
    let view = work.join("conflicts.qcow2");
    super::snapshot_store::overlay_on(&top.path, &top.format, &view, report)?;
    let image = Image::open(&view, Access::ReadWrite, report)?;
    let a = Image::open(&old.disk(), Access::ReadOnly, report)?;
    let changes = crate::image::diff_images(&image, &a)?;
    image.close()?;
    let _ = std::fs::remove_file(&view);
    let b = Image::open(&new.disk(), Access::ReadOnly, report)?;
    for c in changes {
        if c.kind != ChangeKind::Changed || is_seeds(&c.path) {
            continue;
        }
        let (ea, eb) = (a.stat(&c.path)?, b.stat(&c.path)?);
        let how = match (ea, eb) {
            (Some(_), None) => Some("removed"),
            (Some(x), Some(y)) if x.kind != y.kind => Some("changed"),
            (Some(_), Some(_)) => {
                (a.read(&c.path).ok() != b.read(&c.path).ok()).then_some("changed")
            }
            _ => None,
        };
        if let Some(how) = how {
            out.push(Conflict {
                path: c.path,
                new_base: how,
            });
        }
    }
    a.close()?;
    b.close()?;
    Ok(out)
}

/// How `b` differs from `a` (two paths in two roots): `None` when they
/// hold the same (type, link target, contents).
fn differs(a: &Path, b: &Path) -> Result<Option<&'static str>> {
    let (ma, mb) = (a.symlink_metadata(), b.symlink_metadata());
    let (Ok(ma), mb) = (ma, mb) else {
        return Ok(None);
    };
    let Ok(mb) = mb else {
        return Ok(Some("removed"));
    };
    if ma.file_type() != mb.file_type() {
        return Ok(Some("changed"));
    }
    if ma.file_type().is_symlink() {
        return Ok((std::fs::read_link(a).ok() != std::fs::read_link(b).ok()).then_some("changed"));
    }
    if ma.is_file() {
        if ma.len() != mb.len() {
            return Ok(Some("changed"));
        }
        let (x, y) = (std::fs::read(a).at(a)?, std::fs::read(b).at(b)?);
        return Ok((x != y).then_some("changed"));
    }
    Ok(None)
}

/// The switch onto the new base (step 3 of the module's list), recorded
/// in `rec` as it goes.
#[allow(clippy::too_many_arguments)]
fn switch(
    conn: &Connection,
    d: &Dom,
    m: &Machine,
    hv: Hypervisor,
    dir: &Path,
    up: &Path,
    unpacked: &Path,
    new_base: &super::base::Base,
    rec: &mut Record,
    params: &[(String, String, bool)],
    old_xml: &str,
    meta: &bundle::Meta,
    signed_by: Option<String>,
    o: &UpgradeOptions,
    report: &dyn Report,
) -> Result<()> {
    let what = format!("machine {}", m.id);
    let mut xml = old_xml.to_string();
    if hv == Hypervisor::Lxc {
        super::overlay::unmount(dir)?;
        // Parameters given go where the seed puts them.
        write_params(&dir.join("upper"), params)?;
        // overlayfs's work directory belongs to the old stack.
        let work = dir.join("work");
        remove_tree(&work).map_err(|e| Error::io(&work, e))?;
        std::fs::create_dir(&work).map_err(|e| Error::create(&work, e))?;
    } else {
        let old_top = super::disk::top_of(old_xml, &what)?;
        let staging = Scratch::new_in(&vms_dir(), STAGING_PREFIX)?;
        let delta = staging.path().join("delta");
        std::fs::create_dir(&delta).map_err(|e| Error::create(&delta, e))?;
        report.progress(&format!("reading what {what} holds above its base"));
        let (_changed, removed) = super::backup::disk_delta(&super::backup::Source {
            d,
            m,
            dir,
            base: Some(&rec.from),
            delta: &delta,
            work: staging.path(),
            running: false,
            full: false,
            report,
        })?;
        write_params(&delta, params)?;
        let layers = super::layout::layers_dir(dir);
        std::fs::create_dir_all(&layers).map_err(|e| Error::create(&layers, e))?;
        let layer = layers.join(format!("upgrade-{}.qcow2", rec.made));
        let tmp = staging.path().join("layer.qcow2");
        let size = super::qemu_img::virtual_size(&old_top.path, &crate::exec::Silent)?;
        super::disk::make_overlay(&new_base.disk(), &tmp, size, report)?;
        report.progress(&format!("laying {what}'s files on the new base"));
        let mut image = Image::open(&tmp, Access::ReadWrite, report)?;
        image.write_tree(&delta, Path::new("/"), report)?;
        for p in &removed {
            image.remove(p, report)?;
        }
        image.close()?;
        rec.layer = Some(
            layer
                .strip_prefix(dir)
                .unwrap_or(&layer)
                .to_string_lossy()
                .into_owned(),
        );
        write_record(up, rec)?;
        std::fs::rename(&tmp, &layer).at(&layer)?;
        xml = xml.replace(
            &crate::libvirt::esc(&old_top.path.to_string_lossy()),
            &crate::libvirt::esc(&layer.to_string_lossy()),
        );
        // The kernel and initrd are the new base's.
        let old_dir = super::layout::bases_dir().join(&rec.from);
        xml = xml.replace(
            &crate::libvirt::esc(&old_dir.to_string_lossy()),
            &crate::libvirt::esc(&new_base.dir.to_string_lossy()),
        );
    }
    // The bundle's files and the base reference, exchanged.
    for f in BUNDLE_FILES {
        let (here, old, new) = (dir.join(f), up.join("old").join(f), unpacked.join(f));
        if here.symlink_metadata().is_ok() {
            std::fs::rename(&here, &old).at(&old)?;
        }
        if new.symlink_metadata().is_ok() {
            std::fs::rename(&new, &here).at(&here)?;
        }
    }
    crate::files::write_atomic(
        &dir.join(super::base::REF),
        format!("{}\n", new_base.record.digest).as_bytes(),
    )?;
    let record = domain::record_of(old_xml)
        .ok_or_else(|| Error::Other(format!("{what}: its domain carries no record of mkve's")))?;
    let new_record = domain::Record {
        version: meta.template.version.clone(),
        bundle: new_base.record.digest.clone(),
        signed_by,
        source: super::create::source_of(&o.bundle),
        ..record
    };
    let xml = with_record(&xml, &new_record)?;
    report.note(&format!("defining {what} again:\n{xml}"));
    conn.define(&xml, &what)?;
    let _ = d;
    Ok(())
}

/// Parameter values written into `root` (a layer or a delta tree) as the
/// seed writes them: `etc/mkve/params/NAME`, 0600 for a secret one, 0644
/// for another.
fn write_params(root: &Path, params: &[(String, String, bool)]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if params.is_empty() {
        return Ok(());
    }
    let d = root.join(crate::params::DIR);
    std::fs::create_dir_all(&d).map_err(|e| Error::create(&d, e))?;
    for (name, value, secret) in params {
        let f = d.join(name);
        crate::files::write_atomic(&f, value.as_bytes())?;
        let mode = if *secret { 0o600 } else { 0o644 };
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).at(&f)?;
    }
    Ok(())
}

/// `xml` with its record of mkve's replaced by `r`.
fn with_record(xml: &str, r: &domain::Record) -> Result<String> {
    let doc = roxmltree::Document::parse(xml)
        .map_err(|e| Error::Other(format!("a domain's XML: {e}")))?;
    let vm = doc
        .descendants()
        .find(|n| n.tag_name().name() == "vm" && n.tag_name().namespace() == Some(domain::NS))
        .ok_or_else(|| Error::Other("a domain's XML carries no record of mkve's".into()))?;
    let range = vm.range();
    Ok(format!(
        "{}{}{}",
        &xml[..range.start],
        domain::metadata_xml(r),
        &xml[range.end..]
    ))
}

/// Commit machine `target`'s upgrade: its snapshot, the old bundle's
/// files and (when nothing else holds it) the old base removed. Errors:
/// no such machine (2), none to commit (2).
pub fn commit(uris: &Uris, target: &str, report: &dyn Report) -> Result<()> {
    let (_conn, d, m, _lock) = find_locked(uris, target)?;
    let dir = machine_dir(m.id);
    if read_record(&dir)?.is_none() {
        return Err(Error::Usage(format!(
            "machine {} has no upgrade to commit",
            m.id
        )));
    }
    commit_locked(&d, &m, &dir, report)
}

fn commit_locked(d: &Dom, m: &Machine, dir: &Path, report: &dyn Report) -> Result<()> {
    let Some(r) = read_record(dir)? else {
        return Ok(());
    };
    let up = upgrade_dir(dir);
    // The record first: from here on there is nothing to go back to.
    let trash = dir.join(format!("{STAGING_PREFIX}upgrade"));
    let _ = remove_tree(&trash);
    std::fs::rename(&up, &trash).at(&trash)?;
    if super::layout::snapshots_dir(dir).join(&r.snapshot).exists() {
        super::snapshot_store::delete_locked(d, m, &r.snapshot, report)?;
    }
    remove_tree(&trash).map_err(|e| Error::io(&trash, e))?;
    if super::base::release(&r.from, report)? {
        report.progress(&format!("base {} released", super::base::short(&r.from)));
    }
    Ok(())
}

/// Put machine `target` back on the bundle it had before its upgrade,
/// as it was when the upgrade began, started again if it ran then.
/// Errors: no such machine (2), no upgrade held (2).
pub fn rollback(uris: &Uris, target: &str, report: &dyn Report) -> Result<()> {
    let (conn, d, m, _lock) = find_locked(uris, target)?;
    let dir = machine_dir(m.id);
    let Some(r) = read_record(&dir)? else {
        return Err(Error::Usage(format!(
            "machine {} has no upgrade to roll back (a committed one cannot be)",
            m.id
        )));
    };
    rollback_locked(&conn, &d, &m, &dir, report)?;
    if r.running {
        super::overlay::prepare_root(&m)?;
        d.start(&format!("machine {}", m.id))?;
    }
    Ok(())
}

/// How a fleet is upgraded (`upgrade --template NAME --to BUNDLE`).
#[derive(Debug, Clone)]
pub struct RolloutOptions {
    /// Each machine's upgrade, `bundle` the new one.
    pub each: UpgradeOptions,
    /// The template whose machines are upgraded.
    pub template: String,
    /// How many machines go first, one at a time.
    pub canary: usize,
    /// How many machines are upgraded at once after the canaries (1 or
    /// more).
    pub max_parallel: usize,
    /// The machines of every node mkve.conf lists, each upgraded on its
    /// node (`mkve-vm upgrade` there, over ssh), not this node's only.
    pub all_nodes: bool,
}

/// Where one machine of a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "result", content = "detail")]
pub enum Outcome {
    /// Upgraded now (its upgrade held for a commit).
    Upgraded,
    /// On the new bundle already (a rollout run again goes on from here).
    Already,
    /// Its upgrade failed: rolled back; the rollout stopped here.
    Failed(String),
    /// Not tried: the rollout stopped before it.
    Untouched,
}

/// One machine of a rollout.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutEntry {
    pub machine: u32,
    pub name: String,
    /// The node it is on (`--all-nodes`); `None`: this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The version it stands on now.
    pub version: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Upgrade every machine of template `o.template` on this node (on every
/// node mkve.conf lists, with `all_nodes`) that is not on the bundle
/// `o.each.bundle` yet: the first `canary` one at a time, then the rest in
/// waves of `max_parallel`, by ID; the first failure stops the rollout
/// (the failed machine is rolled back by its upgrade, the others not tried
/// are left as they are). Run again, it goes on where it stopped
/// (machines on the new bundle are passed by). A machine on another node
/// is upgraded by that node's `mkve-vm upgrade` over ssh, which reads the
/// bundle itself (a URL, or a path every node has) and checks it against
/// its own keyring. Returns each machine's outcome, by ID. Errors: the
/// bundle cannot be read (65, 69), no machine of the template (2),
/// `all_nodes` without nodes in mkve.conf or with `--keyring` (2), a node
/// that does not answer (69, before any machine is upgraded).
pub fn rollout(uris: &Uris, o: &RolloutOptions, report: &dyn Report) -> Result<Vec<RolloutEntry>> {
    let src = super::create::BundleSource {
        bundle: &o.each.bundle,
        keyring: o.each.keyring.as_deref(),
        allow_unsigned: o.each.allow_unsigned,
        hypervisor: None,
    };
    let (meta, _) = super::create::read_bundle_from(&src, bundle::Check::Meta, None, None, report)?;
    let digest = meta
        .members
        .get(bundle::ROOTFS)
        .cloned()
        .unwrap_or_default();
    if meta.template.name != o.template {
        return Err(Error::bundle(
            crate::files::display_name(&o.each.bundle),
            format!(
                "is a bundle of template {}, not {}",
                meta.template.name, o.template
            ),
        ));
    }
    let nodes = crate::nodes::Nodes::load()?;
    let machines: Vec<(Option<String>, super::Machine)> = if o.all_nodes {
        if o.each.keyring.is_some() {
            return Err(Error::Usage(
                "upgrade --all-nodes: each node checks the bundle against its own keyring (no --keyring)"
                    .into(),
            ));
        }
        let site = super::site::list_nodes(&nodes)?;
        if let Some(u) = site.unreachable.first() {
            return Err(Error::Unavailable {
                what: format!("node {} ({})", u.node, u.uri),
                why: format!(
                    "did not answer ({}): a rollout over every node needs to see them all; nothing was upgraded",
                    u.error
                ),
            });
        }
        site.machines
            .into_iter()
            .map(|n| ((!nodes.is_this(&n.node)).then_some(n.node), n.machine))
            .collect()
    } else {
        super::lookup::list(uris)?
            .into_iter()
            .map(|m| (None, m))
            .collect()
    };
    let mut entries: Vec<RolloutEntry> = machines
        .into_iter()
        .filter(|(_, m)| m.template == o.template && !m.uri.is_empty())
        .map(|(node, m)| RolloutEntry {
            machine: m.id.get(),
            name: m.name.clone(),
            node,
            version: m.version.clone(),
            outcome: if m.bundle == digest {
                Outcome::Already
            } else {
                Outcome::Untouched
            },
        })
        .collect();
    if entries.is_empty() {
        return Err(Error::Usage(format!(
            "no machine of template {} on {}",
            o.template,
            if o.all_nodes { "any node" } else { "this node" }
        )));
    }
    let todo: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].outcome == Outcome::Untouched)
        .collect();
    let (canaries, rest) = todo.split_at(o.canary.min(todo.len()));
    let waves = canaries
        .iter()
        .map(std::slice::from_ref)
        .chain(rest.chunks(o.max_parallel.max(1)));
    let one = |e: &RolloutEntry| -> Result<String> {
        let id = e.machine.to_string();
        match &e.node {
            None => upgrade(uris, &id, &o.each, report).map(|s| s.to_version),
            Some(node) => upgrade_on(&nodes, node, &id, &o.each, report)
                .map(|()| meta.template.version.clone()),
        }
    };
    for wave in waves {
        let names: Vec<String> = wave
            .iter()
            .map(|&i| match &entries[i].node {
                Some(n) => format!("{} (on {n})", entries[i].machine),
                None => entries[i].machine.to_string(),
            })
            .collect();
        report.progress(&format!(
            "upgrading machine{} {}",
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        ));
        let results: Vec<Result<String>> = std::thread::scope(|s| {
            let handles: Vec<_> = wave
                .iter()
                .map(|&i| {
                    let e = &entries[i];
                    let one = &one;
                    s.spawn(move || one(e))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::Other("an upgrade's thread panicked".into()))
                    })
                })
                .collect()
        });
        let mut stop = false;
        for (&i, r) in wave.iter().zip(results) {
            match r {
                Ok(version) => {
                    entries[i].version = version;
                    entries[i].outcome = Outcome::Upgraded;
                }
                Err(e) => {
                    entries[i].outcome = Outcome::Failed(e.to_string());
                    stop = true;
                }
            }
        }
        if stop {
            break;
        }
    }
    Ok(entries)
}

/// What a rollout sends a node to upgrade one of its machines
/// (mkve-vm(1), NODES): one line of JSON on ssh's stdin, so that the
/// parameters, secret ones among them, stand on no command line. The node
/// checks each value again, as its command line would.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpgradeRequest {
    machine: String,
    /// A URL, or a path the node has.
    bundle: PathBuf,
    timeout_secs: u64,
    force: bool,
    allow_unsigned: bool,
    params: Vec<(String, String)>,
}

/// The node's side of a rollout's [`upgrade_on`]: the request line from
/// stdin, then the upgrade, checked with this node's keyring. Errors:
/// no request line or a bad one (2); the upgrade's.
pub fn upgrade_from_stream(uris: &Uris, report: &dyn Report) -> Result<UpgradeSummary> {
    let r: UpgradeRequest = super::remote::read_request("upgrade")?;
    let o = UpgradeOptions {
        bundle: r.bundle,
        keyring: None,
        allow_unsigned: r.allow_unsigned,
        params: r.params,
        timeout: Duration::from_secs(r.timeout_secs),
        force: r.force,
    };
    upgrade(uris, &r.machine, &o, report)
}

/// Upgrade machine `id` on node `node` by its `mkve-vm upgrade` over ssh,
/// the options of `o` sent as an [`UpgradeRequest`] (the bundle as given:
/// a URL, or a path the node has). Errors: ssh did not reach the node
/// (69), the upgrade failed there (its status, and the last line it told
/// on stderr).
fn upgrade_on(
    nodes: &crate::nodes::Nodes,
    node: &str,
    id: &str,
    o: &UpgradeOptions,
    report: &dyn Report,
) -> Result<()> {
    let n = nodes.get(node)?;
    let bundle = match crate::fetch::Url::of_arg(&o.bundle) {
        Some(_) => o.bundle.clone(),
        None => std::path::absolute(&o.bundle).map_err(|e| Error::io(&o.bundle, e))?,
    };
    let request = UpgradeRequest {
        machine: id.into(),
        bundle,
        timeout_secs: o.timeout.as_secs(),
        force: o.force,
        allow_unsigned: o.allow_unsigned,
        params: o.params.clone(),
    };
    let mut line = serde_json::to_vec(&request).map_err(|e| Error::Other(e.to_string()))?;
    line.push(b'\n');
    let args = ["-q".into(), "__upgrade-stream".into()];
    let out = super::remote::ssh_command(nodes, n, &args, false)?
        .report(report)
        .output_with_input(&line)?;
    if out.status.success() {
        return Ok(());
    }
    let told = String::from_utf8_lossy(&out.stderr);
    let last = told
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    Err(super::remote::remote_failure(
        n,
        &format!("upgrade of machine {id}"),
        out.status,
        if last.is_empty() {
            String::new()
        } else {
            format!(": {last}")
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollout_s_request_is_one_line_read_back_whole_and_strict() {
        let r = UpgradeRequest {
            machine: "5001".into(),
            bundle: "/srv/fleet 2.bun".into(),
            timeout_secs: 60,
            force: false,
            allow_unsigned: true,
            params: vec![("fleet_token".into(), "Sesame 7\\\"".into())],
        };
        let line = serde_json::to_string(&r).unwrap();
        assert!(!line.contains('\n'), "{line}");
        assert_eq!(serde_json::from_str::<UpgradeRequest>(&line).unwrap(), r);
        let unknown = line.replace("\"force\"", "\"forced\"");
        assert!(serde_json::from_str::<UpgradeRequest>(&unknown).is_err());
    }

    #[test]
    fn seed_paths_are_never_conflicts() {
        for p in [
            "/etc/hostname",
            "/etc/mkve/params/x",
            "/root/.ssh/authorized_keys",
        ] {
            assert!(is_seeds(Path::new(p)), "{p}");
        }
        for p in [
            "/etc/chrony/chrony.conf",
            "/etc/hostnames",
            "/root/.profile",
        ] {
            assert!(!is_seeds(Path::new(p)), "{p}");
        }
    }

    #[test]
    fn differs_tells_contents_types_and_removals() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("same"), "x").unwrap();
        std::fs::write(b.join("same"), "x").unwrap();
        std::fs::write(a.join("edit"), "x").unwrap();
        std::fs::write(b.join("edit"), "y").unwrap();
        std::fs::write(a.join("gone"), "x").unwrap();
        std::fs::write(a.join("kind"), "x").unwrap();
        std::os::unix::fs::symlink("same", b.join("kind")).unwrap();
        assert_eq!(differs(&a.join("same"), &b.join("same")).unwrap(), None);
        assert_eq!(
            differs(&a.join("edit"), &b.join("edit")).unwrap(),
            Some("changed")
        );
        assert_eq!(
            differs(&a.join("gone"), &b.join("gone")).unwrap(),
            Some("removed")
        );
        assert_eq!(
            differs(&a.join("kind"), &b.join("kind")).unwrap(),
            Some("changed")
        );
        // Not in the old base: the machine's own file, no conflict.
        assert_eq!(differs(&a.join("new"), &b.join("same")).unwrap(), None);
    }

    #[test]
    fn a_record_is_swapped_in_the_xml_and_nothing_else() {
        let r = domain::Record {
            id: 101,
            address: "192.0.2.101".parse().unwrap(),
            template: "ntp-server".into(),
            version: "1".into(),
            bundle: "a".repeat(64),
            signed_by: None,
            source: Some("/srv/ntp.bun".into()),
            adopted: false,
        };
        let xml = format!(
            "<domain type='lxc'><name>n</name><metadata>{}</metadata><devices/></domain>",
            domain::metadata_xml(&r)
        );
        let new = domain::Record {
            version: "2".into(),
            bundle: "b".repeat(64),
            ..r.clone()
        };
        let out = with_record(&xml, &new).unwrap();
        assert_eq!(domain::record_of(&out), Some(new));
        assert!(out.starts_with("<domain type='lxc'><name>n</name><metadata>"));
        assert!(out.ends_with("</metadata><devices/></domain>"));
    }
}
