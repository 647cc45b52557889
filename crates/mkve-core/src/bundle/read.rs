//! Reading a bundle in one pass, from a file or a pipe: meta.json and its
//! signature first, checked before any payload is read; then each payload
//! hashed while it streams (in a thread beside the decompressor) and, when
//! asked, unpacked into a temporary directory that is renamed into place
//! only once every digest matched. The bytes checked are the bytes used:
//! the bundle is never opened twice.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use super::members::{CONF, META, META_MAX, ROOTFS, SIGNATURE, SIGNATURE_MAX};
use super::meta::Meta;
use crate::digest::hex;
use crate::error::{Error, IoContext, Result};
use crate::pack::{self, UnpackOptions};
use crate::sign::{self, SigStatus};

/// How much of the bundle to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// meta.json and the signature only.
    Meta,
    /// Also the `conf/` members, whose digests are checked and whose
    /// contents the result carries (`ReadResult::conf`); the root is
    /// skipped, not decompressed nor checked.
    Conf,
    /// Also every payload digest.
    Digests,
    /// meta.json, the signature, the SBOM (`ReadResult::sbom`) and the
    /// provenance (`ReadResult::provenance`), their digests checked: reading
    /// stops after them (they come before the root), and at once for a
    /// bundle of format 1 or 2, which has neither.
    Sbom,
}

/// Whether to skip the root of the bundle whose checked meta.json it is
/// given (see `ReadOptions::skip_root`).
pub type SkipRoot<'a> = dyn Fn(&Meta) -> Result<bool> + 'a;

pub struct ReadOptions<'a> {
    /// Keys the signature is checked against; `None`: report who signed
    /// but trust nobody.
    pub keyring: Option<&'a Path>,
    /// Fail unless the signature is valid (before any payload is read).
    pub require_signature: bool,
    /// Accept a bundle with no signature at all, even when one is required.
    pub allow_unsigned: bool,
    pub check: Check,
    /// Unpack into this directory, which must not exist yet: `meta.json`,
    /// `meta.json.asc`, `sbom.spdx.json`, `provenance.intoto.json`,
    /// `rootfs/` and `conf/` appear there.
    pub unpack_to: Option<&'a Path>,
    /// Asked once meta.json and its signature are checked: `true` skips
    /// the root (read past, neither decompressed nor checked, nor
    /// unpacked), as when a machine's base already holds it; the root
    /// member may then be absent (a bundle's head: `make::head_of`).
    pub skip_root: Option<&'a SkipRoot<'a>>,
}

impl<'a> ReadOptions<'a> {
    /// Checks as `check` says with no signature asked for: no keyring (who
    /// signed is reported, nobody trusted), an unsigned bundle accepted,
    /// nothing unpacked, the root read. The other fields are set over it.
    pub fn lenient(check: Check) -> ReadOptions<'a> {
        ReadOptions {
            keyring: None,
            require_signature: false,
            allow_unsigned: true,
            check,
            unpack_to: None,
            skip_root: None,
        }
    }
}

/// What reading a bundle found: its meta.json and signature, and the
/// members kept as asked (`conf/`, the SBOM, the provenance).
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub meta: Meta,
    pub signature: SigStatus,
    /// The `conf/` members by name, with `Check::Conf` (those under
    /// 64 KiB: what mkve itself reads, `conf/params`, `conf/probes` and
    /// `conf/state`).
    pub conf: std::collections::BTreeMap<String, Vec<u8>>,
    /// The `sbom.spdx.json` member's bytes, once its digest matched
    /// (format 3; at most `sbom::MAX`).
    pub sbom: Option<Vec<u8>>,
    /// The `provenance.intoto.json` member's bytes, once its digest
    /// matched and its subjects were checked (format 3; at most
    /// `provenance::MAX`).
    pub provenance: Option<Vec<u8>>,
}

