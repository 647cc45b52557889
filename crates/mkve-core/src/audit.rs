//! The offline audit (`mkve-bundle --audit`): a bundle's SBOM against
//! Debian's security tracker data in the format Debian's `debsecan`
//! reads, and the operator's `accepted` decisions. The feed's format is
//! debsecan's (`fetch_data` and `Vulnerability` in /usr/bin/debsecan,
//! version 0.4): zlib-compressed text, `VERSION 1`, then three sections
//! each ended by an empty line:
//!
//! - `NAME,FLAGS,DESCRIPTION`: the vulnerabilities, numbered from 0;
//! - `PACKAGE,N,FLAGS,VERSION,OTHER VERSIONS`: vulnerability N of a
//!   package; FLAGS are four characters: `B` (a binary package's name) or
//!   not (a source package's), the urgency (`L`, `M`, `H` or a space), `R`
//!   remotely exploitable, `?` unknown or a space for local, `F` when a fix
//!   is available in the suite; VERSION the version that fixes it (empty:
//!   none yet), OTHER VERSIONS space-separated versions also not affected;
//! - `SOURCE,BINARY BINARY…`: the binary packages of each source.
//!
//! Which packages are affected follows debsecan's `rate_system` and
//! `is_vulnerable` exactly, versions compared as dpkg does
//! (`debversion.rs`). Not here: reading the bundle (`bundle/`), fetching
//! (`fetch.rs`), which machines a bundle's SBOM stands for (`vm/audit.rs`).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::debversion;
use crate::error::{Error, IoContext, Problem, Result};

/// The largest feed read, compressed and once decompressed, in bytes.
pub const FEED_MAX: u64 = 64 << 20;
pub const FEED_TEXT_MAX: u64 = 512 << 20;

/// The feed `arg` names: an `http://` or `https://` URL, fetched with
/// the fetch path's timeouts (fetch.rs: 69 when the server cannot be
/// reached or answers an error), else a file; read and parsed
/// ([`parse_feed`]). Errors (65): larger than [`FEED_MAX`], not a feed.
#[cfg(all(feature = "http", feature = "gpg"))]
pub fn load_feed(arg: &str) -> Result<Feed> {
    let lower = arg.to_ascii_lowercase();
    let bytes = if lower.starts_with("http://") || lower.starts_with("https://") {
        crate::fetch::get_file(arg, FEED_MAX)?
    } else {
        read_feed_file(Path::new(arg))?
    };
    parse_feed(&bytes, Path::new(arg))
}

/// A feed file's bytes, at most [`FEED_MAX`]. Errors: it cannot be read
/// (1), it is larger (65).
pub fn read_feed_file(path: &Path) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut buf = Vec::new();
    f.take(FEED_MAX + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(path, e))?;
    if buf.len() as u64 > FEED_MAX {
        return Err(Error::bundle(path, format!("larger than {FEED_MAX} bytes")));
    }
    Ok(buf)
}

/// One vulnerability of one package, as the feed gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `CVE-2024-1234`, `DSA-…`, `TEMP-…`: the feed's name.
    pub name: String,
    /// A binary package's name (`B`), or a source package's.
    pub binary: bool,
    pub package: String,
    /// `low`, `medium`, `high`, or `None` (not given).
    pub urgency: Option<String>,
    /// `Some(true)` remotely exploitable, `Some(false)` local, `None`
    /// unknown.
    pub remote: Option<bool>,
    pub fix_available: bool,
    /// The version that fixes it; `None`: no fix yet.
    pub fixed: Option<String>,
    pub other_versions: Vec<String>,
}

/// A feed: its entries by package name.
#[derive(Debug, Default)]
pub struct Feed {
    pub by_package: HashMap<String, Vec<Entry>>,
}

