//! Every variable mkve-bundle-config(5) lists, set in the config file and
//! seen to take effect: one `variable_NAME` test each (a unit test of
//! `src/config.rs` checks that none is missing). Package builds run a fake
//! mmdebstrap that records its arguments, so what the file says about
//! building a root is seen without a download.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use mkve_testkit::*;

fn new_env() -> Env {
    Env::new(env!("CARGO_BIN_EXE_mkve-bundle"))
}

fn hooks() -> String {
    hooks_dir().display().to_string()
}

/// A directory holding a fake `mmdebstrap`: it appends its arguments, one
/// a line, then `=== end`, to `$HOME/mmdebstrap.args`; then it copies
/// `$FAKE_ROOT` to its target (the second argument that is not an option)
/// or, without `$FAKE_ROOT`, fails.
fn fake_mmdebstrap() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = shared_dir().join("fake-mmdebstrap");
        std::fs::create_dir_all(&dir).unwrap();
        let script = r#"#!/bin/sh
printf '%s\n' "$@" '=== end' >> "$HOME/mmdebstrap.args"
[ -n "$FAKE_ROOT" ] || { echo "E: fake mmdebstrap: no root" >&2; exit 1; }
n=0
for a; do
    case $a in --*) continue ;; esac
    n=$((n + 1))
    [ $n = 2 ] && exec cp -a "$FAKE_ROOT" "$a"
done
exit 1
"#;
        let p = dir.join("mmdebstrap");
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        dir
    })
}

/// A build from packages (no `--rootfs`) with the fake mmdebstrap and a
/// package-layer cache of this `Env`'s own.
fn package_build(env: &Env) -> Command {
    let mut c = env.cmd();
    let h = env.home.path();
    c.env(
        "PATH",
        format!(
            "{}:{}",
            fake_mmdebstrap().display(),
            std::env::var("PATH").unwrap()
        ),
    )
    .env("MKVE_CACHEDIR", h.join("cache"))
    .env("MKVE_LOCKDIR", h.join("locks"))
    .args(["-H", "lxc", "--force-no-sign", "--hooks", &hooks(), "-o"])
    .arg(h.join("out.bun"))
    .arg(good("ntp-server"));
    c
}

/// The arguments of each run of the fake mmdebstrap.
fn mmdebstrap_runs(env: &Env) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(env.home.path().join("mmdebstrap.args")).unwrap_or_default();
    text.split_terminator("=== end\n")
        .map(|run| run.lines().map(str::to_string).collect())
        .collect()
}

/// The arguments of the one run of the fake mmdebstrap, after a build it
/// failed.
fn failed_build_args(env: &Env, config: &str, extra: &[&str]) -> Vec<String> {
    env.write_config(config);
    let r = run(package_build(env).args(extra));
    assert_ne!(r.code, 0, "the fake mmdebstrap fails");
    assert!(
        r.stderr.contains("fake mmdebstrap: no root"),
        "{}",
        r.stderr
    );
    let runs = mmdebstrap_runs(env);
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs.into_iter().next().unwrap()
}

/// A qemu bundle built from the busybox root; `extra` adds options.
fn build_with(env: &Env, name: &str, extra: &[&str]) -> (Run, PathBuf) {
    env.build_from_busybox(
        env.cmd().args(["-H", "qemu"]).args(extra),
        "ntp-server",
        name,
    )
}

/// The same, signed with the test key.
fn build_signed(env: &Env, name: &str) -> (Run, PathBuf) {
    let mut signing = env.cmd();
    signing
        .env("GNUPGHOME", &signer().home)
        .args(["-H", "qemu"]);
    env.build_from_busybox(&mut signing, "ntp-server", name)
}

