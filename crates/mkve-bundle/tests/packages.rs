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
    env.extract(&out, &dest);
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

/// The SBOM of a root built from packages: every deb with the sha256 the
/// archive's Packages index gives (the .deb apt downloaded has it), its
/// APT origin and purl; the same whether the layer was built for this
/// bundle (--no-cache, cold) or taken from the cache (warm).
#[test]
#[ignore = "needs root and the network: mmdebstrap installs Debian packages"]
fn the_sbom_gives_each_deb_its_archive_sha256_cold_and_warm_alike() {
    let env = new_env();
    let build = |name: &str, extra: &[&str]| {
        let out = env.home.path().join(name);
        run_ok(
            env.cmd()
                .args(["-H", "lxc", "--force-no-sign", "--hooks"])
                .arg(hooks_dir())
                .args(extra)
                .arg("-o")
                .arg(&out)
                .arg(good("ntp-server")),
        );
        let bytes = std::fs::read(&out).unwrap();
        members(&bytes)
            .into_iter()
            .find(|m| m.0 == "sbom.spdx.json")
            .unwrap()
            .1
    };
    let warm_first = build("a.bun", &[]);
    let cold = build("cold.bun", &["--no-cache"]);
    let warm = build("b.bun", &[]);
    assert_eq!(
        String::from_utf8_lossy(&cold),
        String::from_utf8_lossy(&warm),
        "cold and warm"
    );
    assert_eq!(warm_first, warm);

    let doc: serde_json::Value = serde_json::from_slice(&warm).unwrap();
    let debs: Vec<&serde_json::Value> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["SPDXID"].as_str().unwrap().starts_with("SPDXRef-deb-"))
        .collect();
    assert!(debs.len() > 50, "{} debs", debs.len());
    for p in &debs {
        let name = p["name"].as_str().unwrap();
        assert_eq!(
            p["checksums"][0]["algorithm"], "SHA256",
            "{name} has the archive's sha256"
        );
        let comment = p["comment"].as_str().unwrap();
        assert!(comment.contains("APT-Origin: o=Debian,"), "{comment}");
        let purl = p["externalRefs"][0]["referenceLocator"].as_str().unwrap();
        assert!(
            purl.starts_with(&format!("pkg:deb/debian/{}@", name.replace('+', "%2B")))
                && purl.contains("&distro=debian-12&upstream="),
            "{purl}"
        );
    }
    // The .deb apt downloaded (kept in the cache's debs) has that sha256.
    let chrony = debs.iter().find(|p| p["name"] == "chrony").unwrap();
    let file = chrony["comment"]
        .as_str()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Filename: "))
        .unwrap();
    let base = std::path::Path::new(file).file_name().unwrap();
    let deb = std::fs::read_dir(layer_cache().dir.join("debs"))
        .unwrap()
        .map(|d| d.unwrap().path().join(base))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{} not in the debs cache", base.to_string_lossy()));
    assert_eq!(
        chrony["checksums"][0]["checksumValue"],
        sha256(&std::fs::read(deb).unwrap())
    );
}

/// --audit on two bundles built from real packages finds, with the
/// fixture feed, what Debian's debsecan finds in their roots' dpkg status.
#[test]
#[ignore = "needs root and the network: mmdebstrap installs Debian packages"]
fn audit_of_real_bundles_matches_debsecan() {
    let env = new_env();
    let (dir, feed) = debsecan_feed();
    let mut all = std::collections::BTreeSet::new();
    for template in ["ntp-server", "two-containers"] {
        let out = env.home.path().join(format!("{template}.bun"));
        run_ok(
            env.cmd()
                .args(["-H", "lxc", "--force-no-sign", "--hooks"])
                .arg(hooks_dir())
                .arg("-o")
                .arg(&out)
                .arg(good(template)),
        );
        let dest = env.home.path().join(template);
        env.extract(&out, &dest);
        let theirs = debsecan_findings(dir.path(), &dest.join("rootfs/var/lib/dpkg/status"));
        let r = run(env
            .cmd()
            .args([
                "--allow-unsigned",
                "--json",
                "--accepted",
                "/nonexistent",
                "--audit",
            ])
            .arg(&out)
            .arg("--feed")
            .arg(&feed));
        assert_eq!(r.code, 1, "{}", r.stderr);
        let ours = audit_pairs(&r.stdout);
        assert!(ours.len() >= 3, "{template}: {ours:?}");
        assert_eq!(ours, theirs, "{template}");
        all.extend(ours);
    }
    eprintln!(
        "{} (CVE, package) findings, the same as debsecan's",
        all.len()
    );
}
