//! Debian version numbers compared as dpkg compares them (Debian Policy
//! 5.6.12, dpkg's `lib/dpkg/version.c`: `dpkg_version_compare`,
//! `verrevcmp`, `order`): `[epoch:]upstream[-revision]`, the epoch a
//! number, the rest compared in alternating runs of non-digits (letters
//! before everything else, `~` before anything, even the end) and digits
//! (numerically). Not here: where versions come from (`audit.rs`).

use std::cmp::Ordering;

/// A parsed version: epoch, upstream version, revision (empty when the
/// version has no `-`). Parsed as dpkg's `parseversion` does, leniently:
/// dpkg compares what it can read, and so does this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version<'a> {
    pub epoch: u64,
    pub upstream: &'a str,
    pub revision: &'a str,
}

impl<'a> Version<'a> {
    /// `None` when dpkg would refuse the version outright: empty, an
    /// epoch that is not a number (or too large), an empty upstream part
    /// after the epoch, an empty revision after a `-`, or white space
    /// inside.
    pub fn parse(s: &'a str) -> Option<Version<'a>> {
        let s = s.trim();
        if s.is_empty() || s.contains(char::is_whitespace) {
            return None;
        }
        let (epoch, rest) = match s.split_once(':') {
            Some((e, r)) => {
                if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (e.parse::<u32>().ok()? as u64, r)
            }
            None => (0, s),
        };
        if rest.is_empty() {
            return None;
        }
        let (upstream, revision) = match rest.rfind('-') {
            Some(i) if i + 1 == rest.len() => return None, // an empty revision
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        Some(Version {
            epoch,
            upstream,
            revision,
        })
    }
}

/// dpkg's `order`: the weight of one character of a non-digit run.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

/// dpkg's `verrevcmp` of two upstream versions or two revisions.
fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let mut first_diff = 0;
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied());
            let bc = order(b.get(j).copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
            if first_diff == 0 {
                first_diff = a[i] as i32 - b[j] as i32;
            }
            i += 1;
            j += 1;
        }
        if i < a.len() && a[i].is_ascii_digit() {
            return Ordering::Greater;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != 0 {
            return first_diff.cmp(&0);
        }
    }
    Ordering::Equal
}

/// Compare two parsed versions as `dpkg --compare-versions` does.
pub fn cmp(a: &Version, b: &Version) -> Ordering {
    a.epoch
        .cmp(&b.epoch)
        .then_with(|| verrevcmp(a.upstream.as_bytes(), b.upstream.as_bytes()))
        .then_with(|| verrevcmp(a.revision.as_bytes(), b.revision.as_bytes()))
}

/// Compare two version strings; `None` when either does not parse.
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    Some(cmp(&Version::parse(a)?, &Version::parse(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn policy_examples() {
        for (a, b, want) in [
            ("1.0", "1.0", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0~", "1.0", Less),
            ("1.0", "1.0a", Less),
            ("1.0a", "1.0+", Less),
            ("1:0.1", "2.0", Greater),
            ("0:1.0", "1.0", Equal),
            ("1.0-1", "1.0-1ubuntu1", Less),
            ("1.0-1", "1.0-1~bpo1", Greater),
            ("1.0-0", "1.0", Equal),
            ("1.01", "1.1", Equal),
            ("2.36-9+deb12u4", "2.36-9+deb12u10", Less),
            ("1.2.3-4-5", "1.2.3-4-4", Greater),
            ("10", "9", Greater),
            ("a", "b", Less),
            ("1.0.", "1.0", Greater),
        ] {
            assert_eq!(compare(a, b), Some(want), "{a} vs {b}");
            assert_eq!(compare(b, a), Some(want.reverse()), "{b} vs {a}");
        }
        assert_eq!(compare("x:1", "1"), None);
        assert_eq!(compare(":1", "1"), None);
        assert_eq!(compare("1:", "1"), None);
        assert_eq!(compare("", "1"), None);
        assert_eq!(compare("1 2", "1"), None);
        assert_eq!(compare("1.0-", "1"), None);
    }
}
