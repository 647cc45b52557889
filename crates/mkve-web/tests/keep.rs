//! A machine's snapshots and backups through mkve-web: its page lists the
//! snapshots, takes, reverts (a stopped machine only: a running one is
//! refused with the status of core's typed error) and deletes them, and
//! makes a backup that downloads; the API does the same. On libvirt's
//! test driver in-process, with an lxc-typed domain whose directory is
//! what a create on a base leaves (an upper layer, the base named): core
//! takes and reverts its snapshots as for a real lxc machine (the test
//! driver suspends and resumes it), no root needed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::Request;
use common::*;
use mkve_core::libvirt::{domain, Connection};
use tokio::sync::Mutex;

/// The test driver's node is one per process: one test at a time on it.
static NODE: Mutex<()> = Mutex::const_new(());

/// An lxc machine of mkve's on the test driver, its directory as a create
/// on a base leaves it: `upper/` (one file changed) and `base`.
fn define_lxc_machine(conn: &Connection, state: &Path, id: u32, name: &str) -> PathBuf {
    let record = domain::Record {
        id,
        address: format!("192.0.2.{id}").parse().unwrap(),
        template: "tiny".into(),
        version: "3".into(),
        bundle: "ab".repeat(32),
        signed_by: None,
        source: None,
        adopted: false,
    };
    let xml = format!(
        "<domain type='lxc'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type>exe</type><init>/sbin/init</init></os><metadata>{}</metadata></domain>",
        domain::metadata_xml(&record)
    );
    conn.define(&xml, name).unwrap();
    let dir = state.join("vms").join(id.to_string());
    std::fs::create_dir_all(dir.join("upper/etc")).unwrap();
    std::fs::write(dir.join("upper/etc/motd"), "before\n").unwrap();
    std::fs::write(dir.join("base"), format!("{}\n", "ab".repeat(32))).unwrap();
    dir
}

fn hx(mut r: Request<Body>) -> Request<Body> {
    r.headers_mut()
        .insert("hx-request", "true".parse().unwrap());
    r
}

/// A form's POST as the page's script sends it (htmx, with the page's
/// token): the status and the section answered.
async fn hx_post(app: &mkve_web::Shared, path: &str, token: &str, body: &str) -> (u16, String) {
    let (status, section, _) = send(app, hx(post(path, Some(token), body))).await;
    (status, section)
}

