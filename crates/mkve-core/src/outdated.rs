//! `mkve-bundle --outdated` (mkve-bundle(1)): which packages of a bundle's
//! SBOM a mirror has a newer version of, so an operator knows whether a
//! rebuild would change anything. A mirror is an archive's root URL
//! (`http://deb.debian.org/debian`) or a one-line sources entry (`deb URL
//! SUITE COMPONENT…`); its suite's `Release` (or `InRelease`) is read, its
//! label and suite say whether it is a security archive, and each
//! component's `Packages` index for the bundle's architectures is fetched
//! (`Packages.gz`, else `Packages`), its sha256 checked against the
//! Release's. Versions compare as dpkg compares them (`debversion.rs`);
//! the stanzas are read as the layer index reads apt's lists
//! (`root/index.rs`). The HTTP client, its timeouts and its errors (69 the
//! network, 65 the data) are fetch.rs's. Not here: reading the bundle.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::audit::Installed;
use crate::debversion::{self, Version};
use crate::error::{Error, Result};
use crate::exec::Report;

/// The largest Release file read, and the largest Packages index,
/// compressed and once decompressed, in bytes.
const RELEASE_MAX: u64 = 8 << 20;
const PACKAGES_MAX: u64 = 128 << 20;
const PACKAGES_TEXT_MAX: u64 = 512 << 20;

/// A mirror as given: its root URL, and the suite and components when a
/// sources line named them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub url: String,
    pub suite: Option<String>,
    pub components: Vec<String>,
}

impl Mirror {
    /// `URL` or `deb URL SUITE [COMPONENT…]` (options in brackets, as
    /// `[arch=amd64]`, are passed by). Errors (2): neither, or a URL that
    /// is not http:// or https://.
    pub fn parse(arg: &str) -> Result<Mirror> {
        let words: Vec<&str> = arg
            .split_whitespace()
            .filter(|w| !(w.starts_with('[') || w.ends_with(']')))
            .collect();
        let (url, suite, components) = match words.as_slice() {
            [url] => (*url, None, Vec::new()),
            ["deb", url, suite, comps @ ..] => (
                *url,
                Some(suite.to_string()),
                comps.iter().map(|c| c.to_string()).collect(),
            ),
            _ => {
                return Err(Error::Usage(format!(
                "--mirror \"{}\": --outdated takes a URL or a line \"deb URL SUITE COMPONENT…\"",
                arg.escape_debug()
            )))
            }
        };
        let lower = url.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(Error::Usage(format!(
                "--mirror \"{}\": --outdated reads a mirror over http:// or https://",
                url.escape_debug()
            )));
        }
        Ok(Mirror {
            url: url.trim_end_matches('/').to_string(),
            suite,
            components,
        })
    }
}

/// A mirror's suite as read: what it is and whether it carries security
/// updates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Archive {
    pub url: String,
    pub suite: String,
    /// apt's notation of its Release: `o=Debian,a=stable-security,…`.
    pub origin: String,
    /// Its Label says Security, or its suite ends in `-security`.
    pub security: bool,
}

/// A package the mirror has a newer version of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Newer {
    pub package: String,
    pub architecture: String,
    pub installed: String,
    /// The newest version the mirrors have.
    pub available: String,
    /// It comes from a security archive.
    pub security: bool,
    /// The archive it comes from (its URL and suite).
    pub from: String,
}

/// What `--outdated` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outdated {
    pub archives: Vec<Archive>,
    pub newer: Vec<Newer>,
}

