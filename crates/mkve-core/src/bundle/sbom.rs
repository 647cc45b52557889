//! The bundle's SBOM (format 3, mkve-bundle(5)): `sbom.spdx.json`, an
//! SPDX 2.3 JSON document (<https://spdx.github.io/spdx-spec/v2.3/>) made
//! at build from the root's dpkg database (`var/lib/dpkg/status` and
//! `info/*.list`) and the layer's archive index (`root/index.rs`); and its
//! CycloneDX 1.5 JSON form (<https://cyclonedx.org/docs/1.5/json/>),
//! converted from the SPDX document when asked. What is not here: how the
//! member travels and is checked (`read.rs`, `make.rs`).

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::root::index;

/// The member's name.
pub const MEMBER: &str = "sbom.spdx.json";
/// The largest SBOM a reader takes, in bytes.
pub const MAX: u64 = 32 << 20;

pub use crate::dpkg::{dpkg_packages, DpkgPackage};

/// What the SBOM describes besides the root: the bundle's template and
/// hypervisor, its creation time, and the digest of `rootfs.tar.zst`.
pub struct Subject<'a> {
    pub template: &'a str,
    pub version: &'a str,
    pub hypervisor: &'a str,
    /// RFC 3339 UTC, meta.json's `created`.
    pub created: &'a str,
    /// Lower-case hex sha256 of `rootfs.tar.zst`.
    pub rootfs_sha256: &'a str,
}

/// Paths never listed among the files outside packages: dpkg's and rpm's
/// databases (they are what the packages are read from).
const NOT_FILES: &[&str] = &["var/lib/dpkg", crate::rpmdb::DB];

/// One installed package, of dpkg's database or rpm's, as the SBOM lists
/// it.
struct Package<'a> {
    /// `deb` or `rpm`: its SPDX ID's and CycloneDX properties' prefix.
    kind: &'static str,
    name: &'a str,
    /// dpkg's version, or rpm's `[EPOCH:]VERSION-RELEASE`.
    version: String,
    architecture: &'a str,
    source: &'a str,
    source_version: &'a str,
    /// dpkg's Maintainer, rpm's Packager.
    maintainer: &'a str,
    purl: String,
    /// rpm's header digest (`SHA256HEADER`), told in the comment.
    header_sha256: Option<&'a str>,
}