/// A request a script on the node sends (no Origin: no token needed).
fn script(method: &str, path: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn snapshots_are_listed_taken_reverted_when_stopped_and_deleted() {
    let _node = NODE.lock().await;
    let d = dirs("webkeep-net");
    let conn = test_conn();
    let dir = define_lxc_machine(&conn, &d.join("state"), 170, "keep-170");
    let app = app(test_uris(), &d.join("web-snap"), false);

    // None yet: the page says so, the API answers an empty list.
    let (status, page, _) = send(&app, get("/machines/170")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<h2>Snapshots</h2>"), "{page}");
    assert!(page.contains(r#"data-snapshots="0""#), "{page}");
    assert!(page.contains("<h2>Backups</h2>"), "{page}");
    let token = csrf_of(&page);
    let (status, body, _) = send(&app, get("/api/machines/170/snapshots")).await;
    assert_eq!((status, body.as_str()), (200, "[]\n"));
    let (status, body, _) = send(&app, get("/api/machines/999/snapshots")).await;
    assert_eq!(status, 404, "{body}");

    // A browser's change needs the page's token, and its own origin.
    let (status, body, _) = send(&app, post("/machines/170/snapshots", None, "name=a")).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("CSRF"), "{body}");
    let mut req = post("/machines/170/snapshots", Some(&token), "name=a");
    req.headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    let (status, body, _) = send(&app, req).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("another site"), "{body}");
    assert!(!dir.join("snapshots/a").exists());

    // Taken while it runs (frozen meanwhile by the test driver). Started
    // through libvirt: the base a start checks is not there.
    let dom = conn.domain("keep-170").unwrap();
    dom.start("machine 170").unwrap();
    let (status, section) = hx_post(&app, "/machines/170/snapshots", &token, "name=before").await;
    assert_eq!(status, 200, "{section}");
    assert!(section.starts_with(r#"<div id="snapshots">"#), "{section}");
    assert!(section.contains("snapshot 170 before: done<"), "{section}");
    assert!(section.contains(r#"data-snapshot="before""#), "{section}");
    assert!(
        section.contains("stop it to revert"),
        "no revert while it runs: {section}"
    );
    assert!(!section.contains(r#"data-action="revert""#), "{section}");
    // A bad name: core's words, 400.
    let (status, section, _) = send(
        &app,
        post("/machines/170/snapshots", Some(&token), "name=..x"),
    )
    .await;
    assert_eq!(status, 400, "{section}");
    assert!(section.contains("is not a snapshot name"), "{section}");
    // The API: named by the time when no name is given.
    let (status, body, resp) = send(&app, script("POST", "/api/machines/keep-170/snapshots")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        resp.headers()["location"],
        "/api/machines/keep-170/snapshots"
    );
    let auto: String = serde_json::from_str::<serde_json::Value>(&body).unwrap()["name"]
        .as_str()
        .unwrap()
        .into();
    assert_eq!(auto.len(), "20261206-101500".len(), "{auto}");
    let (_, body, _) = send(&app, get("/api/machines/170/snapshots")).await;
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["before", auto.as_str()]);
    assert_eq!(list[0]["running"], true);
    assert!(list[0]["bytes"].as_u64().is_some());

    // Revert: refused while it runs, with the status of core's typed
    // error (usage: 400) and its words, on the page and in the API.
    std::fs::write(dir.join("upper/etc/motd"), "after\n").unwrap();
    let (status, section) =
        hx_post(&app, "/machines/170/snapshots/before/revert", &token, "").await;
    assert_eq!(status, 400, "{section}");
    assert!(
        section.contains("machine 170 runs: stop it first (mkve-vm stop 170)"),
        "{section}"
    );
    let (status, body, _) = send(
        &app,
        script("POST", "/api/machines/170/snapshots/before/revert"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let e: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["exit"], 2);
    assert_eq!(
        e["error"],
        "machine 170 runs: stop it first (mkve-vm stop 170)"
    );
    // A snapshot that is not there: 404.
    let (status, _, _) = send(
        &app,
        post("/machines/170/snapshots/nosuch/revert", Some(&token), ""),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        std::fs::read_to_string(dir.join("upper/etc/motd")).unwrap(),
        "after\n"
    );

    // Stopped, it is offered and works: the layer is the snapshot's again.
    dom.destroy("machine 170").unwrap();
    let (_, page, _) = send(&app, get("/machines/170")).await;
    assert!(page.contains(r#"data-action="revert""#), "{page}");
    let (status, section) =
        hx_post(&app, "/machines/170/snapshots/before/revert", &token, "").await;
    assert_eq!(status, 200, "{section}");
    assert!(section.contains("revert 170 before: done"), "{section}");
    assert_eq!(
        std::fs::read_to_string(dir.join("upper/etc/motd")).unwrap(),
        "before\n"
    );

    // Delete: one from the page, one through the API.
    let (status, section) =
        hx_post(&app, "/machines/170/snapshots/before/delete", &token, "").await;
    assert_eq!(status, 200, "{section}");
    assert!(!section.contains(r#"data-snapshot="before""#), "{section}");
    let path = format!("/api/machines/170/snapshots/{auto}");
    let (status, body, _) = send(&app, script("DELETE", &path)).await;
    assert_eq!(status, 204, "{body}");
    let (_, body, _) = send(&app, get("/api/machines/170/snapshots")).await;
    assert_eq!(body, "[]\n");

    let seen: Vec<(String, String)> = app
        .log
        .newest_first()
        .into_iter()
        .map(|e| (e.action, e.result))
        .collect();
    let want = [
        (format!("snapshot --delete 170 {auto}"), "ok"),
        ("snapshot --delete 170 before".into(), "ok"),
        ("revert 170 before".into(), "ok"),
        ("revert 170 nosuch".into(), "failed"),
        ("revert 170 before".into(), "failed"),
        ("revert 170 before".into(), "failed"),
        ("snapshot keep-170".into(), "ok"),
        ("snapshot 170 ..x".into(), "failed"),
        ("snapshot 170 before".into(), "ok"),
    ];
    let want: Vec<(String, String)> = want.into_iter().map(|(a, r)| (a, r.to_string())).collect();
    assert_eq!(seen, want);
    dom.undefine("machine 170").unwrap();
}

#[tokio::test]
async fn a_backup_is_made_here_downloaded_and_dated_on_the_machines_page() {
    let _node = NODE.lock().await;
    let d = dirs("webkeep-net");
    let conn = test_conn();
    define_lxc_machine(&conn, &d.join("state"), 171, "keep-171");
    let web = d.join("web-backup");
    let app = app(test_uris(), &web, false);
    let (_, page, _) = send(&app, get("/")).await;
    assert!(page.contains("<th>last backup</th>"), "{page}");
    let token = csrf_of(&page);

    // None made yet.
    let (status, body, _) = send(&app, get("/machines/171/backup")).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("no backup of machine 171 was made here"),
        "{body}"
    );
    // Not without the token.
    let (status, _, _) = send(&app, post("/machines/171/backup", None, "unsigned=true")).await;
    assert_eq!(status, 403);

    let (status, body, resp) = send(
        &app,
        post("/machines/171/backup", Some(&token), "unsigned=true"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    let disposition = resp.headers()["content-disposition"].to_str().unwrap();
    let file = disposition
        .strip_prefix("attachment; filename=\"")
        .and_then(|f| f.strip_suffix('"'))
        .unwrap()
        .to_string();
    assert!(
        file.starts_with("171-keep-171-2") && file.ends_with("Z.mkvebak"),
        "{file}"
    );
    // What was downloaded is the archive mkve-vm restore takes, kept here.
    let kept = web.join("backups").join(&file);
    assert_eq!(
        resp.headers()["content-length"].to_str().unwrap(),
        std::fs::metadata(&kept).unwrap().len().to_string()
    );
    assert!(body.starts_with("backup.json"), "a tar, the manifest first");
    let manifest = mkve_core::vm::manifest_of(&kept).unwrap();
    assert_eq!(manifest.machine.id, 171);
    assert!(!manifest.full);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(web.join("backups/171.json")).unwrap()).unwrap();
    assert_eq!(record["file"], file.as_str());
    assert_eq!(record["signed"], false);
    let made = record["made"].as_str().unwrap().to_string();

    // The machines page dates it; the machine's page offers it again.
    let (_, table, _) = send(&app, get("/machines/table")).await;
    assert!(
        table.contains(&format!(r#"data-backup="{made}">{made}</span>"#)),
        "{table}"
    );
    let (_, page, _) = send(&app, get("/machines/171")).await;
    assert!(
        page.contains(&format!(
            r#"<a href="/machines/171/backup" download="{file}">"#
        )),
        "{page}"
    );
    let (status, again, resp) = send(&app, get("/machines/171/backup")).await;
    assert_eq!(status, 200);
    assert_eq!(again, body);
    assert_eq!(resp.headers()["content-disposition"], disposition);

    // From the page (htmx): the section, marked for mkve.js to download.
    let (status, section) = hx_post(&app, "/machines/171/backup", &token, "unsigned=true").await;
    assert_eq!(status, 200, "{section}");
    assert!(
        section.starts_with(r#"<div id="backups" data-download="/machines/171/backup">"#),
        "{section}"
    );
    assert!(
        section.contains("backup --force-no-sign 171: done"),
        "{section}"
    );
    // A failure: the section with core's words and the status of its kind.
    let (status, section) = hx_post(&app, "/machines/999/backup", &token, "unsigned=true").await;
    assert_eq!(status, 404, "{section}");
    assert!(section.contains("no machine 999"), "{section}");
    assert!(!section.contains("data-download"), "{section}");

    // The API: made and downloaded, the last one again; options strictly.
    let (status, body, resp) = send(
        &app,
        script("POST", "/api/machines/keep-171/backup?unsigned=true"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("backup.json"));
    let (status, last, resp2) = send(&app, script("GET", "/api/machines/171/backup")).await;
    assert_eq!(status, 200);
    assert_eq!(last, body);
    assert_eq!(
        resp.headers()["content-disposition"],
        resp2.headers()["content-disposition"]
    );
    let (status, body, _) = send(
        &app,
        script("POST", "/api/machines/171/backup?unsigned=yes"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("unsigned=yes: expected true or false"),
        "{body}"
    );
    let (status, _, _) = send(&app, script("GET", "/api/machines/172/backup")).await;
    assert_eq!(status, 404);
    // One file a machine is kept.
    let files: Vec<String> = std::fs::read_dir(web.join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".mkvebak"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");

    let actions: Vec<(String, String)> = app
        .log
        .newest_first()
        .into_iter()
        .map(|e| (e.action, e.result))
        .collect();
    let want: Vec<(String, String)> = [
        ("backup --force-no-sign keep-171", "ok"),
        ("backup --force-no-sign 999", "failed"),
        ("backup --force-no-sign 171", "ok"),
        ("backup --force-no-sign 171", "ok"),
    ]
    .into_iter()
    .map(|(a, r)| (a.to_string(), r.to_string()))
    .collect();
    assert_eq!(actions, want);

    // Read back at start.
    let again = mkve_web::App::new(app.config.clone()).unwrap();
    assert!(again.backups.last(171, "keep-171").is_some());
    conn.domain("keep-171")
        .unwrap()
        .undefine("machine 171")
        .unwrap();
}
