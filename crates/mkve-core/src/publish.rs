//! Publishing bundles in a directory that a plain HTTP server serves
//! (`mkve-bundle --publish`): each bundle verified and copied in, and the
//! directory's checksum list `SHA256SUMS` (sums.rs) rewritten with its
//! detached signature `SHA256SUMS.gpg`, the convention systemd-importd
//! reads (machinectl(1) `pull-tar`) and fetch.rs checks.
//!
//! Owns what the directory holds and the order it changes in; not the
//! list's format (sums.rs), nor signing (sign.rs), nor reading bundles
//! (bundle/read.rs).

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::bundle::{self, Check, HashTee, ReadOptions};
use crate::error::{Error, IoContext, Result};
use crate::exec::Report;
use crate::files::{self, CopyingReader, Output};
use crate::sign;
use crate::stamp::Stamp;
use crate::sums::{self, Sums};

pub struct PublishOptions<'a> {
    /// The directory published; made (with its parents) if missing.
    pub dir: &'a Path,
    /// The bundle files to publish, each under its own file name.
    pub bundles: &'a [PathBuf],
    /// The keys the bundles' signatures must come from, and the list's
    /// signature found in `dir` (see [`publish`]).
    pub keyring: &'a Path,
    /// Accept a bundle with no signature of its own (`--allow-unsigned`):
    /// the signed list still covers its bytes.
    pub allow_unsigned: bool,
    /// The key signing the list: any name GnuPG takes; `None`: GnuPG's
    /// default key.
    pub sign_key: Option<&'a str>,
    /// GnuPG's home for signing; `None`: `GNUPGHOME` or `~/.gnupg`.
    pub gnupg_home: Option<&'a Path>,
    /// How long after this publish a client accepts the list
    /// (`--valid-for`): signed as its end of validity (stamp.rs); `None`:
    /// until it is replaced.
    pub valid_for: Option<std::time::Duration>,
    pub report: &'a dyn Report,
}

/// A bundle as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Where it is now: `dir/NAME`.
    pub path: PathBuf,
    /// The sha256 of its bytes, as the list has it (lower-case hex).
    pub sha256: String,
    pub bytes: u64,
}

/// Publish `o.bundles` in `o.dir`, and return them as published.
///
/// Every bundle is verified as `mkve-bundle --verify` does (its signature
/// against `o.keyring`, every digest) while it is copied into `o.dir` under
/// a temporary name; nothing in the directory changes unless all of them
/// verify and the list is signed. Then, holding an `flock` on the directory
/// (publishers of one directory take turns), the copies are renamed into
/// place, and `SHA256SUMS` and `SHA256SUMS.gpg` written under temporary
/// names and renamed, in that order. The list keeps the lines of the
/// bundles published before that are still there, a name published again
/// gets its new line, and a line whose file is gone is dropped.
///
/// The lines kept are taken from the list only while its signature holds
/// against `o.keyring`; otherwise (a list changed by hand, or a publish
/// killed between the two renames) each kept bundle is verified again and
/// hashed, so that the new signature covers only bundles that verified.
///
/// Errors: a name `sums::check_name` refuses, two bundles of one name, or
/// `-`: `Error::Usage`; a bundle that does not verify, a list in `o.dir`
/// that does not read, or a kept bundle that no longer verifies:
/// `Error::InvalidBundle` or `Error::Signature` (65); the directory or a
/// file in it not writable: `Error::CannotCreate` (73); GnuPG unable to
/// sign: `Error::Signature`.
pub fn publish(o: &PublishOptions) -> Result<Vec<Published>> {
    let names = names_of(o.bundles)?;
    std::fs::create_dir_all(o.dir).map_err(|e| Error::create(o.dir, e))?;

    // Verified while copied in: the bytes checked are the bytes published.
    let mut copies = Vec::new();
    for (path, name) in o.bundles.iter().zip(&names) {
        o.report.progress(&format!(
            "verifying {} and copying it into {}",
            path.display(),
            o.dir.display()
        ));
        let mut out = Output::create(&o.dir.join(name))?;
        let (sha256, bytes) = verify_copying(path, o, Some(&mut out))?;
        copies.push((name.clone(), out, sha256, bytes));
    }

    let _lock = lock_dir(o.dir)?;
    let mut list = kept_list(o, &names)?;
    for (name, _, sha256, _) in &copies {
        list.insert(name, sha256).map_err(Error::Other)?;
    }
    let text = list.to_bytes();
    let stamp = next_stamp(o)?;
    let (signature, signer) =
        sign::sign_detached_binary_noted(&text, o.sign_key, o.gnupg_home, &stamp.notations())?;
    o.report.note(&format!(
        "{}: serial {}{}",
        o.dir.join(sums::FILE).display(),
        stamp.serial,
        stamp
            .valid_until
            .map(|t| format!(", valid until {}", crate::date::rfc3339(t)))
            .unwrap_or_default()
    ));
    if !sign::verify_detached(&text, &signature, Some(o.keyring))?.is_valid() {
        o.report.warning(&format!(
            "{}: signed by {signer}, a key not in {}: a fetch that trusts only that keyring refuses it",
            o.dir.join(sums::SIGNATURE).display(),
            o.keyring.display()
        ));
    }

    let mut published = Vec::new();
    for (name, out, sha256, bytes) in copies {
        out.commit()?;
        published.push(Published {
            path: o.dir.join(name),
            sha256,
            bytes,
        });
    }
    write_file(&o.dir.join(sums::FILE), &text)?;
    write_file(&o.dir.join(sums::SIGNATURE), &signature)?;
    Ok(published)
}

