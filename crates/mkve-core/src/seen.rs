//! What a client remembers of each directory it fetched bundles from: the
//! newest signed `SHA256SUMS` it accepted there (its serial and date,
//! stamp.rs, and its sha256), so that an older list, validly signed but
//! replayed by a server or a man in the middle, is refused (TUF's rollback
//! attack). One small file per directory URL, named by the sha256 of that
//! URL, in [`dir`]: root's under `$MKVE_STATEDIR/sources/`, another user's
//! under their cache directory (`$XDG_CACHE_HOME/mkve/sources/`, else
//! `~/.cache/mkve/sources/`). A first fetch from a directory has nothing to
//! compare with: it is believed, and remembered.
//!
//! The file (written by [`Seen::to_bytes`], read strictly by
//! [`Seen::parse`]) is four lines, `KEY VALUE`, in this order:
//!
//! ```text
//! url https://example.org/bundles/
//! serial 1767225600
//! signed 1767225600
//! sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//! ```
//!
//! It is changed under an flock on `.lock` in the same directory (lock.rs),
//! written under a temporary name, fsynced and renamed (files.rs).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::date::rfc3339;
use crate::error::{Error, Result};
use crate::lock::{Lock, Mode};

/// The newest list accepted from one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The directory's URL, as [`source`] writes it.
    pub url: String,
    /// Its serial (stamp.rs); 0 for a list without one.
    pub serial: u64,
    /// When its signature was made, in seconds since 1970.
    pub signed: u64,
    /// The sha256 of the list's bytes, 64 lower-case hex digits.
    pub sha256: String,
}

/// The longest file read, in bytes.
const MAX_BYTES: usize = 4096;

impl Seen {
    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        format!(
            "url {}\nserial {}\nsigned {}\nsha256 {}\n",
            self.url, self.serial, self.signed, self.sha256
        )
        .into_bytes()
    }

    /// Read a file that [`Seen::to_bytes`] wrote. Errors (why, in words):
    /// anything else — more than 4096 bytes, not UTF-8, a line missing,
    /// out of order, repeated or added, a number that is not one (decimal,
    /// no leading zero, at most 2^64 − 1), a sha256 that is not 64
    /// lower-case hex digits, a URL that is empty or holds white space or
    /// a control character.
    pub fn parse(text: &[u8]) -> std::result::Result<Seen, String> {
        if text.len() > MAX_BYTES {
            return Err(format!("larger than {MAX_BYTES} bytes"));
        }
        let text = std::str::from_utf8(text).map_err(|_| "not UTF-8 text".to_string())?;
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| "does not end with a newline".to_string())?;
        let mut lines = body.split('\n');
        let mut field = |key: &str| -> std::result::Result<&str, String> {
            let line = lines.next().ok_or_else(|| format!("no \"{key}\" line"))?;
            line.strip_prefix(key)
                .and_then(|r| r.strip_prefix(' '))
                .ok_or_else(|| {
                    format!("\"{}\" where \"{key} …\" was expected", line.escape_debug())
                })
        };
        let number = |key: &str, v: &str| -> std::result::Result<u64, String> {
            let plain = !v.is_empty()
                && v.len() <= 20
                && v.bytes().all(|b| b.is_ascii_digit())
                && (v == "0" || !v.starts_with('0'));
            plain
                .then(|| v.parse().ok())
                .flatten()
                .ok_or_else(|| format!("{key} \"{}\" is not a number", v.escape_debug()))
        };
        let url = field("url")?;
        if url.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("url \"{}\" is not a URL", url.escape_debug()));
        }
        let serial = number("serial", field("serial")?)?;
        let signed = number("signed", field("signed")?)?;
        let sha256 = field("sha256")?;
        if sha256.len() != 64
            || !sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(format!(
                "sha256 \"{}\" is not a sha256",
                sha256.escape_debug()
            ));
        }
        if let Some(extra) = lines.next() {
            return Err(format!(
                "\"{}\" after the sha256 line",
                extra.escape_debug()
            ));
        }
        Ok(Seen {
            url: url.to_string(),
            serial,
            signed,
            sha256: sha256.to_string(),
        })
    }
}

