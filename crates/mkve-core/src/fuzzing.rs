//! The fuzz targets: one function per reader of untrusted bytes, called by
//! the fuzzers in `fuzz/` and by the test that replays their corpora
//! (`tests/fuzz_corpus.rs`), so both run the very same code.
//!
//! Each target takes any bytes and must never panic: an error is the
//! expected answer to most inputs. Beyond "no panic", each checks what must
//! hold of an answer (a meta.json that was read writes back to the same
//! `Meta`; a bundle that failed to unpack leaves nothing behind), and
//! panics when it does not, which is how a fuzzer hears of it. Files a
//! target needs are written under a temporary directory it makes and
//! removes; nothing is written outside it.
//!
//! Not part of mkve's interface: hidden from the documentation, and free
//! to change with the fuzzers.

// A target's checks are the fuzzer's oracle: a panic is how one reports.
#![allow(clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::Problem;
use crate::hypervisor::Hypervisor;
use crate::template::Template;

/// A temporary directory for one run of a target, removed when dropped,
/// whatever modes the code under test left on what is in it.
struct Scratch(tempfile::TempDir);

impl Scratch {
    /// `None` when no temporary directory can be made: then there is
    /// nothing to test, and the run counts as an uninteresting one.
    fn new() -> Option<Scratch> {
        let dir = tempfile::Builder::new()
            .prefix("mkve-fuzz.")
            .tempdir()
            .ok()?;
        Some(Scratch(dir))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    /// A file `name` in the scratch directory holding `data`.
    fn file(&self, name: &str, data: &[u8]) -> Option<PathBuf> {
        let p = self.path().join(name);
        std::fs::write(&p, data).ok()?;
        Some(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // remove_tree opens what an unpacked root closed to its owner, and
        // never crosses a mount; the TempDir's own removal then finds
        // nothing.
        let _ = crate::scratch::remove_tree(self.path());
    }
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// mkve-template(5): the input, split at NUL bytes, gives in turn the
/// `hypervisors` file, `version/<hv>`, `packages-lists/<hv>`,
/// `hooks-lists/<hv>` (the same three for every hypervisor) and
/// `conf/openvz/config`; a part that is not there is a file that is not
/// there. The template has its own hook `01-own`; the shared hooks
/// directory holds `02-shared`, `not-executable`, `dos-line-endings` and
/// `directory`, so that a hooks list can name each kind.
pub fn template(data: &[u8]) {
    let Some(s) = Scratch::new() else { return };
    let Some(t) = template_tree(&s, data) else {
        return;
    };
    let shared = s.path().join("shared-hooks");
    let all = Template::load(&t, &shared, None);
    let Ok(all) = all else { return };
    if all.hypervisors.len() != all.profiles.len() {
        panic!(
            "{} hypervisors listed, {} profiles",
            all.hypervisors.len(),
            all.profiles.len()
        );
    }
    // What loads for every hypervisor loads for each alone, the same.
    for h in &all.hypervisors {
        match Template::load(&t, &shared, Some(*h)) {
            Ok(one) => {
                let (a, b) = (&all.profiles[h], &one.profiles[h]);
                if (&a.version, &a.packages, &a.hooks, &a.vps_config)
                    != (&b.version, &b.packages, &b.hooks, &b.vps_config)
                {
                    panic!("{h} alone loads otherwise than with the others");
                }
            }
            Err(e) => panic!("loads for every hypervisor, not for {h} alone: {e}"),
        }
    }
}

fn template_tree(s: &Scratch, data: &[u8]) -> Option<PathBuf> {
    let t = s.path().join("t");
    let shared = s.path().join("shared-hooks");
    for d in [
        t.join("version"),
        t.join("packages-lists"),
        t.join("hooks-lists"),
        t.join("hooks"),
        t.join("conf/openvz"),
        shared.join("directory"),
    ] {
        std::fs::create_dir_all(d).ok()?;
    }
    for (path, text, mode) in [
        (t.join("hooks/01-own"), &b"#!/bin/sh\n"[..], 0o755),
        (shared.join("02-shared"), b"\x7fELF", 0o755),
        (shared.join("not-executable"), b"#!/bin/sh\n", 0o644),
        (shared.join("dos-line-endings"), b"#!/bin/sh\r\n", 0o755),
    ] {
        std::fs::write(&path, text).ok()?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).ok()?;
    }
    let mut parts = data.split(|b| *b == 0);
    let put = |path: &Path, part: Option<&[u8]>| match part {
        Some(p) => std::fs::write(path, p).ok(),
        None => Some(()),
    };
    put(&t.join("hypervisors"), parts.next())?;
    for dir in ["version", "packages-lists", "hooks-lists"] {
        let part = parts.next();
        for h in Hypervisor::ALL {
            put(&t.join(dir).join(h.as_str()), part)?;
        }
    }
    put(&t.join("conf/openvz/config"), parts.next())?;
    Some(t)
}

/// A list file (mkve-template(5)): `listfile::read`. The lines kept
/// are numbered in order, and none is blank, has white space around it or
/// holds a comment.
pub fn list(data: &[u8]) {
    let Some(s) = Scratch::new() else { return };
    let Some(f) = s.file("list", data) else {
        return;
    };
    let lines = match crate::listfile::read(&f) {
        Ok(Some(lines)) => lines,
        Ok(None) => panic!("a file that exists read as missing"),
        Err(p) => {
            if p.line.is_some_and(|n| n == 0 || n > data.len() + 1) {
                panic!("an error on line {:?} of {} bytes", p.line, data.len());
            }
            return;
        }
    };
    let count = String::from_utf8_lossy(data).lines().count();
    let mut last = 0;
    for (n, line) in &lines {
        if *n <= last || *n > count {
            panic!("line {n} after line {last}, of {count} lines");
        }
        // mkve-template(5): "a # that starts a line or follows white
        // space" begins a comment.
        let comment = line.starts_with('#')
            || line
                .char_indices()
                .any(|(i, c)| c == '#' && line[..i].ends_with(char::is_whitespace));
        if line.is_empty() || line.trim() != line || comment {
            panic!("line {n} kept as {line:?}");
        }
        last = *n;
    }
}

/// What every refusal of a line-based file must say: at least one problem,
/// each on a line the input has (or on none).
fn refused_by_line(problems: &[Problem], data: &[u8]) {
    let lines = String::from_utf8_lossy(data).lines().count();
    if problems.is_empty() {
        panic!("refused with no problem told");
    }
    for p in problems {
        if p.line.is_some_and(|n| n == 0 || n > lines) {
            panic!("an error on line {:?} of {lines} lines", p.line);
        }
    }
}

/// A params declaration (`conf/params`, mkve-template(5)):
/// `params::parse`. Errors name a line of the input; what is read has
/// valid names, no name twice, and no required parameter with a default.
pub fn params(data: &[u8]) {
    match crate::params::parse(data, std::path::Path::new("params")) {
        Err(problems) => refused_by_line(&problems, data),
        Ok(ps) => {
            let mut names = std::collections::BTreeSet::new();
            for p in &ps {
                if !crate::params::is_name(&p.name) || !names.insert(p.name.clone()) {
                    panic!("parameter {:?} read", p.name);
                }
                if p.required && p.default.is_some() {
                    panic!("{}: required with a default", p.name);
                }
            }
        }
    }
}

/// A state file (`conf/state`, mkve-template(5)): `state::parse`.
/// Errors name a line of the input; what is read is absolute paths that
/// each pass `state::check`, none twice nor under another.
pub fn state(data: &[u8]) {
    match crate::state::parse(data, std::path::Path::new("state")) {
        Err(problems) => refused_by_line(&problems, data),
        Ok(paths) => {
            for (i, p) in paths.iter().enumerate() {
                let text = p.to_string_lossy();
                if crate::state::check(&text).is_err() {
                    panic!("{p:?} read, but its check refuses it");
                }
                if paths[..i]
                    .iter()
                    .any(|q| p.starts_with(q) || q.starts_with(p))
                {
                    panic!("{p:?} read beside a path it is under or over");
                }
            }
        }
    }
}

/// A probes file (`conf/probes`, mkve-template(5)): `probe::parse`.
/// Errors name a line of the input; a probe read, written back as its
/// text, reads as the same probe.
pub fn probes(data: &[u8]) {
    match crate::probe::parse(data, std::path::Path::new("probes")) {
        Err(problems) => refused_by_line(&problems, data),
        Ok(ps) => {
            let text: String = ps.iter().map(|p| format!("{}\n", p.text)).collect();
            match crate::probe::parse(text.as_bytes(), std::path::Path::new("again")) {
                Ok(again) if again.len() == ps.len() => {
                    for (a, b) in ps.iter().zip(&again) {
                        if a.text != b.text || a.port != b.port {
                            panic!("{:?} reads back as {:?}", a.text, b.text);
                        }
                    }
                }
                other => panic!("{text:?} does not read back: {other:?}"),
            }
        }
    }
}

/// A checksum list (`SHA256SUMS`, as fetched from a server):
/// `Sums::parse`. Errors name a line of the input; every name read is one
/// `check_name` allows (no line points outside the list's directory), and
/// the list written back reads the same.
pub fn sums(data: &[u8]) {
    let lines = data.split(|b| *b == b'\n').count();
    match crate::sums::Sums::parse(data, Path::new("SHA256SUMS")) {
        Err(crate::Error::InvalidBundle(p)) => {
            if p.line.is_none_or(|n| n == 0 || n > lines) {
                panic!("an error on line {:?} of {lines} lines", p.line);
            }
        }
        Err(other) => panic!("refused as {other:?}, not as data"),
        Ok(s) => {
            for (name, _) in s.iter() {
                if crate::sums::check_name(name).is_err() {
                    panic!("name {name:?} read");
                }
            }
            match crate::sums::Sums::parse(&s.to_bytes(), Path::new("again")) {
                Ok(again) if again == s => {}
                other => panic!("does not read back: {other:?}"),
            }
        }
    }
}

/// The date and order of a signed list (stamp.rs), as its signature's
/// notations: the input's lines, each `NAME=VALUE` (a line without `=` is
/// a name with an empty value; bytes that are not UTF-8 are replaced, as a
/// notation gpgme could not give as text is skipped). What reads writes
/// back to notations that read the same; an end of validity reads only
/// with a serial, and within the years 1970 to 9999.
#[cfg(feature = "gpg")]
pub fn stamp(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(&str, &str)> = text
        .split('\n')
        .map(|l| l.split_once('=').unwrap_or((l, "")))
        .collect();
    match crate::stamp::Stamp::from_notations(pairs.iter().copied()) {
        Err(why) if why.is_empty() => panic!("an error with no words"),
        Err(_) | Ok(None) => {}
        Ok(Some(s)) => {
            if s.valid_until.is_some_and(|t| t > crate::stamp::LATEST) {
                panic!("{s:?}: past 9999");
            }
            let n = s.notations();
            match crate::stamp::Stamp::from_notations(n.iter().map(|(a, b)| (*a, b.as_str()))) {
                Ok(Some(again)) if again == s => {}
                other => panic!("{s:?} does not read back: {other:?}"),
            }
        }
    }
}

/// What a client remembers of a directory it fetched from (seen.rs):
/// `Seen::parse`. What reads writes back to the same bytes.
#[cfg(feature = "gpg")]
pub fn seen(data: &[u8]) {
    if let Ok(s) = crate::seen::Seen::parse(data) {
        if s.to_bytes() != data {
            panic!("{s:?} writes back otherwise");
        }
    }
}

/// vps.conf(5) (`conf/openvz/config`): `openvz::parse_vps_conf`. What
/// it reads, written back as `NAME="value"` lines, reads the same.
pub fn vps_conf(data: &[u8]) {
    let Some(s) = Scratch::new() else { return };
    let Some(f) = s.file("config", data) else {
        return;
    };
    let mut problems: Vec<Problem> = Vec::new();
    let vars = crate::openvz::parse_vps_conf(&f, &mut problems);
    let Some(vars) = vars else {
        if problems.is_empty() {
            panic!("refused with no problem told");
        }
        return;
    };
    if !problems.is_empty() {
        panic!("read, yet problems told: {problems:?}");
    }
    let text: String = vars.iter().map(|(k, v)| format!("{k}=\"{v}\"\n")).collect();
    let Some(again) = s.file("config-again", text.as_bytes()) else {
        return;
    };
    let reread = crate::openvz::parse_vps_conf(&again, &mut problems);
    if reread.as_ref() != Some(&vars) {
        panic!("written back as {text:?}, reads as {reread:?} ({problems:?}), not {vars:?}");
    }
}

/// A root's tar stream (mkve-bundle(5)'s `rootfs.tar.zst`, decompressed):
/// `pack::unpack` as the bundle reader calls it, once only checking and
/// once into a directory. The `bundle` target reaches this too, but through
/// the zstd decoder and the sha256 of the member, which leave a fuzzer
/// little hope of a well-formed tar header; here the input's header
/// checksums are set right first (`fix_tar_checksums`), so what a fuzzer
/// changes in a header is read as it changed it.
///
/// What unpacks also passes the check alone, and unpacking writes nothing
/// beside its destination: a directory there, and what is in it, stay as
/// they were.
pub fn rootfs(data: &[u8]) {
    use crate::pack::{self, UnpackOptions};
    let Some(s) = Scratch::new() else { return };
    let mut tar = data.to_vec();
    fix_tar_checksums(&mut tar);
    let (dest, beside) = (s.path().join("root"), s.path().join("beside"));
    for d in [&dest, &beside] {
        if std::fs::create_dir(d).is_err() {
            return;
        }
    }
    if s.file("beside/file", b"kept\n").is_none() {
        return;
    }
    let label = Path::new("rootfs.tar");
    let checked = pack::unpack(&tar[..], None, label, UnpackOptions::ROOTFS);
    let unpacked = pack::unpack(&tar[..], Some(&dest), label, UnpackOptions::ROOTFS);
    let left = names(s.path());
    if left != ["beside", "root"] || names(&beside) != ["file"] {
        panic!("unpacking wrote beside its destination: {left:?}");
    }
    if std::fs::read(beside.join("file")).ok().as_deref() != Some(&b"kept\n"[..]) {
        panic!("unpacking changed a file beside its destination");
    }
    match (&unpacked, &checked) {
        (Ok(n), Ok(m)) if n == m => {}
        (Ok(n), Ok(m)) => panic!("{n} members unpacked, {m} checked"),
        (Ok(_), Err(e)) => panic!("unpacks, but its check refuses it: {e}"),
        (Err(_), _) => {}
    }
}

/// Walk `tar`'s headers (each followed by its data, rounded up to 512
/// bytes) and write each header's checksum as tar does, so that a header's
/// other fields are what a reader looks at. Stops at the first block it
/// cannot read a size from, or at the end.
pub fn fix_tar_checksums(tar: &mut [u8]) {
    let mut at = 0usize;
    while let Some(header) = at.checked_add(512).and_then(|end| tar.get_mut(at..end)) {
        if header.iter().all(|b| *b == 0) {
            at += 512;
            continue;
        }
        header[148..156].fill(b' ');
        let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
        let field = format!("{sum:06o}\0 ");
        header[148..156].copy_from_slice(&field.as_bytes()[..8]);
        let Some(size) = tar_size(&header[124..136]) else {
            return;
        };
        let Some(next) = size
            .checked_add(511)
            .map(|s| s / 512 * 512)
            .and_then(|s| s.checked_add(at + 512))
        else {
            return;
        };
        at = next;
    }
}

/// A tar size field: octal digits (space or NUL ended), or GNU's base-256
/// (high bit of the first byte set).
fn tar_size(field: &[u8]) -> Option<usize> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            n = n.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return usize::try_from(n).ok();
    }
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c: char| c == ' ' || c == '\0');
    if digits.is_empty() {
        return Some(0);
    }
    usize::from_str_radix(digits, 8).ok()
}

