//! mkve-bundle building roots from real Debian packages (mmdebstrap), with
//! the package-layer cache shared by every test binary of the run.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mkve_testkit::*;

fn new_env() -> Env {
    Env::new(env!("CARGO_BIN_EXE_mkve-bundle"))
}

fn info(env: &Env, bundle: &std::path::Path) -> serde_json::Value {
    bundle_info(env, bundle, &[])
}

#[test]
#[ignore = "needs root and the network: mmdebstrap installs Debian packages"]
fn the_template_packages_and_the_hypervisor_set_are_installed_and_hooks_run() {
    let env = new_env();
    let out = env.home.path().join("ntp.bun");
    let r = run_ok(
        env.cmd()
            .args(["-H", "lxc", "--force-no-sign", "--hooks"])
            .arg(hooks_dir())
            .arg("-o")
            .arg(&out)
            .arg(good("ntp-server")),
    );
    assert_eq!(r.stderr, "", "silent when stderr is not a terminal");
    let v = info(&env, &out);
    assert_eq!(
        v["packages"]["requested"],
        serde_json::json!(["chrony", "systemd-sysv"])
    );
    let installed = v["packages"]["installed"].as_array().unwrap();
    for want in ["chrony", "systemd-sysv", "base-files"] {
        let p = installed
            .iter()
            .find(|p| p["name"] == want)
            .unwrap_or_else(|| panic!("{want} not installed"));
        assert!(!p["version"].as_str().unwrap().is_empty());
    }
    let dest = env.home.path().join("x");
    run_ok(
        env.cmd()
            .arg("--extract")
            .arg(&out)
            .arg("-C")
            .arg(&dest)
            .arg("--allow-unsigned"),
    );
    let log = std::fs::read_to_string(dest.join("rootfs/etc/hook-log")).unwrap();
    assert_eq!(log, "01-own\n02-record lxc ntp-server 1.2\n");
    assert!(dest.join("rootfs/usr/sbin/chronyd").is_file());
}

#[test]
#[ignore = "needs root and the network: mmdebstrap installs Debian packages"]
fn all_hypervisors_share_one_layer_when_the_sets_are_equal() {
    let env = new_env();
    let dir = env.make_dir("bundles");
    let r = run_ok(
        env.cmd()
            .args(["--all-hypervisors", "--force-no-sign", "--output-dir"])
            .arg(&dir)
            .arg(good("two-containers")),
    );
    let (lxc, openvz) = (
        dir.join("two-containers-lxc.bun"),
        dir.join("two-containers-openvz.bun"),
    );
    assert_eq!(
        r.stdout,
        format!("{}\n{}\n", lxc.display(), openvz.display())
    );
    assert!(
        env.mmdebstrap_runs() <= 1,
        "one package layer for two hypervisors"
    );
    let (a, b) = (info(&env, &lxc), info(&env, &openvz));
    assert_eq!(a["hypervisor"], "lxc");
    assert_eq!(b["hypervisor"], "openvz");
    assert_eq!(
        a["members"]["rootfs.tar.zst"], b["members"]["rootfs.tar.zst"],
        "the same root, packed the same"
    );
}

#[test]
fn a_package_debian_lacks_fails_at_once_naming_its_file_and_line() {
    let env = new_env();
    let out = env.home.path().join("asterisk.bun");
    let r = run(env
        .shipped()
        .args(["-H", "qemu", "--force-no-sign", "-o"])
        .arg(&out)
        .arg("asterisk"));
    assert_eq!(r.code, 65);
    assert_eq!(
        r.stderr,
        format!(
            "mkve-bundle: {}/templates/asterisk/packages-lists/qemu:2: package \"asterisk\" is not available in bookworm\n",
            top().display()
        )
    );
    assert_eq!(env.mmdebstrap_runs(), 0, "nothing was downloaded");
    assert!(!out.exists());
}