/// The directory URL `dir` as remembered: its scheme and host in lower
/// case (they name the same place in any case), its path as it is.
pub fn source(dir: &str) -> String {
    match dir.find("://") {
        Some(i) => {
            let host_end = dir[i + 3..].find('/').map_or(dir.len(), |j| i + 3 + j);
            format!(
                "{}{}",
                dir[..host_end].to_ascii_lowercase(),
                &dir[host_end..]
            )
        }
        None => dir.to_string(),
    }
}

/// Where the memory is: root's (effective user 0) under
/// `$MKVE_STATEDIR/sources`, another user's under
/// `$XDG_CACHE_HOME/mkve/sources` or `~/.cache/mkve/sources`. Errors: a
/// user with neither a cache directory nor a home (`Error::Unavailable`):
/// a fetch is refused rather than made without memory.
pub fn dir() -> Result<PathBuf> {
    if nix::unistd::geteuid().is_root() {
        return Ok(crate::paths::statedir().join("sources"));
    }
    let set = |v: &str| {
        std::env::var_os(v)
            .filter(|x| !x.is_empty())
            .map(PathBuf::from)
    };
    if let Some(c) = set("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Ok(c.join("mkve/sources"));
    }
    if let Some(h) = set("HOME") {
        return Ok(h.join(".cache/mkve/sources"));
    }
    Err(Error::Unavailable {
        what: "the memory of fetched directories".into(),
        why: "no cache directory: set XDG_CACHE_HOME or HOME".into(),
    })
}

