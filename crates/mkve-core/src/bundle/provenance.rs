//! The bundle's provenance (format 3, mkve-bundle(5)):
//! `provenance.intoto.json`, an in-toto Statement v1
//! (<https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md>)
//! whose predicate is SLSA provenance v1 (<https://slsa.dev/spec/v1.0/provenance>):
//! the root archive and the SBOM as subjects, the template, the package
//! source, the builder and every .deb as what the build used. Made by
//! `make.rs`, checked by `read.rs` against meta.json's digests.

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::root::index;

/// The member's name.
pub const MEMBER: &str = "provenance.intoto.json";
/// The largest provenance a reader takes, in bytes.
pub const MAX: u64 = 16 << 20;

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What kind of build this is: the SLSA buildType, documented in
/// mkve-bundle(5).
pub const BUILD_TYPE: &str = "https://mkve.invalid/bundle/v3";

/// What the provenance records of one build.
pub struct Build<'a> {
    pub template: &'a str,
    pub version: &'a str,
    pub hypervisor: &'a str,
    /// The hooks run, in order, with the sha256 of each.
    pub hooks: Vec<(String, String)>,
    /// `conf/params` and `conf/probes` (and every other conf member) with
    /// their sha256, from meta.json's members.
    pub conf: Vec<(String, String)>,
    /// Where the root came from: the suite, mirrors, architecture and
    /// variant of a root built from packages, or `{"given": "--rootfs"}`
    /// (a directory or an archive alike: the bundle is the same).
    pub root: Value,
    /// The .debs of the archive index (`root/index.rs`).
    pub debs: &'a [index::Entry],
    /// Subjects: member name → sha256.
    pub subjects: Vec<(String, String)>,
    /// RFC 3339 UTC, meta.json's `created`.
    pub created: &'a str,
}

/// The statement's JSON bytes (pretty, a final newline); the same build
/// gives the same bytes.
pub fn make(b: &Build) -> Result<Vec<u8>> {
    let debian = std::fs::read_to_string("/etc/debian_version")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let resolved: Vec<Value> = b
        .debs
        .iter()
        .map(|e| {
            json!({
                "uri": format!("{}/{}", e.archive, e.filename),
                "name": e.filename.rsplit('/').next().unwrap_or(&e.filename),
                "digest": {"sha256": e.sha256},
                "annotations": {"origin": e.origin},
            })
        })
        .collect();
    let statement = json!({
        "_type": STATEMENT_TYPE,
        "subject": b.subjects.iter().map(|(n, d)| json!({"name": n, "digest": {"sha256": d}})).collect::<Vec<_>>(),
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "template": {"name": b.template, "version": b.version},
                    "hypervisor": b.hypervisor,
                    "root": b.root,
                },
                "internalParameters": {
                    "hooks": b.hooks.iter().map(|(n, d)| json!({"name": n, "sha256": d})).collect::<Vec<_>>(),
                    "conf": b.conf.iter().map(|(n, d)| json!({"name": n, "sha256": d})).collect::<Vec<_>>(),
                },
                "resolvedDependencies": resolved,
            },
            "runDetails": {
                "builder": {
                    "id": "https://mkve.invalid/mkve-bundle",
                    "version": {"mkve": env!("CARGO_PKG_VERSION"), "debian": debian},
                },
                "metadata": {"finishedOn": b.created},
            },
        },
    });
    let mut v = serde_json::to_vec_pretty(&statement).map_err(|e| Error::Other(e.to_string()))?;
    v.push(b'\n');
    Ok(v)
}

/// Check a bundle's provenance (`bytes`, its digest already checked)
/// against meta.json's `members`: a Statement v1 with the SLSA v1
/// predicate whose every subject is a member with the same sha256, and
/// whose subjects include `rootfs.tar.zst` and `sbom.spdx.json`.
/// Errors (65, `label` and the member named): not such a statement, a
/// subject that is no member or whose digest differs, a subject missing.
pub fn check(
    bytes: &[u8],
    members: &std::collections::BTreeMap<String, String>,
    label: &std::path::Path,
) -> Result<()> {
    let bad = |why: String| Error::bundle(label, format!("{MEMBER}: {why}"));
    let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if v.get("_type").and_then(Value::as_str) != Some(STATEMENT_TYPE) {
        return Err(bad(format!("not an in-toto statement ({STATEMENT_TYPE})")));
    }
    if v.get("predicateType").and_then(Value::as_str) != Some(PREDICATE_TYPE) {
        return Err(bad(format!("predicate is not {PREDICATE_TYPE}")));
    }
    let subjects = v
        .get("subject")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no subject list".into()))?;
    let mut seen = Vec::new();
    for s in subjects {
        let name = s.get("name").and_then(Value::as_str).unwrap_or("");
        let digest = s.pointer("/digest/sha256").and_then(Value::as_str);
        let shown = name.escape_debug();
        match (members.get(name), digest) {
            (None, _) => {
                return Err(bad(format!(
                    "subject \"{shown}\" is not a member of the bundle"
                )))
            }
            (Some(_), None) => return Err(bad(format!("subject \"{shown}\" has no sha256"))),
            (Some(want), Some(got)) if want != got => {
                return Err(bad(format!(
                    "subject \"{shown}\": sha256 {} does not match the member's ({want})",
                    got.escape_debug()
                )))
            }
            _ => seen.push(name),
        }
    }
    for need in [super::members::ROOTFS, super::sbom::MEMBER] {
        if !seen.contains(&need) {
            return Err(bad(format!("no subject \"{need}\"")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::Path;

    fn build<'a>(debs: &'a [index::Entry]) -> Build<'a> {
        Build {
            template: "ntp-server",
            version: "1.2",
            hypervisor: "lxc",
            hooks: vec![("01-own".into(), "a".repeat(64))],
            conf: vec![],
            root: json!({"suite": "bookworm"}),
            debs,
            subjects: vec![
                ("rootfs.tar.zst".into(), "1".repeat(64)),
                ("sbom.spdx.json".into(), "2".repeat(64)),
            ],
            created: "2023-11-14T22:13:20Z",
        }
    }

    #[test]
    fn subjects_must_match_the_members() {
        let bytes = make(&build(&[])).unwrap();
        assert_eq!(bytes, make(&build(&[])).unwrap());
        let mut members = BTreeMap::from([
            ("rootfs.tar.zst".to_string(), "1".repeat(64)),
            ("sbom.spdx.json".to_string(), "2".repeat(64)),
        ]);
        let l = Path::new("b.bun");
        check(&bytes, &members, l).unwrap();
        members.insert("rootfs.tar.zst".into(), "3".repeat(64));
        let e = check(&bytes, &members, l).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "b.bun: provenance.intoto.json: subject \"rootfs.tar.zst\": sha256 {} does not match the member's ({})",
                "1".repeat(64),
                "3".repeat(64)
            )
        );
        assert_eq!(e.exit_code(), 65);
        members.remove("rootfs.tar.zst");
        let e = check(&bytes, &members, l).unwrap_err();
        assert!(
            e.to_string()
                .contains("subject \"rootfs.tar.zst\" is not a member"),
            "{e}"
        );
        let e = check(br#"{"_type": "x"}"#, &members, l).unwrap_err();
        assert!(e.to_string().contains("not an in-toto statement"), "{e}");
    }
}