impl ReadResult {
    /// The parameters the bundle declares (its `conf/params`, params.rs's
    /// format), none when it has no such member; read with `Check::Conf`.
    /// `label` names the bundle. Errors: the member's first bad line (65),
    /// as `LABEL/conf/params:LINE`.
    pub fn declared_params(&self, label: &Path) -> Result<Vec<crate::params::Param>> {
        use crate::params::{parse, MEMBER};
        match self.conf.get(MEMBER) {
            Some(text) => {
                parse(text, &label.join(MEMBER)).map_err(|mut p| Error::InvalidBundle(p.remove(0)))
            }
            None => Ok(Vec::new()),
        }
    }
}

/// The largest `conf/` member a report carries, in bytes.
const CONF_KEPT_MAX: u64 = 64 << 10;

/// tar's record: 20 blocks of 512 bytes. An archive's end is its
/// end-of-archive blocks and zeros up to the end of the record they end
/// in (what tar(1) writes), no more.
pub const RECORD: u64 = 10240;

/// Read the bundle `r` (`label` names it in errors) as `opts` asks.
///
/// Unless only meta.json is asked for, the stream is read to its end,
/// which must be the archive's: after the block of zeros that ends the
/// last member's list come zero bytes up to the end of the 10,240-byte
/// record ([`RECORD`]) that the second end-of-archive block ends in, and
/// nothing else. Any other byte, or one zero byte more, is refused as soon
/// as it is read (`Error::InvalidBundle`, 65): a stream of endless zeros
/// is read no further than that record.
pub fn read<R: Read>(r: R, label: &Path, opts: &ReadOptions) -> Result<ReadResult> {
    let bad = |why: String| Error::bundle(label, why);
    let mut ar = tar::Archive::new(Counted { inner: r, bytes: 0 });
    let (report, staging) = read_members(&mut ar, label, opts)?;
    if matches!(opts.check, Check::Meta | Check::Sbom) && opts.unpack_to.is_none() {
        return Ok(report);
    }
    // Another archive appended to a bundle is not part of it (GNU tar -i
    // would read it), nor are endless zeros.
    let rest = ar.into_inner();
    let at = rest.bytes;
    trailing_zeros(rest.inner, at).map_err(bad)?;
    if let Some(s) = staging {
        s.commit()?;
    }
    Ok(report)
}

/// A reader that counts the bytes read through it.
struct Counted<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// What follows the first end-of-archive block (the tar reader stops
/// after it, `at` bytes into the stream): zeros to the end of the record
/// the second block ends in, at most, and then the stream's end; or the
/// error. Reads at most one byte past that record.
fn trailing_zeros(mut r: impl Read, at: u64) -> std::result::Result<(), String> {
    let end = (at + 512).div_ceil(RECORD) * RECORD;
    let allowed = end - at;
    let mut buf = vec![0u8; 16 << 10];
    let mut read: u64 = 0;
    loop {
        // One byte more than allowed, to tell the end from more.
        let want = (allowed + 1 - read).min(buf.len() as u64) as usize;
        let n = match r.read(&mut buf[..want]) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("after the end of the archive: {e}")),
        };
        if let Some(i) = buf[..n].iter().position(|b| *b != 0) {
            // Counted from after the second end-of-archive block.
            return Err(format!(
                "data after the end of the archive ({} bytes past its end-of-archive blocks): not part of a bundle",
                (read + i as u64).saturating_sub(512)
            ));
        }
        read += n as u64;
        if read > allowed {
            return Err(format!(
                "more zeros after the end of the archive than pad it to a {RECORD}-byte record (the archive ends at byte {end}): not part of a bundle"
            ));
        }
    }
}

