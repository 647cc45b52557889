//! The router in-process against a real libvirtd: the test harness's
//! private one, in the network namespace `mkve-web-test`
//! (tests/harness/libvirtd-netns). A machine created by uploading a bundle
//! to the API is what `mkve-vm list --json` and `info --json` print; a
//! tampered bundle is refused with what `mkve-vm create` prints of it and
//! nothing is made; delete leaves nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use axum::body::Body;
use axum::http::Request;
use common::*;

const NS: &str = "mkve-web-test";

/// The harness's libvirtd, the mkve network on it, and mkve's directories
/// for this test; all of it gone when dropped.
struct Node {
    dir: tempfile::TempDir,
    uri: String,
}

fn harness() -> PathBuf {
    mkve_testkit::top().join("tests/harness/libvirtd-netns")
}

impl Node {
    fn start() -> Node {
        let dir = tempfile::Builder::new()
            .prefix("mkve-web-libvirtd.")
            .tempdir_in("/var/tmp")
            .unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        // With MKVE_STATEDIR, the harness shares it with the daemon (lxc
        // overlay roots) and unmounts what is left below it at stop, even
        // when a test failed before it deleted its machines. MKVE_BINDIR:
        // libvirt's lxc hook runs this build's mkve-vm.
        let vm = bin("mkve-vm");
        let out = mkve_testkit::output_of(
            Command::new(harness())
                .args(["start", NS])
                .env("MKVE_STATEDIR", dir.path().join("state"))
                .env("MKVE_BINDIR", vm.parent().unwrap()),
        );
        let uri = String::from_utf8_lossy(&out).trim().to_string();
        let d = dir.path();
        std::env::set_var("MKVE_DATADIR", mkve_testkit::top());
        std::env::set_var("MKVE_CONFDIR", d.join("etc"));
        std::env::set_var("MKVE_STATEDIR", d.join("state"));
        std::env::set_var("MKVE_LOCKDIR", d.join("lock"));
        std::env::set_var("LIBVIRT_DEFAULT_URI", &uri);
        let node = Node { dir, uri };
        node.cli("mkve-net", &["create"]);
        node
    }

    /// Run a tool of the workspace against this node; its stdout.
    fn cli(&self, tool: &str, args: &[&str]) -> String {
        String::from_utf8_lossy(&mkve_testkit::output_of(Command::new(bin(tool)).args(args)))
            .into_owned()
    }

    /// What mkve-vm ARGS, run in the node's directory, says refusing them
    /// (65).
    fn refused(&self, args: &[&str]) -> String {
        let out = Command::new(bin("mkve-vm"))
            .args(args)
            .current_dir(self.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(65));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new(harness()).args(["stop", NS]).status();
    }
}

/// `bundle` with one byte of its root's payload changed.
fn tampered(bundle: &[u8]) -> Vec<u8> {
    let mut members = mkve_testkit::members(bundle);
    let root = members
        .iter_mut()
        .find(|(n, _)| n == "rootfs.tar.zst")
        .unwrap();
    let mid = root.1.len() / 2;
    root.1[mid] ^= 0x55;
    mkve_testkit::assemble(&members)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs root: a private libvirtd in a network namespace, lxc machines"]
async fn a_machine_made_through_the_api_is_what_the_cli_lists() {
    let node = Node::start();
    let root = login_root(node.path());
    let bundle = node.path().join("tiny.bun");
    node.cli(
        "mkve-bundle",
        &[
            "--no-config",
            "-q",
            "-H",
            "lxc",
            "--force-no-sign",
            "--rootfs",
            root.to_str().unwrap(),
            "-o",
            bundle.to_str().unwrap(),
            mkve_testkit::good("two-containers").to_str().unwrap(),
        ],
    );
    let uris = mkve_core::vm::uris(Some(&node.uri)).unwrap();
    let app = app(uris, &node.path().join("web"), false);
    let bytes = std::fs::read(&bundle).unwrap();

    // Unsigned, without allow_unsigned: refused as the CLI refuses it.
    let (status, body, _) = send(&app, upload("tiny.bun", &bytes, &[])).await;
    assert_eq!(status, 422, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        as_cli_prints(v["error"].as_str().unwrap()),
        node.refused(&["create", "tiny.bun"])
    );

    let fields = [
        ("allow_unsigned", "on"),
        ("start", "on"),
        ("memory", "128M"),
        ("root_password", "Web-Api 1"),
    ];
    let (status, body, resp) = send(&app, upload("tiny.bun", &bytes, &fields)).await;
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_u64()
        .unwrap();
    assert_eq!(resp.headers()["location"], format!("/api/machines/{id}"));

    let (_, api_list, _) = send(&app, get("/api/machines")).await;
    assert_eq!(api_list, node.cli("mkve-vm", &["list", "--json"]));
    let listed: serde_json::Value = serde_json::from_str(&api_list).unwrap();
    assert_eq!(listed[0]["state"], "running");
    let (_, api_info, _) = send(&app, get(&format!("/api/machines/{id}"))).await;
    assert_eq!(
        api_info,
        node.cli("mkve-vm", &["info", "--json", &id.to_string()])
    );
    let (_, page, _) = send(&app, get("/")).await;
    assert!(
        page.contains(&format!("<tr data-id=\"{id}\" data-state=\"running\">")),
        "{page}"
    );
    let log = app.log.newest_first();
    assert_eq!(log[0].action, format!("create tiny.bun: machine {id}"));
    assert_eq!(log[0].result, "ok");

    // Tampered: refused in the CLI's words, and nothing is made. (A
    // private copy: on the base the bundle's root is not read again, its
    // digest having been checked once, as the base was made: mkve-vm(1),
    // BASES.)
    let bad = tampered(&bytes);
    std::fs::write(node.path().join("tampered.bun"), &bad).unwrap();
    let mut private = fields.to_vec();
    private.push(("no_base", "on"));
    let (status, body, _) = send(&app, upload("tampered.bun", &bad, &private)).await;
    assert_eq!(status, 422, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        as_cli_prints(v["error"].as_str().unwrap()),
        node.refused(&["create", "--allow-unsigned", "--no-base", "tampered.bun"])
    );
    assert!(v["error"].as_str().unwrap().starts_with("tampered.bun"));
    let (_, after, _) = send(&app, get("/api/machines")).await;
    assert_eq!(after, api_list, "a refused bundle makes no machine");
    let vms: Vec<_> = std::fs::read_dir(node.path().join("state/vms"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(vms, [id.to_string()]);

    let req = Request::delete(format!("/api/machines/{id}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, req).await.0, 204);
    assert_eq!(node.cli("mkve-vm", &["list", "--json"]).trim(), "[]");
    let (_, api_list, _) = send(&app, get("/api/machines")).await;
    assert_eq!(api_list.trim(), "[]");
    node.cli("mkve-net", &["delete", "--force"]);
}
