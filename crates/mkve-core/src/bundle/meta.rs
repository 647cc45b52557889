//! meta.json: what a bundle is and the digest of every payload member.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hypervisor::Hypervisor;

/// The format written. Formats 1 (no `unpacked_size`) and 2 (no SBOM)
/// are still read.
pub const FORMAT: u32 = 3;

/// The formats read.
pub const FORMATS: [u32; 3] = [1, 2, 3];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub format: u32,
    pub template: TemplateRef,
    pub hypervisor: Hypervisor,
    pub packages: Packages,
    /// Hook names, in the order they ran.
    pub hooks: Vec<String>,
    /// RFC 3339, UTC; from `SOURCE_DATE_EPOCH` when set.
    pub created: String,
    /// Member path → lower-case hex sha256.
    pub members: BTreeMap<String, String>,
    /// Format 2: the length in bytes of `rootfs.tar.zst` once
    /// decompressed (its tar stream). A reader refuses a root that expands
    /// beyond it, so no bundle writes more than it declares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpacked_size: Option<u64>,
    /// A bundle `mkve-vm pack` made of a machine: what it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packed_from: Option<PackedFrom>,
}

/// meta.json's `packed_from` (mkve-bundle(5), mkve-vm(1) PACK): the bundle
/// the machine was made from (its root's digest, template and version),
/// the machine, the scrub operations applied and when it was packed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedFrom {
    /// The sha256 of the source bundle's `rootfs.tar.zst`.
    pub bundle: String,
    pub template: String,
    pub version: String,
    /// The machine's ID and name.
    pub machine: u32,
    pub name: String,
    /// The scrub operations applied, in order (the seed's files always go).
    pub scrub: Vec<String>,
    /// RFC 3339 UTC: `SOURCE_DATE_EPOCH` when set.
    pub packed: String,
    /// The machine's snapshot packed, when one was (`mkve-vm pack --snapshot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateRef {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packages {
    /// As the template (and the hypervisor's set) asked.
    pub requested: Vec<String>,
    /// What the root holds, where known (dpkg's database), sorted by name.
    #[serde(default)]
    pub installed: Vec<Installed>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Installed {
    pub name: String,
    pub version: String,
}

impl Meta {
    /// meta.json's bytes: pretty JSON and a newline (mkve-bundle(5)).
    pub fn to_json(&self) -> Result<Vec<u8>> {
        let mut v = serde_json::to_vec_pretty(self).map_err(|e| Error::Other(e.to_string()))?;
        v.push(b'\n');
        Ok(v)
    }

    pub fn from_json(bytes: &[u8], label: &Path) -> Result<Meta> {
        let bad = |why: String| Error::bundle(label, format!("{}: {why}", super::members::META));
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        match value.get("format").and_then(|f| f.as_u64()) {
            Some(f) if FORMATS.iter().any(|k| u64::from(*k) == f) => {}
            Some(f) => {
                return Err(bad(format!(
                    "format {f} is not supported (this mkve reads formats 1 to 3)"
                )))
            }
            None => return Err(bad("no \"format\" number".into())),
        }
        let meta: Meta = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
        if meta.format >= 2 && meta.unpacked_size.is_none() {
            return Err(bad(format!(
                "format {} declares no \"unpacked_size\"",
                meta.format
            )));
        }
        for (path, digest) in &meta.members {
            if !is_payload_name(path) {
                return Err(bad(format!(
                    "member \"{path}\": payload members are {}, {}, {} and {}/… with plain relative paths",
                    super::members::ROOTFS,
                    super::sbom::MEMBER,
                    super::provenance::MEMBER,
                    super::members::CONF
                )));
            }
            if digest.len() != 64
                || !digest
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                return Err(bad(format!(
                    "member \"{path}\": \"{digest}\" is not a sha256 digest"
                )));
            }
        }
        if !meta.members.contains_key(super::members::ROOTFS) {
            return Err(bad(format!("lists no {} member", super::members::ROOTFS)));
        }
        for need in [super::sbom::MEMBER, super::provenance::MEMBER] {
            if meta.format >= 3 && !meta.members.contains_key(need) {
                return Err(bad(format!(
                    "format {} lists no {need} member",
                    meta.format
                )));
            }
        }
        meta.check_fields().map_err(bad)?;
        Ok(meta)
    }

    /// The fields a template gave, checked by mkve-template(5)'s own rules
    /// (a signature vouches for who made a bundle, not that its fields are
    /// sound): the template's name and version, the package names, the
    /// hook names; the installed packages' names and versions (Debian
    /// policy 5.6.12: letters, digits and `.+~:-`); `created` as RFC 3339
    /// UTC (`YYYY-MM-DDTHH:MM:SSZ`). Errors: the first field that breaks
    /// its rule, its value escaped.
    fn check_fields(&self) -> std::result::Result<(), String> {
        use crate::template::{check_name, check_version, is_hook_name, is_package_name};
        check_name(&self.template.name)?;
        check_version(&self.template.version)?;
        for p in &self.packages.requested {
            if !is_package_name(p) {
                return Err(format!("\"{}\" is not a package name", p.escape_debug()));
            }
        }
        for i in &self.packages.installed {
            let version_ok = !i.version.is_empty()
                && i.version
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".+~:-".contains(c));
            if !is_package_name(&i.name) || !version_ok {
                return Err(format!(
                    "installed package \"{}\" \"{}\" is not a package name and version",
                    i.name.escape_debug(),
                    i.version.escape_debug()
                ));
            }
        }
        for h in &self.hooks {
            if !is_hook_name(h) {
                return Err(format!("\"{}\" is not a hook name", h.escape_debug()));
            }
        }
        if !crate::date::is_rfc3339_utc(&self.created) {
            return Err(format!(
                "created \"{}\" is not an RFC 3339 UTC date (YYYY-MM-DDTHH:MM:SSZ)",
                self.created.escape_debug()
            ));
        }
        Ok(())
    }
}

