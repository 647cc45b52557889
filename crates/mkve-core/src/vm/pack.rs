//! `mkve-vm pack`: a stopped machine made back into a bundle of the
//! current format (mkve-vm(1), PACK), which every later machine can start
//! from. What it owns: the merged root of the machine seen without
//! touching it, what mkve's seed put in taken out by record, the scrub
//! (named operations kept as data, [`SCRUB`]), the refusal of a private
//! key left in the root, and `packed_from`. Writing the bundle itself is
//! `bundle::pack_root` and `bundle::write`, as `mkve-bundle` does.
//!
//! The merged root of an lxc machine on a base is a second overlayfs
//! mount, made in a mount namespace of this thread's own (nothing is
//! mounted on the node, and it goes when the thread ends, however it
//! ends): the machine's upper layer and the base's root as its lower
//! layers, a scratch directory its upper. The seed's files and the scrub
//! are removed there (as whiteouts in the scratch layer): the machine
//! is not changed.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::layout::{machine_dir, vms_dir, STAGING_PREFIX};
use super::machine::Uris;
use super::manage::find_locked;
use crate::bundle::{self, Described, Meta, PackedFrom, Signing};
use crate::error::{Error, IoContext, Result};
use crate::exec::Report;
use crate::hypervisor::Hypervisor;
use crate::scratch::Scratch;

/// One rule of a scrub operation, on paths relative to the root; a
/// pattern's components match names with `*` and `?`, and `**` matches
/// any number of directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Every file, link or other non-directory that matches is removed.
    Files(&'static str),
    /// Everything that matches is removed, a directory with all below it.
    Tree(&'static str),
    /// A regular file that matches is emptied (kept, 0 bytes).
    Empty(&'static str),
}

/// A named scrub operation: what `--scrub` names, what mkve-vm(1) PACK
/// lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrubOp {
    pub name: &'static str,
    pub what: &'static str,
    pub rules: &'static [Rule],
}

/// The default scrub, in the order applied. mkve-vm(1) PACK documents it.
pub const SCRUB: &[ScrubOp] = &[
    ScrubOp {
        name: "machine-id",
        what: "/etc/machine-id emptied (each machine makes its own), D-Bus's copy removed",
        rules: &[
            Rule::Empty("etc/machine-id"),
            Rule::Files("var/lib/dbus/machine-id"),
        ],
    },
    ScrubOp {
        name: "ssh-host-keys",
        what: "OpenSSH's host keys removed (hook 05-ssh-hostkeys-per-machine makes each machine its own)",
        rules: &[Rule::Files("etc/ssh/ssh_host_*")],
    },
    ScrubOp {
        name: "ssl-cert",
        what: "ssl-cert's snakeoil key and certificate removed (hook 05-ssl-cert-per-machine makes each machine its own)",
        rules: &[
            Rule::Files("etc/ssl/private/ssl-cert-snakeoil.key"),
            Rule::Files("etc/ssl/certs/ssl-cert-snakeoil.pem"),
        ],
    },
    ScrubOp {
        name: "dhcp-leases",
        what: "DHCP clients' leases removed",
        rules: &[
            Rule::Files("var/lib/dhcp/*.lease"),
            Rule::Files("var/lib/dhcp/*.leases"),
            Rule::Files("var/lib/dhclient/*"),
            Rule::Files("var/lib/NetworkManager/*.lease"),
            Rule::Files("var/lib/udhcpc/*"),
        ],
    },
    ScrubOp {
        name: "logs",
        what: "log files under /var/log removed (not truncated; their directories kept)",
        rules: &[Rule::Files("var/log/**")],
    },
    ScrubOp {
        name: "shell-history",
        what: "shells' and tools' histories of root and of every /home user removed",
        rules: &[
            Rule::Files("root/.*history"),
            Rule::Files("home/*/.*history"),
            Rule::Files("root/.lesshst"),
            Rule::Files("home/*/.lesshst"),
            Rule::Files("root/.viminfo"),
            Rule::Files("home/*/.viminfo"),
        ],
    },
    ScrubOp {
        name: "temporary-files",
        what: "everything in /tmp and /var/tmp removed",
        rules: &[Rule::Tree("tmp/*"), Rule::Tree("var/tmp/*")],
    },
    ScrubOp {
        name: "package-caches",
        what: "APT's downloaded packages, its lists and its caches removed",
        rules: &[
            Rule::Files("var/cache/apt/*.bin"),
            Rule::Files("var/cache/apt/archives/*.deb"),
            Rule::Files("var/cache/apt/archives/partial/*"),
            Rule::Files("var/lib/apt/lists/*_*"),
            Rule::Files("var/lib/apt/lists/partial/*"),
        ],
    },
    ScrubOp {
        name: "cloud-init",
        what: "cloud-init's instance state removed (/var/lib/cloud/*)",
        rules: &[Rule::Tree("var/lib/cloud/*")],
    },
    ScrubOp {
        name: "random-seed",
        what: "the saved random seed removed",
        rules: &[
            Rule::Files("var/lib/systemd/random-seed"),
            Rule::Files("var/lib/urandom/random-seed"),
        ],
    },
];

/// `--scrub`'s value: `none`, or operation names separated by commas
/// (each once). Errors (2): a name that is no operation, naming them all.
pub fn parse_scrub(s: &str) -> Result<Vec<&'static ScrubOp>> {
    if s == "none" {
        return Ok(Vec::new());
    }
    let mut out: Vec<&'static ScrubOp> = Vec::new();
    for name in s.split(',').map(str::trim) {
        let Some(op) = SCRUB.iter().find(|o| o.name == name) else {
            let known: Vec<&str> = SCRUB.iter().map(|o| o.name).collect();
            return Err(Error::Usage(format!(
                "\"{}\" is no scrub operation (they are {}, or none)",
                name.escape_debug(),
                known.join(", ")
            )));
        };
        if !out.iter().any(|o| o.name == op.name) {
            out.push(op);
        }
    }
    Ok(out)
}

