//! Run as hsh-pack (the name ALT users know), the tool says hsh-pack in
//! every message: progress, errors and usage.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mkve_testkit::*;

#[test]
fn hsh_pack_says_hsh_pack() {
    let (d, link) = linked_as(env!("CARGO_BIN_EXE_mkve-cache"), "hsh-pack");
    let root = d.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/hostname"), "x\n").unwrap();
    let out = d.path().join("out.tar");

    let r = run_ok(
        std::process::Command::new(&link)
            .arg("-v")
            .arg("--tarify-only")
            .arg(&root)
            .arg("-o")
            .arg(&out),
    );
    assert!(r.stderr.contains("hsh-pack: packing"), "{}", r.stderr);

    let r = run(std::process::Command::new(&link)
        .arg("--tarify-only")
        .arg(d.path().join("missing")));
    assert_ne!(r.code, 0);
    assert!(r.stderr.starts_with("hsh-pack: "), "{}", r.stderr);

    let r = run(std::process::Command::new(&link).arg("--no-such-option"));
    r.assert_stderr(2, "Usage: hsh-pack");
    assert!(!r.stderr.contains("mkve-cache"), "{}", r.stderr);
}
