//! mkve-bundle --audit: a bundle's SBOM against a feed in debsecan's
//! format (tests/fixtures/debsecan), compared with what Debian's debsecan
//! itself finds for the same packages; the accepted file; bad feeds.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use mkve_testkit::*;

fn new_env() -> Env {
    Env::new(env!("CARGO_BIN_EXE_mkve-bundle"))
}

fn audit(env: &Env, bundle: &Path, feed: &str, extra: &[&str]) -> Run {
    run(env
        .cmd()
        .args(["--allow-unsigned", "--audit"])
        .arg(bundle)
        .args(["--feed", feed])
        .args(extra))
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn audit_finds_what_debsecan_finds_and_honours_the_accepted_file() {
    let env = new_env();
    let b = env.ntp_bundle("lxc", "a.bun", false);
    let (dir, feed) = debsecan_feed();
    let feed = feed.to_str().unwrap();

    let r = audit(&env, &b, feed, &["--json"]);
    assert_eq!(r.code, 1, "something is open: {}", r.stderr);
    assert_eq!(
        r.stderr,
        "mkve-bundle: 2 open vulnerabilities (a CVE in a package of a bundle)\n"
    );
    let ours = audit_pairs(&r.stdout);
    let theirs = debsecan_findings(dir.path(), &busybox_root().join("var/lib/dpkg/status"));
    assert_eq!(ours, theirs, "debsecan finds the same");
    assert_eq!(
        ours.into_iter().collect::<Vec<_>>(),
        [
            ("CVE-2026-10006".to_string(), "chrony".to_string()),
            ("CVE-2026-10013".to_string(), "busybox-static".to_string()),
        ]
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v[0],
        serde_json::json!({
            "cve": "CVE-2026-10006", "package": "chrony", "source": "chrony",
            "installed": "4.3-2+deb12u1", "fixed": "4.3-2+deb12u4",
            "urgency": "high", "remote": true, "bundle": b.display().to_string(),
        })
    );

    let r = audit(&env, &b, feed, &[]);
    assert_eq!(r.code, 1);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    assert!(lines[0].starts_with("BUNDLE"), "{}", lines[0]);
    let words: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        words[1..],
        [
            "CVE-2026-10013",
            "busybox-static",
            "busybox-static",
            "1:1.35.0-4",
            "1:1.35.0-5",
            "high",
            "local"
        ]
    );
    let words: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(words[1..3], ["CVE-2026-10006", "chrony"]);

    // The accepted file: in the configuration directory by default.
    let etc = env.make_dir("etc");
    std::fs::write(
        etc.join("accepted"),
        "# reviewed\nCVE-2026-10006 chrony 2026-12-01 no NTP served to untrusted networks\n",
    )
    .unwrap();
    let r = audit(&env, &b, feed, &["--json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        audit_pairs(&r.stdout).into_iter().collect::<Vec<_>>(),
        [("CVE-2026-10013".to_string(), "busybox-static".to_string())]
    );
    std::fs::write(
        etc.join("accepted"),
        "CVE-2026-10006 chrony 2026-12-01 no NTP served to untrusted networks\n\
         CVE-2026-10013 busybox-static 2026-12-01 no shell reachable from outside\n",
    )
    .unwrap();
    let r = audit(&env, &b, feed, &[]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    // Not root's: refused, not silently read.
    std::os::unix::fs::chown(etc.join("accepted"), Some(65534), None).unwrap();
    let r = audit(&env, &b, feed, &[]);
    r.assert_stderr(
        65,
        "accepted: must be owned by root and writable by no one else",
    );

    // Over HTTP, from where debsecan would fetch it.
    let server = HttpServer::serve(dir.path());
    let r = audit(
        &env,
        &b,
        &server.url("bookworm"),
        &["--json", "--accepted", "/nonexistent"],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(audit_pairs(&r.stdout), theirs);
    let r = audit(&env, &b, &server.url("trixie"), &[]);
    r.assert_stderr(69, "trixie: not found (HTTP 404)");
}

#[test]
fn audit_needs_a_feed_it_can_read() {
    let env = new_env();
    let r = run(env.cmd().args(["--audit", "x.bun"]));
    r.assert_stderr(2, "--audit needs --feed FILE|URL");
    let (_d, f) = temp_file("bookworm", "VERSION 1\n");
    let r = run(env.cmd().args(["--audit", "x.bun", "--feed"]).arg(&f));
    assert_eq!(r.code, 65);
    assert!(
        r.stderr.starts_with(&format!(
            "mkve-bundle: {}: not a zlib-compressed debsecan feed",
            f.display()
        )),
        "{}",
        r.stderr
    );
}