/// The members, checked as `opts` asks; with `Check::Meta` and nothing
/// to unpack, only meta.json and the signature are read. What was
/// unpacked waits in its staging directory for the caller to commit.
fn read_members<R: Read>(
    ar: &mut tar::Archive<R>,
    label: &Path,
    opts: &ReadOptions,
) -> Result<(ReadResult, Option<Staging>)> {
    let bad = |why: String| Error::bundle(label, why);
    let mut entries = ar
        .entries()
        .map_err(|e| bad(format!("not a bundle: {e}")))?;
    let mut next = || -> Result<Option<tar::Entry<'_, R>>> {
        match entries.next() {
            None => Ok(None),
            Some(Ok(e)) => Ok(Some(e)),
            Some(Err(e)) => Err(bad(format!("broken tar archive: {e}"))),
        }
    };
    let name_of = |e: &tar::Entry<'_, R>| String::from_utf8_lossy(&e.path_bytes()).into_owned();

    let Some(mut first) = next()? else {
        return Err(bad("empty: not a bundle".into()));
    };
    if name_of(&first) != META {
        return Err(bad(format!(
            "first member is \"{}\", not {META}: not an mkve bundle",
            name_of(&first)
        )));
    }
    let meta_bytes = read_small(&mut first, META_MAX).map_err(|e| bad(format!("{META}: {e}")))?;
    drop(first);
    let meta = Meta::from_json(&meta_bytes, label)?;

    let mut pending = next()?;
    let mut sig_bytes = None;
    if let Some(e) = pending.as_mut().filter(|e| name_of(e) == SIGNATURE) {
        sig_bytes =
            Some(read_small(e, SIGNATURE_MAX).map_err(|e| bad(format!("{SIGNATURE}: {e}")))?);
        pending = next()?;
    }
    let signature = match &sig_bytes {
        None => SigStatus::None,
        Some(s) => sign::verify_detached(&meta_bytes, s, opts.keyring)?,
    };
    if opts.require_signature
        && !signature.is_valid()
        && !(opts.allow_unsigned && signature == SigStatus::None)
    {
        let hint = if signature == SigStatus::None {
            " (--allow-unsigned accepts it)"
        } else {
            ""
        };
        return Err(Error::signature(
            label,
            format!("{}{hint}", signature.describe()),
        ));
    }
    let mut report = ReadResult {
        meta,
        signature,
        conf: Default::default(),
        sbom: None,
        provenance: None,
    };
    let no_sbom = opts.check == Check::Sbom && report.meta.format < 3;
    if (opts.check == Check::Meta || no_sbom) && opts.unpack_to.is_none() {
        return Ok((report, None));
    }

    let skip_root = match opts.skip_root {
        Some(ask) => ask(&report.meta)?,
        None => false,
    };
    let staging = match opts.unpack_to {
        None => None,
        Some(dest) => Some(Staging::new(dest, &meta_bytes, sig_bytes.as_deref())?),
    };
    let mut seen = BTreeSet::new();
    while let Some(mut entry) = pending.take() {
        let name = name_of(&entry);
        let Some(expected) = report.meta.members.get(&name) else {
            return Err(bad(format!("member \"{name}\" is not listed in {META}")));
        };
        if !seen.insert(name.clone()) {
            return Err(bad(format!("member \"{name}\" appears twice")));
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(bad(format!("member \"{name}\" is not a regular file")));
        }
        let digest = match (&staging, name.as_str()) {
            (Some(s), ROOTFS) if !skip_root => unpack_rootfs(
                &mut entry,
                Some(&s.tmp.join("rootfs")),
                report.meta.unpacked_size,
                label,
            )?,
            (_, ROOTFS) if skip_root || matches!(opts.check, Check::Conf | Check::Sbom) => {
                std::io::copy(&mut entry, &mut std::io::sink())
                    .map_err(|e| bad(format!("member \"{name}\": {e}")))?;
                drop(entry);
                pending = next()?;
                continue;
            }
            (None, ROOTFS) => unpack_rootfs(&mut entry, None, report.meta.unpacked_size, label)?,
            (None, _) if opts.check == Check::Conf && entry.size() <= CONF_KEPT_MAX => {
                let bytes = read_small(&mut entry, CONF_KEPT_MAX)
                    .map_err(|e| bad(format!("member \"{name}\": {e}")))?;
                let digest = hex(&Sha256::digest(&bytes));
                report.conf.insert(name.clone(), bytes);
                digest
            }
            (_, super::sbom::MEMBER) => {
                let bytes = read_small(&mut entry, super::sbom::MAX)
                    .map_err(|e| bad(format!("member \"{name}\": {e}")))?;
                if let Some(s) = &staging {
                    s.write_conf(&name, &mut bytes.as_slice(), label)?;
                }
                let digest = hex(&Sha256::digest(&bytes));
                report.sbom = Some(bytes);
                digest
            }
            (_, super::provenance::MEMBER) => {
                let bytes = read_small(&mut entry, super::provenance::MAX)
                    .map_err(|e| bad(format!("member \"{name}\": {e}")))?;
                if let Some(s) = &staging {
                    s.write_conf(&name, &mut bytes.as_slice(), label)?;
                }
                let digest = hex(&Sha256::digest(&bytes));
                if &digest == expected {
                    super::provenance::check(&bytes, &report.meta.members, label)?;
                    report.provenance = Some(bytes);
                }
                digest
            }
            // The members mkve itself reads are kept, whatever the mode, and
            // parsed once their digest holds (below): a bundle whose
            // declarations do not parse is refused by --verify and create
            // alike.
            (_, crate::params::MEMBER | crate::probe::MEMBER | crate::state::MEMBER) => {
                let bytes = read_small(&mut entry, CONF_KEPT_MAX)
                    .map_err(|e| bad(format!("member \"{name}\": {e}")))?;
                if let Some(s) = &staging {
                    s.write_conf(&name, &mut bytes.as_slice(), label)?;
                }
                let digest = hex(&Sha256::digest(&bytes));
                report.conf.insert(name.clone(), bytes);
                digest
            }
            (Some(s), _) if name.starts_with(&format!("{CONF}/")) => {
                s.write_conf(&name, &mut entry, label)?
            }
            _ => {
                let mut h = Sha256::new();
                std::io::copy(&mut entry, &mut h)
                    .map_err(|e| bad(format!("member \"{name}\": {e}")))?;
                hex(&h.finalize())
            }
        };
        if &digest != expected {
            return Err(bad(format!(
                "member \"{name}\": sha256 {digest} does not match {META} ({expected})"
            )));
        }
        let at = label.join(&name);
        let parsed = match (name.as_str(), report.conf.get(&name)) {
            (crate::params::MEMBER, Some(b)) => crate::params::parse(b, &at).map(drop),
            (crate::probe::MEMBER, Some(b)) => crate::probe::parse(b, &at).map(drop),
            (crate::state::MEMBER, Some(b)) => crate::state::parse(b, &at).map(drop),
            _ => Ok(()),
        };
        parsed.map_err(|mut p| Error::InvalidBundle(p.remove(0)))?;
        // The SBOM and the provenance come first: once both are read,
        // nothing more is wanted.
        let both = report.sbom.is_some() && report.provenance.is_some();
        if opts.check == Check::Sbom && both && opts.unpack_to.is_none() {
            return Ok((report, staging));
        }
        drop(entry);
        pending = next()?;
    }
    let missing: Vec<&String> = report
        .meta
        .members
        .keys()
        .filter(|m| !seen.contains(*m))
        // A root skipped may be absent: a bundle's head (`head_of`), whose
        // root a base holds.
        .filter(|m| !(skip_root && m.as_str() == ROOTFS))
        .collect();
    if let Some(m) = missing.first() {
        return Err(bad(format!("member \"{m}\" listed in {META} is missing")));
    }
    Ok((report, staging))
}

