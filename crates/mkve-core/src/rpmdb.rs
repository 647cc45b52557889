//! rpm's database in a root (`var/lib/rpm`, rpm(8)): which packages are
//! installed in a root that hasher built (ALT), for the SBOM
//! (`bundle/sbom.rs`) and meta.json's package list, as `dpkg.rs` answers
//! for a Debian root.
//!
//! The database is read by the host's `rpm` (Debian's rpm 4.18 reads
//! ALT's Berkeley DB `Packages` through its read-only `bdb_ro` backend,
//! and sqlite and ndb databases natively), with `--dbpath` on a copy of
//! the root's database files: nothing of the root runs, nothing in it is
//! written (a query would leave sqlite's `-shm` and `-wal` files there),
//! and a link in it leads nowhere.

use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::exec::Cmd;

/// The database's directory in a root.
pub const DB: &str = "var/lib/rpm";

/// One installed package as rpm's database gives it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RpmPackage {
    pub name: String,
    /// `None`: the package has no epoch.
    pub epoch: Option<String>,
    pub version: String,
    pub release: String,
    pub arch: String,
    /// The source package's name and `VERSION-RELEASE`, from its
    /// `SOURCERPM` (`NAME-VERSION-RELEASE.src.rpm`); the package's own when
    /// it has none.
    pub source: String,
    pub source_version: String,
    /// The `PACKAGER` tag, as written (ALT's packages name their builder).
    pub packager: String,
    /// The sha256 of the package's header (`SHA256HEADER`), when it has one.
    pub header_sha256: Option<String>,
    /// The paths it installed, absolute.
    pub files: Vec<String>,
}

impl RpmPackage {
    /// rpm's `[EPOCH:]VERSION-RELEASE`, the version an SBOM and meta.json
    /// give.
    pub fn evr(&self) -> String {
        match &self.epoch {
            Some(e) => format!("{e}:{}-{}", self.version, self.release),
            None => format!("{}-{}", self.version, self.release),
        }
    }
}

/// Fields and records in rpm's answer: ASCII's unit, record and group
/// separators, which no tag value holds.
const FIELD: char = '\u{1f}';
const RECORD: char = '\u{1e}';
const FILE: char = '\u{1d}';

/// The query format: a record a package, its fields, its files.
fn query_format() -> String {
    let f = FIELD;
    let tags = [
        "NAME",
        "EPOCH",
        "VERSION",
        "RELEASE",
        "ARCH",
        "SOURCERPM",
        "PACKAGER",
        "SHA256HEADER",
    ];
    let fields: Vec<String> = tags.iter().map(|t| format!("%{{{t}}}")).collect();
    format!(
        "{}{f}[%{{FILENAMES}}{FILE}]{RECORD}",
        fields.join(&f.to_string())
    )
}

/// The packages the rpm database of `root` says are installed, sorted by
/// name, version and architecture; empty when the root has no database
/// (`var/lib/rpm` absent, not a directory, or empty: a Debian root).
/// Errors: the host has no `rpm` (69), rpm cannot read it (the process's
/// error), a file cannot be copied (1).
pub fn rpm_packages(root: &Path) -> Result<Vec<RpmPackage>> {
    let db = root.join(DB);
    match std::fs::symlink_metadata(&db) {
        Ok(m) if m.is_dir() => {}
        _ => return Ok(vec![]),
    }
    let copy = tempfile::Builder::new()
        .prefix("mkve-rpmdb.")
        .tempdir()
        .map_err(|e| Error::create(std::env::temp_dir(), e))?;
    let mut any = false;
    for e in std::fs::read_dir(&db).at(&db)?.flatten() {
        let Ok(t) = e.file_type() else { continue };
        // Regular files only: a link in an untrusted root leads nowhere.
        if t.is_file() {
            std::fs::copy(e.path(), copy.path().join(e.file_name())).at(e.path())?;
            any = true;
        }
    }
    if !any {
        return Ok(vec![]);
    }
    if !crate::exec::on_path("rpm") {
        return Err(Error::Unavailable {
            what: "rpm".into(),
            why: format!(
                "needed to read the rpm database of {} (install Debian's rpm)",
                root.display()
            ),
        });
    }
    let out = Cmd::new("rpm")
        .arg("--dbpath")
        .arg(copy.path())
        .args(["-qa", "--queryformat"])
        .arg(query_format())
        .what("rpm -qa")
        .output_checked()?;
    Ok(parse(&String::from_utf8_lossy(&out.stdout)))
}

