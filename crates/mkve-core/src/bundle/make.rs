//! Making a bundle: prepare the root (copy or unpack), run the template's
//! hooks in it, pack it, hash every payload, sign meta.json, and write the
//! outer tar. The caller supplies the output (see `files::Output`), so a
//! failure leaves nothing behind.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::members::{CONF, META, ROOTFS, SIGNATURE};
use super::meta::{installed, Meta, Packages, PackedFrom, TemplateRef, FORMAT};
use super::{provenance, sbom};
use crate::date::rfc3339;
use crate::digest::{hex, sha256_file};
use crate::error::{Error, IoContext, Problem, Result};
use crate::exec::Report;
use crate::files;
use crate::hooks::Chroot;
use crate::hypervisor::Hypervisor;
use crate::pack::{self, Compression, PackOptions, UnpackOptions};
use crate::root::job::{copy_root, work_dir};
use crate::root::{self as roots, CachePolicy, RootSpec};
use crate::template::Template;

#[derive(Debug, Clone)]
pub enum RootSource {
    /// A directory holding the root.
    Dir(PathBuf),
    /// A tar, tar.gz or tar.zst file, or `-` for stdin.
    Archive(PathBuf),
    /// Built from the template's packages and the hypervisor's set, through
    /// the layer cache; `spec.packages` is filled in from the template.
    Packages {
        backend: Option<crate::root::BackendName>,
        spec: RootSpec,
        policy: CachePolicy,
    },
}

