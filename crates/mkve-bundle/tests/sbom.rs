//! The SBOM member (bundle format 3) and `mkve-bundle --sbom`: built from
//! the busybox root with a dpkg database, checked by the SPDX project's
//! own validator (pyspdxtools, installed by scripts/deps in a venv under
//! the target directory) and the CycloneDX 1.5 JSON schema (vendored,
//! with Debian's python3-jsonschema).

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mkve_testkit::*;

fn new_env() -> Env {
    Env::new(env!("CARGO_BIN_EXE_mkve-bundle"))
}

/// A bundle of ntp-server for lxc from the busybox root, signed by the
/// test key.
fn signed_bundle() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| {
        let env = new_env();
        let out = env.ntp_bundle("lxc", "signed.bun", true);
        std::fs::read(out).unwrap()
    })
}

fn sbom_of(bundle: &Path, format: &str, extra: &[&str]) -> Run {
    keyed(&["--sbom", format], bundle, extra)
}

/// mkve-bundle ARGS BUNDLE --keyring (the test key's) EXTRA.
fn keyed(args: &[&str], bundle: &Path, extra: &[&str]) -> Run {
    run(new_env()
        .cmd()
        .args(args)
        .arg(bundle)
        .arg("--keyring")
        .arg(&signer().keyring)
        .args(extra))
}

/// pyspdxtools from the venv scripts/deps makes (target/tmp/spdx-venv).
fn pyspdxtools() -> PathBuf {
    let p = layer_cache()
        .dir
        .parent()
        .unwrap()
        .join("spdx-venv/bin/pyspdxtools");
    assert!(
        p.exists(),
        "{} is missing: run scripts/deps (it installs spdx-tools there)",
        p.display()
    );
    p
}

/// Check the SPDX document `json` with pyspdxtools (written in `dir`).
fn assert_valid_spdx(dir: &Path, json: &str) {
    let spdx = dir.join("sbom.spdx.json");
    std::fs::write(&spdx, json).unwrap();
    let v = run(std::process::Command::new(pyspdxtools())
        .arg("-i")
        .arg(&spdx));
    assert_eq!(v.code, 0, "pyspdxtools: {}{}", v.stdout, v.stderr);
}

