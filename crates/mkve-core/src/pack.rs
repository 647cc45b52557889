//! Root file systems as tar streams: deterministic packing of a directory,
//! compression, and an unpacker that never writes outside its destination.
//!
//! Packing walks the tree sorted by name without following links, keeps
//! numeric owners, modes, hard links, device nodes, FIFOs and xattrs (as
//! PAX `SCHILY.xattr.*` records, which GNU tar reads), clamps mtimes to
//! `SOURCE_DATE_EPOCH` when set, and skips sockets. The format of the root
//! inside a bundle is described in mkve-bundle(5).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{major, makedev, minor, mknod, Mode, SFlag};
use tar::{EntryType, Header};

use crate::error::{Error, IoContext, Result};

/// zstd level for roots: fast, and within a few per cent of level 9 on OS trees.
pub const ZSTD_LEVEL: i32 = 3;

/// zstd workers. Multi-threaded zstd output does not depend on the worker
/// count (proven in a test), so this only trades CPU for speed.
pub fn zstd_workers() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
        .clamp(1, 8)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// A compressing writer that must be `finish`ed: dropping it loses the end.
pub enum Encoder<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    pub fn new(w: W, c: Compression) -> std::io::Result<Self> {
        Ok(match c {
            Compression::None => Encoder::Plain(w),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                w,
                flate2::Compression::default(),
            )),
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(w, ZSTD_LEVEL)?;
                e.multithread(zstd_workers())?;
                Encoder::Zstd(e)
            }
        })
    }

    pub fn finish(self) -> std::io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

/// Wrap `r` in the decompressor its first bytes call for (gzip, zstd, or
/// none for a plain tar).
pub fn decompressor<'a, R: Read + 'a>(r: R) -> std::io::Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::with_capacity(1 << 20, r);
    let head = r.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(r)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(r)?))
    } else {
        Ok(Box::new(r))
    }
}

#[derive(Debug, Default, Clone)]
pub struct PackOptions {
    /// Newer mtimes are set to this (`SOURCE_DATE_EPOCH`).
    pub clamp_mtime: Option<u64>,
    /// Paths relative to the root that are left out, a directory with
    /// all below it (the build host's files in a root built from
    /// packages: `root::BUILD_HOST_FILES`).
    pub exclude: Vec<PathBuf>,
}

impl PackOptions {
    pub fn from_env() -> Self {
        PackOptions {
            clamp_mtime: source_date_epoch(),
            exclude: Vec::new(),
        }
    }
}

/// `SOURCE_DATE_EPOCH`, when set to a number.
pub fn source_date_epoch() -> Option<u64> {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PackStats {
    pub entries: u64,
    /// Regular files' sizes, added up.
    pub bytes: u64,
    /// The length of the tar stream (before compression): what unpacking
    /// it reads, which bundle format 2 declares (`unpacked_size`).
    pub tar_bytes: u64,
    pub skipped: Vec<PathBuf>,
}

impl PackStats {
    /// `packed 680 MB in 2.1 s (324 MB/s)`, for progress lines.
    pub fn describe(&self, elapsed: std::time::Duration) -> String {
        let secs = elapsed.as_secs_f64().max(0.001);
        format!(
            "packed {} MB in {secs:.1} s ({:.0} MB/s)",
            self.bytes >> 20,
            self.bytes as f64 / 1e6 / secs
        )
    }
}

/// Write the tree under `root` as a tar stream to `out`; return `out`.
pub fn pack_dir<W: Write>(root: &Path, out: W, opts: &PackOptions) -> Result<(W, PackStats)> {
    let mut n = 0u64;
    let mut b = tar::Builder::new(Tap::new(out, |buf: &[u8]| n += buf.len() as u64));
    let mut stats = PackStats::default();
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let walk = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1);
    let mut walk = walk.into_iter();
    while let Some(entry) = walk.next() {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            let io = e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("walk failed"));
            if io.raw_os_error() == Some(libc::ENAMETOOLONG) {
                return too_long(root, &path);
            }
            Error::io(path, io)
        })?;
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap_or(path);
        if opts.exclude.iter().any(|x| x == rel) {
            if entry.file_type().is_dir() {
                walk.skip_current_dir();
            }
            continue;
        }
        // Every call on a path this long fails (ENAMETOOLONG).
        if path.as_os_str().len() > PATH_MAX {
            return Err(too_long(root, path));
        }
        let meta = entry.metadata().map_err(|e| Error::io(path, e.into()))?;
        let ft = meta.file_type();
        if ft.is_socket() {
            stats.skipped.push(rel.to_path_buf());
            continue;
        }
        let mut h = Header::new_gnu();
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(meta.uid() as u64);
        h.set_gid(meta.gid() as u64);
        let mtime = meta.mtime().max(0) as u64;
        h.set_mtime(opts.clamp_mtime.map_or(mtime, |c| mtime.min(c)));
        h.set_size(0);

        let xattrs = read_xattrs(path)?;
        if !xattrs.is_empty() {
            b.append_pax_extensions(xattrs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .at(path)?;
        }
        let w = |r: std::io::Result<()>| r.at(path);
        if ft.is_dir() {
            h.set_entry_type(EntryType::Directory);
            let mut name = rel.as_os_str().as_bytes().to_vec();
            name.push(b'/');
            w(b.append_data(&mut h, std::ffi::OsStr::from_bytes(&name), std::io::empty()))?;
        } else if ft.is_symlink() {
            h.set_entry_type(EntryType::Symlink);
            let target = std::fs::read_link(path).at(path)?;
            w(b.append_link(&mut h, rel, target))?;
        } else if ft.is_file() && meta.nlink() > 1 && links.contains_key(&(meta.dev(), meta.ino()))
        {
            h.set_entry_type(EntryType::Link);
            w(b.append_link(&mut h, rel, &links[&(meta.dev(), meta.ino())]))?;
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                links.insert((meta.dev(), meta.ino()), rel.to_path_buf());
            }
            h.set_entry_type(EntryType::Regular);
            h.set_size(meta.len());
            let f = open_nofollow(path)?;
            let mut counted = Counted {
                inner: Holey::new(f, meta.len()),
                n: 0,
            };
            w(b.append_data(&mut h, rel, &mut counted))?;
            if counted.n != meta.len() {
                return Err(Error::io(
                    path,
                    std::io::Error::other("file shrank while it was packed"),
                ));
            }
            stats.bytes += meta.len();
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            h.set_entry_type(if ft.is_char_device() {
                EntryType::Char
            } else if ft.is_block_device() {
                EntryType::Block
            } else {
                EntryType::Fifo
            });
            if !ft.is_fifo() {
                let (maj, min) = (major(meta.rdev()), minor(meta.rdev()));
                if !device_allowed(rel, h.entry_type(), maj, min) {
                    return Err(Error::bundle(
                        path,
                        device_refused(h.entry_type(), maj, min),
                    ));
                }
                w(h.set_device_major(maj as u32))?;
                w(h.set_device_minor(min as u32))?;
            }
            w(b.append_data(&mut h, rel, std::io::empty()))?;
        }
        stats.entries += 1;
    }
    let out = b.into_inner().at(root)?.into_inner();
    stats.tar_bytes = n;
    Ok((out, stats))
}