impl RootSource {
    /// A directory is a directory; anything else is read as an archive.
    pub fn from_arg(p: &Path) -> RootSource {
        if p.is_dir() {
            RootSource::Dir(p.to_path_buf())
        } else {
            RootSource::Archive(p.to_path_buf())
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signing {
    Unsigned,
    /// GnuPG's default key, or the key named.
    Key(Option<String>),
}

pub struct MakeOptions<'a> {
    pub template: &'a Template,
    pub hypervisor: Hypervisor,
    pub root: RootSource,
    pub signing: Signing,
    /// GnuPG home for signing; `None` is GnuPG's default (`GNUPGHOME`).
    pub gnupg_home: Option<PathBuf>,
    /// Where progress and notes go.
    pub report: &'a dyn Report,
    /// Where the bundle goes (`-` is stdout), named in errors.
    pub output: &'a Path,
}

/// Where a bundle's root comes from, and whether it is copied first:
/// hooks change the root they run in, and neither a given directory nor
/// the layer cache's root is ever changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RootPlan {
    /// The layer cache's root for the template's packages; copied (on the
    /// cache's file system) when there are hooks.
    Layer { copy: bool },
    /// The directory given; copied (reflinked where it can) when there are
    /// hooks.
    Dir { copy: bool },
    /// The archive given, unpacked into the work directory.
    Archive,
}

/// The plan for `source` when the profile has hooks (`hooks`), or not.
fn plan_root(source: &RootSource, hooks: bool) -> RootPlan {
    match source {
        RootSource::Packages { .. } => RootPlan::Layer { copy: hooks },
        RootSource::Dir(_) => RootPlan::Dir { copy: hooks },
        RootSource::Archive(_) => RootPlan::Archive,
    }
}

/// The root a bundle is made from, prepared as its plan says, with what
/// the bundle records of it.
struct Prepared {
    root: PathBuf,
    /// The packages asked for (the template's, as resolved).
    requested: Vec<String>,
    /// The layer's archive index (empty unless built from packages).
    apt_index: Vec<roots::index::Entry>,
    /// The provenance's `root`.
    source: serde_json::Value,
    /// Where copies and the packed root go.
    work: crate::scratch::Scratch,
    /// The layer, held (its lock) while the root is read.
    _layer: Option<roots::Layer>,
}

/// Do `plan` for `opts.root`.
fn prepare_root(
    plan: RootPlan,
    opts: &MakeOptions,
    profile: &crate::template::Profile,
) -> Result<Prepared> {
    let report = opts.report;
    let work = crate::scratch::Scratch::new_in(&std::env::temp_dir(), "mkve-bundle.")?;
    let given = |root: PathBuf, work| Prepared {
        root,
        requested: profile.packages.clone(),
        apt_index: Vec::new(),
        source: serde_json::json!({"given": "--rootfs"}),
        work,
        _layer: None,
    };
    match (plan, &opts.root) {
        (
            RootPlan::Layer { copy },
            RootSource::Packages {
                backend,
                spec,
                policy,
            },
        ) => {
            let wanted = profile.wanted_packages(&opts.template.dir)?;
            let requested: Vec<String> = wanted.iter().map(|w| w.name.clone()).collect();
            let spec = RootSpec {
                packages: requested.clone(),
                ..spec.clone()
            };
            let b = roots::backend(*backend)?;
            let layer = roots::layer(b.as_ref(), &spec, *policy, report)
                .map_err(|e| locate_unknown(e, &wanted))?;
            let (root, work) = if copy {
                // Big roots are copied on the cache's file system, not in /tmp.
                let work = work_dir()?;
                let copy = work.path().join("root");
                copy_root(&layer.root, &copy, report)?;
                (copy, work)
            } else {
                (layer.root.clone(), work)
            };
            let r = &layer.resolved;
            Ok(Prepared {
                root,
                requested,
                apt_index: roots::index::load_beside(&layer.root)?,
                source: serde_json::json!({
                    "backend": r.backend,
                    "suite": r.suite,
                    "mirrors": r.mirrors,
                    "architecture": r.arch,
                    "variant": r.variant,
                    "packages": r.packages,
                }),
                work,
                _layer: Some(layer),
            })
        }
        (RootPlan::Dir { copy: false }, RootSource::Dir(d)) => Ok(given(d.clone(), work)),
        (RootPlan::Dir { copy: true }, RootSource::Dir(d)) => {
            let copy = work.path().join("root");
            report.note(&format!("copying {} for the hooks", d.display()));
            files::copy_tree(d, &copy, files::CopyTree::SHARED)
                .report(report)
                .run_checked()?;
            Ok(given(copy, work))
        }
        (RootPlan::Archive, RootSource::Archive(a)) => {
            let dest = work.path().join("root");
            std::fs::create_dir(&dest).at(&dest)?;
            let label = files::display_name(a);
            report.note(&format!("unpacking {}", label.display()));
            let input = files::open_input(a)?;
            let r = pack::decompressor(input).at(&label)?;
            pack::unpack(r, Some(&dest), &label, UnpackOptions::ROOTFS)?;
            Ok(given(dest, work))
        }
        (plan, source) => Err(Error::Other(format!(
            "bundle::make: plan {plan:?} for {source:?}"
        ))),
    }
}

/// Write the bundle to `out`; return its metadata. Decided first
/// (`plan_root`), then done: the root prepared, the hooks run in it, the
/// root packed with its SBOM, the members written.
pub fn make(opts: &MakeOptions, out: &mut dyn Write) -> Result<Meta> {
    let report = opts.report;
    let profile = opts.template.profile(opts.hypervisor)?;
    let plan = plan_root(&opts.root, !profile.hooks.is_empty());
    let Prepared {
        root,
        requested,
        apt_index,
        source: root_source,
        work,
        _layer,
    } = prepare_root(plan, opts, profile)?;

    let hook_names: Vec<String> = profile.hooks.iter().map(|h| h.name.clone()).collect();
    if !profile.hooks.is_empty() {
        report.progress(&format!("running {} hooks", profile.hooks.len()));
        let env = [
            ("MKVE_HYPERVISOR", opts.hypervisor.as_str()),
            ("MKVE_TEMPLATE", opts.template.name.as_str()),
            ("MKVE_TEMPLATE_VERSION", profile.version.as_str()),
        ];
        let chroot = Chroot::new(&root, &env, profile.conf.as_deref(), report)?;
        chroot.run_hooks(&profile.hooks)?;
    }

    refuse_identity(&root, &opts.root)?;
    let pack_opts = match &opts.root {
        RootSource::Packages { .. } => roots::pack_options(),
        _ => PackOptions::from_env(),
    };
    let subject = Described {
        template: opts.template.name.clone(),
        version: profile.version.clone(),
        hypervisor: opts.hypervisor,
        requested,
        hooks: hook_names,
        root: root_source,
        packed_from: None,
    };
    let packed = pack_root(&root, work.path(), &pack_opts, &apt_index, &subject, report)?;
    let mut conf_files = conf_members(profile.conf.as_deref())?;
    for file in crate::template::SHARED_CONF {
        let path = opts.template.dir.join(file);
        if path.is_file() {
            conf_files.push((format!("{CONF}/{file}"), path));
        }
    }
    let mut hook_digests = Vec::new();
    for h in &profile.hooks {
        hook_digests.push((h.name.clone(), sha256_file(&h.path)?));
    }
    write(
        &packed,
        &subject,
        conf_files,
        hook_digests,
        &apt_index,
        &opts.signing,
        opts.gnupg_home.as_deref(),
        report,
        opts.output,
        out,
    )
}

/// What a bundle says of itself besides its root: the template it was
/// made from, its hypervisor, the packages asked for, the hooks run,
/// where its root came from, and (a machine packed back into a bundle,
/// `mkve-vm pack`) what it was packed from.
#[derive(Debug, Clone)]
pub struct Described {
    pub template: String,
    pub version: String,
    pub hypervisor: Hypervisor,
    pub requested: Vec<String>,
    pub hooks: Vec<String>,
    /// The provenance's `root`: the package source, `{"given": "--rootfs"}`.
    pub root: serde_json::Value,
    pub packed_from: Option<PackedFrom>,
}

/// A root packed for a bundle, with what is read from it: the archive
/// (in a work directory), its digest and figures, the SBOM, the packages
/// dpkg lists, and the bundle's date.
pub struct PackedRoot {
    pub rootfs: PathBuf,
    pub sha256: String,
    pub stats: pack::PackStats,
    pub sbom: Vec<u8>,
    pub installed: Vec<super::meta::Installed>,
    pub created_secs: u64,
}

/// Pack `root` into `work/rootfs.tar.zst` (multi-threaded zstd) and read
/// its SBOM and packages: all a bundle needs of the root, so that the
/// root can go (or its mount end) before the bundle is written.
pub fn pack_root(
    root: &Path,
    work: &Path,
    pack_opts: &PackOptions,
    apt_index: &[roots::index::Entry],
    d: &Described,
    report: &dyn Report,
) -> Result<PackedRoot> {
    report.progress("packing the root");
    let start = std::time::Instant::now();
    let rootfs_path = work.join(ROOTFS);
    let file = std::fs::File::create(&rootfs_path).map_err(|e| Error::create(&rootfs_path, e))?;
    let mut hash = Sha256::new();
    let hashing = pack::Tap::new(
        std::io::BufWriter::with_capacity(1 << 20, file),
        |b: &[u8]| hash.update(b),
    );
    let (hashing, stats) = pack::pack_dir_compressed(root, hashing, Compression::Zstd, pack_opts)?;
    let file = hashing
        .into_inner()
        .into_inner()
        .map_err(|e| Error::io(&rootfs_path, e.into_error()))?;
    drop(file);
    for s in &stats.skipped {
        report.note(&format!("{}: socket skipped", s.display()));
    }
    report.progress(&stats.describe(start.elapsed()));

    let rootfs_sha256 = hex(&hash.finalize());
    let created_secs = pack::source_date_epoch().unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    });
    let created = rfc3339(created_secs);
    report.progress("writing the SBOM");
    // An ALT root's packages, read once for the SBOM and meta.json.
    let rpms = crate::rpmdb::rpm_packages(root)?;
    let sbom_json = sbom::spdx(
        root,
        &rpms,
        apt_index,
        &pack_opts.exclude,
        &sbom::Subject {
            template: &d.template,
            version: &d.version,
            hypervisor: d.hypervisor.as_str(),
            created: &created,
            rootfs_sha256: &rootfs_sha256,
        },
    )?;
    Ok(PackedRoot {
        rootfs: rootfs_path,
        sha256: rootfs_sha256,
        stats,
        sbom: sbom_json,
        installed: installed(root, &rpms),
        created_secs,
    })
}