/// Whether the name `name` matches the pattern component `pat` (`*`: any
/// run of characters, `?`: one).
fn component_matches(pat: &[u8], name: &[u8]) -> bool {
    match (pat.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            component_matches(&pat[1..], name)
                || (!name.is_empty() && component_matches(pat, &name[1..]))
        }
        (Some(b'?'), Some(_)) => component_matches(&pat[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => component_matches(&pat[1..], &name[1..]),
        _ => false,
    }
}

/// Whether the relative path `rel` (its components) matches `pattern`.
fn matches(pattern: &[&[u8]], rel: &[&[u8]]) -> bool {
    match pattern.first() {
        None => rel.is_empty(),
        Some(&b"**") => (0..=rel.len()).any(|i| matches(&pattern[1..], &rel[i..])),
        Some(p) => {
            !rel.is_empty() && component_matches(p, rel[0]) && matches(&pattern[1..], &rel[1..])
        }
    }
}

fn components(p: &Path) -> Vec<&[u8]> {
    use std::os::unix::ffi::OsStrExt;
    p.components()
        .map(|c| c.as_os_str().as_bytes())
        .filter(|c| !c.is_empty() && *c != b"/")
        .collect()
}

fn pattern_matches(pattern: &str, rel: &Path) -> bool {
    let pat: Vec<&[u8]> = pattern.split('/').map(str::as_bytes).collect();
    matches(&pat, &components(rel))
}

/// What a scrub does to one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Remove,
    Empty,
}

