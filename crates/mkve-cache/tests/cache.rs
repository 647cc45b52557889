//! mkve-cache with real mmdebstrap and Debian packages. The package layer
//! (chrony + systemd-sysv, the same set mkve-bundle's lxc tests install) is
//! shared with every other test binary of the run through mkve-testkit's
//! layer cache, so mmdebstrap runs for it once.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use mkve_testkit::*;

fn new_env() -> Env {
    Env::new(env!("CARGO_BIN_EXE_mkve-cache"))
}

const SET: [&str; 2] = ["chrony", "systemd-sysv"];

fn list(archive: &Path) -> String {
    String::from_utf8(output_of(Command::new("tar").arg("-tvf").arg(archive))).unwrap()
}

fn cat(archive: &Path, member: &str) -> String {
    let tar = output_of(Command::new("tar").arg("-xOf").arg(archive).arg(member));
    String::from_utf8(tar).unwrap()
}

#[test]
#[ignore = "needs root and the network: mmdebstrap installs Debian packages"]
fn copies_hooks_and_commands_run_in_the_order_given() {
    let env = new_env();
    let h = env.home.path();
    std::fs::write(h.join("motd"), "from the host\n").unwrap();
    let hook = h.join("stamp");
    std::fs::write(&hook, "#!/bin/sh\necho hook >> /etc/order\n").unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = h.join("root.tar.zst");
    let r = run_ok(
        env.cmd()
            .args(["--zstd", "-o"])
            .arg(&out)
            .args(["--command", "echo command1 >> /etc/order"])
            .arg("--copy")
            .arg(format!("{}:/etc/motd", h.join("motd").display()))
            .args(["--command", "cat /etc/motd >> /etc/order"])
            .arg("--hook")
            .arg(&hook)
            .args(SET),
    );
    assert_eq!(r.stdout, format!("{}\n", out.display()));
    assert_eq!(cat(&out, "etc/order"), "command1\nfrom the host\nhook\n");
    let listing = list(&out);
    assert!(listing.contains("usr/sbin/chronyd"), "chrony is installed");
    assert!(
        listing.contains("crw-rw-rw- 0/0") && listing.contains("dev/null"),
        "device nodes are kept"
    );
    assert!(!listing.contains(".mkve-hooks"));
    assert!(
        !listing.contains("mkve-unsafe-io"),
        "the build's dpkg option is not left in the root"
    );
}

#[test]
#[ignore = "needs root and the network: mmdebstrap installs Debian packages"]
fn a_cached_layer_is_reused_without_running_mmdebstrap() {
    let env = new_env();
    let first = env.home.path().join("first.tar");
    // --refresh builds whatever the cache holds: mmdebstrap must run.
    let before = env.mmdebstrap_runs();
    run_ok(
        env.cmd()
            .arg("--refresh")
            .arg("-o")
            .arg(&first)
            .args(["--variant=minbase", "hello"]),
    );
    assert_eq!(env.mmdebstrap_runs(), before + 1);
    let debs = layer_cache().dir.join("debs");
    let debs_before = count_files(&debs);

    let second = env.home.path().join("second.tar");
    run_ok(env.cmd().arg("-o").arg(&second).args([
        "--variant=minbase",
        "hello",
        "--command",
        "hello > /etc/greeting",
    ]));
    assert_eq!(
        env.mmdebstrap_runs(),
        before + 1,
        "no mmdebstrap run: nothing downloaded or installed"
    );
    assert_eq!(count_files(&debs), debs_before, "no package downloaded");
    assert_eq!(cat(&second, "etc/greeting"), "Hello, world!\n");
    assert!(
        !list(&first).contains("etc/greeting"),
        "the cached layer itself is not changed by commands"
    );
}

fn count_files(dir: &Path) -> usize {
    walk(dir).len()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn an_unknown_package_fails_at_once_with_65() {
    let env = new_env();
    let before = env.mmdebstrap_runs();
    let out = env.home.path().join("x.tar");
    let r = run(env
        .cmd()
        .arg("-o")
        .arg(&out)
        .args(["chrony", "no-such-package-here", "asterisk"]));
    assert_eq!(r.code, 65, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        "mkve-cache: packages \"asterisk\", \"no-such-package-here\" not available in bookworm\n"
    );
    assert_eq!(env.mmdebstrap_runs(), before, "told before any download");
    assert!(!out.exists());
}

#[test]
#[ignore = "needs root and the network: mmdebstrap installs Debian packages"]
fn dir_leaves_the_root_as_a_directory() {
    let env = new_env();
    let dir = env.home.path().join("root");
    run_ok(
        env.cmd()
            .arg("--dir")
            .arg(&dir)
            .args(["--command", "touch /etc/made-here"])
            .args(SET),
    );
    assert!(dir.join("etc/made-here").is_file());
    assert!(dir.join("usr/sbin/chronyd").is_file());
    let r = run(env.cmd().arg("--dir").arg(&dir).args(SET));
    assert_eq!(
        r.code, 73,
        "an existing directory is not overwritten: {}",
        r.stderr
    );
}

#[test]
#[ignore = "needs root: the busybox root has a device node (mknod)"]
fn tarify_only_packs_deterministically_in_three_formats() {
    let env = new_env();
    let root = busybox_root();
    let mut outputs = Vec::new();
    for (flag, name) in [
        (None, "a.tar"),
        (Some("-z"), "a.tar.gz"),
        (Some("--zstd"), "a.tar.zst"),
    ] {
        let out = env.home.path().join(name);
        run_ok(
            env.cmd()
                .args(flag)
                .arg("-o")
                .arg(&out)
                .arg("--tarify-only")
                .arg(root),
        );
        assert!(
            list(&out).contains("bin/busybox"),
            "{name} is readable by tar"
        );
        outputs.push(out);
    }
    let again = env.home.path().join("again.tar");
    run_ok(
        env.cmd()
            .arg("-o")
            .arg(&again)
            .arg("--tarify-only")
            .arg(root),
    );
    assert!(
        std::fs::read(&again).unwrap() == std::fs::read(&outputs[0]).unwrap(),
        "two packings differ"
    );

    // Without --out: $TMPDIR/output.tar.zst, as the original did.
    let tmp = tempfile::tempdir().unwrap();
    let r = run_ok(
        env.cmd()
            .env("TMPDIR", tmp.path())
            .args(["--zstd", "--tarify-only"])
            .arg(root),
    );
    assert_eq!(
        r.stdout,
        format!("{}\n", tmp.path().join("output.tar.zst").display())
    );
    // To stdout.
    let r = run(env.cmd().args(["-o", "-", "--tarify-only"]).arg(root));
    assert!(r.raw_stdout == std::fs::read(&outputs[0]).unwrap());

    let r = run(env.cmd().args(["--tarify-only", "/nonexistent"]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("mkve-cache: /nonexistent: "),
        "{}",
        r.stderr
    );
    let r = run(env
        .cmd()
        .args(["--tarify-only"])
        .arg(root)
        .args(["--command", "true"]));
    assert_eq!(r.code, 2, "steps make no sense with --tarify-only");
}