fn read_small(r: &mut impl Read, max: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(std::io::Error::other(format!("larger than {max} bytes")));
    }
    Ok(buf)
}

/// Decompress and unpack (or, with no `dest`, only check) the root, in
/// three threads: this one reads and decompresses, one hashes the
/// compressed bytes, one unpacks, so decompressing (user time) and making
/// files (system time) overlap. Return the digest.
/// `size`, when meta.json declares it (format 2), is what the root must
/// decompress to: decompressing stops, and the bundle is refused, as soon
/// as it goes past it, so a small bundle cannot fill a disk.
fn unpack_rootfs(
    entry: &mut impl Read,
    dest: Option<&Path>,
    size: Option<u64>,
    label: &Path,
) -> Result<String> {
    let bad = |why: String| Error::bundle(label, format!("member \"{ROOTFS}\": {why}"));
    if let Some(d) = dest {
        std::fs::create_dir(d).at(d)?;
    }
    let mut tee = HashTee::new(entry);
    let result = (|| {
        let mut zst = zstd::stream::read::Decoder::new(&mut tee).map_err(|e| bad(e.to_string()))?;
        let (tx, rx) = sync_channel::<Vec<u8>>(8);
        let (dest, inner_label) = (dest.map(Path::to_path_buf), label.join(ROOTFS));
        let unpacker = std::thread::spawn(move || {
            pack::unpack(
                ChannelReader::new(rx),
                dest.as_deref(),
                &inner_label,
                UnpackOptions::ROOTFS,
            )
        });
        let mut broken = None;
        let mut total: u64 = 0;
        let mut beyond = false;
        loop {
            let mut buf = vec![0u8; 256 << 10];
            match zst.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    total += n as u64;
                    if size.is_some_and(|s| total > s) {
                        beyond = true;
                        break;
                    }
                    buf.truncate(n);
                    if tx.send(buf).is_err() {
                        // The unpacker is done, or failed: whatever follows
                        // must be read too, the digest is of the whole member.
                        if let Err(e) = std::io::copy(&mut zst, &mut std::io::sink()) {
                            broken = Some(e);
                        }
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let unpacked = unpacker
            .join()
            .map_err(|_| bad("the unpack thread failed".into()))?;
        let declared = |got: String, s: u64| {
            bad(format!(
                "decompresses to {got} bytes, but {META} declares {s} (unpacked_size)"
            ))
        };
        if let Some(s) = size.filter(|_| beyond) {
            return Err(declared(format!("more than {s}"), s));
        }
        // The unpacker's failure (a bad member, a full disk) comes first:
        // it stopped reading, so the size read says nothing.
        unpacked?;
        if let Some(e) = broken {
            return Err(bad(e.to_string()));
        }
        if let Some(s) = size.filter(|s| total != *s) {
            return Err(declared(total.to_string(), s));
        }
        Ok(())
    })();
    std::io::copy(&mut tee, &mut std::io::sink()).map_err(|e| bad(e.to_string()))?;
    let digest = tee.finish();
    result.map(|()| digest)
}

/// The reading end of a channel of byte chunks; ends when the sender goes.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl ChannelReader {
    fn new(rx: Receiver<Vec<u8>>) -> Self {
        ChannelReader {
            rx,
            chunk: Vec::new(),
            at: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.chunk = c;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A reader that hands a copy of every chunk to a hashing thread, so
/// hashing overlaps with what the reading thread does with the bytes
/// (decompressing them); `finish` gives the sha256 of all read.
pub(crate) struct HashTee<R> {
    inner: R,
    tx: Option<SyncSender<Vec<u8>>>,
    worker: Option<JoinHandle<String>>,
}

impl<R: Read> HashTee<R> {
    pub(crate) fn new(inner: R) -> Self {
        let (tx, rx) = sync_channel::<Vec<u8>>(16);
        let worker = std::thread::spawn(move || {
            let mut h = Sha256::new();
            for chunk in rx {
                h.update(&chunk);
            }
            hex(&h.finalize())
        });
        HashTee {
            inner,
            tx: Some(tx),
            worker: Some(worker),
        }
    }

    /// The sha256 of every byte read (64 lower-case hex digits); empty,
    /// which matches no digest, if the hashing thread failed. Reading
    /// after it hashes nothing more.
    pub(crate) fn finish(&mut self) -> String {
        drop(self.tx.take());
        self.worker
            .take()
            .and_then(|w| w.join().ok())
            // No digest matches an empty one: the bundle is then refused.
            .unwrap_or_default()
    }
}

impl<R: Read> Read for HashTee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            if let Some(tx) = &self.tx {
                tx.send(buf[..n].to_vec())
                    .map_err(|_| std::io::Error::other("hash thread ended"))?;
            }
        }
        Ok(n)
    }
}

/// A directory in a scratch directory beside the destination, renamed into
/// place only when the whole bundle checked out; removed otherwise. Only
/// the directory inside is renamed: the scratch directory's lock file
/// stays behind with it, and goes when the guard drops.
struct Staging {
    tmp: PathBuf,
    dest: PathBuf,
    _guard: crate::scratch::Scratch,
}

impl Staging {
    fn new(dest: &Path, meta: &[u8], sig: Option<&[u8]>) -> Result<Staging> {
        let guard = crate::files::temp_dir_beside(dest)?;
        let tmp = guard.path().join("bundle");
        std::fs::create_dir(&tmp).map_err(|e| Error::create(dest, e))?;
        std::fs::write(tmp.join(META), meta).map_err(|e| Error::create(dest, e))?;
        if let Some(s) = sig {
            std::fs::write(tmp.join(SIGNATURE), s).map_err(|e| Error::create(dest, e))?;
        }
        Ok(Staging {
            tmp,
            dest: dest.to_path_buf(),
            _guard: guard,
        })
    }

    fn write_conf(&self, name: &str, r: &mut impl Read, label: &Path) -> Result<String> {
        let bad = |why: &str| Error::bundle(label, format!("member \"{name}\": {why}"));
        let rel: PathBuf = Path::new(name)
            .components()
            .map(|c| c.as_os_str())
            .collect();
        let clean = Path::new(name)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !clean {
            return Err(bad("path with \"..\", \".\" or a leading \"/\" refused"));
        }
        let path = self.tmp.join(&rel);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).at(p)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .at(&path)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = r.read(&mut buf).map_err(|e| bad(&e.to_string()))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            std::io::Write::write_all(&mut f, &buf[..n]).at(&path)?;
        }
        Ok(hex(&h.finalize()))
    }

    fn commit(self) -> Result<()> {
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| Error::create(&self.dest, e))?;
        // The guard's drop removes what is left: its lock file.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` zeros, then `tail`.
    fn zeros_then(n: usize, tail: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; n];
        v.extend_from_slice(tail);
        v
    }

    #[test]
    fn an_archive_ends_with_its_record_and_not_a_byte_more() {
        // The tar reader stopped after the first end-of-archive block at
        // byte `at`: the second block and the padding to the record follow.
        for at in [1024u64, 10240 - 512, 10240, 20480 + 1536, 9728] {
            let end = (at + 512).div_ceil(RECORD) * RECORD;
            let allowed = (end - at) as usize;
            assert!(allowed >= 512, "{at}");
            for ok in [0, 512, allowed - 1, allowed] {
                assert_eq!(
                    trailing_zeros(&zeros_then(ok, b"")[..], at),
                    Ok(()),
                    "{at} + {ok}"
                );
            }
            for more in [allowed + 1, allowed + 512, allowed + RECORD as usize] {
                let e = trailing_zeros(&zeros_then(more, b"")[..], at).unwrap_err();
                assert!(e.contains("more zeros after the end"), "{at} + {more}: {e}");
            }
            let e = trailing_zeros(&zeros_then(512, b"\x07")[..], at).unwrap_err();
            assert!(
                e.contains("data after the end of the archive (0 bytes"),
                "{e}"
            );
            let e = trailing_zeros(&zeros_then(allowed, b"x")[..], at).unwrap_err();
            assert!(e.contains("data after the end"), "{e}");
        }
    }

    /// A reader that never ends, counting what was asked of it.
    struct Endless<'a>(u8, &'a mut u64);

    impl Read for Endless<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(self.0);
            *self.1 += buf.len() as u64;
            Ok(buf.len())
        }
    }

    #[test]
    fn endless_zeros_or_bytes_are_refused_within_a_record() {
        for byte in [0u8, 1, 0xff] {
            let mut read = 0;
            let e = trailing_zeros(Endless(byte, &mut read), 1024).unwrap_err();
            assert!(e.contains("after the end of the archive"), "{byte}: {e}");
            assert!(read <= RECORD + 1, "{byte}: {read} bytes read");
        }
    }
}