/// Accept `new`, the list at `list_url` (its verified signature's serial,
/// date and sha256), against what `memory` (a [`dir`]) remembers of its
/// directory, and remember it when it is newer. A first list from a
/// directory is accepted; the same list again too.
///
/// Lists are ordered by serial; two without one (signed by hand) by the
/// dates of their signatures.
///
/// Errors: a list older than the one remembered, or another list of the
/// same serial (of the same date, without serials): `Error::Signature` (65), saying which list this host has seen;
/// a memory file that does not read: `Error::InvalidBundle` (65) naming it;
/// the memory not writable: `Error::CannotCreate` (73).
pub fn accept(memory: &Path, list_url: &str, new: &Seen) -> Result<()> {
    std::fs::create_dir_all(memory).map_err(|e| Error::create(memory, e))?;
    let _lock = Lock::at(&memory.join(".lock"), Mode::Exclusive, true)?;
    let path = memory.join(crate::digest::hex(&Sha256::digest(new.url.as_bytes())));
    let old = match std::fs::read(&path) {
        Ok(bytes) => Some(Seen::parse(&bytes).and_then(|s| {
            if s.url == new.url {
                Ok(s)
            } else {
                Err(format!("remembers {}, not {}", s.url, new.url))
            }
        })
        .map_err(|why| {
            Error::bundle(
                &path,
                format!(
                    "{why}: not what mkve remembers of a directory (remove it to forget what was seen of {})",
                    new.url
                ),
            )
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(&path, e)),
    };
    if let Some(old) = &old {
        let said = |s: &Seen| {
            let serial = match s.serial {
                0 => "no serial".to_string(),
                n => format!("serial {n}"),
            };
            format!("{serial}, signed {}", rfc3339(s.signed))
        };
        use std::cmp::Ordering::{Equal, Greater, Less};
        let verdict = match new.serial.cmp(&old.serial) {
            Greater => Greater,
            Less => Less,
            _ if new.sha256 == old.sha256 => return Ok(()),
            // Lists without a serial (signed by hand) go by their dates.
            Equal if new.serial == 0 => new.signed.cmp(&old.signed),
            Equal => Equal,
        };
        match verdict {
            Greater => {}
            Less => {
                return Err(Error::signature(
                    list_url,
                    format!(
                        "older ({}) than the list this host accepted from {} before ({}): a replayed or frozen copy is refused (remembered in {})",
                        said(new),
                        new.url,
                        said(old),
                        path.display()
                    ),
                ))
            }
            Equal => {
                return Err(Error::signature(
                    list_url,
                    format!(
                        "another list with the same {} as the one this host accepted from {} before ({}; sha256 {}, not {}): refused (remembered in {})",
                        if new.serial == 0 { "date" } else { "serial" },
                        new.url,
                        said(old),
                        new.sha256,
                        old.sha256,
                        path.display()
                    ),
                ))
            }
        }
    }
    let mut out = crate::files::Output::create(&path)?;
    std::io::Write::write_all(&mut out, &new.to_bytes()).map_err(|e| Error::create(&path, e))?;
    out.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const G: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

    fn seen(serial: u64, signed: u64, sha256: &str) -> Seen {
        Seen {
            url: "http://h/d/".into(),
            serial,
            signed,
            sha256: sha256.into(),
        }
    }

    #[test]
    fn the_file_reads_back_and_nothing_else_reads() {
        let s = seen(1_700_000_000, 1_700_000_001, H);
        assert_eq!(Seen::parse(&s.to_bytes()), Ok(s.clone()));
        let good = String::from_utf8(s.to_bytes()).unwrap();
        for bad in [
            String::new(),
            good.trim_end().to_string(),
            good.replace("serial 1700000000", "serial 01700000000"),
            good.replace("serial 1700000000", "serial -1"),
            good.replace("serial 1700000000", "serial 99999999999999999999"),
            good.replace("signed ", "signed  "),
            good.replace(H, &H.to_ascii_uppercase()),
            good.replace(H, &H[1..]),
            good.replace("url http://h/d/", "url "),
            good.replace("url http://h/d/", "url http://h/ d/"),
            good.replace("url http://h/d/", "url http://h/\u{1b}d/"),
            format!("{good}extra 1\n"),
            good.replace("serial", "Serial"),
            good.replace('\n', "\r\n"),
            good.lines().rev().map(|l| format!("{l}\n")).collect(),
        ] {
            assert!(Seen::parse(bad.as_bytes()).is_err(), "{bad:?} read");
        }
        assert!(Seen::parse(&[0xff, b'\n']).is_err());
        assert!(Seen::parse(&vec![b'u'; 5000]).is_err());
    }

    #[test]
    fn a_source_is_its_url_with_scheme_and_host_in_lower_case() {
        assert_eq!(
            source("HTTP://Example.ORG:80/A/b/"),
            "http://example.org:80/A/b/"
        );
        assert_eq!(source("https://h/"), "https://h/");
    }

    #[test]
    fn older_lists_are_refused_newer_ones_remembered() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("sources");
        let list = "http://h/d/SHA256SUMS";
        accept(&m, list, &seen(10, 100, H)).unwrap();
        accept(&m, list, &seen(10, 100, H)).unwrap();
        for (older, part) in [
            (
                seen(9, 200, G),
                "older (serial 9, signed 1970-01-01T00:03:20Z)",
            ),
            (seen(10, 99, G), "another list with the same serial"),
            (seen(10, 101, G), "another list with the same serial"),
            (seen(0, 1000, G), "older (no serial"),
        ] {
            let e = accept(&m, list, &older).unwrap_err();
            assert_eq!(e.exit_code(), 65);
            let e = e.to_string();
            assert!(
                e.starts_with("http://h/d/SHA256SUMS: ") && e.contains(part),
                "{older:?}: {e}"
            );
            assert!(
                e.contains("(serial 10, signed 1970-01-01T00:01:40Z)") || e.contains("same"),
                "{e}"
            );
        }
        accept(&m, list, &seen(11, 50, G)).unwrap();
        let e = accept(&m, list, &seen(10, 100, H)).unwrap_err();
        assert!(e.to_string().contains("serial 11"), "{e}");
        // Another directory has a memory of its own.
        let mut other = seen(1, 1, H);
        other.url = "http://h/other/".into();
        accept(&m, list, &other).unwrap();
        // A memory file that does not read refuses, naming it.
        let file = std::fs::read_dir(&m)
            .unwrap()
            .flatten()
            .find(|e| e.file_name() != ".lock")
            .unwrap()
            .path();
        std::fs::write(&file, "junk\n").unwrap();
        let url = Seen::parse(&[]).err();
        assert!(url.is_some());
        let r1 = accept(&m, list, &seen(12, 1, H));
        let r2 = accept(&m, list, &other);
        let e = r1.err().or(r2.err()).unwrap();
        assert_eq!(e.exit_code(), 65);
        assert!(e.to_string().contains("remove it to forget"), "{e}");
        let names: Vec<_> = std::fs::read_dir(&m)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            names.len(),
            3,
            "two memories and the lock, no part file: {names:?}"
        );
    }
}