/// What the operations `ops` do in `root`: each path and its action,
/// in walk order, links never followed. Errors: the root cannot be read.
fn plan(root: &Path, ops: &[&ScrubOp]) -> Result<Vec<(PathBuf, Action)>> {
    let mut out = Vec::new();
    if ops.is_empty() {
        return Ok(out);
    }
    let rules: Vec<Rule> = ops.iter().flat_map(|o| o.rules.iter().copied()).collect();
    let mut walk = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter();
    while let Some(e) = walk.next() {
        let e = e.map_err(|e| {
            let p = e.path().unwrap_or(root).to_path_buf();
            Error::io(
                p,
                e.into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("walk failed")),
            )
        })?;
        let rel = e.path().strip_prefix(root).unwrap_or(e.path());
        let is_dir = e.file_type().is_dir();
        for r in &rules {
            match *r {
                Rule::Files(p) if !is_dir && pattern_matches(p, rel) => {
                    out.push((rel.to_path_buf(), Action::Remove));
                    break;
                }
                Rule::Tree(p) if pattern_matches(p, rel) => {
                    out.push((rel.to_path_buf(), Action::Remove));
                    if is_dir {
                        walk.skip_current_dir();
                    }
                    break;
                }
                Rule::Empty(p) if e.file_type().is_file() && pattern_matches(p, rel) => {
                    out.push((rel.to_path_buf(), Action::Empty));
                    break;
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// `root/rel` when every directory on the way is a directory of the
/// root's own (no symbolic link leads out of it); `None` otherwise, or
/// when `rel` is not a plain relative path.
fn inside(root: &Path, rel: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let mut at = root.to_path_buf();
    let mut parts = rel.components().peekable();
    while let Some(c) = parts.next() {
        match c {
            Component::Normal(n) => at.push(n),
            Component::RootDir | Component::CurDir => continue,
            _ => return None,
        }
        if parts.peek().is_some() && !std::fs::symlink_metadata(&at).ok()?.is_dir() {
            return None;
        }
    }
    Some(at)
}

/// Remove `path` (not following it), a directory with all below it.
fn remove(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() => crate::scratch::remove_tree(path).at(path),
        Ok(_) => std::fs::remove_file(path).at(path),
    }
}

/// Empty the regular file `path` (never through a link).
fn empty(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map(drop)
            .at(path),
        _ => Ok(()),
    }
}

/// Apply the scrub `ops` in `root`; return how many paths it changed.
fn scrub(root: &Path, ops: &[&ScrubOp]) -> Result<usize> {
    let planned = plan(root, ops)?;
    for (rel, action) in &planned {
        let p = root.join(rel);
        match action {
            Action::Remove => remove(&p)?,
            Action::Empty => empty(&p)?,
        }
    }
    Ok(planned.len())
}

/// Take out of the merged root `root` what mkve's seed put in (seed.rs,
/// `seed::SEEDED` and root's authorized_keys): each file as the base
/// `base` has it, or gone where the base has none; and every parameter
/// under `/etc/mkve/params`, whatever the base holds. Returns the paths
/// taken out or put back.
fn unseed(root: &Path, base: &Path, report: &dyn Report) -> Result<Vec<PathBuf>> {
    let mut done = Vec::new();
    for rel in seeded_paths(root) {
        let Some(here) = inside(root, &rel) else {
            continue;
        };
        let there = inside(base, &rel).filter(|p| std::fs::symlink_metadata(p).is_ok());
        if std::fs::symlink_metadata(&here).is_err() && there.is_none() {
            continue;
        }
        remove(&here)?;
        if let Some(there) = there {
            crate::files::copy_tree(&there, &here, Default::default())
                .report(report)
                .run_checked()?;
        }
        done.push(rel);
    }
    if let Some(params) = inside(root, Path::new(crate::params::DIR)) {
        if let Ok(rd) = std::fs::read_dir(&params) {
            for e in rd.flatten() {
                remove(&e.path())?;
                done.push(Path::new(crate::params::DIR).join(e.file_name()));
            }
        }
    }
    Ok(done)
}

/// The largest file searched for a private key: keys are small, and the
/// few large files of a root are not where one is left.
const KEY_SEARCH_MAX: u64 = 4 << 20;

/// Whether `bytes` hold a private key: a PEM block (`-----BEGIN … PRIVATE
/// KEY-----`, which OpenSSH's own format and PGP's `PRIVATE KEY BLOCK`
/// also are).
pub fn holds_private_key(bytes: &[u8]) -> bool {
    const BEGIN: &[u8] = b"-----BEGIN ";
    let mut rest = bytes;
    while let Some(i) = find(rest, BEGIN) {
        let after = &rest[i + BEGIN.len()..];
        let line = &after[..after.len().min(80)];
        let end = line.iter().position(|b| *b == b'\n').unwrap_or(line.len());
        if find(&line[..end], b"PRIVATE KEY").is_some() {
            return true;
        }
        rest = after;
    }
    false
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The files of `root` that hold a private key, sorted, links never
/// followed. Searched: every regular file up to [`KEY_SEARCH_MAX`] bytes,
/// except under `/usr` (what packages installed; `/usr/local` is
/// searched) and the kernel's `/proc`, `/sys`, `/dev`.
pub fn private_keys(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut walk = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter();
    while let Some(e) = walk.next() {
        let Ok(e) = e else { continue };
        let rel = e.path().strip_prefix(root).unwrap_or(e.path());
        if e.file_type().is_dir() {
            let skip = ["proc", "sys", "dev"].iter().any(|d| rel == Path::new(d))
                || (rel.starts_with("usr")
                    && rel != Path::new("usr")
                    && !rel.starts_with("usr/local"));
            if skip {
                walk.skip_current_dir();
            }
            continue;
        }
        if !e.file_type().is_file() {
            continue;
        }
        let Ok(m) = e.metadata() else { continue };
        if m.len() > KEY_SEARCH_MAX || m.len() < 30 {
            continue;
        }
        let mut bytes = Vec::with_capacity(m.len() as usize);
        let Ok(mut f) = std::fs::File::open(e.path()) else {
            continue;
        };
        if f.read_to_end(&mut bytes).is_ok() && holds_private_key(&bytes) {
            found.push(Path::new("/").join(rel));
        }
    }
    Ok(found)
}

/// How a machine is packed.
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// The scrub operations, in order (`None`: all of [`SCRUB`]).
    pub scrub: Option<Vec<&'static ScrubOp>>,
    /// Pack even when a private key is left in the root.
    pub allow_secrets: bool,
    pub signing: Signing,
    /// The new bundle's template version [default: the machine's].
    pub template_version: Option<String>,
    /// Pack what this snapshot of the machine froze, running or not,
    /// instead of the stopped machine.
    pub snapshot: Option<String>,
}

/// Run `f` on a thread of its own in a mount namespace of its own, whose
/// mounts are private: whatever `f` mounts is seen by it alone and goes
/// when the thread ends.
fn in_own_mounts<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            use nix::mount::{mount, MsFlags};
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
                .map_err(|e| Error::Other(format!("a mount namespace of its own: {e}")))?;
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .map_err(|e| Error::Other(format!("/: making its mounts private: {e}")))?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Other("pack: its worker panicked".into())))
    })
}