/// The packages of `installed` that `mirrors` have newer versions of, each
/// mirror's suite its own, else `suite` (the bundle's, or `--suite`); when
/// a plain URL has no `dists/SUITE/`, `dists/SUITE-security/` (a security
/// archive's layout). Errors: no suite known (2); a mirror that cannot be
/// reached or has no such suite (69); an index larger than its limit, not
/// matching its Release, or that does not read (65).
pub fn outdated(
    installed: &[Installed],
    mirrors: &[Mirror],
    suite: Option<&str>,
    report: &dyn Report,
) -> Result<Outdated> {
    let files = crate::fetch::Files::new()?;
    let mut arches: BTreeSet<&str> = installed
        .iter()
        .map(|p| p.architecture.as_str())
        .filter(|a| !a.is_empty() && *a != "all")
        .collect();
    if arches.is_empty() {
        arches.insert("amd64");
    }
    // (name, architecture) → (newest version, from, security).
    let mut best: BTreeMap<(String, String), (String, String, bool)> = BTreeMap::new();
    // Whether version `a` is above `b` (both parse: only those are kept).
    let above = |a: &str, b: &str| match (Version::parse(a), Version::parse(b)) {
        (Some(a), Some(b)) => debversion::cmp(&a, &b).is_gt(),
        _ => false,
    };
    let wanted: BTreeSet<&str> = installed.iter().map(|p| p.name.as_str()).collect();
    let mut out = Outdated::default();
    for m in mirrors {
        let given = m.suite.as_deref().or(suite).ok_or_else(|| {
            Error::Usage(format!(
                "{}: no suite known (the bundle's provenance names none): give --suite, or --mirror \"deb URL SUITE COMPONENT…\"",
                m.url
            ))
        })?;
        let mut tried = vec![given.to_string()];
        if m.suite.is_none() && !given.ends_with("-security") {
            tried.push(format!("{given}-security"));
        }
        let mut found = None;
        for s in &tried {
            if let Some(r) = release(&files, &m.url, s)? {
                found = Some((s.clone(), r));
                break;
            }
        }
        let Some((suite_used, text)) = found else {
            return Err(Error::Unavailable {
                what: m.url.clone(),
                why: format!(
                    "no Release or InRelease in {}: not a mirror of that suite",
                    tried
                        .iter()
                        .map(|s| format!("dists/{s}/"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            });
        };
        let field = |name: &str| {
            text.lines().find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|r| r.strip_prefix(':'))
                    .map(str::trim)
            })
        };
        let label = field("Label").unwrap_or("");
        let release_suite = field("Suite").unwrap_or("");
        let security = label.to_ascii_lowercase().contains("security")
            || release_suite.ends_with("-security")
            || field("Codename").is_some_and(|c| c.ends_with("-security"));
        let origin = crate::root::index::origin_of(&text);
        let components: Vec<String> = if m.components.is_empty() {
            field("Components")
                .unwrap_or("main")
                .split_whitespace()
                .map(str::to_string)
                .collect()
        } else {
            m.components.clone()
        };
        let sums = sha256_list(&text);
        let from = format!("{} {suite_used}", m.url);
        report.progress(&format!("reading the package indexes of {from}"));
        for comp in &components {
            for arch in &arches {
                let Some(index) = packages(&files, &m.url, &suite_used, comp, arch, &sums)? else {
                    report.note(&format!(
                        "{from}: no {comp}/binary-{arch}/Packages: passed by"
                    ));
                    continue;
                };
                for f in crate::root::index::stanzas(&index) {
                    let (Some(p), Some(v), Some(a)) = (f.package, f.version, f.architecture) else {
                        continue;
                    };
                    if !wanted.contains(p) {
                        continue;
                    }
                    if Version::parse(v).is_none() {
                        continue;
                    }
                    let key = (p.to_string(), a.to_string());
                    if best.get(&key).is_none_or(|(b, ..)| above(v, b)) {
                        best.insert(key, (v.to_string(), from.clone(), security));
                    }
                }
            }
        }
        out.archives.push(Archive {
            url: m.url.clone(),
            suite: suite_used,
            origin,
            security,
        });
    }
    for p in installed {
        if Version::parse(&p.version).is_none() {
            continue;
        }
        // A package whose architecture the SBOM does not give (a root
        // whose dpkg database has none) is matched by name alone.
        let candidates = best.iter().filter(|((n, a), _)| {
            *n == p.name && (p.architecture.is_empty() || *a == p.architecture)
        });
        let newest = candidates
            .map(|(_, b)| b)
            .reduce(|x, y| if above(&y.0, &x.0) { y } else { x });
        let Some((written, from, security)) = newest else {
            continue;
        };
        if above(written, &p.version) {
            out.newer.push(Newer {
                package: p.name.clone(),
                architecture: p.architecture.clone(),
                installed: p.version.clone(),
                available: written.clone(),
                security: *security,
                from: from.clone(),
            });
        }
    }
    out.newer
        .sort_by(|a, b| (&a.package, &a.architecture).cmp(&(&b.package, &b.architecture)));
    Ok(out)
}

