//! `SHA256SUMS`: the checksum list of a directory of published bundles,
//! in the format `sha256sum(1)` writes and `sha256sum -c` reads, which is
//! also what systemd-importd (`machinectl pull-tar`, machinectl(1)) fetches
//! beside an image, with its detached signature `SHA256SUMS.gpg`.
//!
//! One line per file: 64 hex digits, a space, a mode character (a space
//! for text, `*` for binary; sha256sum(1) `--tag` and escaped names are not
//! read), and the file's name; lines sorted by name, bytewise. mkve writes
//! `HEX  NAME` (text mode, lower-case hex), as `sha256sum` does on Linux.
//!
//! A name is one plain file name in the list's own directory, so no line
//! can point outside it, nor at the list or its signature (see
//! [`check_name`]). This module owns the format and that rule; signing the
//! list is `sign.rs`'s, publishing a directory `publish.rs`'s, fetching
//! from one `fetch.rs`'s.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Problem};

/// The list's file name in its directory.
pub const FILE: &str = "SHA256SUMS";
/// Its detached OpenPGP signature (binary, as `gpg --detach-sign` makes
/// it), beside it.
pub const SIGNATURE: &str = "SHA256SUMS.gpg";
/// The largest list read, in bytes: about 170 000 lines.
pub const MAX_BYTES: u64 = 16 << 20;
/// The largest signature read, in bytes.
pub const SIGNATURE_MAX_BYTES: u64 = 64 << 10;
/// The longest name, in bytes (a file name on Linux).
const NAME_MAX: usize = 255;

/// A checksum list: each file name with the sha256 of its bytes (64
/// lower-case hex digits). Iterates and writes in name order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sums {
    entries: BTreeMap<String, String>,
}

/// Why `name` cannot be a name in a list, or `Ok`. A name is 1 to 255
/// bytes of UTF-8 with no `/`, `\`, control character (newline, carriage
/// return, tab, NUL…) or leading `.` (so neither `.` nor `..`, nor the
/// hidden names of files being written), no space at either end, and is
/// neither [`FILE`] nor [`SIGNATURE`]. Inner spaces are allowed: they are
/// percent-encoded in a URL.
pub fn check_name(name: &str) -> Result<(), String> {
    let why = if name.is_empty() {
        "an empty name"
    } else if name.len() > NAME_MAX {
        "longer than 255 bytes"
    } else if name.contains('/') {
        "has a \"/\": names a file in another directory"
    } else if name.contains('\\') {
        "has a \"\\\" (sha256sum's escaped names are not read)"
    } else if name.chars().any(char::is_control) {
        "has a control character"
    } else if name.starts_with('.') {
        "starts with \".\""
    } else if name.starts_with(' ') || name.ends_with(' ') {
        "starts or ends with a space"
    } else if name == FILE || name == SIGNATURE {
        "is the name of the list or its signature"
    } else {
        return Ok(());
    };
    Err(format!("\"{}\": {why}", name.escape_debug()))
}

