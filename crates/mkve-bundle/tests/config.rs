//! ~/.mkve/bundle-config: plain assignments, bash logic, the command line
//! winning over it, and a broken file.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mkve_testkit::*;

fn new_env() -> Env {
    Env::new(env!("CARGO_BIN_EXE_mkve-bundle"))
}

fn hypervisor_of(bundle: &std::path::Path) -> String {
    let v = bundle_info(&new_env(), bundle, &[]);
    v["hypervisor"].as_str().unwrap().to_string()
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn plain_assignments_stand_for_options() {
    let env = new_env();
    let out = env.home.path().join("from-config.bun");
    env.write_config(&format!(
        "template={}\nhypervisor=openvz\noutput={}\nforce_no_sign=yes\nverbose=no\n",
        good("ntp-server").display(),
        out.display()
    ));
    let r = run_ok(env.cmd().args(busybox_build_args()));
    assert_eq!(
        r.stdout,
        format!("{}\n", out.display()),
        "the bundle's path is the result"
    );
    assert_eq!(hypervisor_of(&out), "openvz");
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn the_config_is_a_bash_program() {
    let env = new_env();
    env.write_config(&format!(
        "template={}\nhypervisor=lxc\nmkdir -p ~/bundles\noutput=~/bundles/ntp-$(date +%Y)-$((40 + 2)).bun\n\
         [ -n \"$HOME\" ] && force_no_sign=yes\necho 'config says hello'\n",
        good("ntp-server").display()
    ));
    let r = run_ok(env.cmd().args(busybox_build_args()));
    let year = String::from_utf8(
        std::process::Command::new("date")
            .arg("+%Y")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let out = env
        .home
        .path()
        .join(format!("bundles/ntp-{}-42.bun", year.trim()));
    assert_eq!(r.stdout, format!("{}\n", out.display()));
    assert!(out.is_file());
    assert_eq!(
        r.stderr, "config says hello\n",
        "what the config prints goes to stderr, never into results"
    );
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn the_command_line_wins_over_the_config() {
    let env = new_env();
    let from_config = env.home.path().join("config.bun");
    let from_cli = env.home.path().join("cli.bun");
    env.write_config(&format!(
        "template={}\nhypervisor=openvz\noutput={}\nforce_no_sign=yes\n",
        good("failing-hook").display(),
        from_config.display()
    ));
    run_ok(
        env.cmd()
            .args(busybox_build_args())
            .args(["-H", "lxc", "-o"])
            .arg(&from_cli)
            .arg(good("ntp-server")),
    );
    assert_eq!(hypervisor_of(&from_cli), "lxc");
    assert!(!from_config.exists());
}

#[test]
fn no_config_ignores_it_and_config_names_another_file() {
    let env = new_env();
    env.write_config(&format!(
        "template={}\nhypervisor=openvz\n",
        good("ntp-server").display()
    ));
    let r = run(env.cmd().arg("--check").arg("--hooks").arg(hooks_dir()));
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (
            0,
            format!("{}: ok for openvz\n", good("ntp-server").display()).as_str()
        ),
        "{}",
        r.stderr
    );
    let r = run(env.cmd().args(["--no-config", "--check"]));
    assert_eq!(
        r.code, 2,
        "without the config there is no template: {}",
        r.stderr
    );
    let other = env.home.path().join("other-config");
    std::fs::write(
        &other,
        format!("template={}\n", good("ntp-server").display()),
    )
    .unwrap();
    run_ok(
        env.cmd()
            .arg("--config")
            .arg(&other)
            .args(["--check", "-H", "qemu"]),
    );
    let r = run(env
        .cmd()
        .args(["--config", "/nonexistent/config", "--check"]));
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (2, "mkve-bundle: /nonexistent/config: no such config file\n")
    );
}

#[test]
fn a_broken_config_names_the_file_and_line() {
    let env = new_env();
    for (config, says) in [
        (
            "hypervisor=lxc\nif [ -d / ]; then\n  output=x.bun\n",
            ":4: syntax error: unexpected end of file",
        ),
        (
            "hypervisor=vmware\n",
            ": hypervisor: unknown hypervisor \"vmware\" (known: openvz, qemu, kvm, lxc, xen)",
        ),
        (
            "set -u\noutput=$UNSET_VARIABLE\n",
            ":2: UNSET_VARIABLE: unbound variable",
        ),
        (
            "force_no_sign=perhaps\n",
            ": force_no_sign=\"perhaps\": expected yes (or true, on, 1) or no (or false, off, 0, empty)",
        ),
    ] {
        let path = env.write_config(config);
        let r = run(env.cmd().args(["--check"]).arg(good("ntp-server")));
        assert_eq!(r.code, 65, "{config:?}");
        assert_eq!(r.stderr, format!("mkve-bundle: {}{says}\n", path.display()));
    }
}