/// The SPDX 2.3 document of the root `root` (its JSON bytes, pretty, with
/// a final newline): one package for the bundle, one per installed deb
/// (name and `versionInfo` dpkg's, the supplier its Maintainer, the purl
/// `pkg:deb/debian/NAME@VERSION?arch=A&distro=debian-12&upstream=SRC`,
/// the .deb's sha256 and APT origin from `index`, the source package and
/// version in `sourceInfo`), one per installed rpm of an ALT root (name,
/// `[EPOCH:]VERSION-RELEASE`, the supplier its Packager, the purl
/// `pkg:rpm/altlinux/NAME@VERSION-RELEASE?arch=A&distro=altlinux-p10&epoch=E`
/// ([`rpm_purl`]), the source rpm in `sourceInfo`, its header's sha256 in
/// the comment), and one file per regular file no package owns, outside
/// `excluded` (paths relative to the root), with its sha256 and SHA-1
/// (which SPDX 2.3 requires of files). The same root and subject give the
/// same bytes. `rpms` are the root's rpm packages (`rpmdb::rpm_packages`,
/// read once by the caller for meta.json too). Errors: a file that cannot
/// be read.
pub fn spdx(
    root: &Path,
    rpms: &[crate::rpmdb::RpmPackage],
    index: &[index::Entry],
    excluded: &[PathBuf],
    subject: &Subject,
) -> Result<Vec<u8>> {
    let debs = dpkg_packages(root);
    let (os_id, os_version) = os_release(root);
    let distro = os_id
        .as_deref()
        .zip(os_version.as_deref())
        .map(|(i, v)| format!("{i}-{v}"));
    let by_key: BTreeMap<(&str, &str, &str), &index::Entry> = index
        .iter()
        .map(|e| {
            (
                (
                    e.package.as_str(),
                    e.version.as_str(),
                    e.architecture.as_str(),
                ),
                e,
            )
        })
        .collect();
    let all: Vec<Package> = debs
        .iter()
        .map(|p| Package {
            kind: "deb",
            name: &p.name,
            version: p.version.clone(),
            architecture: &p.architecture,
            source: &p.source,
            source_version: &p.source_version,
            maintainer: &p.maintainer,
            purl: purl(p, distro.as_deref()),
            header_sha256: None,
        })
        .chain(rpms.iter().map(|p| Package {
            kind: "rpm",
            name: &p.name,
            version: p.evr(),
            architecture: &p.arch,
            source: &p.source,
            source_version: &p.source_version,
            maintainer: &p.packager,
            purl: rpm_purl(p, os_id.as_deref(), distro.as_deref()),
            header_sha256: p.header_sha256.as_deref(),
        }))
        .collect();
    let bundle_id = "SPDXRef-Bundle";
    let mut packages = vec![json!({
        "SPDXID": bundle_id,
        "name": subject.template,
        "versionInfo": subject.version,
        "downloadLocation": "NOASSERTION",
        // True: the files no package owns are listed (CONTAINS), with
        // the verification code of SPDX 2.3 section 7.9 over them.
        "filesAnalyzed": true,
        "checksums": [{"algorithm": "SHA256", "checksumValue": subject.rootfs_sha256}],
        "primaryPackagePurpose": "OPERATING-SYSTEM",
        "comment": format!("The root (rootfs.tar.zst) of the mkve bundle of template {} {} for {}.", subject.template, subject.version, subject.hypervisor),
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": bundle_id,
    })];
    let mut ids = HashSet::new();
    for p in &all {
        let id = unique_id(
            &mut ids,
            &format!("SPDXRef-{}-{}-{}", p.kind, p.name, p.architecture),
        );
        let mut v = Map::new();
        v.insert("SPDXID".into(), json!(id));
        v.insert("name".into(), json!(p.name));
        v.insert("versionInfo".into(), json!(p.version));
        v.insert("supplier".into(), json!(supplier(p.maintainer)));
        v.insert("downloadLocation".into(), json!("NOASSERTION"));
        v.insert("filesAnalyzed".into(), json!(false));
        let entry = (p.kind == "deb")
            .then(|| by_key.get(&(p.name, p.version.as_str(), p.architecture)))
            .flatten();
        if let Some(e) = entry {
            v.insert(
                "checksums".into(),
                json!([{"algorithm": "SHA256", "checksumValue": e.sha256}]),
            );
        }
        v.insert(
            "sourceInfo".into(),
            json!(format!(
                "built package from: {} {}",
                p.source, p.source_version
            )),
        );
        v.insert("licenseConcluded".into(), json!("NOASSERTION"));
        v.insert("licenseDeclared".into(), json!("NOASSERTION"));
        v.insert("copyrightText".into(), json!("NOASSERTION"));
        let mut comment = format!("Architecture: {}\n", p.architecture);
        comment += &format!("Source: {} ({})\n", p.source, p.source_version);
        if let Some(e) = entry {
            comment += &format!(
                "APT-Origin: {}\nArchive: {}\nFilename: {}\n",
                e.origin, e.archive, e.filename
            );
        }
        if let Some(h) = p.header_sha256 {
            comment += &format!("Header-SHA256: {h}\n");
        }
        v.insert("comment".into(), json!(comment));
        v.insert(
            "externalRefs".into(),
            json!([{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": p.purl,
            }]),
        );
        packages.push(Value::Object(v));
        relationships.push(json!({
            "spdxElementId": bundle_id,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    let rpm_files: Vec<&str> = rpms
        .iter()
        .flat_map(|p| p.files.iter().map(String::as_str))
        .collect();
    let outside = outside_files(root, excluded, &rpm_files)?;
    let mut sha1s: Vec<&str> = outside.iter().map(|(_, _, s)| s.as_str()).collect();
    sha1s.sort();
    packages[0]["packageVerificationCode"] = json!({
        "packageVerificationCodeValue": crate::digest::hex(&sha1::Sha1::digest(sha1s.concat().as_bytes())),
    });
    let mut files = Vec::new();
    for (n, (rel, sha256, sha1)) in outside.into_iter().enumerate() {
        let id = format!("SPDXRef-File-{n}");
        files.push(json!({
            "SPDXID": id,
            "fileName": format!("./{rel}"),
            "checksums": [
                {"algorithm": "SHA1", "checksumValue": sha1},
                {"algorithm": "SHA256", "checksumValue": sha256},
            ],
            "licenseConcluded": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "comment": "In no package: made by a hook, a --copy, or a package's scripts.",
        }));
        relationships.push(json!({
            "spdxElementId": bundle_id,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    let doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}-{}-{}", subject.template, subject.version, subject.hypervisor),
        "documentNamespace": format!(
            "https://spdx.org/spdxdocs/mkve-{}-{}-{}-{}",
            subject.template, subject.version, subject.hypervisor, subject.rootfs_sha256
        ),
        "creationInfo": {
            "created": subject.created,
            "creators": [format!("Tool: mkve-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "files": files,
        "relationships": relationships,
    });
    let mut v = serde_json::to_vec_pretty(&doc).map_err(|e| Error::Other(e.to_string()))?;
    v.push(b'\n');
    Ok(v)
}

/// The root's `ID` and `VERSION_ID` from its `etc/os-release` (or
/// `usr/lib/os-release`), the ID lower-case: the distribution of its
/// purls (`debian-12`) and an rpm purl's namespace (`altlinux`).
fn os_release(root: &Path) -> (Option<String>, Option<String>) {
    let Ok(text) = std::fs::read_to_string(root.join("etc/os-release"))
        .or_else(|_| std::fs::read_to_string(root.join("usr/lib/os-release")))
    else {
        return (None, None);
    };
    let get = |k: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(k)
                .and_then(|r| r.strip_prefix('='))
                .map(|v| v.trim().trim_matches('"').to_string())
                .filter(|v| !v.is_empty())
        })
    };
    (get("ID").map(|i| i.to_ascii_lowercase()), get("VERSION_ID"))
}

/// The package URL of an rpm (<https://github.com/package-url/purl-spec>,
/// type `rpm`): `pkg:rpm/NAMESPACE/NAME@VERSION-RELEASE?arch=A&distro=D&epoch=E`,
/// the namespace the root's os-release ID (`altlinux` when it has none),
/// encoded as [`purl`]'s.
pub fn rpm_purl(p: &crate::rpmdb::RpmPackage, os: Option<&str>, distro: Option<&str>) -> String {
    package_url(
        "rpm",
        os.unwrap_or("altlinux"),
        &p.name,
        &format!("{}-{}", p.version, p.release),
        "",
        &[
            ("arch", &p.arch),
            ("distro", distro.unwrap_or("")),
            ("epoch", p.epoch.as_deref().unwrap_or("")),
        ],
    )
}

/// The package URL (<https://github.com/package-url/purl-spec>, type
/// `deb`): `pkg:deb/debian/NAME@VERSION?arch=A&distro=D&upstream=SRC`,
/// qualifiers in their sorted order, each part percent-encoded but for
/// letters, digits and `.-_~` (and `:` in the version, the epoch's).
pub fn purl(p: &DpkgPackage, distro: Option<&str>) -> String {
    package_url(
        "deb",
        "debian",
        &p.name,
        &p.version,
        ":",
        &[
            ("arch", &p.architecture),
            ("distro", distro.unwrap_or("")),
            ("upstream", &p.source),
        ],
    )
}

/// `pkg:TYPE/NAMESPACE/NAME@VERSION?K=V&…`: `qualifiers` in the order
/// given (sorted by key, as the purl spec asks), the empty ones left out
/// (and `?` with them when none is left); each part percent-encoded but
/// for letters, digits, `.-_~`, and `keep` in the version.
fn package_url(
    ty: &str,
    namespace: &str,
    name: &str,
    version: &str,
    keep: &str,
    qualifiers: &[(&str, &str)],
) -> String {
    let q: Vec<String> = qualifiers
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", pct(v, "")))
        .collect();
    format!(
        "pkg:{ty}/{}/{}@{}{}{}",
        pct(namespace, ""),
        pct(name, ""),
        pct(version, keep),
        if q.is_empty() { "" } else { "?" },
        q.join("&")
    )
}

fn pct(s: &str, keep: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.as_bytes().contains(&b) {
            out.push(b as char);
        } else {
            out += &format!("%{b:02X}");
        }
    }
    out
}

/// SPDX's actor from a Maintainer field: `Person: NAME (EMAIL)`, or
/// `NOASSERTION` when there is none.
fn supplier(maintainer: &str) -> String {
    let m = maintainer.trim();
    if m.is_empty() {
        return "NOASSERTION".into();
    }
    match m.split_once('<') {
        Some((name, rest)) => {
            let email = rest.trim_end().trim_end_matches('>');
            format!("Person: {} ({})", name.trim(), email.trim())
        }
        None => format!("Person: {m}"),
    }
}

/// `base`, or `base-2`, `base-3`… the first not yet in `ids`, with every
/// character SPDX does not allow in an ID (letters, digits, `.` and `-`)
/// written `.XX` (its hex).
fn unique_id(ids: &mut HashSet<String>, base: &str) -> String {
    let mut clean = String::new();
    for c in base.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
            clean.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                clean += &format!(".{b:02X}");
            }
        }
    }
    let mut id = clean.clone();
    let mut n = 2;
    while !ids.insert(id.clone()) {
        id = format!("{clean}-{n}");
        n += 1;
    }
    id
}

/// The paths dpkg says its packages installed (`var/lib/dpkg/info/*.list`)
/// and those of `rpm_files` (rpm's packages'), relative to the root; a path under a top-level symbolic link to a
/// directory (`bin` → `usr/bin`, merged /usr) also under its target.
fn owned_paths(root: &Path, rpm_files: &[&str]) -> Result<HashSet<String>> {
    let info = root.join("var/lib/dpkg/info");
    let mut lists: Vec<String> = Vec::new();
    if let Ok(dir) = std::fs::read_dir(&info) {
        for e in dir.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "list") {
                continue;
            }
            lists.push(std::fs::read_to_string(&p).at(&p)?);
        }
    }
    let mut owned = HashSet::new();
    let mut aliases = BTreeMap::new();
    if let Ok(top) = std::fs::read_dir(root) {
        for e in top.flatten() {
            if let (Ok(t), Some(name)) = (std::fs::read_link(e.path()), e.file_name().to_str()) {
                if let Some(t) = t
                    .to_str()
                    .filter(|t| !t.starts_with('/') && !t.contains(".."))
                {
                    aliases.insert(name.to_string(), t.trim_end_matches('/').to_string());
                }
            }
        }
    }
    let lines = lists
        .iter()
        .flat_map(|t| t.lines())
        .chain(rpm_files.iter().copied());
    {
        for line in lines {
            let rel = line.trim_start_matches('/');
            if rel.is_empty() {
                continue;
            }
            if let Some((top, rest)) = rel.split_once('/') {
                if let Some(t) = aliases.get(top) {
                    owned.insert(format!("{t}/{rest}"));
                }
            }
            owned.insert(rel.to_string());
        }
    }
    Ok(owned)
}

