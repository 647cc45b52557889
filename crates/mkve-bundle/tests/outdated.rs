//! mkve-bundle --outdated: a bundle's SBOM against local mirrors made as
//! Debian's are, with dpkg-scanpackages from .debs built by dpkg-deb,
//! served by `python3 -m http.server` on 127.0.0.1: nothing newer, one
//! version bumped, a security archive's update marked, an index that does
//! not match its Release (65), a mirror that does not answer (69).

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use mkve_testkit::*;

fn new_env() -> Env {
    Env::new(env!("CARGO_BIN_EXE_mkve-bundle"))
}

/// A .deb of `name` at `version` in `dir`/pool/main, made by dpkg-deb.
fn deb(dir: &Path, name: &str, version: &str) {
    let pool = dir.join("pool/main");
    let tree = dir.join(format!("build-{name}-{version}"));
    std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(&pool).unwrap();
    std::fs::write(
        tree.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: amd64\nMaintainer: mkve tests <mkve@invalid>\n\
             Description: a package of the --outdated tests\n"
        ),
    )
    .unwrap();
    let out = pool.join(format!("{name}_{}_amd64.deb", version.replace(':', "%3a")));
    output_of(
        Command::new("dpkg-deb")
            .args(["-Zgzip", "--root-owner-group", "--build"])
            .arg(&tree)
            .arg(&out),
    );
    std::fs::remove_dir_all(tree).unwrap();
}

/// `dists/SUITE` of the archive in `dir`: its Packages index made by
/// dpkg-scanpackages over `pool/`, gzipped, and a Release with `label`
/// listing both by sha256.
fn index(dir: &Path, suite: &str, label: &str) {
    let packages = output_of(
        Command::new("dpkg-scanpackages")
            .args(["--multiversion", "pool", "/dev/null"])
            .current_dir(dir),
    );
    let bin = dir.join(format!("dists/{suite}/main/binary-amd64"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("Packages"), &packages).unwrap();
    let gz = Command::new("gzip")
        .args(["-9nc"])
        .arg(bin.join("Packages"))
        .output()
        .unwrap()
        .stdout;
    std::fs::write(bin.join("Packages.gz"), &gz).unwrap();
    let line = |name: &str, bytes: &[u8]| {
        format!(
            " {} {} main/binary-amd64/{name}\n",
            sha256(bytes),
            bytes.len()
        )
    };
    std::fs::write(
        dir.join(format!("dists/{suite}/Release")),
        format!(
            "Origin: Debian\nLabel: {label}\nSuite: {suite}\nCodename: {suite}\nArchitectures: amd64\nComponents: main\nSHA256:\n{}{}",
            line("Packages", &packages),
            line("Packages.gz", &gz)
        ),
    )
    .unwrap();
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn outdated_lists_what_the_mirror_has_newer_and_marks_security_updates() {
    let env = new_env();
    // The busybox root's dpkg database: chrony 4.3-2+deb12u1, busybox-static 1:1.35.0-4.
    let b = env.ntp_bundle("lxc", "a.bun", false);
    let main = env.make_dir("debian");
    deb(&main, "chrony", "4.3-2+deb12u1");
    deb(&main, "busybox-static", "1:1.35.0-4");
    deb(&main, "nothing-installed", "9.9");
    index(&main, "bookworm", "Debian");
    let security = env.make_dir("debian-security");
    deb(&security, "chrony", "4.3-2+deb12u4");
    index(&security, "bookworm-security", "Debian-Security");
    let server = HttpServer::serve(env.home.path());
    let main_url = server.url("debian");
    let outdated = |extra: &[&str]| {
        run(env
            .cmd()
            .args(["--allow-unsigned", "--outdated"])
            .arg(&b)
            .args(extra))
    };

    // The same versions: nothing newer, a rebuild would be the same.
    let r = outdated(&["--mirror", &main_url, "--suite", "bookworm"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!(
            "{}: nothing newer in {main_url} bookworm: a rebuild from the same template and SOURCE_DATE_EPOCH would be byte-identical\n",
            b.display()
        )
    );
    // A root given with --rootfs names no suite: it must be given.
    let r = outdated(&["--mirror", &main_url]);
    r.assert_stderr(2, "no suite known");

    // One version bumped.
    deb(&main, "busybox-static", "1:1.35.0-5");
    index(&main, "bookworm", "Debian");
    let r = outdated(&["--mirror", &main_url, "--suite", "bookworm"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let rows: Vec<Vec<&str>> = r
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "PACKAGE",
            "ARCH",
            "INSTALLED",
            "AVAILABLE",
            "SECURITY",
            "FROM"
        ]
    );
    assert_eq!(
        rows[1..],
        [vec![
            "busybox-static",
            "-",
            "1:1.35.0-4",
            "1:1.35.0-5",
            "-",
            &main_url,
            "bookworm"
        ]]
    );
    assert_eq!(
        r.stderr,
        format!("mkve-bundle: 1 package newer in {main_url} bookworm (0 security updates): a rebuild would change the bundle\n")
    );

    // And a security archive, given by its root (dists/bookworm-security
    // is found) beside a sources line for the main one.
    let sec_url = server.url("debian-security");
    let line = format!("deb {main_url} bookworm main");
    let r = outdated(&[
        "--mirror", &line, "--mirror", &sec_url, "--suite", "bookworm", "--json",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["archives"][1]["suite"], "bookworm-security");
    assert_eq!(v["archives"][1]["security"], true);
    assert_eq!(v["archives"][0]["security"], false);
    let newer: Vec<(&str, &str, bool)> = v["newer"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["package"].as_str().unwrap(),
                n["available"].as_str().unwrap(),
                n["security"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        newer,
        [
            ("busybox-static", "1:1.35.0-5", false),
            ("chrony", "4.3-2+deb12u4", true)
        ]
    );

    // An index that is not the one its Release lists: 65, naming it.
    let gz = main.join("dists/bookworm/main/binary-amd64/Packages.gz");
    let mut bytes = std::fs::read(&gz).unwrap();
    bytes.push(0);
    std::fs::write(&gz, bytes).unwrap();
    let r = outdated(&["--mirror", &main_url, "--suite", "bookworm"]);
    r.assert_stderr(65, "Packages.gz: sha256 ");
    assert!(
        r.stderr.contains("is not the one its Release lists"),
        "{}",
        r.stderr
    );

    // No mirror there (nothing listens on the port): 69.
    let port = free_port();
    let r = outdated(&[
        "--mirror",
        &format!("http://127.0.0.1:{port}/debian"),
        "--suite",
        "bookworm",
    ]);
    r.assert_stderr(
        69,
        &format!("http://127.0.0.1:{port}/debian/dists/bookworm/InRelease"),
    );
    // A suite the mirror does not have: 69.
    let r = outdated(&["--mirror", &main_url, "--suite", "trixie"]);
    r.assert_stderr(
        69,
        "no Release or InRelease in dists/trixie/ or dists/trixie-security/",
    );
    // Not a mirror mkve reads.
    let r = outdated(&["--mirror", "file:///srv/debian", "--suite", "bookworm"]);
    r.assert_stderr(2, "--outdated reads a mirror over http:// or https://");
}