/// meta.json (mkve-bundle(5)): `Meta::from_json`. A `Meta` that was read
/// writes back to bytes that read as the same `Meta`.
#[cfg(feature = "gpg")]
pub fn meta(data: &[u8]) {
    use crate::bundle::Meta;
    let label = Path::new("fuzz.bun");
    let Ok(meta) = Meta::from_json(data, label) else {
        return;
    };
    let written = match meta.to_json() {
        Ok(w) => w,
        Err(e) => panic!("read, but cannot be written: {e}"),
    };
    match Meta::from_json(&written, label) {
        Ok(again) if again == meta => {}
        Ok(again) => panic!("written back, reads otherwise: {again:?}, not {meta:?}"),
        Err(e) => panic!("written back, cannot be read: {e}"),
    }
}

/// A bundle (mkve-bundle(5)): `bundle::read` as `mkve-vm create
/// --allow-unsigned` calls it, three times: meta.json only; every digest
/// checked with nothing unpacked (`--verify`); and unpacked into a
/// directory. What unpacks also verifies, what verifies also passes the
/// meta.json check, and a bundle that fails to unpack leaves nothing
/// behind, beside its destination or in it.
///
/// (`rootfs` goes further into the unpacking of the root.)
///
/// A bundle that carries a signature (`meta.json.asc`) is skipped: its
/// check runs GnuPG, a program of its own whose start costs more than a
/// hundred runs of the rest, and whose parser is not mkve's. (Its name can
/// only be in the bundle as these bytes, whole: tar paths split only at a
/// `/`.)
#[cfg(feature = "gpg")]
pub fn bundle(data: &[u8]) {
    use crate::bundle::{self, Check, ReadOptions};
    if data
        .windows(bundle::SIGNATURE.len())
        .any(|w| w == bundle::SIGNATURE.as_bytes())
    {
        return;
    }
    let Some(s) = Scratch::new() else { return };
    let label = Path::new("fuzz.bun");
    let dest = s.path().join("out");
    let read = |check, unpack_to| {
        let opts = ReadOptions {
            keyring: None,
            require_signature: true,
            allow_unsigned: true,
            check,
            unpack_to,
            skip_root: None,
        };
        bundle::read(data, label, &opts)
    };
    let meta_only = read(Check::Meta, None);
    let verified = read(Check::Digests, None);
    let unpacked = read(Check::Digests, Some(&dest));
    let left = names(s.path());
    match &unpacked {
        Ok(report) => {
            if left != ["out"] {
                panic!("unpacked, and beside it: {left:?}");
            }
            let inside = names(&dest);
            if !inside.iter().all(|n| {
                [bundle::META, bundle::SIGNATURE, "rootfs", bundle::CONF].contains(&n.as_str())
            }) {
                panic!("unpacked: {inside:?}");
            }
            match &verified {
                Ok(v) if v.meta == report.meta => {}
                Ok(_) => panic!("unpacked and verified, as two different bundles"),
                Err(e) => panic!("unpacked, but does not verify: {e}"),
            }
        }
        Err(_) => {
            if !left.is_empty() {
                panic!("failed to unpack, and left {left:?}");
            }
        }
    }
    if let (Ok(v), Err(e)) = (&verified, &meta_only) {
        panic!("verified ({:?}), but its meta.json is refused: {e}", v.meta);
    }
}