/// An overlayfs option's path: refused with a comma, colon or backslash.
fn overlay_path(p: &Path) -> Result<&str> {
    p.to_str()
        .filter(|s| !s.contains([',', ':', '\\']))
        .ok_or_else(|| {
            Error::Other(format!(
                "{}: overlayfs cannot take this path (a comma, colon or backslash in it)",
                p.display()
            ))
        })
}

/// What packing found in the machine's root, besides the packed root.
struct Scrubbed {
    packed: bundle::PackedRoot,
    unseeded: usize,
    scrubbed: usize,
}

/// What every pack does to the machine's merged root `root` (a view it
/// may change): the seed taken out against the base's root `base` (a
/// view of it holding at least the seed's files), the scrub, the search
/// for private keys; then the root packed into `work`.
#[allow(clippy::too_many_arguments)]
fn scrub_and_pack(
    root: &Path,
    base: &Path,
    work: &Path,
    ops: &[&ScrubOp],
    o: &PackOptions,
    what: &str,
    described: &Described,
    pack_opts: &crate::pack::PackOptions,
    report: &dyn Report,
) -> Result<Scrubbed> {
    report.progress(&format!("{what}: taking out what mkve's seed put in"));
    let unseeded = unseed(root, base, report)?;
    for p in &unseeded {
        report.note(&format!("/{}: the seed's, taken out", p.display()));
    }
    report.progress(&format!("{what}: scrubbing"));
    let scrubbed = scrub(root, ops)?;
    let keys = private_keys(root)?;
    if let Some(first) = keys.first() {
        let more = match keys.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        if o.allow_secrets {
            for k in &keys {
                report.warning(&format!(
                    "{what}: {}: a private key, packed (--allow-secrets)",
                    k.display()
                ));
            }
        } else {
            return Err(Error::InvalidBundle(crate::error::Problem::new(
                first,
                None,
                format!(
                    "a private key is in {what}'s root{more}: remove it, or pack with --allow-secrets"
                ),
            )));
        }
    }
    let packed = bundle::pack_root(root, work, pack_opts, &[], described, report)?;
    Ok(Scrubbed {
        packed,
        unseeded: unseeded.len(),
        scrubbed,
    })
}