/// rpm's answer to [`query_format`], as packages, sorted.
fn parse(text: &str) -> Vec<RpmPackage> {
    let none = |v: &str| v.is_empty() || v == "(none)";
    let mut out = Vec::new();
    for record in text.split(RECORD) {
        let f: Vec<&str> = record.trim_start_matches('\n').split(FIELD).collect();
        let [name, epoch, version, release, arch, srpm, packager, header, files] = f[..] else {
            continue;
        };
        if none(name) {
            continue;
        }
        let (source, source_version) =
            source_of(srpm).unwrap_or_else(|| (name.to_string(), format!("{version}-{release}")));
        out.push(RpmPackage {
            name: name.into(),
            epoch: (!none(epoch)).then(|| epoch.to_string()),
            version: version.into(),
            release: release.into(),
            arch: if none(arch) {
                String::new()
            } else {
                arch.into()
            },
            source,
            source_version,
            packager: if none(packager) {
                String::new()
            } else {
                packager.into()
            },
            header_sha256: (!none(header)).then(|| header.to_string()),
            files: files
                .split(FILE)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
        });
    }
    out.sort();
    out
}

/// `NAME-VERSION-RELEASE.src.rpm` → (NAME, `VERSION-RELEASE`).
fn source_of(srpm: &str) -> Option<(String, String)> {
    let nvr = srpm
        .strip_suffix(".src.rpm")
        .or_else(|| srpm.strip_suffix(".nosrc.rpm"))?;
    let (nv, release) = nvr.rsplit_once('-')?;
    let (name, version) = nv.rsplit_once('-')?;
    (!name.is_empty()).then(|| (name.to_string(), format!("{version}-{release}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpm_s_answer_is_read_field_by_field() {
        let (f, r, d) = (FIELD, RECORD, FILE);
        let text = format!(
            "bash{f}(none){f}5.2.15{f}alt1{f}x86_64{f}bash5-5.2.15-alt1.src.rpm{f}Some One <one@altlinux.org>{f}ab12{f}/bin/bash{d}/usr/share/doc/bash{d}{r}\
             \nglibc-core{f}6{f}2.32{f}alt5.p10.3{f}x86_64{f}glibc-2.32-alt5.p10.3.src.rpm{f}(none){f}(none){f}{r}\
             \ngpg-pubkey{f}(none){f}abcd{f}1234{f}(none){f}(none){f}(none){f}(none){f}{r}"
        );
        let got = parse(&text);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].name, "bash");
        assert_eq!(got[0].evr(), "5.2.15-alt1");
        assert_eq!(
            (got[0].source.as_str(), got[0].source_version.as_str()),
            ("bash5", "5.2.15-alt1")
        );
        assert_eq!(got[0].files, ["/bin/bash", "/usr/share/doc/bash"]);
        assert_eq!(got[0].header_sha256.as_deref(), Some("ab12"));
        assert_eq!(got[1].evr(), "6:2.32-alt5.p10.3");
        assert_eq!(got[1].packager, "");
        // A package without a source rpm (rpm's keys) is its own source.
        assert_eq!(
            (
                got[2].source.as_str(),
                got[2].source_version.as_str(),
                got[2].arch.as_str()
            ),
            ("gpg-pubkey", "abcd-1234", "")
        );
    }

    #[test]
    fn source_rpm_names_split_at_their_last_two_dashes() {
        assert_eq!(
            source_of("python3-module-foo-1.0-alt2.src.rpm"),
            Some(("python3-module-foo".into(), "1.0-alt2".into()))
        );
        assert_eq!(source_of("foo.src.rpm"), None);
        assert_eq!(source_of("(none)"), None);
    }

    #[test]
    fn a_root_without_an_rpm_database_has_no_packages() {
        let d = tempfile::tempdir().unwrap();
        assert!(rpm_packages(d.path()).unwrap().is_empty());
        std::fs::create_dir_all(d.path().join(DB)).unwrap();
        assert!(rpm_packages(d.path()).unwrap().is_empty());
    }

    /// A real database: a package built by rpmbuild, put in a root's
    /// database by rpm itself.
    #[test]
    #[ignore = "needs rpm and rpmbuild (scripts/deps installs them)"]
    fn a_database_rpm_wrote_is_read() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        mkve_testkit::install_test_rpm(root);
        let names = || -> Vec<_> {
            std::fs::read_dir(root.join(DB))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect()
        };
        let before = names();
        let got = rpm_packages(root).unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        let p = &got[0];
        let (name, evr, arch, packager, file) = mkve_testkit::TEST_RPM;
        assert_eq!(
            (p.name.as_str(), p.evr(), p.arch.as_str()),
            (name, evr.to_string(), arch)
        );
        assert_eq!(
            (p.source.as_str(), p.source_version.as_str()),
            (name, "1.2-alt1")
        );
        assert_eq!(p.packager, packager);
        assert_eq!(p.files, [file]);
        assert!(p.header_sha256.as_ref().is_some_and(|h| h.len() == 64));
        assert_eq!(before, names(), "the root's database is not written");
    }
}
