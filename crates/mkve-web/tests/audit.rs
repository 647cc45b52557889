//! mkve-web --feed: the machines page counts each machine's open
//! vulnerabilities, as `mkve-vm audit` finds them, and each machine has a
//! page listing them; against libvirt's test driver in-process, with
//! machines whose directories hold what a create unpacks there.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::*;
use mkve_core::bundle::{self, MakeOptions, RootSource, Signing};
use mkve_core::hypervisor::Hypervisor;
use mkve_core::libvirt::domain;
use mkve_core::template::Template;
use mkve_testkit::{busybox_root, debsecan_feed, good, hooks_dir};

/// An unsigned lxc bundle of the fixture ntp-server from the busybox root
/// (chrony 4.3-2+deb12u1 and busybox-static 1:1.35.0-4 in its dpkg
/// database).
fn busybox_bundle() -> Vec<u8> {
    let t = Template::load(&good("ntp-server"), &hooks_dir(), Some(Hypervisor::Lxc)).unwrap();
    let opts = MakeOptions {
        template: &t,
        hypervisor: Hypervisor::Lxc,
        root: RootSource::Dir(busybox_root().to_path_buf()),
        signing: Signing::Unsigned,
        gnupg_home: None,
        report: &mkve_core::report::Silent,
        output: Path::new("(test)"),
    };
    let mut bytes = Vec::new();
    bundle::make(&opts, &mut bytes).unwrap();
    bytes
}

/// The bundle unpacked into `dir` as a create unpacks it; its root digest.
fn unpack_as_created(bytes: &[u8], dir: &Path) -> String {
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    let opts = bundle::ReadOptions {
        unpack_to: Some(dir),
        ..bundle::ReadOptions::lenient(bundle::Check::Digests)
    };
    let r = bundle::read(bytes, Path::new("(test)"), &opts).unwrap();
    r.meta.members[bundle::ROOTFS].clone()
}

fn define(conn: &mkve_core::libvirt::Connection, id: u32, name: &str, bundle: &str) {
    let record = domain::Record {
        id,
        address: format!("192.0.2.{id}").parse().unwrap(),
        template: "ntp-server".into(),
        version: "1.0".into(),
        bundle: bundle.into(),
        signed_by: None,
        source: None,
        adopted: false,
    };
    define_with_record(conn, &record, name);
}

fn app_with_feed(dir: &Path, feed: Option<&Path>) -> mkve_web::Shared {
    let mut c = mkve_web::Config::new(test_uris());
    c.connect = Some("test:///default".into());
    c.dir = dir.to_path_buf();
    c.feed = feed.map(Path::to_path_buf);
    mkve_web::App::new(c).unwrap()
}

#[tokio::test]
#[ignore = "needs root: a busybox root with a device node"]
async fn machines_show_their_open_vulnerabilities() {
    let d = dirs("webaudit-net");
    // The test driver's node lives while a connection to it is open.
    let conn = test_conn();
    let vms = d.join("state/vms");
    let bytes = busybox_bundle();
    let root = unpack_as_created(&bytes, &vms.join("160"));
    define(&conn, 160, "ntp-160", &root);
    // A machine made from a format 2 bundle: no SBOM came with it.
    std::fs::create_dir_all(vms.join("161")).unwrap();
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(vms.join("160/meta.json")).unwrap()).unwrap();
    meta["format"] = 2.into();
    let members = meta["members"].as_object_mut().unwrap();
    members.remove("sbom.spdx.json");
    members.remove("provenance.intoto.json");
    std::fs::write(vms.join("161/meta.json"), meta.to_string()).unwrap();
    define(&conn, 161, "old-161", &root);
    let (_feed_dir, feed) = debsecan_feed();

    let app = app_with_feed(&d.join("web-audit"), Some(&feed));
    let (status, page, _) = send(&app, get("/")).await;
    assert_eq!(status, 200);
    assert!(page.contains("<th>vulnerabilities</th>"), "{page}");
    assert!(
        page.contains(
            r#"<a class="error" href="/machines/160/vulnerabilities" data-vulns="2">2 open</a>"#
        ),
        "{page}"
    );
    assert!(
        page.contains(r#"data-vulns="none">no SBOM</span>"#),
        "{page}"
    );
    assert!(page.contains("made from a bundle of format 2"), "{page}");

    // Machine 160's page: the CVEs mkve-vm audit lists for it.
    let (status, page, _) = send(&app, get("/machines/160/vulnerabilities")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(r#"<table data-vulns="2">"#), "{page}");
    for cve in ["CVE-2026-10006", "CVE-2026-10013"] {
        assert!(
            page.contains(&format!("data-cve=\"{cve}\"")),
            "{cve}: {page}"
        );
    }
    assert!(page.contains("4.3-2+deb12u4"), "the fixed version: {page}");
    let (_, page, _) = send(&app, get("/machines/160")).await;
    assert!(
        page.contains(r#"<a href="/machines/160/vulnerabilities">open ones</a>"#),
        "the machine's page links to it: {page}"
    );
    let (status, page, _) = send(&app, get("/machines/ntp-160/vulnerabilities")).await;
    assert_eq!(status, 200, "a machine is named by its name too: {page}");
    let (_, page, _) = send(&app, get("/machines/161/vulnerabilities")).await;
    assert!(
        page.contains(
            "No SBOM: made from a bundle of format 2 (bundles carry an SBOM from format 3)"
        ),
        "{page}"
    );
    let (status, _, _) = send(&app, get("/machines/999/vulnerabilities")).await;
    assert_eq!(status, 404);

    // A new feed (cron put it there): the next refresh counts with it.
    let text =
        std::fs::read_to_string(mkve_testkit::fixtures().join("debsecan/bookworm.txt")).unwrap();
    let without_chrony: String = text
        .lines()
        .filter(|l| !l.starts_with("chrony,"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut z, without_chrony.as_bytes()).unwrap();
    std::fs::write(&feed, z.finish().unwrap()).unwrap();
    let (_, table, _) = send(&app, get("/machines/table")).await;
    assert!(table.contains(r#"data-vulns="1">1 open</a>"#), "{table}");

    // Without --feed: no column, no page.
    let plain = app_with_feed(&d.join("web-plain"), None);
    let (_, page, _) = send(&plain, get("/")).await;
    assert!(!page.contains("vulnerabilities"), "{page}");
    let (status, _, _) = send(&plain, get("/machines/160/vulnerabilities")).await;
    assert_eq!(status, 404);
}
