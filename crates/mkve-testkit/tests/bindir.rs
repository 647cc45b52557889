//! Every script that runs mkve's binaries (the suites under tests/, the
//! demo and check-templates under scripts/, the benchmarks under bench/)
//! takes them from one place, tests/harness/lib.sh's `use_bins`: the
//! directory it was given, `$MKVE_BINDIR`, or cargo's build directory under
//! `$CARGO_TARGET_DIR`, never a build another target happened to leave, and
//! refuses to start (69), naming the missing binary, before it makes
//! anything. The private libvirtd's lxc hook runs the mkve-vm of
//! `$MKVE_BINDIR` and the harness refuses to start without one. (Issue 19:
//! the README's `make demo` failed on a fresh machine because the hook ran
//! a `target/debug/mkve-vm` the demo never built.)

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use mkve_testkit::top;

const TOOLS: [&str; 5] = [
    "mkve-bundle",
    "mkve-cache",
    "mkve-net",
    "mkve-vm",
    "mkve-web",
];

/// A command with none of the variables that name binaries or build
/// directories, so the script under test decides alone.
fn clean(program: &Path) -> Command {
    let mut c = Command::new(program);
    c.env_remove("MKVE_BINDIR")
        .env_remove("MKVE_VM")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("MKVE_STATEDIR")
        .current_dir(top());
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A directory holding every tool as an executable file that does nothing.
fn fake_bindir(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for t in TOOLS {
        let p = dir.join(t);
        std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// The scripts that run mkve's binaries, with arguments that get them as
/// far as choosing their binaries (a benchmark's bundle must exist).
fn scripts(bundle: &Path) -> Vec<(&'static str, Vec<String>)> {
    let b = bundle.display().to_string();
    vec![
        ("tests/e2e-lxc.sh", vec![]),
        ("tests/faults.sh", vec![]),
        ("tests/nodes.sh", vec![]),
        ("tests/publish.sh", vec![]),
        ("tests/web.sh", vec![]),
        ("tests/services.sh", vec![]),
        ("tests/keep.sh", vec![]),
        ("scripts/demo", vec![]),
        ("scripts/check-templates", vec![]),
        ("bench/audit.sh", vec![b.clone()]),
        ("bench/backup.sh", vec![b.clone()]),
        ("bench/bases.sh", vec![b.clone(), b.clone()]),
        ("bench/build-roots.sh", vec![]),
        ("bench/fetch.sh", vec![b.clone()]),
        ("bench/qemu-boot.sh", vec![]),
        ("bench/vm-create.sh", vec![b]),
        ("bench/vm-parallel.sh", vec![]),
        ("bench/sbom.sh", vec!["/".into()]),
    ]
}

#[test]
fn every_script_refuses_to_start_without_its_binaries() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty-target");
    std::fs::create_dir(&empty).unwrap();
    let bundle = tmp.path().join("x.bun");
    std::fs::write(&bundle, "").unwrap();
    for (script, args) in scripts(&bundle) {
        let out = clean(&top().join(script))
            .args(&args)
            .env("CARGO_TARGET_DIR", &empty)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(69), "{script}: {err}");
        assert!(
            err.contains(&format!("{}/", empty.display())) && err.contains("is not built"),
            "{script} must name the binary it misses under CARGO_TARGET_DIR: {err}"
        );
        assert!(err.contains("MKVE_BINDIR"), "{script}: {err}");
        // Nothing was made in the (empty) build directory.
        assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "{script}");
    }
}

#[test]
fn a_bindir_given_is_the_one_used_and_made_absolute() {
    let tmp = tempfile::tempdir().unwrap();
    fake_bindir(&tmp.path().join("bin"));
    let lib = top().join("tests/harness/lib.sh");
    let run = |extra: &[(&str, &str)], arg: &str| {
        let mut c = clean(Path::new("bash"));
        c.current_dir(tmp.path()).arg("-c").arg(format!(
            ". '{}'; use_bins t debug {arg}; echo \"$bin|$MKVE_BINDIR\"",
            lib.display()
        ));
        for (k, v) in extra {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let want = format!(
        "{0}|{0}",
        tmp.path().join("bin").canonicalize().unwrap().display()
    );
    // As an argument, relative to the working directory.
    let out = run(&[], "bin");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want);
    // From MKVE_BINDIR, which wins over CARGO_TARGET_DIR.
    let out = run(
        &[("MKVE_BINDIR", "bin"), ("CARGO_TARGET_DIR", "/nonexistent")],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want);
    // From CARGO_TARGET_DIR/PROFILE.
    fake_bindir(&tmp.path().join("tgt/debug"));
    let out = run(&[("CARGO_TARGET_DIR", "tgt")], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let dbg = tmp.path().join("tgt/debug").canonicalize().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{0}|{0}", dbg.display())
    );
    // One tool missing is named, and the release profile says how to build it.
    std::fs::remove_file(tmp.path().join("bin/mkve-web")).unwrap();
    let mut c = clean(Path::new("bash"));
    let out = c
        .current_dir(tmp.path())
        .arg("-c")
        .arg(format!(
            ". '{}'; use_bins demo release bin; echo reached",
            lib.display()
        ))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("reached"));
    let err = stderr(&out);
    assert!(
        err.starts_with("demo: bin/mkve-web is not built (cargo build --release"),
        "{err}"
    );
}

#[test]
fn the_private_libvirtd_needs_the_directory_of_its_hooks_mkve_vm() {
    let harness = top().join("tests/harness/libvirtd-netns");
    // A namespace name no run uses: nothing may be made for it.
    let ns = format!("mkve-bindir-test-{}", std::process::id());
    let state = Path::new("/run/mkve-test-libvirtd").join(&ns);
    let out = clean(&harness).args(["start", &ns]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("MKVE_BINDIR is not set"),
        "{}",
        stderr(&out)
    );
    assert!(!state.exists());

    let tmp = tempfile::tempdir().unwrap();
    let out = clean(&harness)
        .args(["start", &ns])
        .env("MKVE_BINDIR", tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{}/mkve-vm is not built", tmp.path().display())),
        "{}",
        stderr(&out)
    );
    assert!(!state.exists());
}

#[test]
fn no_script_names_a_build_directory_of_its_own() {
    // Outside tests/harness/lib.sh, which holds CARGO_TARGET_DIR's
    // default, no script names target/debug or target/release.
    let mut bad = Vec::new();
    for dir in ["tests", "tests/harness", "scripts", "bench"] {
        for e in std::fs::read_dir(top().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if !p.is_file() || p.extension().is_some_and(|x| x == "md") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with('#') || code.starts_with("//") {
                    continue;
                }
                if line.contains("target/debug") || line.contains("target/release") {
                    bad.push(format!("{}:{}: {line}", p.display(), n + 1));
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
