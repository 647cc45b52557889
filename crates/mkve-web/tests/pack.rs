//! Pack and adopt through the router, in-process against libvirt's test
//! driver (`test:///default`, no daemon, no root): a stopped machine's
//! page has the Pack section and the create page the Adopt form; each is
//! wired to the call `mkve-vm` makes, whose refusals on the test driver
//! (a test machine is not packed, a test domain not adopted, a domain
//! that is not there) come back in the CLI's words and status, logged as
//! the command lines. Packing and adopting real machines is
//! tests/pack.sh's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::Request;
use common::*;
use mkve_core::exec::Silent;
use mkve_core::libvirt::network;

#[tokio::test]
async fn pack_and_adopt_answer_in_the_cli_words() {
    let d = dirs("webpack-net");
    let conn = test_conn();
    let net = mkve_core::nodes::network().unwrap();
    network::create(&conn, &net, &Silent).unwrap();
    define_test_machine(&conn, 171, "web-p-171");
    let app = app(test_uris(), &d.join("webp"), false);

    let (_, page, _) = send(&app, get("/machines/171")).await;
    assert!(
        page.contains("id=\"pack\"") && page.contains("download it packed"),
        "{page}"
    );
    let token = csrf_of(&page);
    let (_, page, _) = send(&app, get("/create")).await;
    assert!(page.contains("id=\"adopt-form\""), "{page}");

    // The API: the bundle, or the refusal in the CLI's words.
    let req = Request::post("/api/machines/171/pack?unsigned=true")
        .header("host", "localhost")
        .body(Body::empty())
        .unwrap();
    let (status, body, _) = send(&app, req).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("machine 171 runs under test: this mkve packs lxc, qemu and kvm machines"),
        "{body}"
    );
    assert!(body.contains("\"exit\":2"), "{body}");
    let req = Request::post("/api/machines/171/pack?scrub=none")
        .header("host", "localhost")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, req).await.0, 400);

    // The page: the section again, with the refusal.
    let mut req = post("/machines/171/pack", Some(&token), "unsigned=true");
    req.headers_mut()
        .insert("hx-request", "true".parse().unwrap());
    let (status, body, _) = send(&app, req).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("id=\"pack\"") && body.contains("runs under test"),
        "{body}"
    );
    assert!(!body.contains("data-download"), "{body}");
    let (status, body, _) = send(&app, get("/machines/171/pack")).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("no bundle of machine 171 was packed here"),
        "{body}"
    );

    // Adopt: a domain that is not there, one of a type mkve does not run.
    let req = Request::post("/api/adopt?domain=nosuch")
        .header("host", "localhost")
        .body(Body::empty())
        .unwrap();
    let (status, body, _) = send(&app, req).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("no domain nosuch on test:///default"),
        "{body}"
    );
    conn.define(
        "<domain type='test'><name>foreign</name><memory>65536</memory><os><type>hvm</type></os></domain>",
        "foreign",
    )
    .unwrap();
    let (status, body, _) = send(&app, post("/adopt", Some(&token), "domain=foreign&id=")).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("domain foreign is of type test, which mkve does not run"),
        "{body}"
    );
    let (status, body, _) = send(&app, post("/adopt", Some(&token), "domain=foreign&id=x")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("id:"), "{body}");
    let (status, _, _) = send(&app, post("/adopt", None, "domain=foreign")).await;
    assert_eq!(status, 403, "a change without the page's token");

    let log = app.log.newest_first();
    let seen: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        seen,
        [
            "adopt foreign",
            "adopt nosuch",
            "pack --force-no-sign -o - 171",
            "pack --force-no-sign -o - 171",
        ]
    );
    network::delete(&conn, &net, true).unwrap();
}