/// Write the bundle of the packed root `p` to `out` (named `output` in
/// errors): the provenance, meta.json (signed as `signing` says), and the
/// outer tar. `conf_files` are the `conf/…` members and their files,
/// `hooks` the hooks run with their sha256.
#[allow(clippy::too_many_arguments)]
pub fn write(
    p: &PackedRoot,
    d: &Described,
    mut conf_files: Vec<(String, PathBuf)>,
    hooks: Vec<(String, String)>,
    apt_index: &[roots::index::Entry],
    signing: &Signing,
    gnupg_home: Option<&Path>,
    report: &dyn Report,
    output: &Path,
    out: &mut dyn Write,
) -> Result<Meta> {
    let created_secs = p.created_secs;
    let created = rfc3339(created_secs);
    let mut members = std::collections::BTreeMap::new();
    members.insert(ROOTFS.to_string(), p.sha256.clone());
    members.insert(sbom::MEMBER.to_string(), hex(&Sha256::digest(&p.sbom)));
    conf_files.sort();
    for (name, path) in &conf_files {
        members.insert(name.clone(), sha256_file(path)?);
    }
    let provenance_json = provenance::make(&provenance::Build {
        template: &d.template,
        version: &d.version,
        hypervisor: d.hypervisor.as_str(),
        hooks,
        conf: conf_files
            .iter()
            .filter_map(|(n, _)| members.get(n).map(|d| (n.clone(), d.clone())))
            .collect(),
        root: d.root.clone(),
        debs: apt_index,
        subjects: [ROOTFS, sbom::MEMBER]
            .iter()
            .filter_map(|n| members.get(*n).map(|d| (n.to_string(), d.clone())))
            .collect(),
        created: &created,
    })?;
    members.insert(
        provenance::MEMBER.to_string(),
        hex(&Sha256::digest(&provenance_json)),
    );
    report.progress("writing the bundle");

    let meta = Meta {
        format: FORMAT,
        template: TemplateRef {
            name: d.template.clone(),
            version: d.version.clone(),
        },
        hypervisor: d.hypervisor,
        packages: Packages {
            requested: d.requested.clone(),
            installed: p.installed.clone(),
        },
        hooks: d.hooks.clone(),
        created,
        members,
        unpacked_size: Some(p.stats.tar_bytes),
        packed_from: d.packed_from.clone(),
    };
    let meta_json = meta.to_json()?;
    let signature = match signing {
        Signing::Unsigned => None,
        Signing::Key(k) => {
            let (sig, fpr) = crate::sign::sign_detached(&meta_json, k.as_deref(), gnupg_home)?;
            report.note(&format!("signed by {fpr}"));
            Some(sig)
        }
    };

    let mut b = tar::Builder::new(out);
    let label = files::output_name(output);
    let label = label.as_path();
    append_bytes(&mut b, META, &meta_json, created_secs).at(label)?;
    if let Some(sig) = &signature {
        append_bytes(&mut b, SIGNATURE, sig, created_secs).at(label)?;
    }
    // Before the root, so a reader of the SBOM alone stops before it.
    append_bytes(&mut b, sbom::MEMBER, &p.sbom, created_secs).at(label)?;
    append_bytes(&mut b, provenance::MEMBER, &provenance_json, created_secs).at(label)?;
    append_file(&mut b, ROOTFS, &p.rootfs, created_secs, label)?;
    for (name, path) in &conf_files {
        append_file(&mut b, name, path, created_secs, label)?;
    }
    b.into_inner().and_then(|w| w.flush()).at(label)?;
    Ok(meta)
}

