//! A layer's archive index: for every package the root holds, the .deb's
//! sha256 and file name as the archive's `Packages` index lists it, and
//! the APT origin (the `Release` file's Origin, Label, Suite, Codename)
//! of the list it came from. Made once when the layer is built, from the
//! apt lists mmdebstrap fetched (which it would otherwise delete), and kept
//! beside the layer's root as `apt-index.json`: a warm build reads what
//! the cold one wrote, so both give the same SBOM. Not here: dpkg's own
//! database, read at every build (`bundle/sbom.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// The file beside a layer's `root/`.
pub const FILE: &str = "apt-index.json";

/// One .deb as the archive lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    pub package: String,
    pub version: String,
    pub architecture: String,
    /// Lower-case hex, the `Packages` index's `SHA256` field.
    pub sha256: String,
    /// The `Filename` field: the .deb's path under the archive's root.
    pub filename: String,
    /// The archive, from the list's name: `deb.debian.org/debian-security`.
    pub archive: String,
    /// apt-cache policy's notation of the `Release` file:
    /// `o=Debian,a=stable-security,n=bookworm-security,l=Debian-Security`.
    pub origin: String,
}

/// The index kept beside the layer root `root` (an empty list when there
/// is none: a root from `--rootfs`, or a layer another backend built).
/// Errors: an index that is there but does not parse (65).
pub fn load_beside(root: &Path) -> Result<Vec<Entry>> {
    let path = root.with_file_name(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io(&path, e)),
    };
    serde_json::from_slice(&bytes).map_err(|e| Error::bundle(&path, e.to_string()))
}

/// Read apt's `lists` directory (Packages files plain, `.gz` or `.zst`,
/// beside their `InRelease` or `Release`) and keep the entries of the
/// packages `wanted` (name, version, architecture), each once (the first
/// list in byte order of file names that has it), sorted.
pub fn from_lists(lists: &Path, wanted: &BTreeSet<(String, String, String)>) -> Result<Vec<Entry>> {
    let mut names: Vec<String> = std::fs::read_dir(lists)
        .at(lists)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let releases: Vec<&String> = names
        .iter()
        .filter(|n| n.ends_with("_InRelease") || n.ends_with("_Release"))
        .collect();
    let mut found: BTreeMap<(String, String, String), Entry> = BTreeMap::new();
    for name in &names {
        let stem = ["", ".gz", ".zst"]
            .iter()
            .find_map(|x| name.strip_suffix(x).filter(|s| s.ends_with("_Packages")));
        let Some(stem) = stem else { continue };
        // The longest Release whose prefix this list's name starts with.
        let release = releases
            .iter()
            .filter_map(|r| {
                let p = r
                    .strip_suffix("InRelease")
                    .or_else(|| r.strip_suffix("Release"))?;
                stem.starts_with(p).then_some((p.len(), *r))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, r)| r);
        let origin = match release {
            Some(r) => origin_of(&std::fs::read_to_string(lists.join(r)).at(lists.join(r))?),
            None => String::new(),
        };
        let archive = stem
            .split("_dists_")
            .next()
            .unwrap_or(stem)
            .trim_end_matches("_Packages")
            .replace('_', "/")
            .replace("%5f", "_");
        let text = read_list(&lists.join(name))?;
        for e in entries_of(&text, wanted, &archive, &origin) {
            let key = (e.package.clone(), e.version.clone(), e.architecture.clone());
            found.entry(key).or_insert(e);
        }
    }
    Ok(found.into_values().collect())
}

fn read_list(path: &PathBuf) -> Result<String> {
    let f = std::fs::File::open(path).at(path)?;
    let mut r: Box<dyn Read> = match path.extension().and_then(|x| x.to_str()) {
        Some("gz") => Box::new(flate2::read::GzDecoder::new(f)),
        Some("zst") => Box::new(zstd::stream::read::Decoder::new(f).at(path)?),
        _ => Box::new(f),
    };
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes).at(path)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `o=…,a=…,n=…,l=…` from a Release file's fields, those it has.
pub(crate) fn origin_of(release: &str) -> String {
    let mut parts = Vec::new();
    for (key, field) in [
        ("o", "Origin"),
        ("a", "Suite"),
        ("n", "Codename"),
        ("l", "Label"),
    ] {
        let value = release.lines().find_map(|l| {
            l.strip_prefix(field)
                .and_then(|r| r.strip_prefix(':'))
                .map(str::trim)
        });
        if let Some(v) = value.filter(|v| !v.is_empty() && !v.contains(',')) {
            parts.push(format!("{key}={v}"));
        }
    }
    parts.join(",")
}