/// The stamp of the list about to be signed (stamp.rs): its serial the
/// time now in seconds (the system's clock, never `SOURCE_DATE_EPOCH`), or
/// one more than the serial of the list in `o.dir` when that is not less;
/// its end of validity `o.valid_for` from now. Called under the
/// directory's lock. The old list's serial is read from its signature
/// whoever made it: a serial only grows.
///
/// Errors: an end of validity past what a time can hold (`Error::Usage`).
fn next_stamp(o: &PublishOptions) -> Result<Stamp> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let old = match (
        read_limited(&o.dir.join(sums::FILE), sums::MAX_BYTES)?,
        read_limited(&o.dir.join(sums::SIGNATURE), sums::SIGNATURE_MAX_BYTES)?,
    ) {
        (Some(text), Some(sig)) => {
            let v = sign::verify_detached_full(&text, &sig, Some(o.keyring))?;
            Stamp::from_notations(v.notations.iter().map(|(n, v)| (n.as_str(), v.as_str())))
                .ok()
                .flatten()
                .map(|s| s.serial)
        }
        _ => None,
    };
    let serial = match old {
        Some(s) => now.max(s.saturating_add(1)),
        None => now,
    };
    let valid_until = match o.valid_for {
        None => None,
        Some(d) => Some(
            now.checked_add(d.as_secs())
                .filter(|t| *t <= crate::stamp::LATEST)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "--valid-for {} s: ends after {}",
                        d.as_secs(),
                        crate::date::rfc3339(crate::stamp::LATEST)
                    ))
                })?,
        ),
    };
    Ok(Stamp {
        serial,
        valid_until,
    })
}

/// Each bundle's name in the directory: its own file name.
fn names_of(bundles: &[PathBuf]) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for b in bundles {
        let name = b
            .file_name()
            .filter(|_| b.as_os_str() != "-")
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{}: a bundle is published under its file name, and this has none in UTF-8",
                    files::display_name(b).display()
                ))
            })?;
        sums::check_name(name).map_err(|why| {
            Error::Usage(format!(
                "{}: cannot be published under the name {why}",
                b.display()
            ))
        })?;
        if names.iter().any(|n| n == name) {
            return Err(Error::Usage(format!(
                "{}: another bundle given is also named \"{name}\"",
                b.display()
            )));
        }
        names.push(name.to_string());
    }
    Ok(names)
}