/// Every regular file of `root` no package owns, but those under
/// [`NOT_FILES`] and `excluded`: (path relative to the root, sha256,
/// SHA-1), in byte order of paths.
fn outside_files(
    root: &Path,
    excluded: &[PathBuf],
    rpm_files: &[&str],
) -> Result<Vec<(String, String, String)>> {
    let owned = owned_paths(root, rpm_files)?;
    let mut out = Vec::new();
    let walk = walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .follow_links(false)
        .same_file_system(true)
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| {
            let rel = e.path().strip_prefix(root).unwrap_or(e.path());
            !NOT_FILES.iter().any(|n| rel == Path::new(n)) && !excluded.iter().any(|x| rel == x)
        });
    for e in walk {
        let e = e.map_err(|e| Error::io(root, e.into()))?;
        if !e.file_type().is_file() {
            continue;
        }
        let rel = e.path().strip_prefix(root).unwrap_or(e.path());
        let rel = rel.to_string_lossy().into_owned();
        if owned.contains(&rel) {
            continue;
        }
        let mut f = std::fs::File::open(e.path()).at(e.path())?;
        let (mut a, mut b) = (Sha256::new(), sha1::Sha1::new());
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = f.read(&mut buf).at(e.path())?;
            if n == 0 {
                break;
            }
            a.update(&buf[..n]);
            b.update(&buf[..n]);
        }
        out.push((
            rel,
            crate::digest::hex(&a.finalize()),
            crate::digest::hex(&b.finalize()),
        ));
    }
    Ok(out)
}