/// A writer that hands `seen` every byte written through it (to count or
/// hash what goes by).
pub(crate) struct Tap<W, F> {
    inner: W,
    seen: F,
}

impl<W: Write, F: FnMut(&[u8])> Tap<W, F> {
    pub fn new(inner: W, seen: F) -> Self {
        Tap { inner, seen }
    }

    /// The writer, the tap gone (and with it what it borrowed).
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write, F: FnMut(&[u8])> Write for Tap<W, F> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(buf)?;
        (self.seen)(&buf[..k]);
        Ok(k)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A root holding a path too long to be packed, in one line.
fn too_long(root: &Path, path: &Path) -> Error {
    Error::bundle(
        root,
        format!(
            "holds a path longer than PATH_MAX ({PATH_MAX} bytes), which cannot be packed: {}",
            abbreviate(path)
        ),
    )
}

struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

fn open_nofollow(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .at(path)
}

/// xattrs of `path` (not followed), sorted, as PAX records.
fn read_xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(vec![]),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut out = Vec::new();
    for name in names {
        let Some(text) = name.to_str() else { continue };
        if let Some(value) = xattr::get(path, &name).at(path)? {
            out.push((format!("SCHILY.xattr.{text}"), value));
        }
    }
    out.sort();
    Ok(out)
}

/// Device nodes a root may carry: the ones mmdebstrap and debootstrap make.
/// Anything else (a disk, say) is refused, as is any node outside `dev/`.
const ALLOWED_DEVICES: &[(&str, EntryType, u64, u64)] = &[
    ("dev/console", EntryType::Char, 5, 1),
    ("dev/full", EntryType::Char, 1, 7),
    ("dev/null", EntryType::Char, 1, 3),
    ("dev/ptmx", EntryType::Char, 5, 2),
    ("dev/random", EntryType::Char, 1, 8),
    ("dev/tty", EntryType::Char, 5, 0),
    ("dev/urandom", EntryType::Char, 1, 9),
    ("dev/zero", EntryType::Char, 1, 5),
    ("dev/net/tun", EntryType::Char, 10, 200),
    ("dev/fuse", EntryType::Char, 10, 229),
];

/// Whether the device node `rel` (`dev/null`) of `kind` with numbers
/// `maj:min` is one of the standard nodes a root may carry: the one rule
/// for packing a root and for unpacking a bundle.
fn device_allowed(rel: &Path, kind: EntryType, maj: u64, min: u64) -> bool {
    ALLOWED_DEVICES
        .iter()
        .any(|(p, k, a, i)| Path::new(p) == rel && *k == kind && (*a, *i) == (maj, min))
}

/// Why a device node is refused, on both sides.
fn device_refused(kind: EntryType, maj: u64, min: u64) -> String {
    let t = if kind == EntryType::Char { 'c' } else { 'b' };
    format!(
        "device node ({t} {maj}:{min}) refused: only the standard nodes under dev/ are accepted"
    )
}

/// The longest path a member may have: Linux's PATH_MAX less its NUL. A
/// longer one could be neither made nor opened by path on unpack.
pub const PATH_MAX: usize = 4095;

/// `path` for a message: whole when short, else its start and end around
/// how long it is, so one line stays one line.
pub fn abbreviate(path: &Path) -> String {
    let s = path.display().to_string();
    if s.chars().count() <= 160 {
        return s;
    }
    let head: String = s.chars().take(60).collect();
    let tail: String = s
        .chars()
        .rev()
        .take(60)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{head}…({} bytes)…{tail}", s.len())
}

#[derive(Debug, Clone, Copy)]
pub struct UnpackOptions {
    /// Root file systems have absolute symlinks (`/etc/alternatives/…`)
    /// that mean the same place inside the root; other archives may not.
    pub absolute_symlinks: bool,
    /// Device nodes from the allow-list under `dev/`.
    pub devices: bool,
}

impl UnpackOptions {
    pub const ROOTFS: UnpackOptions = UnpackOptions {
        absolute_symlinks: true,
        devices: true,
    };
}