/// The fields of one stanza of a Packages file that mkve reads.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stanza<'a> {
    pub package: Option<&'a str>,
    pub version: Option<&'a str>,
    pub architecture: Option<&'a str>,
    pub sha256: Option<&'a str>,
    pub filename: Option<&'a str>,
}

/// Each stanza of the Packages file `text`, its fields as they read
/// (the layer index, and `--outdated`'s mirror indexes).
pub(crate) fn stanzas(text: &str) -> impl Iterator<Item = Stanza<'_>> {
    text.split("\n\n").map(|stanza| {
        let mut f = Stanza::default();
        for line in stanza.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let slot = match k {
                "Package" => &mut f.package,
                "Version" => &mut f.version,
                "Architecture" => &mut f.architecture,
                "SHA256" => &mut f.sha256,
                "Filename" => &mut f.filename,
                _ => continue,
            };
            *slot = Some(v.trim());
        }
        f
    })
}

/// The stanzas of a Packages file that name a wanted package.
fn entries_of(
    text: &str,
    wanted: &BTreeSet<(String, String, String)>,
    archive: &str,
    origin: &str,
) -> Vec<Entry> {
    let mut out = Vec::new();
    for f in stanzas(text) {
        let (Some(p), Some(v), Some(a), Some(sha), Some(file)) =
            (f.package, f.version, f.architecture, f.sha256, f.filename)
        else {
            continue;
        };
        let key = (p.to_string(), v.to_string(), a.to_string());
        let sha_ok = sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit());
        if sha_ok && wanted.contains(&key) {
            out.push(Entry {
                package: key.0,
                version: key.1,
                architecture: key.2,
                sha256: sha.to_ascii_lowercase(),
                filename: file.to_string(),
                archive: archive.to_string(),
                origin: origin.to_string(),
            });
        }
    }
    out
}

/// Write the index of `root`'s installed packages from `lists` beside
/// `root` ([`FILE`]), in the layer being built (renamed into place whole,
/// see `cache.rs`).
pub fn write_beside(root: &Path, lists: &Path) -> Result<()> {
    let wanted: BTreeSet<(String, String, String)> = crate::dpkg::dpkg_packages(root)
        .into_iter()
        .map(|p| (p.name, p.version, p.architecture))
        .collect();
    let entries = from_lists(lists, &wanted)?;
    let json = serde_json::to_vec_pretty(&entries).map_err(|e| Error::Other(e.to_string()))?;
    let path = root.with_file_name(FILE);
    std::fs::write(&path, json).map_err(|e| Error::create(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_lists_give_the_debs_and_their_origin() {
        let d = crate::testing::tree(&[
            (
                "deb.debian.org_debian_dists_bookworm_InRelease",
                "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\nLabel: Debian\nSuite: stable\nCodename: bookworm\nSHA256:\n abc 1 main/x\n",
            ),
            (
                "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages",
                &format!(
                    "Package: libc6\nVersion: 2.36-9\nArchitecture: amd64\nFilename: pool/main/g/glibc/libc6_2.36-9_amd64.deb\nSHA256: {a}\nDescription: x\n more\n\n\
                     Package: chrony\nVersion: 4.3-2\nArchitecture: amd64\nFilename: pool/c.deb\nSHA256: {b}\n\n\
                     Package: chrony\nVersion: 4.3-1\nArchitecture: amd64\nFilename: pool/c1.deb\nSHA256: {b}\n",
                    a = "a".repeat(64),
                    b = "B".repeat(64)
                ),
            ),
            (
                "deb.debian.org_debian-security_dists_bookworm-security_Release",
                "Origin: Debian\nLabel: Debian-Security\nSuite: stable-security\nCodename: bookworm-security\n",
            ),
            (
                "deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages",
                &format!(
                    "Package: libc6\nVersion: 2.36-9+deb12u10\nArchitecture: amd64\nFilename: pool/l.deb\nSHA256: {c}\n",
                    c = "c".repeat(64)
                ),
            ),
        ]);
        let wanted: BTreeSet<_> = [
            ("libc6", "2.36-9+deb12u10", "amd64"),
            ("chrony", "4.3-2", "amd64"),
            ("absent", "1", "all"),
        ]
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
        let got = from_lists(d.path(), &wanted).unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].package, "chrony");
        assert_eq!(got[0].sha256, "b".repeat(64));
        assert_eq!(got[0].filename, "pool/c.deb");
        assert_eq!(got[0].archive, "deb.debian.org/debian");
        assert_eq!(got[0].origin, "o=Debian,a=stable,n=bookworm,l=Debian");
        assert_eq!(got[1].version, "2.36-9+deb12u10");
        assert_eq!(got[1].archive, "deb.debian.org/debian-security");
        assert_eq!(
            got[1].origin,
            "o=Debian,a=stable-security,n=bookworm-security,l=Debian-Security"
        );
    }
}
