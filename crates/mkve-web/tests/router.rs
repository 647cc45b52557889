//! The router in-process against libvirt's test driver (`test:///default`,
//! no daemon, no root): the pages and the API show what `mkve-vm list`
//! finds, the API answers the CLI's own JSON text, actions act and are
//! logged in the CLI's words, deletion asks for the ID, uploads are
//! refused as `mkve-vm create` refuses them, and the access rules hold.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::Request;
use common::*;
use mkve_core::exec::Silent;
use mkve_core::libvirt::network;
use mkve_core::vm;

/// The test driver's node is one per process: one test at a time on it.
static NODE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn ids_in(page: &str, attr: &str) -> Vec<String> {
    page.match_indices(attr)
        .map(|(i, _)| {
            page[i + attr.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn pages_and_api_show_what_the_cli_lists() {
    let _node = NODE.lock().await;
    let d = dirs("webtest-net");
    let conn = test_conn();
    let net = mkve_core::nodes::network().unwrap();
    network::create(&conn, &net, &Silent).unwrap();
    define_test_machine(&conn, 150, "web-a-150");
    define_test_machine(&conn, 151, "web-b-151");
    network::add_host(&conn, &net, 150, "web-a-150", &Silent).unwrap();
    network::add_host(&conn, &net, 151, "web-b-151", &Silent).unwrap();
    // An orphan: a DHCP entry of mkve's without its domain.
    network::add_host(&conn, &net, 152, "gone-152", &Silent).unwrap();
    let app = app(test_uris(), &d.join("web1"), false);

    let listed = vm::list(&test_uris()).unwrap();
    let cli_text = mkve_cli::json_text(&listed).unwrap() + "\n";
    let (status, body, resp) = send(&app, get("/api/machines")).await;
    assert_eq!(status, 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(body, cli_text, "GET /api/machines is mkve-vm list --json");
    let ids: Vec<String> = listed.iter().map(|m| m.id.to_string()).collect();
    assert_eq!(ids, ["150", "151", "152"]);

    // The page lists the same machines, in the same order and states.
    let (status, page, _) = send(&app, get("/")).await;
    assert_eq!(status, 200);
    assert_eq!(ids_in(&page, "<tr data-id=\""), ids);
    for m in &listed {
        assert!(
            page.contains(&format!("data-state=\"{}\"", m.state)),
            "{}",
            m.state
        );
        assert!(page.contains(&m.name), "{}", m.name);
    }
    assert!(page.contains("orphan"));
    // The table alone, as htmx refreshes it, says the same.
    let (_, table, _) = send(&app, get("/machines/table")).await;
    assert_eq!(ids_in(&table, "<tr data-id=\""), ids);
    assert!(table.contains("hx-trigger=\"every 5s\""));

    let info = vm::info(&test_uris(), "150").unwrap();
    let (status, body, _) = send(&app, get("/api/machines/150")).await;
    assert_eq!(status, 200);
    assert_eq!(body, mkve_cli::json_text(&info).unwrap() + "\n");
    let (status, body, _) = send(&app, get("/api/machines/web-b-151")).await;
    assert_eq!(status, 200, "a machine is named by its name too: {body}");

    let (status, body, _) = send(&app, get("/api/machines/nope")).await;
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"error": "no machine nope", "exit": 2})
    );

    // The network page: its entries, and the orphan among them.
    let (status, page, _) = send(&app, get("/network")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("<dd id=\"network-state\">active</dd>"),
        "{page}"
    );
    assert_eq!(ids_in(&page, "<tr data-id=\""), ["150", "151", "152"]);
    assert!(
        page.contains("orphan: mkve-vm delete 152 removes it"),
        "{page}"
    );
    let (_, body, _) = send(&app, get("/api/network")).await;
    let status_json = network::status(&conn, &net).unwrap();
    assert_eq!(body, mkve_cli::json_text(&status_json).unwrap() + "\n");

    for id in ["150", "151", "152"] {
        vm::delete(&test_uris(), id, &Silent).unwrap();
    }
    network::delete(&conn, &net, true).unwrap();
}

#[tokio::test]
async fn actions_act_are_logged_and_delete_asks_for_the_id() {
    let _node = NODE.lock().await;
    let d = dirs("webtest-net");
    let conn = test_conn();
    let net = mkve_core::nodes::network().unwrap();
    network::create(&conn, &net, &Silent).unwrap();
    define_test_machine(&conn, 160, "web-c-160");
    let app = app(test_uris(), &d.join("web2"), false);
    let (_, page, _) = send(&app, get("/")).await;
    let token = csrf_of(&page);

    // A browser's change needs the page's token.
    let (status, body, _) = send(&app, post("/machines/160/start", None, "")).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("CSRF"));
    let (status, body, _) = send(&app, post("/machines/160/start", Some("0"), "")).await;
    assert_eq!(status, 403, "{body}");
    let (status, table, _) = send(&app, post("/machines/160/start", Some(&token), "")).await;
    assert_eq!(status, 200);
    assert!(table.contains("start 160: done"), "{table}");
    assert!(table.contains("data-state=\"running\""), "{table}");
    assert_eq!(
        vm::list(&test_uris()).unwrap()[0].state,
        vm::MachineState::Running
    );

    // A script on the node (no Origin, no fetch metadata) needs none.
    let req = Request::post("/api/machines/160/stop?force=true")
        .header("host", "localhost")
        .body(Body::empty())
        .unwrap();
    let (status, body, _) = send(&app, req).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        vm::list(&test_uris()).unwrap()[0].state,
        vm::MachineState::ShutOff
    );
    let req = Request::post("/api/machines/160/autostart")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, req).await.0, 204);
    assert!(vm::info(&test_uris(), "160").unwrap().autostart);
    let (_, page, _) = send(&app, get("/machines/160")).await;
    assert!(page.contains("autostart off"), "{page}");

    // A failure is told, and logged, in the CLI's words.
    let (status, table, _) = send(&app, post("/machines/999/start", Some(&token), "")).await;
    assert_eq!(status, 200);
    assert!(table.contains("no machine 999"), "{table}");

    // Delete: not without the ID typed; then gone, and back to the list.
    let (_, body, _) = send(
        &app,
        post("/machines/160/delete", Some(&token), "confirm=161"),
    )
    .await;
    assert!(body.contains("not deleted: type the ID, 160"), "{body}");
    assert_eq!(vm::list(&test_uris()).unwrap().len(), 1);
    let mut req = post("/machines/160/delete", Some(&token), "confirm=160");
    req.headers_mut()
        .insert("hx-request", "true".parse().unwrap());
    let (status, _, resp) = send(&app, req).await;
    assert_eq!(status, 200);
    assert_eq!(resp.headers()["hx-redirect"], "/");
    assert!(vm::list(&test_uris()).unwrap().is_empty());

    let (_, page, _) = send(&app, get("/log")).await;
    let log = app.log.newest_first();
    let seen: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|e| (e.action.as_str(), e.result.as_str(), e.error.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("delete 160", "ok", ""),
            ("start 999", "failed", "no machine 999"),
            ("autostart 160", "ok", ""),
            ("stop --force 160", "ok", ""),
            ("start 160", "ok", ""),
        ]
    );
    assert!(log.iter().all(|e| e.user == "local"));
    assert!(page.contains("start 999") && page.contains("no machine 999"));
    let (_, body, _) = send(&app, get("/api/log")).await;
    assert_eq!(
        serde_json::from_str::<Vec<mkve_web::log::Entry>>(&body).unwrap(),
        log
    );
    network::delete(&conn, &net, true).unwrap();
}