/// `hex` as 64 lower-case hex digits, or `None` when it is not a sha256.
fn digest(hex: &str) -> Option<String> {
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

impl Sums {
    pub fn new() -> Sums {
        Sums::default()
    }

    /// Read a list. `label` names it in errors (a path or a URL); every
    /// error is `Error::InvalidBundle` (exit status 65) naming the line.
    /// Blank lines are skipped and a carriage return ending a line is
    /// dropped (a list written on Windows); anything else that is not a
    /// `HEX  NAME` or `HEX *NAME` line with a name [`check_name`] allows,
    /// or a name listed twice, is refused: the whole list, not the line.
    pub fn parse(text: &[u8], label: &Path) -> Result<Sums, Error> {
        let bad = |n: usize, why: String| Error::InvalidBundle(Problem::new(label, Some(n), why));
        let mut sums = Sums::new();
        let mut first_line: BTreeMap<String, usize> = BTreeMap::new();
        for (i, raw) in text.split(|b| *b == b'\n').enumerate() {
            let n = i + 1;
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.is_empty() {
                continue;
            }
            let line = std::str::from_utf8(raw)
                .map_err(|_| bad(n, "not UTF-8 text: not a SHA256SUMS line".into()))?;
            let (hex, rest) = line.split_at_checked(64).unwrap_or((line, ""));
            let Some(hex) = digest(hex) else {
                return Err(bad(
                    n,
                    "does not start with a sha256 (64 hex digits): not a SHA256SUMS line".into(),
                ));
            };
            let Some(name) = rest.strip_prefix("  ").or_else(|| rest.strip_prefix(" *")) else {
                return Err(bad(
                    n,
                    "the sha256 is not followed by two spaces (or \" *\") and a name".into(),
                ));
            };
            check_name(name).map_err(|why| bad(n, format!("name {why}")))?;
            if let Some(before) = first_line.insert(name.to_string(), n) {
                return Err(bad(
                    n,
                    format!("\"{name}\" is listed twice (first on line {before})"),
                ));
            }
            sums.entries.insert(name.to_string(), hex);
        }
        Ok(sums)
    }

    /// The sha256 listed for `name` (lower-case hex).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries.get(name).map(String::as_str)
    }

    /// List `name` with `sha256` (hex, any case), replacing its line if it
    /// has one. A name [`check_name`] refuses, or a value that is not a
    /// sha256, is refused with the reason.
    pub fn insert(&mut self, name: &str, sha256: &str) -> Result<(), String> {
        check_name(name)?;
        let hex = digest(sha256).ok_or_else(|| format!("\"{sha256}\" is not a sha256"))?;
        self.entries.insert(name.to_string(), hex);
        Ok(())
    }

    /// Drop `name`'s line, if it has one.
    pub fn remove(&mut self, name: &str) {
        self.entries.remove(name);
    }

    /// The names and their sha256s, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, h)| (n.as_str(), h.as_str()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The list as `sha256sum` writes it: `HEX  NAME\n` lines, sorted by
    /// name.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 100);
        for (name, hex) in &self.entries {
            out.extend_from_slice(hex.as_bytes());
            out.extend_from_slice(b"  ");
            out.extend_from_slice(name.as_bytes());
            out.push(b'\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const B: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

    fn parse(text: &str) -> Result<Sums, String> {
        Sums::parse(text.as_bytes(), Path::new("d/SHA256SUMS")).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_what_sha256sum_writes_and_writes_it_back() {
        let text = format!("{A}  a.bun\n{B}  b c.bun\n");
        let s = parse(&text).unwrap();
        assert_eq!(s.get("a.bun"), Some(A));
        assert_eq!(s.get("b c.bun"), Some(B), "inner spaces are part of a name");
        assert_eq!(s.len(), 2);
        assert_eq!(String::from_utf8(s.to_bytes()).unwrap(), text);
    }

    #[test]
    fn binary_marks_crlf_upper_case_and_blank_lines_are_read() {
        let text = format!("\r\n{}  a.bun\r\n\n{B} *b.bun\r\n", A.to_ascii_uppercase());
        let s = parse(&text).unwrap();
        assert_eq!(s.get("a.bun"), Some(A), "upper-case hex is lowered");
        assert_eq!(s.get("b.bun"), Some(B), "the * binary mark is not a name's");
        assert_eq!(
            String::from_utf8(s.to_bytes()).unwrap(),
            format!("{A}  a.bun\n{B}  b.bun\n"),
            "written back as sha256sum writes it"
        );
        assert!(parse("").unwrap().is_empty());
        assert_eq!(
            parse(&format!("{A}  a.bun")).unwrap().len(),
            1,
            "no final newline"
        );
    }

    #[test]
    fn the_list_is_written_sorted_and_a_name_published_again_replaces_its_line() {
        let mut s = Sums::new();
        s.insert("z.bun", A).unwrap();
        s.insert("a.bun", A).unwrap();
        s.insert("B.bun", A).unwrap();
        s.insert("a.bun", &B.to_ascii_uppercase()).unwrap();
        assert_eq!(
            String::from_utf8(s.to_bytes()).unwrap(),
            format!("{A}  B.bun\n{B}  a.bun\n{A}  z.bun\n"),
            "bytewise order, one line per name"
        );
        s.remove("z.bun");
        s.remove("never.bun");
        assert_eq!(
            s.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            ["B.bun", "a.bun"]
        );
        assert!(s
            .insert("a.bun", "abc")
            .unwrap_err()
            .contains("not a sha256"));
    }

    #[test]
    fn no_name_can_point_outside_the_directory() {
        for name in [
            "..",
            ".",
            "../x.bun",
            "/etc/passwd",
            "a/b.bun",
            "a/../../b",
            "..\\x",
            "x\\n.bun",
            ".hidden.bun",
            ".a.bun.XXXXXX.mkve-part",
            "a\0b",
            "a\tb",
            "a\u{7f}b",
            "a\u{85}b",
            "SHA256SUMS",
            "SHA256SUMS.gpg",
            " a.bun",
            "a.bun ",
            "",
        ] {
            assert!(check_name(name).is_err(), "{name:?} accepted");
            let line = format!("{A}  {name}\n");
            let err = parse(&line).err();
            assert!(
                err.as_deref()
                    .is_some_and(|e| e.starts_with("d/SHA256SUMS:1: ")),
                "{name:?} read from a list: {err:?}"
            );
            assert!(Sums::new().insert(name, A).is_err(), "{name:?} inserted");
        }
        let long = "x".repeat(256);
        assert!(check_name(&long).is_err());
        assert!(check_name(&long[..255]).is_ok());
        for name in ["a.bun", "ntp server-1.2 (lxc).bun", "é.bun", "a..b", "x."] {
            assert_eq!(check_name(name), Ok(()), "{name:?}");
        }
    }

    #[test]
    fn a_malformed_line_refuses_the_list_naming_its_line() {
        for (text, line, part) in [
            (
                format!("{A}  a.bun\n{A}  a.bun\n"),
                2,
                "listed twice (first on line 1)",
            ),
            (format!("{A}  a.bun\r\n{A} *a.bun\r\n"), 2, "listed twice"),
            (format!("{A} a.bun\n"), 1, "two spaces"),
            (format!("{A}\ta.bun\n"), 1, "two spaces"),
            (format!("{A}  \n"), 1, "an empty name"),
            (format!("{A}\n"), 1, "two spaces"),
            (format!("{}  a.bun\n", &A[..63]), 1, "64 hex digits"),
            (format!("{A}0  a.bun\n"), 1, "two spaces"),
            (format!("{}g  a.bun\n", &A[..63]), 1, "64 hex digits"),
            (format!("\\{A}  a\\nb.bun\n"), 1, "64 hex digits"),
            (format!("SHA256 (a.bun) = {A}\n"), 1, "64 hex digits"),
            ("# a comment\n".to_string(), 1, "64 hex digits"),
            (
                format!("{A}  ok.bun\n{A}  a\rb.bun\n"),
                2,
                "control character",
            ),
            (format!("{A}  ok.bun\n\n{A}  ../b.bun\n"), 3, "\"/\""),
            (
                format!("{A}  é\u{301}.bun\n\u{e9}{}", &A[2..]),
                2,
                "64 hex digits",
            ),
        ] {
            let err = parse(&text).unwrap_err();
            assert!(
                err.starts_with(&format!("d/SHA256SUMS:{line}: ")) && err.contains(part),
                "{text:?}: {err}"
            );
        }
        let err = Sums::parse(b"\xff\xfe  a.bun\n", Path::new("l")).unwrap_err();
        assert_eq!(err.exit_code(), 65);
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }

    /// Bytes at random (a fixed seed): whatever is read has only names
    /// `check_name` allows and writes back to a list that reads the same.
    #[test]
    fn any_bytes_read_as_a_list_hold_only_allowed_names() {
        let mut seed: u64 = 0x5eed;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let pieces: [&[u8]; 12] = [
            A.as_bytes(),
            b"  ",
            b" *",
            b"\n",
            b"\r\n",
            b"a.bun",
            b"/",
            b"..",
            b" ",
            b"\\",
            b"\0",
            b"x",
        ];
        let mut read = 0;
        for _ in 0..20_000 {
            let mut text = Vec::new();
            for _ in 0..(next() % 12) {
                text.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
            }
            if let Ok(s) = Sums::parse(&text, Path::new("r")) {
                read += 1;
                for (name, hex) in s.iter() {
                    assert_eq!(check_name(name), Ok(()), "{text:?}");
                    assert_eq!(digest(hex).as_deref(), Some(hex));
                }
                assert_eq!(Sums::parse(&s.to_bytes(), Path::new("again")).unwrap(), s);
            }
        }
        assert!(
            read > 1000,
            "only {read} inputs read: the pieces make no lists"
        );
    }
}