/// Verify the bundle at `path` in full, copying it into `out` if given;
/// return the sha256 of its bytes and their count.
fn verify_copying(
    path: &Path,
    o: &PublishOptions,
    out: Option<&mut Output>,
) -> Result<(String, u64)> {
    let opts = ReadOptions {
        keyring: Some(o.keyring),
        require_signature: true,
        allow_unsigned: o.allow_unsigned,
        check: Check::Digests,
        unpack_to: None,
        skip_root: None,
    };
    let mut input = HashTee::new(File::open(path).at(path)?);
    let mut copy = CopyingReader::new(&mut input, out);
    let read = bundle::read(&mut copy, path, &opts);
    if let Some(e) = copy.take_write_error() {
        return Err(e);
    }
    read?;
    let bytes = copy.finish(path)?;
    Ok((input.finish(), bytes))
}

/// An exclusive `flock` on the directory itself, held until dropped: no
/// lock file beside what the server serves.
fn lock_dir(dir: &Path) -> Result<nix::fcntl::Flock<File>> {
    let f = File::open(dir).at(dir)?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::io(dir, e.into()))
}

/// The lines of the list in `o.dir` to keep beside `publishing`: those
/// whose file is still there, from a list whose signature holds, or
/// verified again (see [`publish`]).
fn kept_list(o: &PublishOptions, publishing: &[String]) -> Result<Sums> {
    let path = o.dir.join(sums::FILE);
    let text = match read_limited(&path, sums::MAX_BYTES)? {
        None => return Ok(Sums::new()),
        Some(t) => t,
    };
    let mut list = Sums::parse(&text, &path)?;
    let gone: Vec<String> = list
        .iter()
        .map(|(n, _)| n.to_string())
        .filter(|n| !publishing.contains(n) && !o.dir.join(n).is_file())
        .collect();
    for n in gone {
        o.report.note(&format!(
            "{}: dropping \"{n}\", which is no longer there",
            path.display()
        ));
        list.remove(&n);
    }
    for n in publishing {
        list.remove(n);
    }
    if list.is_empty() {
        return Ok(list);
    }
    let sig_path = o.dir.join(sums::SIGNATURE);
    let status = match read_limited(&sig_path, sums::SIGNATURE_MAX_BYTES)? {
        None => sign::SigStatus::None,
        Some(sig) => sign::verify_detached(&text, &sig, Some(o.keyring))?,
    };
    if status.is_valid() {
        return Ok(list);
    }
    o.report.warning(&format!(
        "{}: {} against {}: verifying the {} bundle{} it lists again",
        sig_path.display(),
        status.describe(),
        o.keyring.display(),
        list.len(),
        if list.len() == 1 { "" } else { "s" }
    ));
    let mut checked = Sums::new();
    for (name, _) in list.iter() {
        let (sha256, _) = verify_copying(&o.dir.join(name), o, None)?;
        checked.insert(name, &sha256).map_err(Error::Other)?;
    }
    Ok(checked)
}

/// The contents of `path`, `None` when it does not exist; a file larger
/// than `max` bytes is refused as data.
fn read_limited(path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(f, max + 1), &mut buf).at(path)?;
    if buf.len() as u64 > max {
        return Err(Error::bundle(path, format!("larger than {max} bytes")));
    }
    Ok(Some(buf))
}

/// Write `bytes` to `path` under a temporary name, synced, renamed.
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut out = Output::create(path)?;
    std::io::Write::write_all(&mut out, bytes).map_err(|e| Error::create(path, e))?;
    out.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_is_published_under_a_plain_file_name_given_once() {
        let ok = names_of(&[PathBuf::from("out/a.bun"), PathBuf::from("b c.bun")]).unwrap();
        assert_eq!(ok, ["a.bun", "b c.bun"]);
        for (args, part) in [
            (vec!["-"], "has none"),
            (vec!["/"], "has none"),
            (vec!["x/.."], "has none"),
            (vec!["d/.a.bun"], "starts with \".\""),
            (vec!["d/SHA256SUMS"], "the name of the list"),
            (vec!["a/x.bun", "b/x.bun"], "also named \"x.bun\""),
        ] {
            let paths: Vec<PathBuf> = args.iter().map(PathBuf::from).collect();
            let e = names_of(&paths).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
            assert!(e.to_string().contains(part), "{args:?}: {e}");
        }
    }
}