/// The CycloneDX 1.5 schema's verdict on `json` (written in `dir`): 0
/// valid, 1 not (what it said is printed).
fn validate_cyclonedx(dir: &Path, json: &[u8]) -> i32 {
    let cdx = dir.join("bom.json");
    std::fs::write(&cdx, json).unwrap();
    let v = run(std::process::Command::new("python3")
        .arg(top().join("tests/harness/validate-cyclonedx"))
        .arg(&cdx));
    eprintln!("CycloneDX schema: {}{}", v.stdout, v.stderr);
    v.code
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn the_sbom_is_a_signed_member_before_the_root_and_valid_spdx_and_cyclonedx() {
    let names = member_names(signed_bundle());
    assert_eq!(
        &names[..5],
        [
            "meta.json",
            "meta.json.asc",
            "sbom.spdx.json",
            "provenance.intoto.json",
            "rootfs.tar.zst"
        ]
    );
    let member = members(signed_bundle())
        .into_iter()
        .find(|m| m.0 == "sbom.spdx.json")
        .unwrap()
        .1;
    let meta: serde_json::Value = serde_json::from_slice(&members(signed_bundle())[0].1).unwrap();
    assert_eq!(meta["format"], 3);
    assert_eq!(meta["members"]["sbom.spdx.json"], sha256(&member));

    let (d, b) = temp_file("b.bun", signed_bundle());
    let r = sbom_of(&b, "spdx", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout.as_bytes(),
        &member[..],
        "--sbom spdx prints the member as signed"
    );
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    let pkgs = doc["packages"].as_array().unwrap();
    let chrony = pkgs.iter().find(|p| p["name"] == "chrony").unwrap();
    assert_eq!(chrony["versionInfo"], "4.3-2+deb12u1");
    assert_eq!(
        chrony["externalRefs"][0]["referenceLocator"],
        "pkg:deb/debian/chrony@4.3-2%2Bdeb12u1?upstream=chrony"
    );
    // The hooks' file is in no package: listed with its digest.
    let files = doc["files"].as_array().unwrap();
    let log = files
        .iter()
        .find(|f| f["fileName"] == "./etc/hook-log")
        .unwrap();
    assert_eq!(
        log["checksums"][1]["checksumValue"],
        sha256(b"01-own\n02-record lxc ntp-server 1.2\n")
    );
    assert!(
        !files.iter().any(|f| f["fileName"]
            .as_str()
            .unwrap()
            .starts_with("./var/lib/dpkg")),
        "dpkg's database is not listed"
    );
    assert!(
        files.iter().any(|f| f["fileName"] == "./bin/busybox"),
        "the busybox root's dpkg database owns no file"
    );

    assert_valid_spdx(d.path(), &r.stdout);

    let r = sbom_of(&b, "cyclonedx", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bom: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(bom["specVersion"], "1.5");
    let c = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "chrony")
        .unwrap();
    assert_eq!(c["purl"], chrony["externalRefs"][0]["referenceLocator"]);
    assert_eq!(validate_cyclonedx(d.path(), r.stdout.as_bytes()), 0);
    // The validator refuses what the schema refuses.
    let mut broken = bom.clone();
    broken["components"][0]["type"] = "deb".into();
    assert_eq!(
        validate_cyclonedx(d.path(), &serde_json::to_vec(&broken).unwrap()),
        1
    );
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn two_builds_with_one_source_date_epoch_give_the_same_sbom() {
    let env = new_env();
    let b = env.ntp_bundle("lxc", "a.bun", false);
    let b2 = env.ntp_bundle("lxc", "b.bun", false);
    let (a, b) = (std::fs::read(b).unwrap(), std::fs::read(b2).unwrap());
    let sbom = |x: &[u8]| {
        members(x)
            .into_iter()
            .find(|m| m.0 == "sbom.spdx.json")
            .unwrap()
            .1
    };
    assert_eq!(sbom(&a), sbom(&b));
    assert_eq!(a, b, "and the same bundle");
    let doc: serde_json::Value = serde_json::from_slice(&sbom(&a)).unwrap();
    assert_eq!(doc["creationInfo"]["created"], "2023-11-14T22:13:20Z");
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn a_changed_sbom_is_refused_and_sbom_reads_nothing_past_it() {
    // A changed byte of the SBOM: --sbom and --verify refuse it.
    let mut m = members(signed_bundle());
    let i = m.iter().position(|x| x.0 == "sbom.spdx.json").unwrap();
    m[i].1[20] ^= 1;
    let (_d, b) = temp_file("b.bun", assemble(&m));
    let r = sbom_of(&b, "spdx", &[]);
    r.assert_stderr(65, "member \"sbom.spdx.json\": sha256 ");
    r.assert_stderr(65, "does not match meta.json");
    let r = keyed(&["--verify"], &b, &[]);
    assert_eq!(r.code, 65, "{}", r.stderr);

    // A changed root: --verify refuses it, --sbom never reads it.
    let mut m = members(signed_bundle());
    let i = m.iter().position(|x| x.0 == "rootfs.tar.zst").unwrap();
    m[i].1[100] ^= 1;
    let (_d, b) = temp_file("b.bun", assemble(&m));
    assert_eq!(sbom_of(&b, "cyclonedx", &[]).code, 0);
    let r = keyed(&["--verify"], &b, &[]);
    assert_eq!(r.code, 65, "{}", r.stderr);

    // The signature is checked as --verify checks it.
    let r = run(new_env()
        .cmd()
        .args(["--sbom", "spdx"])
        .arg(&b)
        .arg("--keyring")
        .arg(&stranger().keyring));
    assert_eq!(r.code, 65, "{}", r.stderr);
    assert_eq!(r.stdout, "");
    let r = run(new_env().cmd().args(["--sbom", "swid"]).arg(&b));
    r.assert_stderr(2, "unknown format \"swid\"");
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn a_format_2_bundle_is_still_read_and_has_no_sbom() {
    let mut m = members(signed_bundle());
    m.retain(|x| {
        !["meta.json.asc", "sbom.spdx.json", "provenance.intoto.json"].contains(&x.0.as_str())
    });
    let mut meta: serde_json::Value = serde_json::from_slice(&m[0].1).unwrap();
    meta["format"] = 2.into();
    let listed = meta["members"].as_object_mut().unwrap();
    listed.remove("sbom.spdx.json");
    listed.remove("provenance.intoto.json");
    m[0].1 = serde_json::to_vec(&meta).unwrap();
    let (_d, b) = temp_file("old.bun", assemble(&m));
    let r = run(new_env()
        .cmd()
        .args(["--allow-unsigned", "--verify"])
        .arg(&b));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(new_env()
        .cmd()
        .args(["--allow-unsigned", "--sbom", "spdx"])
        .arg(&b));
    assert_eq!(r.code, 65);
    assert_eq!(
        r.stderr,
        format!(
            "mkve-bundle: {}: format 2 has no sbom.spdx.json (bundles carry one from format 3)\n",
            b.display()
        )
    );
    // Format 3 must list it.
    meta["format"] = 3.into();
    m[0].1 = serde_json::to_vec(&meta).unwrap();
    let (_d, b) = temp_file("new.bun", assemble(&m));
    let r = run(new_env()
        .cmd()
        .args(["--allow-unsigned", "--verify"])
        .arg(&b));
    r.assert_stderr(65, "meta.json: format 3 lists no sbom.spdx.json member");
}

/// The provenance: an in-toto statement whose subjects are the root and
/// the SBOM with their digests; --verify refuses one whose subject does
/// not match, naming it, even when meta.json lists its right digest.
#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn the_provenance_names_the_root_and_the_sbom_and_verify_checks_its_subjects() {
    let m = members(signed_bundle());
    let meta: serde_json::Value = serde_json::from_slice(&m[0].1).unwrap();
    let prov = &m
        .iter()
        .find(|x| x.0 == "provenance.intoto.json")
        .unwrap()
        .1;
    let v: serde_json::Value = serde_json::from_slice(prov).unwrap();
    assert_eq!(v["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(v["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(v["subject"][0]["name"], "rootfs.tar.zst");
    assert_eq!(
        v["subject"][0]["digest"]["sha256"],
        meta["members"]["rootfs.tar.zst"]
    );
    assert_eq!(
        v["subject"][1]["digest"]["sha256"],
        meta["members"]["sbom.spdx.json"]
    );
    let def = &v["predicate"]["buildDefinition"];
    assert_eq!(def["externalParameters"]["template"]["name"], "ntp-server");
    assert_eq!(def["internalParameters"]["hooks"][0]["name"], "01-own");
    assert_eq!(
        def["internalParameters"]["hooks"][0]["sha256"],
        sha256(&std::fs::read(good("ntp-server").join("hooks/01-own")).unwrap())
    );
    assert_eq!(def["internalParameters"]["conf"][0]["name"], "conf/limits");

    // A subject changed, its member's digest updated in meta.json: the
    // signature no longer holds, so unsigned (--allow-unsigned) to reach
    // the check itself.
    let mut m = members(signed_bundle());
    m.remove(1);
    let i = m
        .iter()
        .position(|x| x.0 == "provenance.intoto.json")
        .unwrap();
    let mut v = v.clone();
    v["subject"][1]["digest"]["sha256"] = "0".repeat(64).into();
    m[i].1 = serde_json::to_vec(&v).unwrap();
    let mut meta = meta.clone();
    meta["members"]["provenance.intoto.json"] = sha256(&m[i].1).into();
    m[0].1 = serde_json::to_vec(&meta).unwrap();
    let (_d, b) = temp_file("b.bun", assemble(&m));
    let r = run(new_env()
        .cmd()
        .args(["--allow-unsigned", "--verify"])
        .arg(&b));
    assert_eq!(r.code, 65, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "mkve-bundle: {}: provenance.intoto.json: subject \"sbom.spdx.json\": sha256 {} does not match the member's ({})\n",
            b.display(),
            "0".repeat(64),
            meta["members"]["sbom.spdx.json"].as_str().unwrap()
        )
    );
}

/// An ALT root: the busybox root with no dpkg database, an rpm database
/// holding one package (put there by rpm itself), that package's file, and
/// ALT's os-release.
#[test]
#[ignore = "needs root (hooks run by chroot in a busybox root with a device node), rpm and rpmbuild"]
fn an_alt_root_s_rpm_packages_are_in_the_sbom() {
    let env = new_env();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    let r = run(std::process::Command::new("cp")
        .arg("-a")
        .arg(busybox_root())
        .arg(&root));
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::fs::remove_dir_all(root.join("var/lib/dpkg")).unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "NAME=\"ALT Server\"\nID=altlinux\nVERSION_ID=p10\n",
    )
    .unwrap();
    install_test_rpm(&root);
    let (name, evr, arch, _, file) = TEST_RPM;
    let owned = root.join(file.trim_start_matches('/'));
    std::fs::create_dir_all(owned.parent().unwrap()).unwrap();
    std::fs::write(&owned, "hi\n").unwrap();
    let out = d.path().join("alt.bun");
    let r = run(env
        .cmd()
        .env("GNUPGHOME", &signer().home)
        .args(["-H", "lxc", "--hooks"])
        .arg(hooks_dir())
        .arg("--rootfs")
        .arg(&root)
        .arg("-o")
        .arg(&out)
        .arg(good("ntp-server")));
    assert_eq!(r.code, 0, "{}", r.stderr);

    let r = sbom_of(&out, "spdx", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let pkgs = doc["packages"].as_array().unwrap();
    let p = pkgs.iter().find(|p| p["name"] == name).unwrap();
    assert_eq!(p["versionInfo"], evr);
    assert_eq!(
        p["externalRefs"][0]["referenceLocator"],
        format!("pkg:rpm/altlinux/{name}@1.2-alt1?arch={arch}&distro=altlinux-p10&epoch=3")
    );
    assert_eq!(p["supplier"], "Person: Test Person (t@example.invalid)");
    assert_eq!(
        p["sourceInfo"],
        format!("built package from: {name} 1.2-alt1")
    );
    assert!(p["comment"].as_str().unwrap().contains("Header-SHA256: "));
    let files = spdx_file_names(&doc);
    assert!(
        !files.contains(&format!(".{file}").as_str()),
        "the rpm's file is its"
    );
    assert!(
        !files.iter().any(|f| f.starts_with("./var/lib/rpm")),
        "rpm's database is not listed"
    );
    assert!(
        files.contains(&"./bin/busybox"),
        "a file no package owns is"
    );
    assert_valid_spdx(d.path(), &r.stdout);

    let r = sbom_of(&out, "cyclonedx", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bom: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let c = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap();
    assert!(
        c["properties"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "mkve:rpm:header-sha256"),
        "{c}"
    );
    assert_eq!(validate_cyclonedx(d.path(), r.stdout.as_bytes()), 0);

    // meta.json's package list is rpm's too.
    let bundle = std::fs::read(&out).unwrap();
    let meta: serde_json::Value = serde_json::from_slice(&members(&bundle)[0].1).unwrap();
    assert_eq!(
        meta["packages"]["installed"],
        serde_json::json!([{"name": name, "version": evr}])
    );
}