#[tokio::test]
async fn an_upload_that_is_no_bundle_is_refused_in_the_cli_words() {
    let d = dirs("webtest-net");
    let app = app(test_uris(), &d.join("web3"), false);
    let junk = b"this is not a bundle at all, only some bytes\n".repeat(30);
    let (status, body, _) = send(&app, upload("junk.bun", &junk, &[("start", "on")])).await;
    assert_eq!(status, 422, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["exit"], 65);

    // What mkve-vm create says of the same file, run where it is.
    let (_dir, file) = mkve_testkit::temp_file("junk.bun", &junk);
    let out = std::process::Command::new(bin("mkve-vm"))
        .args(["-c", "test:///default", "create", "junk.bun"])
        .current_dir(file.parent().unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65));
    let cli = String::from_utf8_lossy(&out.stderr);
    assert_eq!(as_cli_prints(v["error"].as_str().unwrap()), cli);
    let entry = &app.log.newest_first()[0];
    assert_eq!(entry.action, "upload junk.bun");
    assert_eq!(entry.error, v["error"].as_str().unwrap());
    // Nothing is left of the upload.
    let left = std::fs::read_dir(d.join("web3/uploads")).unwrap().count();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn an_upload_over_the_cap_is_refused_and_not_kept() {
    let d = dirs("webtest-net");
    let mut c = mkve_web::Config::new(test_uris());
    c.dir = d.join("web4");
    c.max_upload = 1000;
    let app = mkve_web::App::new(c).unwrap();
    let (status, body, _) = send(&app, upload("big.bun", &[7u8; 5000], &[])).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("larger than"), "{body}");
    let left = std::fs::read_dir(d.join("web4/uploads")).unwrap().count();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_login_is_asked_off_the_loopback() {
    let d = dirs("webtest-net");
    let app = app(test_uris(), &d.join("web5"), true);
    let (status, _, resp) = send(&app, get("/")).await;
    assert_eq!(status, 303);
    assert_eq!(resp.headers()["location"], "/login");
    let (status, body, _) = send(&app, get("/api/machines")).await;
    assert_eq!(status, 403, "{body}");
    // A change without a session: 403, whatever token it carries.
    let (status, body, _) = send(&app, post("/machines/100/start", Some("x"), "")).await;
    assert_eq!(status, 403);
    assert_eq!(body, "log in first\n");
    let req = Request::delete("/api/machines/100")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, req).await.0, 403);
    let (status, page, _) = send(&app, get("/login")).await;
    assert_eq!(status, 200);
    assert!(page.contains("name=\"password\""));
    assert_eq!(send(&app, get("/assets/htmx.min.js")).await.0, 200);
    // A forged session cookie is no session.
    let req = Request::get("/api/machines")
        .header("cookie", "mkve_session=00ff")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, req).await.0, 403);
}