/// The suite's `InRelease`, else its `Release`, as text; `None` when the
/// mirror has neither.
fn release(files: &crate::fetch::Files, url: &str, suite: &str) -> Result<Option<String>> {
    for name in ["InRelease", "Release"] {
        let at = format!("{url}/dists/{suite}/{name}");
        if let Some(bytes) = files.get(&at, RELEASE_MAX)? {
            return String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| Error::bundle(&at, "not text: not a Release file"));
        }
    }
    Ok(None)
}

/// The `SHA256:` list of a Release file: path → sha256.
fn sha256_list(release: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inside = false;
    for line in release.lines() {
        if !line.starts_with(' ') {
            inside = line.trim_end() == "SHA256:";
            continue;
        }
        if inside {
            if let [sum, _size, path] = line.split_whitespace().collect::<Vec<_>>()[..] {
                out.insert(path.to_string(), sum.to_ascii_lowercase());
            }
        }
    }
    out
}

/// The text of `COMP/binary-ARCH/Packages` of `suite` at `url`
/// (`Packages.gz`, else the plain one), its sha256 checked when the
/// Release lists it (`sums`); `None` when the mirror has neither.
fn packages(
    files: &crate::fetch::Files,
    url: &str,
    suite: &str,
    comp: &str,
    arch: &str,
    sums: &BTreeMap<String, String>,
) -> Result<Option<String>> {
    for name in ["Packages.gz", "Packages"] {
        let rel = format!("{comp}/binary-{arch}/{name}");
        let at = format!("{url}/dists/{suite}/{rel}");
        let Some(bytes) = files.get(&at, PACKAGES_MAX)? else {
            continue;
        };
        let got = crate::digest::hex(&Sha256::digest(&bytes));
        if let Some(want) = sums.get(&rel).filter(|w| **w != got) {
            return Err(Error::bundle(
                &at,
                format!("sha256 {got} is not the one its Release lists ({want})"),
            ));
        }
        let mut text = Vec::new();
        let read = if name.ends_with(".gz") {
            flate2::read::GzDecoder::new(bytes.as_slice())
                .take(PACKAGES_TEXT_MAX + 1)
                .read_to_end(&mut text)
        } else {
            text = bytes;
            Ok(text.len())
        };
        read.map_err(|e| Error::bundle(&at, format!("not a gzip-compressed index: {e}")))?;
        if text.len() as u64 > PACKAGES_TEXT_MAX {
            return Err(Error::bundle(
                &at,
                format!("larger than {PACKAGES_TEXT_MAX} bytes decompressed"),
            ));
        }
        return Ok(Some(String::from_utf8_lossy(&text).into_owned()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_are_urls_or_sources_lines() {
        assert_eq!(
            Mirror::parse("http://deb.debian.org/debian/").unwrap(),
            Mirror {
                url: "http://deb.debian.org/debian".into(),
                suite: None,
                components: vec![],
            }
        );
        let m = Mirror::parse(
            "deb [arch=amd64] http://security.debian.org/debian-security bookworm-security main",
        )
        .unwrap();
        assert_eq!(m.suite.as_deref(), Some("bookworm-security"));
        assert_eq!(m.components, ["main"]);
        assert_eq!(
            Mirror::parse("file:///srv/mirror").unwrap_err().exit_code(),
            2
        );
        assert_eq!(Mirror::parse("deb http://x").unwrap_err().exit_code(), 2);
    }

    #[test]
    fn a_release_s_sha256_list() {
        let r = "Origin: Debian\nMD5Sum:\n 0123 10 main/binary-amd64/Packages\nSHA256:\n ABCD 10 main/binary-amd64/Packages\n 9999 20 main/binary-amd64/Packages.gz\nAcquire-By-Hash: yes\n";
        let s = sha256_list(r);
        assert_eq!(s["main/binary-amd64/Packages"], "abcd");
        assert_eq!(s.len(), 2);
    }
}