/// Read a feed (zlib-compressed, `label` names it in errors). Errors (65):
/// not zlib, larger than [`FEED_TEXT_MAX`] once decompressed, not
/// `VERSION 1`, a line that does not parse (named by its line number).
pub fn parse_feed(compressed: &[u8], label: &Path) -> Result<Feed> {
    let bad =
        |line: Option<usize>, why: String| Error::InvalidBundle(Problem::new(label, line, why));
    let mut text = Vec::new();
    flate2::read::ZlibDecoder::new(compressed)
        .take(FEED_TEXT_MAX + 1)
        .read_to_end(&mut text)
        .map_err(|e| bad(None, format!("not a zlib-compressed debsecan feed: {e}")))?;
    if text.len() as u64 > FEED_TEXT_MAX {
        return Err(bad(
            None,
            format!("larger than {FEED_TEXT_MAX} bytes decompressed"),
        ));
    }
    let text = String::from_utf8(text).map_err(|_| bad(None, "not UTF-8".into()))?;
    let mut lines = text.split('\n').enumerate().map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, "VERSION 1")) => {}
        _ => {
            return Err(bad(
                Some(1),
                "not \"VERSION 1\": not a debsecan feed this mkve reads".into(),
            ))
        }
    }
    let mut names: Vec<String> = Vec::new();
    for (n, line) in lines.by_ref() {
        if line.is_empty() {
            break;
        }
        let mut f = line.splitn(3, ',');
        match (f.next(), f.next(), f.next()) {
            (Some(name), Some(_flags), Some(_desc)) if !name.is_empty() => {
                names.push(name.to_string())
            }
            _ => return Err(bad(Some(n), "not NAME,FLAGS,DESCRIPTION".into())),
        }
    }
    let mut feed = Feed::default();
    for (n, line) in lines.by_ref() {
        if line.is_empty() {
            break;
        }
        let e = entry(line, &names).map_err(|why| bad(Some(n), why))?;
        feed.by_package
            .entry(e.package.clone())
            .or_default()
            .push(e);
    }
    // The source → binaries section says which binaries a source still
    // builds (debsecan's "obsolete"); the audit does not need it, but it
    // must parse.
    for (n, line) in lines {
        if line.is_empty() {
            break;
        }
        if line.split(',').count() != 2 {
            return Err(bad(Some(n), "not SOURCE,BINARIES".into()));
        }
    }
    Ok(feed)
}

fn entry(line: &str, names: &[String]) -> std::result::Result<Entry, String> {
    let f: Vec<&str> = line.splitn(5, ',').collect();
    let [package, vnum, flags, fixed, others] = f[..] else {
        return Err("not PACKAGE,N,FLAGS,VERSION,OTHER VERSIONS".into());
    };
    let name = vnum
        .parse::<usize>()
        .ok()
        .and_then(|i| names.get(i))
        .ok_or_else(|| format!("no vulnerability number {vnum:?}"))?;
    let fl = flags.as_bytes();
    if fl.len() != 4 || package.is_empty() {
        return Err(format!("flags {flags:?}: not four characters"));
    }
    let urgency = match fl[1] {
        b' ' => None,
        b'L' => Some("low"),
        b'M' => Some("medium"),
        b'H' => Some("high"),
        _ => return Err(format!("flags {flags:?}: urgency is L, M, H or a space")),
    };
    let remote = match fl[2] {
        b'?' => None,
        b'R' => Some(true),
        b' ' => Some(false),
        _ => return Err(format!("flags {flags:?}: remote is R, ? or a space")),
    };
    let version_ok = |v: &str| debversion::Version::parse(v).is_some();
    if !fixed.is_empty() && !version_ok(fixed) {
        return Err(format!("{fixed:?} is not a version"));
    }
    let other_versions: Vec<String> = others
        .split(' ')
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(v) = other_versions.iter().find(|v| !version_ok(v)) {
        return Err(format!("{v:?} is not a version"));
    }
    Ok(Entry {
        name: name.clone(),
        binary: fl[0] == b'B',
        package: package.to_string(),
        urgency: urgency.map(str::to_string),
        remote,
        fix_available: fl[3] == b'F',
        fixed: (!fixed.is_empty()).then(|| fixed.to_string()),
        other_versions,
    })
}

/// A package the SBOM lists: dpkg's name, version and architecture, and
/// its source's name and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub name: String,
    pub version: String,
    /// The purl's `arch` qualifier (`amd64`, `all`); empty when it has none.
    #[serde(default)]
    pub architecture: String,
    pub source: String,
    pub source_version: String,
}