/// A stopped lxc machine on its base: its merged root mounted again,
/// privately (see the module's doc), and packed.
fn pack_lxc(
    dir: &Path,
    lower: &Path,
    work: &Path,
    what: &str,
    report: &dyn Report,
    pack: &(dyn Fn(&Path, &Path) -> Result<Scrubbed> + Sync),
) -> Result<Scrubbed> {
    // The machine's own mount goes while its upper layer is a lower one
    // here (overlayfs: a layer in two mounts is undefined); it comes back
    // after, and at the machine's next start regardless.
    let was_mounted = super::overlay::is_mounted(&super::overlay::mount_point(dir));
    super::overlay::unmount(dir)?;
    let result = pack_layer(&dir.join("upper"), lower, work, pack);
    if was_mounted {
        // Not fatal: the next start mounts it (overlay.rs).
        if let Err(e) = super::overlay::mount(dir) {
            report.warning(&format!("{what}: mounting its root again: {e}"));
        }
    }
    result
}

/// The root of upper layer `upper` (a machine's, in no mount, or a
/// snapshot's) over base root `lower`, mounted privately and packed.
fn pack_layer(
    upper: &Path,
    lower: &Path,
    work: &Path,
    pack: &(dyn Fn(&Path, &Path) -> Result<Scrubbed> + Sync),
) -> Result<Scrubbed> {
    in_own_mounts(|| {
        let (up, wk, root) = (work.join("upper"), work.join("work"), work.join("root"));
        for p in [&up, &wk, &root] {
            std::fs::create_dir(p).map_err(|e| Error::create(p, e))?;
        }
        let opts = format!(
            "lowerdir={}:{},upperdir={},workdir={},index=off,metacopy=off,redirect_dir=off",
            overlay_path(upper)?,
            overlay_path(lower)?,
            overlay_path(&up)?,
            overlay_path(&wk)?,
        );
        nix::mount::mount(
            Some("overlay"),
            &root,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(opts.as_str()),
        )
        .map_err(|e| Error::Other(format!("{}: mounting the merged root: {e}", root.display())))?;
        pack(&root, lower)
    })
}

/// A disk machine on its base: its root read off its qcow2 chain through
/// a throw-away overlay (which replays a journal the guest left; the
/// machine's images are not touched), nothing mounted on the node
/// (image/), copied into `work/root`; the base's own copies of the seed's
/// files into `work/base`. Then packed.
fn pack_disk(
    (image, format): (&Path, &str),
    base_disk: &Path,
    work: &Path,
    what: &str,
    report: &dyn Report,
    pack: &dyn Fn(&Path, &Path) -> Result<Scrubbed>,
) -> Result<Scrubbed> {
    use crate::image::{Access, Image};
    let view = work.join("view.qcow2");
    super::snapshot_store::overlay_on(image, format, &view, report)?;
    report.progress(&format!("{what}: reading its root off its disk"));
    let root = work.join("root");
    {
        let image = Image::open(&view, Access::ReadWrite, report)?;
        image.extract(Path::new("/"), &root)?;
        image.close()?;
    }
    let _ = std::fs::remove_file(&view);
    let base_view = work.join("base");
    std::fs::create_dir(&base_view).map_err(|e| Error::create(&base_view, e))?;
    {
        let b = Image::open(base_disk, Access::ReadOnly, report)?;
        for rel in seeded_paths(&root) {
            let abs = Path::new("/").join(&rel);
            if b.stat(&abs)?.is_some() {
                let to = base_view.join(&rel);
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Error::create(parent, e))?;
                }
                b.extract_entry(&abs, &to)?;
            }
        }
        b.close()?;
    }
    pack(&root, &base_view)
}

/// The files [`unseed`] takes out of `root` by record, relative: the
/// seed's ([`super::seed::SEEDED`]), root's authorized_keys, and the seed
/// program's mark of a disk machine's first boot.
fn seeded_paths(root: &Path) -> Vec<PathBuf> {
    let home = crate::access::root_home(root);
    let keys = home
        .strip_prefix("/")
        .unwrap_or(&home)
        .join(".ssh/authorized_keys");
    let mut rels: Vec<PathBuf> = super::seed::SEEDED.iter().map(PathBuf::from).collect();
    rels.push(keys);
    rels.push(PathBuf::from(SEEDED_MARK));
    rels
}

/// Written by hook 06-mkve-seed's program when it has laid the seed at a
/// disk machine's first boot: kept, the packed bundle's machines would
/// never lay theirs.
const SEEDED_MARK: &str = "var/lib/mkve/seeded";

