//! dpkg's database in a root (`var/lib/dpkg/status`, dpkg(1)): which
//! packages are installed. Read by the package layers (`root/index.rs`,
//! with no feature) and the SBOM (`bundle/sbom.rs`).

use std::path::Path;

/// One installed package as dpkg's `status` file gives it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DpkgPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// The `Source` field's name, or the package's own.
    pub source: String,
    /// The `Source` field's version in parentheses, or the package's own.
    pub source_version: String,
    /// The `Maintainer` field, as written.
    pub maintainer: String,
}

/// The packages `var/lib/dpkg/status` in `root` says are installed (status
/// `… installed`), sorted by name and architecture; empty without one.
pub fn dpkg_packages(root: &Path) -> Vec<DpkgPackage> {
    let Ok(text) = std::fs::read_to_string(root.join("var/lib/dpkg/status")) else {
        return vec![];
    };
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|r| r.strip_prefix(':'))
                    .map(str::trim)
            })
        };
        if !field("Status").is_some_and(|s| s.ends_with(" installed")) {
            continue;
        }
        let (Some(name), Some(version)) = (field("Package"), field("Version")) else {
            continue;
        };
        let (source, source_version) = match field("Source") {
            Some(s) => match s.split_once(' ') {
                Some((n, v)) => (n, v.trim().trim_start_matches('(').trim_end_matches(')')),
                None => (s, version),
            },
            None => (name, version),
        };
        out.push(DpkgPackage {
            name: name.into(),
            version: version.into(),
            architecture: field("Architecture").unwrap_or("").into(),
            source: source.into(),
            source_version: source_version.into(),
            maintainer: field("Maintainer").unwrap_or("").into(),
        });
    }
    out.sort();
    out
}