#[tokio::test]
async fn locally_only_loopback_names_and_same_origin_changes_pass() {
    let d = dirs("webtest-net");
    let app = app(test_uris(), &d.join("web6"), false);
    let req = Request::get("/")
        .header("host", "mkve.attacker.example:8080")
        .body(Body::empty())
        .unwrap();
    let (status, body, _) = send(&app, req).await;
    assert_eq!(status, 403, "DNS rebinding: {body}");
    let (_, page, _) = send(&app, get("/")).await;
    let token = csrf_of(&page);
    let req = Request::post("/machines/100/start")
        .header("host", "localhost:8080")
        .header("origin", "http://evil.example")
        .header("x-csrf-token", &token)
        .body(Body::empty())
        .unwrap();
    let (status, body, _) = send(&app, req).await;
    assert_eq!(status, 403);
    assert!(body.contains("another site"), "{body}");
    // Security headers on every answer.
    let (_, _, resp) = send(&app, get("/")).await;
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    assert!(resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
}

/// Issue 20, item 4: a record's values with characters a terminal acts on
/// (an 8-bit CSI, a right-to-left override, a C1 NEL) and a logged error
/// with an ESC are shown escaped on every page, the log's included, and
/// JSON-escaped (the exact value) in the API and the log file; nothing
/// raw is answered.
#[tokio::test]
async fn control_characters_are_escaped_in_pages_api_and_log() {
    let _node = NODE.lock().await;
    let d = dirs("webtest-net");
    let conn = test_conn();
    let net = mkve_core::nodes::network().unwrap();
    network::create(&conn, &net, &Silent).unwrap();
    let template = "ntp\u{9b}2J\u{202e}x";
    let record = mkve_core::libvirt::domain::Record {
        id: 170,
        address: "192.0.2.170".parse().unwrap(),
        template: template.into(),
        version: "1\u{85}".into(),
        bundle: "0123abcd".into(),
        signed_by: None,
        source: None,
        adopted: false,
    };
    let xml = format!(
        "<domain type='test'><name>ctl-170</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type>hvm</type></os><metadata>{}</metadata></domain>",
        mkve_core::libvirt::domain::metadata_xml(&record)
    );
    conn.define(&xml, "ctl-170").unwrap();
    let dir = d.join("web-ctl");
    let app = app(test_uris(), &dir, false);
    app.log.push(mkve_web::log::Entry {
        time: mkve_web::log::now(),
        user: "root".into(),
        action: "create evil.bun".into(),
        result: "failed".into(),
        error: "evil.bun: meta.json: \u{1b}]0;owned\u{7}".into(),
    });
    let raw = ['\u{9b}', '\u{202e}', '\u{85}', '\u{1b}', '\u{7}'];
    for path in ["/", "/machines/table", "/machines/170", "/log"] {
        let (status, page, _) = send(&app, get(path)).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            !page.contains(raw),
            "{path} answers a raw control character"
        );
        if path == "/log" {
            assert!(page.contains("\\u{1b}]0;owned\\u{7}"), "{page}");
        } else {
            assert!(page.contains("ntp\\u{9b}2J\\u{202e}x"), "{path}: {page}");
        }
    }
    for path in ["/api/machines", "/api/machines/170", "/api/log"] {
        let (status, body, _) = send(&app, get(path)).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            !body.contains(raw),
            "{path} answers a raw control character"
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::String(s) => out.push(s.clone()),
                serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
                serde_json::Value::Object(o) => o.values().for_each(|x| strings(x, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        strings(&v, &mut all);
        assert!(
            all.iter()
                .any(|s| s == template || s == "evil.bun: meta.json: \u{1b}]0;owned\u{7}"),
            "{path}: the exact value: {body}"
        );
    }
    let file = std::fs::read_to_string(dir.join("actions.log")).unwrap();
    assert!(
        !file.contains(raw),
        "the log file holds no raw control character"
    );
    vm::delete(&test_uris(), "170", &Silent).unwrap();
    network::delete(&conn, &net, true).unwrap();
}