/// The Debian packages of an SPDX SBOM (mkve-bundle(5)): those with a
/// `pkg:deb/` purl, their source from `sourceInfo`
/// (`built package from: SOURCE VERSION`). Errors (65, naming `label`):
/// a package without a name or version.
pub fn installed_from_spdx(doc: &Value, label: &Path) -> Result<Vec<Installed>> {
    let mut out = Vec::new();
    let packages = doc.get("packages").and_then(Value::as_array);
    for p in packages.into_iter().flatten() {
        let purl = p
            .get("externalRefs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("referenceLocator").and_then(Value::as_str))
            .find(|l| l.starts_with("pkg:deb/"));
        let Some(purl) = purl else {
            continue;
        };
        // `pkg:deb/debian/NAME@VERSION?arch=A&…`: the qualifiers' values
        // are percent-encoded, and an architecture never needs it.
        let architecture = purl
            .split_once('?')
            .map(|(_, q)| q.split('#').next().unwrap_or(q))
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|kv| kv.strip_prefix("arch="))
            .unwrap_or_default();
        let text = |k: &str| p.get(k).and_then(Value::as_str);
        let (Some(name), Some(version)) = (text("name"), text("versionInfo")) else {
            return Err(Error::bundle(
                label,
                "sbom.spdx.json: a deb package without name or versionInfo",
            ));
        };
        let (source, source_version) = text("sourceInfo")
            .and_then(|s| s.strip_prefix("built package from: "))
            .and_then(|s| s.split_once(' '))
            .unwrap_or((name, version));
        out.push(Installed {
            name: name.into(),
            version: version.into(),
            architecture: architecture.into(),
            source: source.into(),
            source_version: source_version.into(),
        });
    }
    Ok(out)
}

/// One open vulnerability of one installed package: the `--json` object
/// of `mkve-bundle --audit` (mkve-bundle(1)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, PartialOrd, Ord)]
pub struct Finding {
    pub cve: String,
    /// The binary package installed.
    pub package: String,
    pub source: String,
    /// The binary package's version.
    pub installed: String,
    /// The version that fixes it in the suite, when the feed says a fix is
    /// available there.
    pub fixed: Option<String>,
    pub urgency: Option<String>,
    pub remote: Option<bool>,
}

