//! `mkve-bundle --check` on the good template and on every malformed
//! fixture: each is a directory named after what is wrong with it, holding
//! the exact lines expected on stderr ({T} is the template, {H} the hooks
//! directory) and, optionally, extra arguments.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use mkve_testkit::*;

fn new_env() -> Env {
    Env::new(env!("CARGO_BIN_EXE_mkve-bundle"))
}

/// `mkve-bundle --check --hooks HOOKS EXTRA… TEMPLATE`
fn check(env: &Env, hooks: &Path, extra: &[&str], template: &Path) -> Run {
    run(env
        .cmd()
        .arg("--check")
        .arg("--hooks")
        .arg(hooks)
        .args(extra)
        .arg(template))
}

#[test]
fn the_good_template_checks_for_every_hypervisor_it_lists() {
    let env = new_env();
    let t = good("ntp-server");
    let r = check(&env, &hooks_dir(), &[], &t);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(
        r.stdout,
        format!("{}: ok for lxc, qemu, openvz\n", t.display())
    );
    let r = run(env.cmd().args(["--check", "--hypervisor", "qemu"]).arg(&t));
    assert_eq!(r.stdout, format!("{}: ok for qemu\n", t.display()));
}

#[test]
fn every_malformed_template_is_refused_with_its_message_and_exit_65() {
    let env = new_env();
    let bad = fixtures().join("templates/bad");
    let mut dirs: Vec<_> = std::fs::read_dir(&bad)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 15,
        "at least 15 malformed fixtures, found {}",
        dirs.len()
    );
    let mut failures = Vec::new();
    for t in dirs {
        let expected: String = std::fs::read_to_string(t.join("expected"))
            .unwrap_or_else(|_| panic!("{}: no expected file", t.display()))
            .lines()
            .map(|l| {
                let l = l
                    .replace("{T}", &t.display().to_string())
                    .replace("{H}", &hooks_dir().display().to_string());
                format!("mkve-bundle: {l}\n")
            })
            .collect();
        let extra = std::fs::read_to_string(t.join("args")).unwrap_or_default();
        let extra: Vec<&str> = extra.split_whitespace().collect();
        let r = check(&env, &hooks_dir(), &extra, &t);
        if r.code != 65 || r.stderr != expected || !r.stdout.is_empty() {
            failures.push(format!(
                "{}: exit {} (want 65)\n  got:  {:?}\n  want: {:?}",
                t.file_name().unwrap().to_string_lossy(),
                r.code,
                r.stderr,
                expected
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_template_is_found_by_name_under_the_data_directory() {
    let env = new_env();
    let templates = env.home.path().join("share/templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::os::unix::fs::symlink(good("ntp-server"), templates.join("ntp")).unwrap();
    let r = run_ok(
        env.cmd()
            .args(["--check", "-H", "qemu", "ntp"])
            .current_dir(env.home.path()),
    );
    assert_eq!(
        r.stdout,
        format!("{}: ok for qemu\n", templates.join("ntp").display())
    );

    let r = run(env
        .cmd()
        .args(["--check", "no-such-template"])
        .current_dir(env.home.path()));
    assert_eq!(r.code, 65);
    assert_eq!(
        r.stderr,
        format!(
            "mkve-bundle: no-such-template: no such template (no directory no-such-template, and none in {})\n",
            templates.display()
        )
    );
}

#[test]
fn usage_errors_exit_2() {
    let env = new_env();
    let r = run(env.cmd().arg("--check"));
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr,
        "mkve-bundle: no template given: name one, or set template= in ~/.mkve/bundle-config\n"
    );
    let r = run(env
        .cmd()
        .args(["--hypervisor", "vmware"])
        .arg(good("ntp-server")));
    r.assert_stderr(2, "unknown hypervisor \"vmware\"");
    let r = run(env
        .cmd()
        .args(["--rootfs", "/nonexistent", "-o", "x.bun", "--hooks"])
        .arg(hooks_dir())
        .arg(good("ntp-server")));
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr,
        format!(
            "mkve-bundle: {} lists lxc, qemu, openvz: choose one with --hypervisor\n",
            good("ntp-server").display()
        )
    );
}

#[test]
fn every_shipped_template_checks_with_the_shipped_hooks() {
    let env = new_env();
    let top = fixtures().join("../..").canonicalize().unwrap();
    let mut n = 0;
    for t in std::fs::read_dir(top.join("templates")).unwrap() {
        let t = t.unwrap().path();
        let r = check(&env, &top.join("hooks"), &[], &t);
        assert_eq!(r.code, 0, "{}: {}", t.display(), r.stderr);
        n += 1;
    }
    assert!(n >= 1);
}

/// A template that installs openssh-server without hook
/// 05-ssh-hostkeys-per-machine is warned of (exit 0), naming the list and
/// line; with the hook listed, nothing is said.
#[test]
fn openssh_server_without_its_hook_is_a_warning() {
    let env = new_env();
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("shell");
    std::fs::create_dir_all(t.join("packages-lists")).unwrap();
    std::fs::create_dir_all(t.join("version")).unwrap();
    std::fs::write(t.join("hypervisors"), "lxc\n").unwrap();
    std::fs::write(t.join("version/lxc"), "template_version=1\n").unwrap();
    std::fs::write(t.join("packages-lists/lxc"), "chrony\nopenssh-server\n").unwrap();
    let r = check(&env, &hooks_dir(), &[], &t);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "mkve-bundle: warning: {}:2: installs openssh-server but hooks-lists/lxc lists no 05-ssh-hostkeys-per-machine: every machine of the bundle would share its keys (the build refuses a root that holds them)\n",
            t.join("packages-lists/lxc").display()
        )
    );
    std::fs::create_dir_all(t.join("hooks-lists")).unwrap();
    std::fs::write(t.join("hooks-lists/lxc"), "05-ssh-hostkeys-per-machine\n").unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hooks");
    let r = check(&env, &shipped, &[], &t);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
}