/// The SPDX document `spdx` (a bundle's member, untrusted: `label` names
/// it in errors) as a CycloneDX 1.5 JSON value: the bundle as
/// `metadata.component`, each SPDX package a `library` component (its
/// purl, sha256, supplier, and `mkve:deb:*` properties from its comment),
/// each file a `file` component. The serial number is a UUID made from the
/// SPDX document's sha256, so one SBOM always converts to the same BOM.
/// Errors (65): not JSON, not SPDX 2.3, an element that is not an object.
pub fn to_cyclonedx(spdx: &[u8], label: &Path) -> Result<Value> {
    let bad = |why: &str| Error::bundle(label, format!("{MEMBER}: {why}"));
    let doc: Value = serde_json::from_slice(spdx).map_err(|e| bad(&e.to_string()))?;
    check_spdx(&doc).map_err(|e| bad(&e))?;
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let hashes = |v: &Value| -> Vec<Value> {
        let list = v.get("checksums").and_then(Value::as_array);
        list.into_iter()
            .flatten()
            .filter_map(|c| {
                let alg = match c.get("algorithm")?.as_str()? {
                    "SHA1" => "SHA-1",
                    "SHA256" => "SHA-256",
                    "SHA512" => "SHA-512",
                    "MD5" => "MD5",
                    _ => return None,
                };
                let content = c.get("checksumValue")?.as_str()?;
                Some(json!({"alg": alg, "content": content}))
            })
            .collect()
    };
    let digest = Sha256::digest(spdx);
    let h = crate::digest::hex(&digest);
    let serial = format!(
        "urn:uuid:{}-{}-5{}-{:x}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        8 | (digest[8] & 3),
        &h[17..20],
        &h[20..32]
    );
    let created = doc
        .pointer("/creationInfo/created")
        .and_then(Value::as_str)
        .unwrap_or("");
    let described = doc
        .get("relationships")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|r| r.get("relationshipType").and_then(Value::as_str) == Some("DESCRIBES"))
        .and_then(|r| text(r, "relatedSpdxElement"));
    let mut metadata = json!({
        "timestamp": created,
        "tools": {"components": [{
            "type": "application",
            "name": "mkve",
            "version": env!("CARGO_PKG_VERSION"),
        }]},
    });
    let mut components = Vec::new();
    for p in doc
        .get("packages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = text(p, "SPDXID").unwrap_or_default();
        let mut c = Map::new();
        let is_bundle = described.as_deref() == Some(id.as_str());
        c.insert(
            "type".into(),
            json!(if is_bundle {
                "operating-system"
            } else {
                "library"
            }),
        );
        c.insert("bom-ref".into(), json!(id));
        c.insert("name".into(), json!(text(p, "name").unwrap_or_default()));
        if let Some(v) = text(p, "versionInfo") {
            c.insert("version".into(), json!(v));
        }
        if let Some(s) = text(p, "supplier").and_then(|s| {
            s.strip_prefix("Person: ")
                .or(s.strip_prefix("Organization: "))
                .map(str::to_string)
        }) {
            let supplier = match s.strip_suffix(')').and_then(|s| s.rsplit_once(" (")) {
                Some((name, email)) => json!({"name": name, "contact": [{"email": email}]}),
                None => json!({"name": s}),
            };
            c.insert("supplier".into(), supplier);
        }
        let hs = hashes(p);
        if !hs.is_empty() {
            c.insert("hashes".into(), json!(hs));
        }
        let purl = p
            .get("externalRefs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|r| r.get("referenceType").and_then(Value::as_str) == Some("purl"))
            .and_then(|r| text(r, "referenceLocator"));
        let kind = if purl.as_deref().is_some_and(|u| u.starts_with("pkg:rpm/")) {
            "rpm"
        } else {
            "deb"
        };
        if let Some(u) = purl {
            c.insert("purl".into(), json!(u));
        }
        let props: Vec<Value> = text(p, "comment")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(": "))
            .filter(|(k, _)| {
                k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !k.is_empty()
            })
            .map(|(k, v)| json!({"name": format!("mkve:{kind}:{}", k.to_ascii_lowercase()), "value": v}))
            .collect();
        if !props.is_empty() && !is_bundle {
            c.insert("properties".into(), json!(props));
        }
        if is_bundle {
            metadata["component"] = Value::Object(c);
        } else {
            components.push(Value::Object(c));
        }
    }
    for f in doc
        .get("files")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut c = Map::new();
        c.insert("type".into(), json!("file"));
        c.insert(
            "bom-ref".into(),
            json!(text(f, "SPDXID").unwrap_or_default()),
        );
        c.insert(
            "name".into(),
            json!(text(f, "fileName").unwrap_or_default()),
        );
        let hs = hashes(f);
        if !hs.is_empty() {
            c.insert("hashes".into(), json!(hs));
        }
        components.push(Value::Object(c));
    }
    Ok(json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": serial,
        "version": 1,
        "metadata": metadata,
        "components": components,
    }))
}