/// The findings for `installed`, as debsecan finds them: a package's
/// entries are its source's when the feed has any, else its own name's; a
/// binary entry affects the package of that name below the fixed version
/// (any version when there is none); a source entry affects the packages
/// built from it whose source version is below the fixed version (when
/// there is one) and equal to none of the other versions. Packages whose
/// versions do not parse are left out, as debsecan leaves them. Sorted by
/// CVE, then package.
pub fn findings(feed: &Feed, installed: &[Installed]) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in installed {
        let (Some(bv), Some(sv)) = (
            debversion::Version::parse(&p.version),
            debversion::Version::parse(&p.source_version),
        ) else {
            continue;
        };
        let Some(entries) = feed
            .by_package
            .get(&p.source)
            .or_else(|| feed.by_package.get(&p.name))
        else {
            continue;
        };
        let below = |v: &debversion::Version, fixed: &str| {
            debversion::Version::parse(fixed)
                .is_some_and(|f| debversion::cmp(v, &f) == std::cmp::Ordering::Less)
        };
        let equal = |v: &debversion::Version, o: &str| {
            debversion::Version::parse(o)
                .is_some_and(|o| debversion::cmp(v, &o) == std::cmp::Ordering::Equal)
        };
        for e in entries {
            let affected = if e.binary && e.package == p.name {
                e.fixed.as_deref().is_none_or(|f| below(&bv, f))
            } else if e.package == p.source {
                e.fixed.as_deref().is_none_or(|f| below(&sv, f))
                    && !e.other_versions.iter().any(|o| equal(&sv, o))
            } else {
                false
            };
            if affected {
                out.push(Finding {
                    cve: e.name.clone(),
                    package: p.name.clone(),
                    source: p.source.clone(),
                    installed: p.version.clone(),
                    fixed: e.fixed.clone().filter(|_| e.fix_available),
                    urgency: e.urgency.clone(),
                    remote: e.remote,
                });
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The findings of `installed` that no decision of `accepted` covers,
/// and how many it covers (hidden).
pub fn open_findings(
    feed: &Feed,
    installed: &[Installed],
    accepted: &[Accepted],
) -> (Vec<Finding>, usize) {
    let (hidden, open): (Vec<Finding>, Vec<Finding>) = findings(feed, installed)
        .into_iter()
        .partition(|f| accepted.iter().any(|a| a.covers(f)));
    (open, hidden.len())
}

/// One decision of the `accepted` file: this CVE in this package is
/// known and accepted, for this reason, since this date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub cve: String,
    /// A binary or a source package's name.
    pub package: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    pub reason: String,
}

impl Accepted {
    /// Whether this decision covers `f`.
    pub fn covers(&self, f: &Finding) -> bool {
        self.cve == f.cve && (self.package == f.package || self.package == f.source)
    }
}

/// The accepted file's name in the configuration directory.
pub const ACCEPTED: &str = "accepted";

/// Read an accepted file (mkve-bundle(5), ACCEPTED): lines `CVE PACKAGE
/// DATE REASON…`, `#` comments and blank lines ignored. It decides what
/// every audit hides, so it must be owned by root and writable by no one
/// else. A missing file is no decisions. Errors (65, file and line): a
/// line without four fields or with a date that is not `YYYY-MM-DD`, a
/// file owned by another user or writable by group or others.
pub fn load_accepted(path: &Path) -> Result<Vec<Accepted>> {
    use std::os::unix::fs::MetadataExt;
    let m = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io(path, e)),
    };
    let bad =
        |line: Option<usize>, why: String| Error::InvalidBundle(Problem::new(path, line, why));
    if m.uid() != 0 || m.mode() & 0o022 != 0 {
        return Err(bad(
            None,
            "must be owned by root and writable by no one else: it decides what audits hide".into(),
        ));
    }
    let text = std::fs::read_to_string(path).at(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let mut f = l.splitn(4, char::is_whitespace);
        let (Some(cve), Some(package), Some(date), Some(reason)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            return Err(bad(
                Some(i + 1),
                "not \"CVE PACKAGE YYYY-MM-DD REASON\"".into(),
            ));
        };
        let date_ok = date.len() == 10
            && date.bytes().enumerate().all(|(k, c)| match k {
                4 | 7 => c == b'-',
                _ => c.is_ascii_digit(),
            });
        if !date_ok {
            return Err(bad(
                Some(i + 1),
                format!("\"{}\" is not a date (YYYY-MM-DD)", date.escape_debug()),
            ));
        }
        if reason.trim().is_empty() {
            return Err(bad(Some(i + 1), "no reason given".into()));
        }
        out.push(Accepted {
            cve: cve.into(),
            package: package.into(),
            date: date.into(),
            reason: reason.trim().into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    pub(crate) fn zlib(text: &str) -> Vec<u8> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(text.as_bytes()).unwrap();
        z.finish().unwrap()
    }

    const FEED: &str = "VERSION 1\n\
        CVE-2024-0001,,a glibc bug\n\
        CVE-2024-0002,,fixed already\n\
        CVE-2024-0003,,no fix yet\n\
        CVE-2024-0004,,a binary-only entry\n\
        CVE-2024-0005,,fixed on a branch\n\
        \n\
        glibc,0,SHRF,2.36-9+deb12u7,\n\
        glibc,1,SL  ,2.36-9+deb12u1,\n\
        glibc,2,S ? ,,\n\
        tzdata,3,BM F,2025b-0+deb12u2,\n\
        chrony,4,S R ,5.0-1,4.3-2+deb12u1\n\
        \n\
        glibc,libc6 libc-bin\n\
        \n";

    fn pkg(name: &str, version: &str, source: &str, sv: &str) -> Installed {
        Installed {
            name: name.into(),
            version: version.into(),
            architecture: "amd64".into(),
            source: source.into(),
            source_version: sv.into(),
        }
    }

    #[test]
    fn vulnerable_fixed_and_not_yet_fixed_entries() {
        let feed = parse_feed(&zlib(FEED), Path::new("feed")).unwrap();
        let installed = [
            pkg("libc6", "2.36-9+deb12u4", "glibc", "2.36-9+deb12u4"),
            pkg("tzdata", "2025a-0+deb12u1", "tzdata", "2025a-0+deb12u1"),
            pkg("chrony", "4.3-2+deb12u1", "chrony", "4.3-2+deb12u1"),
        ];
        let got: Vec<(String, String, Option<String>)> = findings(&feed, &installed)
            .into_iter()
            .map(|f| (f.cve, f.package, f.fixed))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "CVE-2024-0001".into(),
                    "libc6".into(),
                    Some("2.36-9+deb12u7".into())
                ),
                ("CVE-2024-0003".into(), "libc6".into(), None),
                (
                    "CVE-2024-0004".into(),
                    "tzdata".into(),
                    Some("2025b-0+deb12u2".into())
                ),
            ]
        );
        let f = &findings(&feed, &installed)[0];
        assert_eq!(f.urgency.as_deref(), Some("high"));
        assert_eq!(f.remote, Some(true));
        let f = &findings(&feed, &installed)[1];
        assert_eq!((f.urgency.as_deref(), f.remote), (None, None));
    }

    #[test]
    fn an_sbom_s_packages_and_their_architecture() {
        let doc = serde_json::json!({"packages": [
            {"name": "bundle", "versionInfo": "1"},
            {"name": "libc6", "versionInfo": "2.36-9+deb12u4",
             "sourceInfo": "built package from: glibc 2.36-9+deb12u4",
             "externalRefs": [{"referenceLocator":
                "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc"}]},
            {"name": "tzdata", "versionInfo": "2025a-0+deb12u1",
             "externalRefs": [{"referenceLocator": "pkg:deb/debian/tzdata@2025a-0%2Bdeb12u1?arch=all"}]},
            {"name": "busybox-static", "versionInfo": "1:1.35.0-4",
             "externalRefs": [{"referenceLocator": "pkg:deb/debian/busybox-static@1:1.35.0-4?"}]},
        ]});
        let got = installed_from_spdx(&doc, Path::new("sbom")).unwrap();
        let brief: Vec<(&str, &str, &str)> = got
            .iter()
            .map(|p| (p.name.as_str(), p.architecture.as_str(), p.source.as_str()))
            .collect();
        assert_eq!(
            brief,
            [
                ("libc6", "amd64", "glibc"),
                ("tzdata", "all", "tzdata"),
                ("busybox-static", "", "busybox-static")
            ]
        );
        let feed = parse_feed(&zlib(FEED), Path::new("feed")).unwrap();
        let accepted = [Accepted {
            cve: "CVE-2024-0003".into(),
            package: "glibc".into(),
            date: "2026-12-01".into(),
            reason: "r".into(),
        }];
        let (open, hidden) = open_findings(&feed, &got, &accepted);
        let cves: Vec<&str> = open.iter().map(|f| f.cve.as_str()).collect();
        assert_eq!((cves, hidden), (vec!["CVE-2024-0001", "CVE-2024-0004"], 1));
    }

    #[test]
    fn bad_feeds_are_refused_with_their_line() {
        let l = Path::new("f.z");
        let e = parse_feed(b"plain", l).unwrap_err();
        assert!(
            e.to_string().starts_with("f.z: not a zlib-compressed"),
            "{e}"
        );
        let e = parse_feed(&zlib("VERSION 2\n"), l).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.z:1: not \"VERSION 1\": not a debsecan feed this mkve reads"
        );
        let e = parse_feed(&zlib("VERSION 1\nCVE-1,,x\n\nglibc,7,S   ,1,\n"), l).unwrap_err();
        assert_eq!(e.to_string(), "f.z:4: no vulnerability number \"7\"");
        assert_eq!(e.exit_code(), 65);
        let e = parse_feed(&zlib("VERSION 1\nCVE-1,,x\n\nglibc,0,SX  ,1,\n"), l).unwrap_err();
        assert!(e.to_string().contains("urgency is L, M, H"), "{e}");
        let e = parse_feed(&zlib("VERSION 1\nCVE-1,,x\n\nglibc,0,S   ,a:b,\n"), l).unwrap_err();
        assert!(e.to_string().contains("\"a:b\" is not a version"), "{e}");
    }

    #[test]
    fn accepted_lines_and_owner() {
        if !nix::unistd::geteuid().is_root() {
            return; // the file must be root's: made by root, as CI is
        }
        let d = crate::testing::tree(&[(
            "accepted",
            "# decisions\nCVE-2024-0003 glibc 2026-11-30 no untrusted input reaches it\n",
        )]);
        let p = d.path().join("accepted");
        let a = load_accepted(&p).unwrap();
        assert_eq!(a[0].reason, "no untrusted input reaches it");
        let f = Finding {
            cve: "CVE-2024-0003".into(),
            package: "libc6".into(),
            source: "glibc".into(),
            installed: "1".into(),
            fixed: None,
            urgency: None,
            remote: None,
        };
        assert!(a[0].covers(&f), "by its source's name");
        std::fs::write(&p, "CVE-1 glibc 30.11.2026 why\n").unwrap();
        let e = load_accepted(&p).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("accepted:1: \"30.11.2026\" is not a date (YYYY-MM-DD)"),
            "{e}"
        );
        std::fs::write(&p, "CVE-1 glibc\n").unwrap();
        assert!(load_accepted(&p).is_err());
        assert!(load_accepted(&d.path().join("none")).unwrap().is_empty());
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = load_accepted(&p).unwrap_err();
        assert!(
            e.to_string()
                .contains("owned by root and writable by no one else"),
            "{e}"
        );
    }
}