/// Unpack the tar stream `r` into `dest`, an empty directory; with no
/// `dest`, only check that it could be unpacked (what `--verify` does).
///
/// Every member is checked before anything is created: a relative path with
/// no `..`, parents that are real directories (never a symlink that could
/// lead outside), link targets that stay inside, and only the device nodes
/// of the allow-list. What the archive made so far is tracked in memory, so
/// the check needs no look at the file system and works the same in both
/// modes. `label` names the archive in messages.
pub fn unpack<R: Read>(
    r: R,
    dest: Option<&Path>,
    label: &Path,
    opts: UnpackOptions,
) -> Result<u64> {
    let bad = |member: &Path, why: &str| {
        Error::bundle(label, format!("member \"{}\": {why}", abbreviate(member)))
    };
    if let Some(d) = dest {
        if std::fs::read_dir(d).at(d)?.next().is_some() {
            return Err(Error::create(
                d,
                std::io::Error::other("not empty: unpacking needs an empty directory"),
            ));
        }
    }
    let root = nix::unistd::geteuid().is_root();
    let mut ar = tar::Archive::new(r);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(root);
    ar.set_unpack_xattrs(root);
    ar.set_preserve_mtime(true);
    ar.set_overwrite(true);
    let mut made: HashMap<PathBuf, Made> = HashMap::new();
    // Directory mtimes are set last: making their contents changes them.
    let mut dir_times: Vec<(PathBuf, i64)> = Vec::new();
    let mut count = 0u64;
    for entry in ar
        .entries()
        .map_err(|e| Error::bundle(label, format!("not a tar archive: {e}")))?
    {
        let mut entry =
            entry.map_err(|e| Error::bundle(label, format!("broken tar archive: {e}")))?;
        let raw = PathBuf::from(std::ffi::OsStr::from_bytes(&entry.path_bytes()));
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            continue;
        }
        let Some(rel) = clean_relative(&raw) else {
            return Err(bad(&raw, "absolute path or \"..\" refused"));
        };
        if rel.as_os_str().len() > PATH_MAX {
            let why = format!(
                "a path of {} bytes is longer than PATH_MAX ({PATH_MAX})",
                rel.as_os_str().len()
            );
            return Err(bad(&rel, &why));
        }
        if rel.as_os_str().is_empty() {
            continue; // "./" itself: dest already exists
        }
        let new_dirs = parents_to_make(&rel, &made).map_err(|why| bad(&rel, &why))?;
        let link = entry
            .link_name()
            .ok()
            .flatten()
            .map(|l| l.into_owned())
            .unwrap_or_default();
        let member = check_member(&rel, kind, &link, entry.header(), &made, opts)
            .map_err(|why| bad(&rel, &why))?;
        for d in new_dirs {
            if let Some(dest) = dest {
                std::fs::create_dir(dest.join(&d))
                    .map_err(|e| bad(&rel, &format!("cannot create {}: {e}", d.display())))?;
            }
            made.insert(d, Made::Dir);
        }
        // The directory began empty: only a path the archive already made
        // can be in the way of this one.
        let again = made.insert(rel.clone(), member.made()).is_some();
        count += 1;
        let Some(dest) = dest else { continue };
        let target = dest.join(&rel);
        let io = |e: std::io::Error| {
            if crate::error::is_no_room(&e) {
                return Error::create(dest.join(&rel), e);
            }
            bad(&rel, &e.to_string())
        };
        let mtime = entry.header().mtime().unwrap_or(0) as i64;
        create_member(&mut entry, &member, dest, &target, again, root).map_err(|e| match e {
            Failed::Io(e) => io(e),
            Failed::Refused(why) => bad(&rel, &why),
        })?;
        if matches!(member, Member::Dir) {
            dir_times.push((target, mtime));
        }
    }
    // Deepest first, so setting a directory's time changes no parent's.
    for (dir, mtime) in dir_times.iter().rev() {
        set_dir_mtime(dir, *mtime).map_err(|e| Error::create(dir.clone(), e))?;
    }
    Ok(count)
}

/// A member of an archive, checked: what it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Member {
    Dir,
    File,
    Symlink,
    /// A hard link to a file the archive made before it (its path in the
    /// archive).
    HardLink(PathBuf),
    /// A character or block device: its kind and number.
    Device(SFlag, u64),
    Fifo,
}

impl Member {
    /// What the path holds once this member is made, as later members
    /// care.
    fn made(&self) -> Made {
        match self {
            Member::Dir => Made::Dir,
            Member::File | Member::HardLink(_) => Made::File,
            Member::Symlink | Member::Device(..) | Member::Fifo => Made::Other,
        }
    }
}

/// Decide what the member at `rel` (of type `kind`, its link name `link`,
/// its header `h`) is, before anything of it is made: a directory may not
/// be replaced by anything else; a symbolic link needs a target, absolute
/// only where `opts` allow, relative staying inside; a hard link to a file
/// the archive made before it; a device from the allow-list where `opts`
/// allow devices; no other type. Pure: it reads only the header and `made`
/// (what the archive made so far). Errors: why it is refused.
fn check_member(
    rel: &Path,
    kind: EntryType,
    link: &Path,
    h: &Header,
    made: &HashMap<PathBuf, Made>,
    opts: UnpackOptions,
) -> std::result::Result<Member, String> {
    if made.get(rel) == Some(&Made::Dir) && kind != EntryType::Directory {
        return Err("replaces a directory".into());
    }
    Ok(match kind {
        EntryType::Regular | EntryType::Continuous => Member::File,
        EntryType::Directory => Member::Dir,
        EntryType::Symlink => {
            if link.as_os_str().is_empty() {
                return Err("symbolic link with no target".into());
            }
            if link.is_absolute() && !opts.absolute_symlinks {
                return Err(format!(
                    "symbolic link to absolute path {} refused",
                    link.display()
                ));
            }
            if link.is_relative() && !stays_inside(rel.parent().unwrap_or(Path::new("")), link) {
                return Err(format!(
                    "symbolic link to {} points outside",
                    link.display()
                ));
            }
            Member::Symlink
        }
        EntryType::Link => {
            let target = clean_relative(link).filter(|l| !l.as_os_str().is_empty());
            let Some(target) = target else {
                return Err(format!("hard link to {} points outside", link.display()));
            };
            if made.get(&target) != Some(&Made::File) {
                return Err(format!(
                    "hard link to {}, which is not a file unpacked before it",
                    target.display()
                ));
            }
            Member::HardLink(target)
        }
        EntryType::Char | EntryType::Block => {
            let maj = h.device_major().ok().flatten().unwrap_or(0) as u64;
            let min = h.device_minor().ok().flatten().unwrap_or(0) as u64;
            if !(opts.devices && device_allowed(rel, kind, maj, min)) {
                return Err(device_refused(kind, maj, min));
            }
            let sflag = if kind == EntryType::Char {
                SFlag::S_IFCHR
            } else {
                SFlag::S_IFBLK
            };
            Member::Device(sflag, makedev(maj, min))
        }
        EntryType::Fifo => Member::Fifo,
        other => {
            return Err(format!(
                "unsupported member type {:?}",
                other.as_byte() as char
            ))
        }
    })
}

