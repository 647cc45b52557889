//! mkve-web's network page and API open the libvirt connection mkve-net
//! opens (issue 25: they disagreed on a node that mkve.conf describes,
//! mkve-web opening qemu:///system): with no `-c` and no
//! `LIBVIRT_DEFAULT_URI`, this node's URI in mkve.conf. Here that URI is
//! libvirt's test driver, so both answer without a daemon, and the same.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

#[tokio::test]
async fn the_network_is_asked_where_mkve_net_asks_it() {
    let d = tempfile::tempdir().unwrap();
    let conf = d.path().join("etc");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("mkve.conf"),
        "this_node=n1\nnode.n1.ids=100-199\nnode.n1.uri.qemu=test:///default\n",
    )
    .unwrap();
    std::env::remove_var("LIBVIRT_DEFAULT_URI");
    std::env::set_var("MKVE_CONFDIR", &conf);
    std::env::set_var("MKVE_STATEDIR", d.path().join("state"));
    std::env::set_var("MKVE_LOCKDIR", d.path().join("lock"));

    assert_eq!(
        mkve_web::network::network_uri(None).unwrap(),
        "test:///default"
    );
    assert_eq!(
        mkve_web::network::network_uri(Some("qemu:///x")).unwrap(),
        "qemu:///x"
    );

    let cli = mkve_testkit::output_of(
        std::process::Command::new(bin("mkve-net")).args(["status", "--json"]),
    );
    let cli = String::from_utf8(cli).unwrap();

    let uris = mkve_web::config::uris_for(None).unwrap();
    assert_eq!(
        uris.list,
        ["test:///default"],
        "machines too, from mkve.conf"
    );
    let app = app(uris, &d.path().join("web"), false);
    let (status, body, _) = send(&app, get("/api/network")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, cli, "GET /api/network is mkve-net status --json");
}