fn unsigned_bundle(env: &Env) -> PathBuf {
    let (r, out) = build_with(env, "unsigned.bun", &["--force-no-sign"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    out
}

fn signed_bundle(env: &Env) -> PathBuf {
    let (r, out) = build_signed(env, "signed.bun");
    assert_eq!(r.code, 0, "{}", r.stderr);
    out
}

fn info(env: &Env, bundle: &Path) -> serde_json::Value {
    bundle_info(env, bundle, &[])
}

/// Bundles `--all-hypervisors` writes for ntp-server into `dir`.
fn all_bundles(dir: &Path) -> String {
    ["lxc", "qemu", "openvz"]
        .iter()
        .map(|h| format!("{}\n", dir.join(format!("ntp-server-{h}.bun")).display()))
        .collect()
}

#[test]
fn variable_template() {
    let env = new_env();
    env.write_config(&format!("template={}\n", good("ntp-server").display()));
    let r = run_ok(
        env.cmd()
            .args(["--check", "-H", "qemu", "--hooks", &hooks()]),
    );
    assert_eq!(
        r.stdout,
        format!("{}: ok for qemu\n", good("ntp-server").display())
    );
}

#[test]
fn variable_hypervisor() {
    let env = new_env();
    env.write_config("hypervisor=lxc\n");
    let r = run_ok(
        env.cmd()
            .args(["--check", "--hooks", &hooks()])
            .arg(good("ntp-server")),
    );
    assert!(r.stdout.ends_with(": ok for lxc\n"), "{}", r.stdout);
}

#[test]
#[ignore = "needs root: builds from a busybox root with a device node"]
fn variable_output() {
    let env = new_env();
    let out = env.home.path().join("from-config.bun");
    env.write_config(&format!("output={}\n", out.display()));
    let r = run_ok(
        env.cmd()
            .args(["-H", "lxc", "--force-no-sign"])
            .args(busybox_build_args())
            .arg(good("ntp-server")),
    );
    assert_eq!(r.stdout, format!("{}\n", out.display()));
    assert_eq!(info(&env, &out)["hypervisor"], "lxc");
}

#[test]
fn variable_hooks() {
    let env = new_env();
    let check = || {
        run(env
            .cmd()
            .args(["--check", "-H", "lxc"])
            .arg(good("ntp-server")))
    };
    let r = check();
    assert_eq!(
        r.code, 65,
        "the template's hook 02-record is in the fixture hooks"
    );
    assert!(
        r.stderr.contains("hook \"02-record\" not found"),
        "{}",
        r.stderr
    );
    env.write_config(&format!("hooks={}\n", hooks()));
    let r = check();
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
#[ignore = "needs root: builds from a busybox root with a device node"]
fn variable_rootfs() {
    let env = new_env();
    env.write_config(&format!("rootfs={}\n", busybox_root().display()));
    run_ok(&mut package_build(&env));
    assert!(mmdebstrap_runs(&env).is_empty(), "the root was not built");
    let v = info(&env, &env.home.path().join("out.bun"));
    let installed = v["packages"]["installed"].to_string();
    assert!(installed.contains("busybox-static"), "{installed}");
}

#[test]
#[ignore = "needs root: builds from a busybox root with a device node"]
fn variable_all_hypervisors() {
    let env = new_env();
    let dir = env.make_dir("bundles");
    let build = || {
        run(env
            .cmd()
            .arg("--force-no-sign")
            .args(busybox_build_args())
            .arg(good("ntp-server")))
    };
    // The required --output-dir from the file too.
    env.write_config(&format!(
        "all_hypervisors=yes\noutput_dir={}\n",
        dir.display()
    ));
    let r = build();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, all_bundles(&dir));
    assert_eq!(
        info(&env, &dir.join("ntp-server-openvz.bun"))["hypervisor"],
        "openvz"
    );

    // ... or from the command line.
    env.write_config("all_hypervisors=yes\n");
    let other = env.make_dir("other");
    let r = run_ok(
        env.cmd()
            .arg("--force-no-sign")
            .args(busybox_build_args())
            .arg("--output-dir")
            .arg(&other)
            .arg(good("ntp-server")),
    );
    assert_eq!(r.stdout, all_bundles(&other));

    // ... and required all the same, from the file or not.
    build().assert_stderr(
        2,
        "required arguments were not provided:\n  --output-dir <DIR>",
    );
    let r = run(env
        .cmd()
        .args(["--no-config", "--all-hypervisors"])
        .arg(good("ntp-server")));
    r.assert_stderr(2, "--output-dir <DIR>");

    // -H on the command line overrides it, without a conflict.
    let (r, out) = build_with(&env, "one.bun", &["--force-no-sign"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, format!("{}\n", out.display()));

    // With hypervisor= in the same file it is a mistake in the file.
    env.write_config(&format!(
        "all_hypervisors=on\nhypervisor=lxc\noutput_dir={}\n",
        dir.display()
    ));
    let path = env.home.path().join(".mkve/bundle-config");
    let r = build();
    assert_eq!(
        (r.code, r.stderr),
        (
            65,
            format!(
                "mkve-bundle: {}: all_hypervisors: cannot be set together with hypervisor\n",
                path.display()
            )
        )
    );
}

#[test]
#[ignore = "needs root: builds from a busybox root with a device node"]
fn variable_output_dir() {
    // As in mkve-bundle-config(5): hypervisor= and output= in the file
    // give way to --all-hypervisors on the command line, which takes the
    // file's output_dir.
    let env = new_env();
    let dir = env.make_dir("bundles");
    env.write_config(&format!(
        "hypervisor=qemu\noutput={}/single.bun\noutput_dir={}\n",
        dir.display(),
        dir.display()
    ));
    let r = run_ok(
        env.cmd()
            .args(["--all-hypervisors", "--force-no-sign"])
            .args(busybox_build_args())
            .arg(good("ntp-server")),
    );
    assert_eq!(r.stdout, all_bundles(&dir));
    assert!(!dir.join("single.bun").exists());
}

#[test]
fn variable_suite() {
    let env = new_env();
    let args = failed_build_args(
        &env,
        "suite=mkve-test-suite\n",
        &["--mirror", "file:///nowhere"],
    );
    let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    assert_eq!(positional[0], "mkve-test-suite", "{args:?}");
}

#[test]
fn variable_mirror() {
    let env = new_env();
    let args = failed_build_args(&env, "mirror=file:///one\n", &["--suite", "bookworm"]);
    assert_eq!(args.last().unwrap(), "file:///one", "{args:?}");

    // An array is several; a string with spaces is one.
    let env = new_env();
    let args = failed_build_args(
        &env,
        "mirror=(file:///one 'deb file:///two bookworm main' '')\n",
        &["--suite", "bookworm"],
    );
    assert_eq!(
        args[args.len() - 2..],
        ["file:///one", "deb file:///two bookworm main"],
        "{args:?}"
    );

    // The command line's --mirror replaces the file's, all of them.
    let env = new_env();
    let args = failed_build_args(
        &env,
        "mirror=(file:///one file:///two)\n",
        &["--suite", "bookworm", "--mirror", "file:///three"],
    );
    assert_eq!(args.last().unwrap(), "file:///three", "{args:?}");
    assert!(!args.iter().any(|a| a == "file:///one"), "{args:?}");
}

#[test]
fn variable_arch() {
    let env = new_env();
    let args = failed_build_args(&env, "arch=mkvearch\n", &["--mirror", "file:///nowhere"]);
    assert!(
        args.contains(&"--architectures=mkvearch".into()),
        "{args:?}"
    );
}

#[test]
fn variable_variant() {
    let env = new_env();
    let args = failed_build_args(&env, "variant=buildd\n", &["--mirror", "file:///nowhere"]);
    assert!(args.contains(&"--variant=buildd".into()), "{args:?}");
}

#[test]
fn variable_backend() {
    // Refused as it is read, as every variable's bad value is: 65, naming
    // the file and the variable.
    let env = new_env();
    let conf = env.write_config("backend=nonsense\n");
    let r = run(&mut package_build(&env));
    assert_eq!(
        (r.code, r.stderr),
        (
            65,
            format!(
                "mkve-bundle: {}: backend: unknown backend \"nonsense\" (known: mmdebstrap, hasher)\n",
                conf.display()
            )
        )
    );
}

/// A package layer built by the fake mmdebstrap for this `Env` and then
/// taken from the cache; then a build with `config` and `extra`: how many
/// times mmdebstrap ran in all.
fn layer_runs(env: &Env, config: &str, extra: &[&str]) -> usize {
    let build = |config: &str, extra: &[&str]| {
        env.write_config(config);
        run_ok(
            package_build(env)
                .env("FAKE_ROOT", busybox_root())
                .args(["--mirror", "file:///nowhere", "--suite", "bookworm"])
                .args(extra),
        );
        mmdebstrap_runs(env).len()
    };
    assert_eq!(build("", &[]), 1, "built");
    assert_eq!(build("", &[]), 1, "cached");
    build(config, extra)
}

#[test]
#[ignore = "needs root: builds from a busybox root with a device node"]
fn variable_no_cache() {
    let env = new_env();
    assert_eq!(
        layer_runs(&env, "no_cache=yes\n", &[]),
        2,
        "the cache was not used"
    );
    assert!(
        !std::fs::read_dir(env.home.path().join("cache/layers"))
            .unwrap()
            .any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".build")),
        "the uncached root is gone"
    );
}

#[test]
#[ignore = "needs root: builds from a busybox root with a device node"]
fn variable_refresh() {
    let env = new_env();
    assert_eq!(layer_runs(&env, "refresh=1\n", &[]), 2, "built again");
    // --refresh on the command line wins over no_cache in the file,
    // which conflicts with it.
    let env = new_env();
    assert_eq!(layer_runs(&env, "no_cache=yes\n", &["--refresh"]), 2);
}

#[test]
#[ignore = "needs root: builds from a busybox root with a device node"]
fn variable_force_no_sign() {
    let env = new_env();
    let (r, _) = build_with(&env, "a.bun", &[]);
    assert_eq!(r.code, 65, "no key to sign with: {}", r.stderr);
    env.write_config("force_no_sign=true\n");
    let (r, out) = build_with(&env, "a.bun", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(info(&env, &out)["signature"]["status"], "none");
}

#[test]
#[ignore = "needs root: builds from a busybox root with a device node"]
fn variable_sign_key() {
    let env = new_env();
    env.write_config("sign_key=nobody@example.invalid\n");
    let (r, _) = build_signed(&env, "a.bun");
    r.assert_stderr(65, "no secret key \"nobody@example.invalid\"");
    env.write_config(&format!("sign_key={}\n", signer().fingerprint));
    let (r, out) = build_signed(&env, "b.bun");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let keyring = signer().keyring.to_str().unwrap();
    let v = bundle_info(&env, &out, &["--keyring", keyring]);
    assert_eq!(v["signature"]["fingerprint"], signer().fingerprint.as_str());
}

#[test]
#[ignore = "needs root: builds from a busybox root with a device node"]
fn variable_directory() {
    // --extract requires -C: the file may give it.
    let env = new_env();
    let bundle = unsigned_bundle(&env);
    let dest = env.home.path().join("unpacked");
    env.write_config(&format!("directory={}\n", dest.display()));
    run_ok(
        env.cmd()
            .arg("--extract")
            .arg(&bundle)
            .arg("--allow-unsigned"),
    );
    assert!(dest.join("rootfs/bin/busybox").is_file());
}

#[test]
#[ignore = "needs root: builds from a busybox root with a device node"]
fn variable_keyring() {
    let env = new_env();
    let bundle = signed_bundle(&env);
    let verify = || run(env.cmd().arg("--verify").arg(&bundle));
    env.write_config(&format!("keyring={}\n", signer().keyring.display()));
    let r = verify();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains(&format!("good signature by {}", signer().fingerprint)),
        "{}",
        r.stdout
    );
    env.write_config(&format!("keyring={}\n", stranger().keyring.display()));
    verify().assert_stderr(65, "a key not in the keyring");
}

#[test]
#[ignore = "needs root: builds from a busybox root with a device node"]
fn variable_allow_unsigned() {
    let env = new_env();
    let bundle = unsigned_bundle(&env);
    let verify = || {
        run(env
            .cmd()
            .arg("--verify")
            .arg(&bundle)
            .arg("--keyring")
            .arg(&signer().keyring))
    };
    let r = verify();
    assert_eq!(r.code, 65, "{}", r.stderr);
    env.write_config("allow_unsigned=yes\n");
    let r = verify();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains(": not signed, "), "{}", r.stdout);
}