/// Pack machine `target` (stopped) into a bundle written to `out` (a file
/// by temporary name and rename, or `-`). Errors: no such machine (2), a
/// hypervisor or machine pack does not take (2), running (69), a private
/// key left (65), the output (73), signing (69, 1).
pub fn pack(
    uris: &Uris,
    target: &str,
    out: &Path,
    o: &PackOptions,
    report: &dyn Report,
) -> Result<Meta> {
    let (_conn, d, m, _lock) = find_locked(uris, target)?;
    let dir = machine_dir(m.id);
    let what = format!("machine {}", m.id);
    let hv = super::machine::kept_hypervisor(&m, "this mkve packs lxc, qemu and kvm machines")?;
    if let Some(v) = &o.template_version {
        crate::template::check_version(v)
            .map_err(|e| Error::Usage(format!("--template-version: {e}")))?;
    }
    let on_base = if hv == Hypervisor::Lxc {
        super::overlay::is_overlay(&dir)
    } else {
        true
    };
    let Some(digest) = super::base::of_machine(&dir).filter(|_| on_base) else {
        return Err(Error::Usage(format!(
            "{what} stands on no base: this mkve packs machines on a base"
        )));
    };
    // Missing or changed: refused (65) before anything is read.
    let Some(base) = super::base::check_of_machine(&dir)? else {
        return Err(Error::Usage(format!("{what} stands on no base")));
    };
    // A snapshot's frozen layer or image is read while the machine goes
    // on above it; the machine's own files only while it is stopped.
    let frozen = match &o.snapshot {
        Some(name) => Some(super::snapshot_store::frozen(&m, &dir, name)?),
        None if d.is_active()? => {
            return Err(Error::Unavailable {
                what,
                why:
                    "running: stop it first (mkve-vm stop), or pack a snapshot of it (--snapshot); \
                      its files must not change while they are packed"
                        .into(),
            });
        }
        None => None,
    };
    let meta_path = dir.join(bundle::META);
    let source = Meta::from_json(&std::fs::read(&meta_path).at(&meta_path)?, &meta_path)?;
    let ops: Vec<&'static ScrubOp> = match &o.scrub {
        Some(v) => v.clone(),
        None => SCRUB.iter().collect(),
    };
    let packed_at = crate::date::rfc3339(crate::pack::source_date_epoch().unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }));
    let described = Described {
        template: source.template.name.clone(),
        version: o
            .template_version
            .clone()
            .unwrap_or_else(|| source.template.version.clone()),
        hypervisor: source.hypervisor,
        requested: source.packages.requested.clone(),
        hooks: source.hooks.clone(),
        root: serde_json::json!({"packed_from": {
            "bundle": digest,
            "machine": m.id.get(),
        }}),
        packed_from: Some(PackedFrom {
            bundle: digest.clone(),
            template: source.template.name.clone(),
            version: source.template.version.clone(),
            machine: m.id.get(),
            name: m.name.clone(),
            scrub: ops.iter().map(|o| o.name.to_string()).collect(),
            packed: packed_at,
            snapshot: o.snapshot.clone(),
        }),
    };

    let staging = Scratch::new_in(&vms_dir(), STAGING_PREFIX)?;
    let work = staging.path();
    let mut pack_opts = crate::pack::PackOptions::from_env();
    if hv != Hypervisor::Lxc {
        // mke2fs's, not the root's: the bundle's root had none.
        pack_opts.exclude.push(PathBuf::from("lost+found"));
    }
    let pack = |root: &Path, base_root: &Path| {
        scrub_and_pack(
            root, base_root, work, &ops, o, &what, &described, &pack_opts, report,
        )
    };
    use super::snapshot_store::Frozen;
    let s = match frozen {
        Some(Frozen::Layer(upper)) => pack_layer(&upper, &base.root(), work, &pack)?,
        Some(Frozen::Disk(image, format)) => {
            pack_disk((&image, &format), &base.disk(), work, &what, report, &pack)?
        }
        None if hv == Hypervisor::Lxc => pack_lxc(&dir, &base.root(), work, &what, report, &pack)?,
        None => {
            let top = super::disk::top_of(&d.inactive_xml()?, &what)?;
            pack_disk(
                (&top.path, &top.format),
                &base.disk(),
                work,
                &what,
                report,
                &pack,
            )?
        }
    };
    report.progress(&format!(
        "{what}: {} of the seed's files and {} scrubbed paths taken out",
        s.unseeded, s.scrubbed
    ));
    let conf_dir = dir.join(bundle::CONF);
    let conf = bundle::conf_members(Some(conf_dir.as_path()).filter(|p| p.is_dir()))?;
    let mut output = crate::files::Output::create(out)?;
    let meta = bundle::write(
        &s.packed,
        &described,
        conf,
        Vec::new(),
        &[],
        &o.signing,
        None,
        report,
        out,
        &mut output,
    )?;
    output.commit()?;
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_by_component() {
        assert!(pattern_matches("var/log/**", Path::new("var/log/syslog")));
        assert!(pattern_matches(
            "var/log/**",
            Path::new("var/log/apt/history.log")
        ));
        assert!(!pattern_matches("var/log/**", Path::new("var/lib/x")));
        assert!(pattern_matches(
            "etc/ssh/ssh_host_*",
            Path::new("etc/ssh/ssh_host_ed25519_key.pub")
        ));
        assert!(!pattern_matches(
            "etc/ssh/ssh_host_*",
            Path::new("etc/ssh/sshd_config")
        ));
        assert!(pattern_matches(
            "home/*/.*history",
            Path::new("home/op/.bash_history")
        ));
        assert!(!pattern_matches(
            "home/*/.*history",
            Path::new("home/op/sub/.bash_history")
        ));
        assert!(pattern_matches(
            "var/lib/apt/lists/*_*",
            Path::new("var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_Release")
        ));
        assert!(!pattern_matches(
            "var/lib/apt/lists/*_*",
            Path::new("var/lib/apt/lists/lock")
        ));
        assert!(pattern_matches("tm?/*", Path::new("tmp/x")));
    }

    #[test]
    fn scrub_names_parse_and_unknown_ones_are_told() {
        assert!(parse_scrub("none").unwrap().is_empty());
        let ops = parse_scrub("logs,machine-id,logs").unwrap();
        let names: Vec<&str> = ops.iter().map(|o| o.name).collect();
        assert_eq!(names, ["logs", "machine-id"]);
        let e = parse_scrub("logs,cookies").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string()
                .contains("\"cookies\" is no scrub operation (they are machine-id, ssh-host-keys"),
            "{e}"
        );
        // Every operation's name is unique, and has rules.
        for (i, op) in SCRUB.iter().enumerate() {
            assert!(!op.rules.is_empty(), "{}", op.name);
            assert!(
                SCRUB[i + 1..].iter().all(|o| o.name != op.name),
                "{}",
                op.name
            );
        }
    }

    #[test]
    fn the_default_scrub_removes_what_it_lists_and_keeps_the_rest() {
        let d = crate::testing::tree(&[
            ("etc/machine-id", "0123456789abcdef0123456789abcdef\n"),
            ("etc/ssh/ssh_host_ed25519_key", "k"),
            ("etc/ssh/ssh_host_ed25519_key.pub", "p"),
            ("etc/ssh/sshd_config", "c"),
            ("var/log/syslog", "l"),
            ("var/log/apt/history.log", "l"),
            ("var/lib/dhcp/dhclient.eth0.leases", "lease"),
            ("root/.bash_history", "ls"),
            ("home/op/.python_history", "x"),
            ("tmp/a/b", "t"),
            ("var/cache/apt/archives/x_1_all.deb", "d"),
            ("var/lib/cloud/instance/boot-finished", "b"),
            ("var/lib/systemd/random-seed", "r"),
            ("srv/data/keep.txt", "data"),
            ("root/notes.txt", "keep"),
        ]);
        let r = d.path();
        let n = scrub(r, &SCRUB.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(n, 12);
        assert_eq!(std::fs::read(r.join("etc/machine-id")).unwrap(), b"");
        for gone in [
            "etc/ssh/ssh_host_ed25519_key",
            "etc/ssh/ssh_host_ed25519_key.pub",
            "var/log/syslog",
            "var/log/apt/history.log",
            "var/lib/dhcp/dhclient.eth0.leases",
            "root/.bash_history",
            "home/op/.python_history",
            "tmp/a",
            "var/cache/apt/archives/x_1_all.deb",
            "var/lib/cloud/instance",
            "var/lib/systemd/random-seed",
        ] {
            assert!(std::fs::symlink_metadata(r.join(gone)).is_err(), "{gone}");
        }
        for kept in [
            "etc/ssh/sshd_config",
            "srv/data/keep.txt",
            "root/notes.txt",
            "var/log/apt",
            "tmp",
        ] {
            assert!(r.join(kept).exists(), "{kept}");
        }
        // none scrubs nothing.
        assert_eq!(scrub(r, &[]).unwrap(), 0);
    }

    #[test]
    fn a_link_out_of_the_root_is_never_followed() {
        let outside = crate::testing::tree(&[("log/keep", "node's"), ("machine-id", "node's\n")]);
        let d = crate::testing::tree(&[("etc/x", "")]);
        let r = d.path();
        std::fs::create_dir_all(r.join("var")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("log"), r.join("var/log")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("machine-id"), r.join("etc/machine-id"))
            .unwrap();
        scrub(r, &SCRUB.iter().collect::<Vec<_>>()).unwrap();
        assert!(outside.path().join("log/keep").exists());
        assert_eq!(
            std::fs::read(outside.path().join("machine-id")).unwrap(),
            b"node's\n"
        );
        assert!(inside(r, Path::new("var/log/keep")).is_none());
        assert_eq!(inside(r, Path::new("etc/x")), Some(r.join("etc/x")));
    }

    #[test]
    fn private_keys_are_found_by_their_headers() {
        assert!(holds_private_key(
            b"x\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n"
        ));
        assert!(holds_private_key(b"-----BEGIN RSA PRIVATE KEY-----\n"));
        assert!(holds_private_key(b"-----BEGIN EC PRIVATE KEY-----\n"));
        assert!(holds_private_key(b"-----BEGIN PRIVATE KEY-----\n"));
        assert!(holds_private_key(
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
        ));
        assert!(holds_private_key(
            b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n"
        ));
        assert!(!holds_private_key(
            b"-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n"
        ));
        assert!(!holds_private_key(
            b"-----BEGIN PUBLIC KEY-----\n PRIVATE KEY on the next line\n"
        ));
        assert!(!holds_private_key(b"ssh-ed25519 AAAAC3Nza op@desk\n"));
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
        let d = crate::testing::tree(&[
            ("root/.ssh/id_ed25519", key),
            ("root/.ssh/id_ed25519.pub", "ssh-ed25519 AAAA op@desk\n"),
            ("usr/share/doc/x/test.pem", key),
            ("usr/local/etc/leaked.pem", key),
            ("srv/data", "plain data, nothing secret in it\n"),
        ]);
        assert_eq!(
            private_keys(d.path()).unwrap(),
            [
                Path::new("/root/.ssh/id_ed25519"),
                Path::new("/usr/local/etc/leaked.pem")
            ]
        );
    }

    /// The seed's files go back to the base's, or go; every parameter goes.
    #[test]
    fn the_seed_s_files_are_taken_out_by_record() {
        let base = crate::testing::tree(&[
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
            ("etc/shadow", "root:*:1:0:99999:7:::\n"),
            ("etc/hostname", "buildhost\n"),
            ("etc/machine-id", ""),
        ]);
        let root = crate::testing::tree(&[
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
            ("etc/shadow", "root:$6$salt$hash:2:0:99999:7:::\n"),
            ("etc/hostname", "web-101\n"),
            ("etc/hosts", "127.0.1.1\tweb-101\n"),
            ("etc/resolv.conf", "nameserver 192.0.2.1\n"),
            ("etc/machine-id", "0123456789abcdef0123456789abcdef\n"),
            ("etc/mkve/params/token", "s3cret"),
            ("etc/mkve/params/site", "example"),
            ("root/.ssh/authorized_keys", "ssh-ed25519 AAAA op@desk\n"),
            ("srv/data", "kept"),
        ]);
        let r = root.path();
        let done = unseed(r, base.path(), &crate::exec::Silent).unwrap();
        assert_eq!(done.len(), 9, "{done:?}");
        assert_eq!(
            std::fs::read_to_string(r.join("etc/shadow")).unwrap(),
            "root:*:1:0:99999:7:::\n"
        );
        assert_eq!(
            std::fs::read_to_string(r.join("etc/hostname")).unwrap(),
            "buildhost\n"
        );
        assert_eq!(std::fs::read(r.join("etc/machine-id")).unwrap(), b"");
        for gone in [
            "etc/hosts",
            "etc/resolv.conf",
            "etc/mkve/params/token",
            "etc/mkve/params/site",
            "root/.ssh/authorized_keys",
        ] {
            assert!(std::fs::symlink_metadata(r.join(gone)).is_err(), "{gone}");
        }
        assert!(r.join("srv/data").exists());
    }
}