/// `rootfs.tar.zst`, `sbom.spdx.json`, `provenance.intoto.json`, or
/// `conf/` and a relative path
/// with no `.`, `..` or empty parts.
fn is_payload_name(name: &str) -> bool {
    match name
        .strip_prefix(super::members::CONF)
        .and_then(|r| r.strip_prefix('/'))
    {
        Some(rel) => {
            !rel.is_empty()
                && rel
                    .split('/')
                    .all(|p| !p.is_empty() && p != "." && p != "..")
        }
        None => [
            super::members::ROOTFS,
            super::sbom::MEMBER,
            super::provenance::MEMBER,
        ]
        .contains(&name),
    }
}

/// The packages dpkg says are installed in `root`, and `rpms`, those rpm's
/// database says (an ALT root: `[EPOCH:]VERSION-RELEASE`), sorted; empty
/// when the root has neither database.
pub fn installed(root: &Path, rpms: &[crate::rpmdb::RpmPackage]) -> Vec<Installed> {
    let mut out: Vec<Installed> = crate::dpkg::dpkg_packages(root)
        .into_iter()
        .map(|p| Installed {
            name: p.name,
            version: p.version,
        })
        .collect();
    out.extend(rpms.iter().map(|p| Installed {
        name: p.name.clone(),
        version: p.evr(),
    }));
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_gives_installed_packages_only() {
        let d = crate::testing::tree(&[(
            "var/lib/dpkg/status",
            "Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13\n\n\
             Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n\
             Package: chrony\nStatus: install ok installed\nArchitecture: amd64\nVersion: 4.3-2\n",
        )]);
        let got = installed(d.path(), &[]);
        assert_eq!(
            got,
            vec![
                Installed {
                    name: "chrony".into(),
                    version: "4.3-2".into()
                },
                Installed {
                    name: "zlib1g".into(),
                    version: "1:1.2.13".into()
                }
            ]
        );
    }

    #[test]
    fn payload_names() {
        for ok in [
            "rootfs.tar.zst",
            "sbom.spdx.json",
            "conf/config",
            "conf/a/b",
        ] {
            assert!(is_payload_name(ok), "{ok}");
        }
        for bad in [
            "../x",
            "conf/",
            "conf/../x",
            "conf//x",
            "conf/./x",
            "meta.json",
            "rootfs.tar",
            "/conf/x",
        ] {
            assert!(!is_payload_name(bad), "{bad}");
        }
    }

    #[test]
    fn other_formats_and_bad_digests_are_refused() {
        let l = Path::new("b.bun");
        let e = Meta::from_json(br#"{"format": 4}"#, l).unwrap_err();
        assert_eq!(
            e.to_string(),
            "b.bun: meta.json: format 4 is not supported (this mkve reads formats 1 to 3)"
        );
        let e = Meta::from_json(b"[", l).unwrap_err();
        assert!(e.to_string().starts_with("b.bun: meta.json: EOF"), "{e}");
    }
}
