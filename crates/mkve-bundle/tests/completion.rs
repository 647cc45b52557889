//! Shell completion asks mkve-bundle itself: template names come from
//! $MKVE_DATADIR/templates as it is, hypervisors from the list mkve knows.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mkve_testkit::*;

#[test]
fn templates_hypervisors_and_backends_complete() {
    let bin = env!("CARGO_BIN_EXE_mkve-bundle");
    let data = tempfile::tempdir().unwrap();
    for t in ["ntp-server", "ntp-relay", "web-server"] {
        std::fs::create_dir_all(data.path().join("templates").join(t)).unwrap();
        std::fs::write(
            data.path().join("templates").join(t).join("hypervisors"),
            "lxc\n",
        )
        .unwrap();
    }
    std::fs::create_dir_all(data.path().join("templates/not-a-template")).unwrap();
    let env = [("MKVE_DATADIR", data.path())];
    assert_eq!(
        complete(bin, &["mkve-bundle", "ntp"], &env),
        ["ntp-relay", "ntp-server"]
    );
    assert_eq!(
        complete(bin, &["mkve-bundle", "-H", ""], &env),
        ["openvz", "qemu", "kvm", "lxc", "xen"]
    );
    assert_eq!(
        complete(bin, &["mkve-bundle", "--backend", ""], &env),
        ["mmdebstrap", "hasher"]
    );
    // The script a shell sources names the tool, not the path it ran from.
    let o = std::process::Command::new(bin)
        .env("COMPLETE", "bash")
        .output()
        .unwrap();
    let script = String::from_utf8_lossy(&o.stdout);
    assert!(script.contains("\"mkve-bundle\" -- "), "{script}");
    assert!(!script.contains("target/"), "{script}");
}