/// The head of the bundle an unpacked one (`unpacked`, as
/// [`super::read`] unpacks it) was read from: the same bundle without its
/// `rootfs.tar.zst` member: `meta.json`, its signature when it had one,
/// then every other member meta.json lists, read from `unpacked`, in the
/// bundle's order. Read with a `skip_root` that skips the root, it is the
/// bundle itself: a base keeps it so that a machine can be made on the
/// base again without the bundle (a restore: base.rs). Errors: a member
/// is not in `unpacked` (1), meta.json is not one (65).
pub fn head_of(unpacked: &Path) -> Result<Vec<u8>> {
    let meta_path = unpacked.join(META);
    let meta_json = std::fs::read(&meta_path).at(&meta_path)?;
    let meta = Meta::from_json(&meta_json, &meta_path)?;
    let mut b = tar::Builder::new(Vec::new());
    let mut append = |name: &str, data: &[u8]| {
        append_bytes(&mut b, name, data, 0).map_err(|e| Error::Other(format!("{name}: {e}")))
    };
    append(META, &meta_json)?;
    let sig_path = unpacked.join(SIGNATURE);
    match std::fs::read(&sig_path) {
        Ok(sig) => append(SIGNATURE, &sig)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&sig_path, e)),
    }
    let first = [sbom::MEMBER, provenance::MEMBER];
    let names = first
        .iter()
        .map(|n| n.to_string())
        .filter(|n| meta.members.contains_key(n))
        .chain(
            meta.members
                .keys()
                .filter(|n| n.as_str() != ROOTFS && !first.contains(&n.as_str()))
                .cloned(),
        );
    for name in names {
        let path = unpacked.join(&name);
        let data = std::fs::read(&path).at(&path)?;
        append(&name, &data)?;
    }
    b.into_inner()
        .map_err(|e| Error::Other(format!("bundle head: {e}")))
}