/// Why a member could not be made.
enum Failed {
    /// The file system's error (its kind decides the exit status).
    Io(std::io::Error),
    /// A node refused (mknod's words).
    Refused(String),
}

/// Make the checked member `m` of `entry` at `target`, inside `dest`;
/// `again`: the archive made this path before, and the new member
/// replaces it. `root`: owners kept.
fn create_member<R: Read>(
    entry: &mut tar::Entry<R>,
    m: &Member,
    dest: &Path,
    target: &Path,
    again: bool,
    root: bool,
) -> std::result::Result<(), Failed> {
    if again && !matches!(m, Member::Dir) {
        remove_non_dir(target).map_err(Failed::Io)?;
    }
    match m {
        Member::Dir | Member::Symlink => entry.unpack(target).map(drop).map_err(Failed::Io),
        Member::File => unpack_file(entry, target, root).map_err(Failed::Io),
        Member::HardLink(to) => std::fs::hard_link(dest.join(to), target).map_err(Failed::Io),
        Member::Device(kind, dev) => {
            make_node(target, entry.header(), *kind, *dev, root).map_err(Failed::Refused)
        }
        Member::Fifo => {
            make_node(target, entry.header(), SFlag::S_IFIFO, 0, root).map_err(Failed::Refused)
        }
    }
}

/// Set directory `dir`'s access and modification times to `mtime`
/// (seconds since the epoch); one past what the system can hold is left.
fn set_dir_mtime(dir: &Path, mtime: i64) -> std::io::Result<()> {
    let Some(t) = u64::try_from(mtime)
        .ok()
        .and_then(|s| std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(s)))
    else {
        return Ok(());
    };
    std::fs::File::open(dir)?.set_times(std::fs::FileTimes::new().set_modified(t).set_accessed(t))
}

/// What an archive member made, as far as later members care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Made {
    Dir,
    File,
    /// A symlink, device node or FIFO: nothing may be put below it.
    Other,
}

/// The parents of `rel` that do not exist yet. A parent that the archive
/// made as anything but a directory (a symlink above all) is refused.
fn parents_to_make(rel: &Path, made: &HashMap<PathBuf, Made>) -> Result<Vec<PathBuf>, String> {
    let mut missing = Vec::new();
    let mut prefix = PathBuf::new();
    for c in rel
        .parent()
        .map(|p| p.components().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        prefix.push(c);
        match made.get(&prefix) {
            Some(Made::Dir) => {}
            Some(Made::File) => {
                return Err(format!(
                    "its parent {} is not a directory",
                    prefix.display()
                ))
            }
            Some(Made::Other) => {
                return Err(format!(
                    "its parent {} is a symbolic link or special file",
                    prefix.display()
                ))
            }
            None => missing.push(prefix.clone()),
        }
    }
    Ok(missing)
}