#[test]
#[ignore = "needs root: builds from a busybox root with a device node"]
fn variable_verbose() {
    let env = new_env();
    let (r, _) = build_with(&env, "a.bun", &["--force-no-sign"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    env.write_config("verbose=yes\n");
    let (r, _) = build_with(&env, "b.bun", &["--force-no-sign"]);
    // Progress, though stderr is no terminal.
    r.assert_stderr(0, "mkve-bundle: packing the root\n");
}

#[test]
#[ignore = "needs root: builds from a busybox root with a device node"]
fn variable_quiet() {
    // Progress shows only on a terminal: run under script(1)'s.
    let env = new_env();
    let on_a_terminal = |name: &str| {
        let inner = env.cmd();
        let out = env.home.path().join(name);
        let line = [
            env!("CARGO_BIN_EXE_mkve-bundle"),
            "-H",
            "qemu",
            "--force-no-sign",
            "--hooks",
            &hooks(),
            "--rootfs",
            &busybox_root().display().to_string(),
            "-o",
            &out.display().to_string(),
            &good("ntp-server").display().to_string(),
        ]
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
        let mut c = Command::new("script");
        c.env_clear()
            .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .args(["-qec", &line, "/dev/null"]);
        let r = run(&mut c);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        r.stdout
    };
    let shown = on_a_terminal("a.bun");
    assert!(shown.contains("mkve-bundle: packing the root"), "{shown}");
    env.write_config("quiet=yes\n");
    let quiet = on_a_terminal("b.bun");
    assert!(!quiet.contains("mkve-bundle: "), "{quiet}");
    assert!(
        quiet.contains("b.bun"),
        "the result is still printed: {quiet}"
    );
}

#[test]
fn variable_valid_for() {
    // A bundle of a plain root (no hooks, no root needed), published with
    // the file's valid_for: the list is signed valid until a day from now.
    let env = new_env();
    let root = env.make_dir("root");
    std::fs::create_dir(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/hostname"), "x\n").unwrap();
    let bundle = env.home.path().join("a.bun");
    run_ok(
        env.cmd()
            .env("GNUPGHOME", &signer().home)
            .args(["-H", "lxc", "--rootfs"])
            .arg(&root)
            .arg("-o")
            .arg(&bundle)
            .arg(good("two-containers")),
    );
    env.write_config("valid_for=1d\n");
    let r = run_ok(
        env.cmd()
            .env("GNUPGHOME", &signer().home)
            .arg("-v")
            .arg("--publish")
            .arg(env.home.path().join("pub"))
            .arg(&bundle)
            .arg("--keyring")
            .arg(&signer().keyring),
    );
    let tomorrow = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 86_400;
    let day = mkve_core::date::rfc3339(tomorrow);
    assert!(
        r.stderr.contains(&format!(", valid until {}", &day[..10])),
        "{}",
        r.stderr
    );
    env.write_config("valid_for=soon\n");
    let r = run(env
        .cmd()
        .arg("--publish")
        .arg(env.home.path().join("pub"))
        .arg(&bundle));
    r.assert_stderr(65, "valid_for");
}

/// A bundle of a plain root (no hooks, no root needed) whose dpkg database
/// lists chrony 4.3-2+deb12u1, and the fixture feed: --audit finds
/// CVE-2026-10006 in it.
fn audited_bundle(env: &Env) -> (PathBuf, tempfile::TempDir, PathBuf) {
    let root = env.make_dir("root");
    std::fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
    std::fs::write(
        root.join("var/lib/dpkg/status"),
        "Package: chrony\nStatus: install ok installed\nArchitecture: amd64\nVersion: 4.3-2+deb12u1\n",
    )
    .unwrap();
    let bundle = env.home.path().join("a.bun");
    run_ok(
        env.cmd()
            .args(["-H", "lxc", "--force-no-sign", "--rootfs"])
            .arg(&root)
            .arg("-o")
            .arg(&bundle)
            .arg(good("two-containers")),
    );
    let (dir, feed) = debsecan_feed();
    (bundle, dir, feed)
}

#[test]
fn variable_feed() {
    let env = new_env();
    let (bundle, _dir, feed) = audited_bundle(&env);
    env.write_config(&format!("feed={}\n", feed.display()));
    let r = run(env.cmd().args(["--allow-unsigned", "--audit"]).arg(&bundle));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stdout.contains("CVE-2026-10006"), "{}", r.stdout);
}

/// `mkve-bundle --allow-unsigned --audit BUNDLE --feed FEED`, as the
/// config file has it.
fn audit(env: &Env, bundle: &Path, feed: &Path) -> Run {
    run(env
        .cmd()
        .args(["--allow-unsigned", "--audit"])
        .arg(bundle)
        .arg("--feed")
        .arg(feed))
}

#[test]
fn variable_json() {
    let env = new_env();
    let (bundle, _dir, feed) = audited_bundle(&env);
    env.write_config("json=yes\n");
    let r = audit(&env, &bundle, &feed);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        audit_pairs(&r.stdout).into_iter().collect::<Vec<_>>(),
        [("CVE-2026-10006".to_string(), "chrony".to_string())]
    );
}

#[test]
#[ignore = "needs root: an accepted file must be root's"]
fn variable_accepted() {
    let env = new_env();
    let (bundle, _dir, feed) = audited_bundle(&env);
    let accepted = env.home.path().join("accepted");
    std::fs::write(&accepted, "CVE-2026-10006 chrony 2026-12-01 reviewed\n").unwrap();
    env.write_config(&format!("accepted={}\n", accepted.display()));
    let r = audit(&env, &bundle, &feed);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
}