/// Name the list file and line of each package the distribution lacks.
fn locate_unknown(e: Error, wanted: &[crate::template::PackageRequest]) -> Error {
    let Error::UnknownPackages { suite, names } = &e else {
        return e;
    };
    let problems: Vec<Problem> = names
        .iter()
        .map(|n| {
            match wanted
                .iter()
                .find(|w| w.name.split(['=', ':', '/']).next() == Some(n.as_str()))
            {
                Some(w) => Problem::new(
                    &w.file,
                    Some(w.line),
                    format!("package \"{n}\" is not available in {suite}"),
                ),
                None => Problem::new(
                    "(packages)",
                    None,
                    format!("package \"{n}\" is not available in {suite}"),
                ),
            }
        })
        .collect();
    Error::InvalidTemplate(problems)
}

/// `conf/<rel>` → file, for every regular file under `conf`, sorted.
pub fn conf_members(conf: Option<&Path>) -> Result<Vec<(String, PathBuf)>> {
    let Some(conf) = conf else { return Ok(vec![]) };
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(conf).sort_by_file_name().min_depth(1) {
        let e = e.map_err(|e| Error::io(conf, e.into()))?;
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(conf).unwrap_or(e.path());
            let rel = rel
                .to_str()
                .ok_or_else(|| Error::template(e.path(), None, "file name is not UTF-8"))?;
            out.push((format!("{CONF}/{rel}"), e.path().to_path_buf()));
        }
    }
    Ok(out)
}

fn header(size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h
}

fn append_bytes<W: Write>(
    b: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
    mtime: u64,
) -> std::io::Result<()> {
    b.append_data(&mut header(data.len() as u64, mtime), name, data)
}

/// Append the file `path` as member `name` of the bundle `output`; no room
/// to write is the output's failure, anything else the file's.
fn append_file<W: Write>(
    b: &mut tar::Builder<W>,
    name: &str,
    path: &Path,
    mtime: u64,
    output: &Path,
) -> Result<()> {
    let f = std::fs::File::open(path).at(path)?;
    let len = f.metadata().at(path)?.len();
    b.append_data(&mut header(len, mtime), name, f.take(len))
        .map_err(|e| {
            if crate::error::is_no_room(&e) {
                Error::create(output, e)
            } else {
                Error::io(path, e)
            }
        })
}

/// The files that make a machine itself, which a root packed into a bundle
/// must not hold: every machine of the bundle would share them (and they
/// would be readable in it). Each is made by the machine at its first
/// boot when absent: systemd's machine ID (machine-id(5): an empty file
/// or `uninitialized` means "not yet"), D-Bus's copy of it, and OpenSSH's
/// host keys (made by `ssh-keygen -A` or the package's first start).
const IDENTITY: &[&str] = &["etc/machine-id", "var/lib/dbus/machine-id", "etc/ssh"];