/// `p` without `./` prefixes; `None` when absolute or with a `..`.
fn clean_relative(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Whether `link`, read from directory `from` (relative to the root), stays
/// inside the root.
fn stays_inside(from: &Path, link: &Path) -> bool {
    let mut depth = from.components().count() as i64;
    for c in link.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

fn remove_non_dir(p: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if !m.is_dir() => std::fs::remove_file(p),
        _ => Ok(()),
    }
}

/// The block size holes are made in: a run of zeros this long, aligned,
/// is skipped (seeked over) rather than written.
const HOLE_BLOCK: usize = 4096;

/// Write a regular file member to `target` (which does not exist), with
/// its data's long runs of zeros left as holes, so the disk holds what the
/// data holds (a 4 GiB `lastlog` of zeros takes no blocks); then its
/// owner (as root), mode, xattrs (as root, from PAX `SCHILY.xattr.*`) and
/// mtime, as tar's own unpack would set them.
fn unpack_file<R: Read>(
    entry: &mut tar::Entry<R>,
    target: &Path,
    root: bool,
) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    let h = entry.header().clone();
    let size = entry.size();
    let xattrs: Vec<(String, Vec<u8>)> = match entry.pax_extensions()? {
        Some(exts) if root => exts
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let k = e.key().ok()?.strip_prefix("SCHILY.xattr.")?.to_string();
                Some((k, e.value_bytes().to_vec()))
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(target)?;
    let mut buf = vec![0u8; 256 << 10];
    let mut pending_hole = 0u64;
    loop {
        let n = read_full(entry, &mut buf)?;
        if n == 0 {
            break;
        }
        for block in buf[..n].chunks(HOLE_BLOCK) {
            if block.len() == HOLE_BLOCK && block.iter().all(|b| *b == 0) {
                pending_hole += HOLE_BLOCK as u64;
                continue;
            }
            if pending_hole > 0 {
                f.seek(SeekFrom::Current(pending_hole as i64))?;
                pending_hole = 0;
            }
            f.write_all(block)?;
        }
    }
    // A hole at the end: the length makes it.
    f.set_len(size)?;
    let mode = h.mode().unwrap_or(0o644) & 0o7777;
    if root {
        let uid = h.uid().unwrap_or(0) as u32;
        let gid = h.gid().unwrap_or(0) as u32;
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
        for (k, v) in &xattrs {
            xattr::FileExt::set_xattr(&f, k, v)?;
        }
    }
    // After chown, which clears set-user-ID bits.
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    // An mtime past what the system's time can hold is left as it is.
    let secs = std::time::Duration::from_secs(h.mtime().unwrap_or(0));
    if let Some(mtime) = std::time::UNIX_EPOCH.checked_add(secs) {
        f.set_times(
            std::fs::FileTimes::new()
                .set_modified(mtime)
                .set_accessed(mtime),
        )?;
    }
    Ok(())
}

/// Read until `buf` is full or the input ends; the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A file read as its data: the holes of a sparse file (SEEK_HOLE and
/// SEEK_DATA, lseek(2)) are given as zeros without reading the disk. The
/// tar stream still carries them (the tar crate writes no sparse entries,
/// and zstd makes them nearly nothing); the unpack leaves them holes again.
struct Holey {
    f: File,
    pos: u64,
    len: u64,
    /// Where the current data region ends (the next hole).
    data_end: u64,
    /// Where the next data region starts, when in a hole.
    next_data: u64,
}

impl Holey {
    fn new(f: File, len: u64) -> Holey {
        Holey {
            f,
            pos: 0,
            len,
            data_end: 0,
            next_data: 0,
        }
    }

    /// Find the region at `pos`: data up to `data_end`, or a hole up to
    /// `next_data`. A file system without SEEK_HOLE says: all data.
    fn locate(&mut self) {
        use rustix::fs::{seek, SeekFrom};
        let data = match seek(&self.f, SeekFrom::Data(self.pos)) {
            Ok(d) => d,
            Err(e) => {
                // ENXIO: no data after pos, the rest is a hole.
                (self.next_data, self.data_end) = if e == rustix::io::Errno::NXIO {
                    (self.len, self.len)
                } else {
                    (self.pos, self.len)
                };
                return;
            }
        };
        self.next_data = data;
        self.data_end = match seek(&self.f, SeekFrom::Hole(self.next_data)) {
            Ok(hole) => hole.min(self.len),
            Err(_) => self.len,
        };
    }
}

impl Read for Holey {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.data_end && self.pos >= self.next_data {
            self.locate();
        }
        if self.pos < self.next_data {
            let n = buf
                .len()
                .min((self.next_data.min(self.len) - self.pos) as usize);
            buf[..n].fill(0);
            self.pos += n as u64;
            return Ok(n);
        }
        let want = buf
            .len()
            .min((self.data_end.min(self.len) - self.pos) as usize);
        let n = self.f.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// mknod(2) of `target` as the header says (mode, owners when `root`,
/// time); `create_member` has removed what the archive put there before.
fn make_node(target: &Path, h: &Header, kind: SFlag, dev: u64, root: bool) -> Result<(), String> {
    let mode = h.mode().unwrap_or(0o644) & 0o7777;
    mknod(target, kind, Mode::from_bits_truncate(0o600), dev).map_err(|e| format!("mknod: {e}"))?;
    if root {
        let uid = h.uid().unwrap_or(0) as u32;
        let gid = h.gid().unwrap_or(0) as u32;
        std::os::unix::fs::lchown(target, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
    }
    std::fs::set_permissions(target, std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(|e| e.to_string())?;
    // Its time, as a file's is kept.
    set_node_mtime(target, h.mtime().unwrap_or(0) as i64).map_err(|e| format!("utimensat: {e}"))
}

/// Set a node's (a FIFO's, a device's) access and modification times to
/// `mtime` (seconds since the epoch) by path, without opening it (opening
/// a FIFO blocks) and without following a link.
fn set_node_mtime(path: &Path, mtime: i64) -> rustix::io::Result<()> {
    let t = rustix::fs::Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    let times = rustix::fs::Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
}

/// Pack `root` (a directory) into `out` compressed with `c`.
pub fn pack_dir_compressed<W: Write>(
    root: &Path,
    out: W,
    c: Compression,
    opts: &PackOptions,
) -> Result<(W, PackStats)> {
    let enc = Encoder::new(out, c).at(root)?;
    let (enc, stats) = pack_dir(root, enc, opts)?;
    let out = enc.finish().at(root)?;
    Ok((out, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    /// check_member decides without a file system: what each kind of
    /// member is, and why one is refused, given what came before it.
    #[test]
    fn members_are_decided_before_anything_is_made() {
        let h = Header::new_gnu();
        let mut made = HashMap::new();
        made.insert(PathBuf::from("etc"), Made::Dir);
        made.insert(PathBuf::from("etc/passwd"), Made::File);
        made.insert(PathBuf::from("etc/alt"), Made::Other);
        let rootfs = UnpackOptions::ROOTFS;
        let plain = UnpackOptions {
            absolute_symlinks: false,
            devices: false,
        };
        let check = |rel: &str, kind, link: &str, opts| {
            check_member(Path::new(rel), kind, Path::new(link), &h, &made, opts)
        };
        assert_eq!(
            check("etc/motd", EntryType::Regular, "", plain),
            Ok(Member::File)
        );
        assert_eq!(
            check("etc", EntryType::Directory, "", plain),
            Ok(Member::Dir)
        );
        assert_eq!(
            check("etc", EntryType::Regular, "", plain).unwrap_err(),
            "replaces a directory"
        );
        assert_eq!(
            check("etc/hosts", EntryType::Link, "etc/passwd", plain),
            Ok(Member::HardLink("etc/passwd".into()))
        );
        assert!(check("etc/x", EntryType::Link, "etc/alt", plain)
            .unwrap_err()
            .contains("not a file unpacked before it"));
        assert!(check("etc/x", EntryType::Link, "../etc/passwd", plain)
            .unwrap_err()
            .contains("points outside"));
        assert_eq!(
            check("bin/sh", EntryType::Symlink, "/bin/busybox", rootfs),
            Ok(Member::Symlink)
        );
        assert!(check("bin/sh", EntryType::Symlink, "/bin/busybox", plain)
            .unwrap_err()
            .contains("absolute path"));
        assert!(check("etc/x", EntryType::Symlink, "../../root", rootfs)
            .unwrap_err()
            .contains("points outside"));
        assert!(check("etc/x", EntryType::Symlink, "", rootfs)
            .unwrap_err()
            .contains("no target"));
        // dev/null (1, 3) from the allow-list, with devices only.
        let mut null = Header::new_gnu();
        null.set_device_major(1).unwrap();
        null.set_device_minor(3).unwrap();
        let dev = |opts| {
            check_member(
                Path::new("dev/null"),
                EntryType::Char,
                Path::new(""),
                &null,
                &made,
                opts,
            )
        };
        assert_eq!(
            dev(rootfs),
            Ok(Member::Device(SFlag::S_IFCHR, makedev(1, 3)))
        );
        assert!(dev(plain).is_err());
        assert_eq!(
            check("run/fifo", EntryType::Fifo, "", plain),
            Ok(Member::Fifo)
        );
        assert!(check("x", EntryType::new(b'Z'), "", rootfs)
            .unwrap_err()
            .contains("unsupported member type"));
    }

    fn sample_root() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("usr/bin")).unwrap();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("usr/bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
        std::fs::set_permissions(
            r.join("usr/bin/tool"),
            std::fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        std::fs::hard_link(r.join("usr/bin/tool"), r.join("usr/bin/tool2")).unwrap();
        std::fs::write(r.join("etc/hostname"), b"vm\n").unwrap();
        symlink("usr/bin", r.join("bin")).unwrap();
        symlink("/etc/hostname", r.join("etc/abs-link")).unwrap();
        nix::unistd::mkfifo(&r.join("etc/fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        let _ = std::os::unix::net::UnixListener::bind(r.join("etc/sock")).unwrap();
        d
    }

    #[test]
    fn excluded_paths_are_left_out() {
        let src = sample_root();
        let opts = PackOptions {
            exclude: vec!["etc/hostname".into(), "usr".into()],
            ..Default::default()
        };
        let (bytes, _) = pack_dir(src.path(), Vec::new(), &opts).unwrap();
        let names: Vec<String> = tar::Archive::new(&bytes[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(
            !names.iter().any(|n| n.ends_with("etc/hostname")),
            "{names:?}"
        );
        assert!(
            names.iter().any(|n| n.ends_with("etc/abs-link")),
            "{names:?}"
        );
        // An excluded directory goes with everything below it.
        assert!(!names.iter().any(|n| n.starts_with("usr")), "{names:?}");
    }

    fn pack_bytes(root: &Path, c: Compression) -> Vec<u8> {
        pack_dir_compressed(
            root,
            Vec::new(),
            c,
            &PackOptions {
                clamp_mtime: Some(1_700_000_000),
                exclude: Vec::new(),
            },
        )
        .unwrap()
        .0
    }

    /// `bytes` unpacked as a root into a new temporary directory.
    fn unpacked(bytes: &[u8]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        unpack(bytes, Some(d.path()), Path::new("t"), UnpackOptions::ROOTFS).unwrap();
        d
    }

    #[test]
    fn round_trip_keeps_links_modes_and_skips_sockets() {
        let src = sample_root();
        // Directory times in the past, so one the unpacking left as "now"
        // cannot pass for kept.
        for (p, t) in [("usr", 1_600_000_000), ("usr/bin", 1_600_000_100)] {
            set_dir_mtime(&src.path().join(p), t).unwrap();
        }
        // The FIFO's too (set without opening it, which would block).
        set_node_mtime(&src.path().join("etc/fifo"), 1_600_000_200).unwrap();
        let (bytes, stats) = pack_dir(src.path(), Vec::new(), &PackOptions::default()).unwrap();
        assert_eq!(stats.skipped, vec![PathBuf::from("etc/sock")]);
        let dst = unpacked(&bytes);
        let d = dst.path();
        let tool = std::fs::metadata(d.join("usr/bin/tool")).unwrap();
        assert_eq!(tool.mode() & 0o7777, 0o4755);
        assert_eq!(
            tool.ino(),
            std::fs::metadata(d.join("usr/bin/tool2")).unwrap().ino(),
            "hard link kept"
        );
        assert_eq!(
            std::fs::read_link(d.join("bin")).unwrap(),
            PathBuf::from("usr/bin")
        );
        assert!(std::fs::symlink_metadata(d.join("etc/fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
        assert!(!d.join("etc/sock").exists());
        for p in ["usr", "usr/bin", "etc/fifo"] {
            let (a, b) = (
                std::fs::symlink_metadata(src.path().join(p)),
                std::fs::symlink_metadata(d.join(p)),
            );
            assert_eq!(a.unwrap().mtime(), b.unwrap().mtime(), "{p}: mtime kept");
        }
    }

    #[test]
    fn xattrs_and_file_capabilities_survive_a_round_trip() {
        let src = sample_root();
        let tool = src.path().join("usr/bin/tool");
        xattr::set(&tool, "user.mkve", b"kept").unwrap();
        let root = nix::unistd::geteuid().is_root();
        if root {
            // What `setcap cap_net_raw+ep` stores: CI runs as root, so this
            // part runs there.
            let st = std::process::Command::new("setcap")
                .arg("cap_net_raw+ep")
                .arg(&tool)
                .status()
                .unwrap();
            assert!(st.success());
        }
        let (bytes, _) = pack_dir(src.path(), Vec::new(), &PackOptions::default()).unwrap();
        let dst = unpacked(&bytes);
        let out = dst.path().join("usr/bin/tool");
        if root {
            assert_eq!(
                xattr::get(&out, "user.mkve").unwrap().as_deref(),
                Some(&b"kept"[..])
            );
            let caps = std::process::Command::new("getcap")
                .arg(&out)
                .output()
                .unwrap();
            assert!(
                String::from_utf8_lossy(&caps.stdout).contains("cap_net_raw=ep"),
                "{caps:?}"
            );
            assert_eq!(
                std::fs::metadata(&out).unwrap().mode() & 0o7777,
                0o4755,
                "set-uid kept beside the capability"
            );
        }
        // Whoever runs it, the archive carries them as PAX records.
        let mut ar = tar::Archive::new(&bytes[..]);
        let mut found = false;
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap() == Path::new("usr/bin/tool") {
                let pax: Vec<String> = e
                    .pax_extensions()
                    .unwrap()
                    .unwrap()
                    .map(|x| x.unwrap().key().unwrap().to_string())
                    .collect();
                assert!(
                    pax.contains(&"SCHILY.xattr.user.mkve".to_string()),
                    "{pax:?}"
                );
                if root {
                    assert!(
                        pax.contains(&"SCHILY.xattr.security.capability".to_string()),
                        "{pax:?}"
                    );
                }
                found = true;
            }
        }
        assert!(found);
    }

    #[test]
    fn packing_is_deterministic_and_clamps_mtimes() {
        let a = sample_root();
        let b = sample_root();
        assert_eq!(
            pack_bytes(a.path(), Compression::None),
            pack_bytes(b.path(), Compression::None)
        );
        let bytes = pack_bytes(a.path(), Compression::None);
        let mut ar = tar::Archive::new(&bytes[..]);
        for e in ar.entries().unwrap() {
            assert_eq!(e.unwrap().header().mtime().unwrap(), 1_700_000_000);
        }
    }

    #[test]
    fn zstd_output_does_not_depend_on_the_worker_count() {
        let root = sample_root();
        let big: Vec<u8> = (0..3_000_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        std::fs::write(root.path().join("big"), big).unwrap();
        let (tar, _) = pack_dir(
            root.path(),
            Vec::new(),
            &PackOptions {
                clamp_mtime: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
        let compress = |workers: u32| {
            let mut e = zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL).unwrap();
            e.multithread(workers).unwrap();
            e.write_all(&tar).unwrap();
            e.finish().unwrap()
        };
        assert_eq!(compress(1), compress(4));
        assert_eq!(compress(1), compress(zstd_workers()));
    }

    #[test]
    fn decompressor_detects_all_three() {
        let root = sample_root();
        let plain = pack_bytes(root.path(), Compression::None);
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let packed = pack_bytes(root.path(), c);
            let mut out = Vec::new();
            decompressor(&packed[..])
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, plain, "{c:?}");
        }
    }

    fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn entry(kind: EntryType, size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        h
    }

    fn raw_name(h: &mut Header, name: &str) {
        let n = &mut h.as_old_mut().name;
        n[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
    }

    fn refused(bytes: Vec<u8>, opts: UnpackOptions) -> String {
        let outer = tempfile::tempdir().unwrap();
        let dst = outer.path().join("root");
        std::fs::create_dir(&dst).unwrap();
        let err = unpack(&bytes[..], Some(&dst), Path::new("x.tar"), opts).unwrap_err();
        assert_eq!(err.exit_code(), 65);
        let escaped: Vec<_> = std::fs::read_dir(outer.path()).unwrap().collect();
        assert_eq!(escaped.len(), 1, "nothing written beside the destination");
        err.to_string()
    }

    #[test]
    fn unsafe_members_are_refused() {
        let dotdot = archive(|b| {
            let mut h = entry(EntryType::Regular, 1);
            raw_name(&mut h, "../evil");
            b.append(&h, &b"x"[..]).unwrap();
        });
        assert!(refused(dotdot, UnpackOptions::ROOTFS)
            .contains("\"../evil\": absolute path or \"..\" refused"));

        let absolute = archive(|b| {
            let mut h = entry(EntryType::Regular, 1);
            raw_name(&mut h, "/tmp/evil");
            b.append(&h, &b"x"[..]).unwrap();
        });
        assert!(refused(absolute, UnpackOptions::ROOTFS).contains("absolute path"));

        let through_symlink = archive(|b| {
            let mut h = entry(EntryType::Symlink, 0);
            b.append_link(&mut h, "etc", "/etc").unwrap();
            let mut h = entry(EntryType::Regular, 1);
            b.append_data(&mut h, "etc/evil", &b"x"[..]).unwrap();
        });
        let msg = refused(through_symlink, UnpackOptions::ROOTFS);
        assert!(
            msg.contains("its parent etc is a symbolic link or special file"),
            "{msg}"
        );

        let climbing_link = archive(|b| {
            let mut h = entry(EntryType::Symlink, 0);
            b.append_link(&mut h, "a/up", "../../etc/passwd").unwrap();
        });
        assert!(refused(climbing_link, UnpackOptions::ROOTFS).contains("points outside"));

        let absolute_link = archive(|b| {
            let mut h = entry(EntryType::Symlink, 0);
            b.append_link(&mut h, "conf", "/etc/passwd").unwrap();
        });
        let strict = UnpackOptions {
            absolute_symlinks: false,
            devices: false,
        };
        assert!(refused(absolute_link, strict).contains("absolute path /etc/passwd refused"));

        let hard_outside = archive(|b| {
            let mut h = entry(EntryType::Link, 0);
            b.append_link(&mut h, "pw", "../../etc/passwd").unwrap();
        });
        assert!(refused(hard_outside, UnpackOptions::ROOTFS)
            .contains("hard link to ../../etc/passwd points outside"));

        let disk = archive(|b| {
            let mut h = entry(EntryType::Block, 0);
            h.set_device_major(8).unwrap();
            h.set_device_minor(0).unwrap();
            b.append_data(&mut h, "dev/null", std::io::empty()).unwrap();
        });
        assert!(refused(disk, UnpackOptions::ROOTFS).contains("device node (b 8:0) refused"));
    }

    #[test]
    #[ignore = "needs root: mknod"]
    fn standard_device_nodes_are_made_when_root() {
        let bytes = archive(|b| {
            let mut h = entry(EntryType::Char, 0);
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
            h.set_mode(0o666);
            b.append_data(&mut h, "dev/null", std::io::empty()).unwrap();
        });
        let d = unpacked(&bytes);
        let m = std::fs::metadata(d.path().join("dev/null")).unwrap();
        assert!(m.file_type().is_char_device());
        assert_eq!((major(m.rdev()), minor(m.rdev())), (1, 3));
        assert_eq!(m.mode() & 0o777, 0o666);
    }

    /// The rule that refuses a device node on unpack refuses it on pack,
    /// so mkve never makes a bundle its own --verify refuses.
    #[test]
    #[ignore = "needs root: mknod"]
    fn a_device_node_unpack_would_refuse_is_refused_when_packed() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("dev")).unwrap();
        mknod(
            &root.path().join("dev/sda"),
            SFlag::S_IFBLK,
            Mode::from_bits_truncate(0o660),
            makedev(8, 0),
        )
        .unwrap();
        let e = pack_dir(root.path(), Vec::new(), &PackOptions::default()).unwrap_err();
        assert_eq!(e.exit_code(), 65);
        assert_eq!(
            e.to_string(),
            format!(
                "{}/dev/sda: device node (b 8:0) refused: only the standard nodes under dev/ are accepted",
                root.path().display()
            )
        );
    }

    /// 300 levels of 20-character names: past PATH_MAX, refused in one
    /// short line when packed, and such a member when unpacked.
    #[test]
    fn a_path_past_path_max_is_refused_in_one_line() {
        use nix::fcntl::{openat, OFlag};
        use nix::sys::stat::mkdirat;
        let root = tempfile::tempdir().unwrap();
        let mut dir = std::fs::File::open(root.path()).unwrap();
        for i in 0..300 {
            let name = format!("n{i:019}");
            mkdirat(&dir, name.as_str(), Mode::from_bits_truncate(0o755)).unwrap();
            let fd = openat(
                &dir,
                name.as_str(),
                OFlag::O_DIRECTORY | OFlag::O_RDONLY,
                Mode::empty(),
            )
            .unwrap();
            dir = File::from(fd);
        }
        let e = pack_dir(root.path(), Vec::new(), &PackOptions::default()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("holds a path longer than PATH_MAX (4095 bytes)"),
            "{msg}"
        );
        assert!(msg.len() < 400 && !msg.contains('\n'), "{msg}");
        assert_eq!(e.exit_code(), 65);
        // Removing it needs no path that long either.
        drop(dir);
        crate::scratch::remove_tree(root.path()).unwrap();

        let long = "d/".repeat(2100) + "f";
        let bytes = archive(|b| {
            let mut h = entry(EntryType::Regular, 1);
            b.append_data(&mut h, &long, &b"x"[..]).unwrap();
        });
        let e = unpack(&bytes[..], None, Path::new("t"), UnpackOptions::ROOTFS).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("a path of 4201 bytes is longer than PATH_MAX (4095)"),
            "{msg}"
        );
        assert!(msg.len() < 400, "{msg}");
    }

    /// A sparse file packs to its data and unpacks to holes again: the
    /// disk holds what the data holds.
    #[test]
    fn sparse_files_stay_sparse() {
        use std::os::unix::fs::FileExt;
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("var")).unwrap();
        let log = src.path().join("var/lastlog");
        let f = File::create(&log).unwrap();
        f.set_len(256 << 20).unwrap(); // 256 MiB, all hole
        f.write_at(b"data in the middle", 100 << 20).unwrap();
        f.write_at(&[7u8; 5000], (200 << 20) + 1).unwrap();
        drop(f);
        let (bytes, stats) = pack_dir(src.path(), Vec::new(), &PackOptions::default()).unwrap();
        assert_eq!(stats.bytes, 256 << 20);
        let d = unpacked(&bytes);
        let out = d.path().join("var/lastlog");
        let m = std::fs::metadata(&out).unwrap();
        assert_eq!(m.len(), 256 << 20);
        assert!(
            m.blocks() * 512 < 1 << 20,
            "{} bytes on disk for 256 MiB of mostly zeros",
            m.blocks() * 512
        );
        let back = File::open(&out).unwrap();
        let mut buf = vec![0u8; 18];
        back.read_exact_at(&mut buf, 100 << 20).unwrap();
        assert_eq!(&buf, b"data in the middle");
        let mut buf = vec![0u8; 5002];
        back.read_exact_at(&mut buf, 200 << 20).unwrap();
        assert_eq!((buf[0], buf[1], buf[5000], buf[5001]), (0, 7, 7, 0));
    }
}
