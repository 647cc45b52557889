//! mkve-net's command line. The network life cycle itself is tested in the
//! core against libvirt's test driver (whose state lives only as long as
//! one connection, so one process); here each run is one process.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mkve_testkit::*;

fn new_env() -> Env {
    Env::new(env!("CARGO_BIN_EXE_mkve-net"))
}

/// A libvirt URI no daemon answers at.
const UNREACHABLE: &str = "qemu+unix:///system?socket=/nonexistent/libvirt-sock";

#[test]
fn print_xml_is_the_network_and_touches_nothing() {
    let env = new_env();
    let r = run_ok(
        env.cmd()
            .args(["create", "--print-xml", "--connect", UNREACHABLE]),
    );
    assert!(
        r.stdout
            .starts_with("<network>\n  <name>mkve-network</name>\n  <bridge name='mkvebr0'"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("<ip address='192.0.2.1' prefix='24'>"));
}

#[test]
fn ip_maps_ids_to_addresses_and_refuses_what_does_not_fit() {
    let env = new_env();
    let r = run(env.cmd().args(["ip", "142"]));
    assert_eq!((r.code, r.stdout.as_str()), (0, "192.0.2.142\n"));
    let r = run(env.cmd().args(["ip", "--json", "142"]));
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "{\"id\":142,\"address\":\"192.0.2.142\"}\n")
    );
    let r = run(env.cmd().args(["ip", "300"]));
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr,
        "mkve-net: ID 300 does not fit the mkve network 192.0.2.0/24 (IDs 100 to 254)\n"
    );

    std::fs::create_dir_all(env.home.path().join("etc")).unwrap();
    std::fs::write(
        env.home.path().join("etc/mkve.conf"),
        "network_address=198.51.100.1/23\n",
    )
    .unwrap();
    let r = run(env.cmd().args(["ip", "300"]));
    assert_eq!((r.code, r.stdout.as_str()), (0, "198.51.101.44\n"));

    std::fs::write(
        env.home.path().join("etc/mkve.conf"),
        "network_address=nonsense\n",
    )
    .unwrap();
    let r = run(env.cmd().args(["ip", "100"]));
    r.assert_stderr(65, "mkve.conf:1: \"nonsense\" is not an address");
}

#[test]
fn create_and_status_through_libvirt() {
    let env = new_env();
    let v = run_json(
        env.cmd()
            .args(["--connect", "test:///default", "status", "--json"]),
    );
    assert_eq!(v["defined"], false);
    assert_eq!(v["address"], "192.0.2.1/24");
    let r = run(env.cmd().args(["--connect", "test:///default", "create"]));
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    let r = run(env.cmd().args(["--connect", "test:///default", "stop"]));
    assert_eq!(r.code, 2, "a fresh test driver has no mkve-network");
    assert_eq!(
        r.stderr,
        "mkve-net: network mkve-network is not defined (mkve-net create makes it)\n"
    );
}

#[test]
fn an_unreachable_libvirt_is_exit_69() {
    let env = new_env();
    let r = run(env.cmd().args(["--connect", UNREACHABLE, "status"]));
    assert_eq!(r.code, 69, "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with(&format!("mkve-net: libvirt ({UNREACHABLE}): ")),
        "{}",
        r.stderr
    );
}