/// Refuse (65) a root that holds a machine identity ([`IDENTITY`]),
/// naming the file: in the root given (`--rootfs DIR`), or as the path
/// inside the root the packages and hooks made.
fn refuse_identity(root: &Path, source: &RootSource) -> Result<()> {
    let shown = |rel: &str| match source {
        RootSource::Dir(d) => d.join(rel),
        _ => Path::new("/").join(rel),
    };
    let why = |rel: &str, what: &str| {
        Error::template(
            shown(rel),
            None,
            format!(
                "{what} in the root would be shared by every machine of the bundle: remove it in a hook (each machine makes its own at first boot)"
            ),
        )
    };
    for rel in IDENTITY {
        let p = root.join(rel);
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if *rel == "etc/ssh" {
            if !m.is_dir() {
                continue;
            }
            let mut keys: Vec<String> = std::fs::read_dir(&p)
                .at(&p)?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("ssh_host_") && n.contains("_key"))
                .collect();
            keys.sort();
            if let Some(k) = keys.first() {
                return Err(why(&format!("etc/ssh/{k}"), "an SSH host key"));
            }
            continue;
        }
        if !m.is_file() {
            continue; // a link to /etc/machine-id, or nothing of its own
        }
        let text = std::fs::read(&p).at(&p)?;
        let id = String::from_utf8_lossy(&text);
        let id = id.trim();
        if !id.is_empty() && id != "uninitialized" {
            return Err(why(rel, "a machine ID"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{read, Check, ReadOptions, SkipRoot};

    /// Where a bundle's root comes from, decided without building or
    /// copying anything: a copy exactly when hooks will change it.
    #[test]
    fn the_root_is_copied_only_for_hooks() {
        let packages = RootSource::Packages {
            backend: None,
            spec: RootSpec::default(),
            policy: CachePolicy::Use,
        };
        let dir = RootSource::Dir("/srv/root".into());
        let archive = RootSource::Archive("root.tar.zst".into());
        assert_eq!(plan_root(&packages, false), RootPlan::Layer { copy: false });
        assert_eq!(plan_root(&packages, true), RootPlan::Layer { copy: true });
        assert_eq!(plan_root(&dir, false), RootPlan::Dir { copy: false });
        assert_eq!(plan_root(&dir, true), RootPlan::Dir { copy: true });
        assert_eq!(plan_root(&archive, true), RootPlan::Archive);
        assert_eq!(plan_root(&archive, false), RootPlan::Archive);
    }

    /// A bundle of format 2 with a root, a conf member and meta.json
    /// naming both (the root's bytes are never decompressed here).
    fn bundle() -> Vec<u8> {
        let members = [
            (ROOTFS, &b"not read"[..]),
            ("conf/params", b"x required - X\n"),
        ];
        let meta = serde_json::json!({
            "format": 2,
            "template": {"name": "t", "version": "1.0"},
            "hypervisor": "lxc",
            "packages": {"requested": []},
            "hooks": [],
            "created": "2026-12-07T00:00:00Z",
            "unpacked_size": 10240,
            "members": members.iter().map(|(n, b)| (n.to_string(), hex(&Sha256::digest(b))))
                .collect::<std::collections::BTreeMap<_, _>>(),
        });
        let mut b = tar::Builder::new(Vec::new());
        append_bytes(&mut b, META, &serde_json::to_vec(&meta).unwrap(), 0).unwrap();
        for (n, data) in members {
            append_bytes(&mut b, n, data, 0).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn opts<'a>(unpack_to: Option<&'a Path>, skip: Option<&'a SkipRoot<'a>>) -> ReadOptions<'a> {
        ReadOptions {
            unpack_to,
            skip_root: skip,
            ..ReadOptions::lenient(Check::Digests)
        }
    }

    #[test]
    fn a_head_is_its_bundle_without_the_root_and_reads_only_on_a_base() {
        let d = tempfile::tempdir().unwrap();
        let unpacked = d.path().join("b");
        let on_base = |_: &Meta| Ok(true);
        let full = bundle();
        read(
            &full[..],
            Path::new("b"),
            &opts(Some(&unpacked), Some(&on_base)),
        )
        .unwrap();
        let head = head_of(&unpacked).unwrap();
        let names: Vec<String> = tar::Archive::new(&head[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, [META, "conf/params"]);
        // On a base (the root skipped), the head is the bundle: conf and all.
        let again = d.path().join("again");
        let r = read(
            &head[..],
            Path::new("head"),
            &opts(Some(&again), Some(&on_base)),
        )
        .unwrap();
        assert_eq!(r.meta.template.name, "t");
        assert_eq!(
            std::fs::read(again.join("conf/params")).unwrap(),
            b"x required - X\n"
        );
        // Without a base, its root is missing.
        let e = read(&head[..], Path::new("head"), &opts(None, None)).unwrap_err();
        assert!(
            e.to_string()
                .contains("rootfs.tar.zst\" listed in meta.json is missing"),
            "{e}"
        );
        let no_base = |_: &Meta| Ok(false);
        assert!(read(&head[..], Path::new("head"), &opts(None, Some(&no_base))).is_err());
        // A member changed in the head is refused as in the bundle.
        let mut bad = head.clone();
        let at = bad.windows(3).position(|w| w == b"X\n\0").unwrap();
        bad[at] = b'Y';
        let e = read(&bad[..], Path::new("head"), &opts(None, Some(&on_base))).unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
    }
}