/// What a reader asks of an SBOM member before it uses it: a JSON object
/// whose `spdxVersion` is `SPDX-2.3`, whose `packages`, `files` and
/// `relationships` are arrays of objects where present.
pub fn check_spdx(doc: &Value) -> std::result::Result<(), String> {
    if doc.get("spdxVersion").and_then(Value::as_str) != Some("SPDX-2.3") {
        return Err("not an SPDX 2.3 document (spdxVersion)".into());
    }
    for k in ["packages", "files", "relationships"] {
        match doc.get(k) {
            None => {}
            Some(Value::Array(a)) if a.iter().all(Value::is_object) => {}
            Some(_) => return Err(format!("\"{k}\" is not an array of objects")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> tempfile::TempDir {
        crate::testing::tree(&[
            (
                "var/lib/dpkg/status",
                "Package: libstdc++6\nStatus: install ok installed\nArchitecture: amd64\nSource: gcc-12 (12.2.0-14)\nVersion: 12.2.0-14\nMaintainer: Debian GCC Maintainers <debian-gcc@lists.debian.org>\nDescription: x\n y\n\n\
                 Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n\
                 Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u10\nMaintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\n\n\
                 Package: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 1:2025b-0+deb12u1\nMaintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\n",
            ),
            ("var/lib/dpkg/info/libc6:amd64.list", "/.\n/usr\n/usr/lib/libc.so.6\n/bin/ldd\n"),
            ("usr/lib/libc.so.6", "elf"),
            ("usr/bin/ldd", "script"),
            ("etc/hook-log", "01-own\n"),
            ("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n"),
            ("etc/hostname", "build-host\n"),
        ])
    }

    fn subject() -> Subject<'static> {
        Subject {
            template: "ntp-server",
            version: "1.2",
            hypervisor: "lxc",
            created: "2023-11-14T22:13:20Z",
            rootfs_sha256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        }
    }

    #[test]
    fn packages_purls_and_files_outside_packages() {
        let r = root();
        std::os::unix::fs::symlink("usr/bin", r.path().join("bin")).unwrap();
        let index = vec![index::Entry {
            package: "libc6".into(),
            version: "2.36-9+deb12u10".into(),
            architecture: "amd64".into(),
            sha256: "c".repeat(64),
            filename: "pool/l.deb".into(),
            archive: "deb.debian.org/debian-security".into(),
            origin: "o=Debian,n=bookworm-security".into(),
        }];
        let bytes = spdx(r.path(), &[], &index, &["etc/hostname".into()], &subject()).unwrap();
        let again = spdx(r.path(), &[], &index, &["etc/hostname".into()], &subject()).unwrap();
        assert_eq!(bytes, again, "the same root gives the same bytes");
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        let pkgs = doc["packages"].as_array().unwrap();
        let names: Vec<&str> = pkgs.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["ntp-server", "libc6", "libstdc++6", "tzdata"]);
        let libc = &pkgs[1];
        assert_eq!(libc["versionInfo"], "2.36-9+deb12u10");
        assert_eq!(
            libc["externalRefs"][0]["referenceLocator"],
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12&upstream=glibc"
        );
        assert_eq!(libc["checksums"][0]["checksumValue"], "c".repeat(64));
        assert_eq!(
            libc["supplier"],
            "Person: GNU Libc Maintainers (debian-glibc@lists.debian.org)"
        );
        assert_eq!(
            libc["sourceInfo"],
            "built package from: glibc 2.36-9+deb12u10"
        );
        assert!(libc["comment"]
            .as_str()
            .unwrap()
            .contains("APT-Origin: o=Debian,n=bookworm-security\n"));
        let cxx = &pkgs[2];
        assert_eq!(cxx["SPDXID"], "SPDXRef-deb-libstdc.2B.2B6-amd64");
        assert_eq!(cxx["sourceInfo"], "built package from: gcc-12 12.2.0-14");
        assert!(cxx.get("checksums").is_none(), "not in the index");
        assert_eq!(
            pkgs[3]["externalRefs"][0]["referenceLocator"],
            "pkg:deb/debian/tzdata@1:2025b-0%2Bdeb12u1?arch=all&distro=debian-12&upstream=tzdata"
        );
        let files = mkve_testkit::spdx_file_names(&doc);
        // usr/bin/ldd is owned as /bin/ldd through the bin → usr/bin link;
        // etc/hostname is excluded; dpkg's database is never listed.
        assert_eq!(files, ["./etc/hook-log", "./etc/os-release"]);
        assert_eq!(
            doc["files"][0]["checksums"][1]["checksumValue"],
            crate::digest::hex(&Sha256::digest(b"01-own\n"))
        );
    }

    #[test]
    fn cyclonedx_carries_the_same_packages() {
        let r = root();
        let bytes = spdx(r.path(), &[], &[], &[], &subject()).unwrap();
        let bom = to_cyclonedx(&bytes, Path::new("b.bun")).unwrap();
        assert_eq!(bom["specVersion"], "1.5");
        assert_eq!(bom["metadata"]["component"]["name"], "ntp-server");
        assert_eq!(bom["metadata"]["component"]["type"], "operating-system");
        let c = &bom["components"][0];
        assert_eq!(c["name"], "libc6");
        assert_eq!(
            c["purl"],
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12&upstream=glibc"
        );
        assert_eq!(
            c["properties"][1],
            json!({"name": "mkve:deb:source", "value": "glibc (2.36-9+deb12u10)"})
        );
        assert_eq!(
            to_cyclonedx(&bytes, Path::new("b.bun")).unwrap(),
            bom,
            "one SBOM, one BOM"
        );
        let e = to_cyclonedx(br#"{"spdxVersion": "SPDX-2.2"}"#, Path::new("b.bun")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "b.bun: sbom.spdx.json: not an SPDX 2.3 document (spdxVersion)"
        );
        assert_eq!(e.exit_code(), 65);
        let e = to_cyclonedx(
            br#"{"spdxVersion": "SPDX-2.3", "packages": [1]}"#,
            Path::new("b"),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("\"packages\" is not an array"),
            "{e}"
        );
    }
}
