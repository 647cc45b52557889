//! Access off the loopback: a throw-away system user made here logs in
//! through PAM (and is removed after); a session's changes need its CSRF
//! token; a logout ends it; a WebSocket from another site is refused, on a
//! real server on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::process::Command;

use axum::body::Body;
use axum::http::Request;
use common::*;

/// A system group and a user in it, with a password; removed when
/// dropped (the group after the user).
struct ThrowAwayUser {
    name: &'static str,
    group: &'static str,
}

fn run(args: &[&str], input: Option<&str>) {
    let mut c = Command::new(args[0]);
    c.args(&args[1..]).stdin(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(i) = input {
        child.stdin.take().unwrap().write_all(i.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success(), "{args:?}");
}

impl ThrowAwayUser {
    fn new(name: &'static str, group: &'static str, password: &str) -> ThrowAwayUser {
        // A user left by a killed run goes first.
        for (tool, what) in [("userdel", name), ("groupdel", group)] {
            let _ = Command::new(tool)
                .arg(what)
                .stderr(std::process::Stdio::null())
                .status();
        }
        run(&["groupadd", "--system", group], None);
        let u = ThrowAwayUser { name, group };
        run(
            &[
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "-G",
                group,
                name,
            ],
            None,
        );
        run(&["chpasswd"], Some(&format!("{name}:{password}\n")));
        u
    }
}

impl Drop for ThrowAwayUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(self.name).status();
        let _ = Command::new("groupdel").arg(self.group).status();
    }
}

fn login_form(user: &str, password: &str) -> Request<Body> {
    Request::post("/login")
        .header("host", "node.example:8443")
        .header("origin", "https://node.example:8443")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!("user={user}&password={password}")))
        .unwrap()
}

#[tokio::test]
#[ignore = "needs root: makes a system user, logs in through PAM"]
async fn a_system_user_logs_in_through_pam() {
    let d = dirs("webacc-net");
    let user = ThrowAwayUser::new("mkvewebt1", "mkvewebt", "Web-Test 7");
    let mut c = mkve_web::Config::new(test_uris());
    c.dir = d.join("pam");
    c.login = true;
    c.group = user.group.into();
    let app = mkve_web::App::new(c).unwrap();

    let (status, _, _) = send(&app, login_form(user.name, "wrong")).await;
    assert_eq!(status, 403, "a wrong password");
    let (status, _, resp) = send(&app, login_form(user.name, "Web-Test%207")).await;
    assert_eq!(status, 303);
    assert_eq!(resp.headers()["location"], "/");
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();

    let with_session = |r: axum::http::request::Builder| {
        r.header("cookie", &session)
            .header("host", "node.example:8443")
    };
    let (status, page, _) = send(
        &app,
        with_session(Request::get("/")).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(page.contains(user.name), "the page names who is logged in");
    let (_, s, _) = send(
        &app,
        with_session(Request::get("/api/session"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let s: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert_eq!(s["user"], user.name);
    let csrf = s["csrf"].as_str().unwrap().to_string();
    assert_eq!(csrf, csrf_of(&page));

    // A change with the session but without its token: refused, even from
    // a client that is no browser.
    let req = with_session(Request::post("/api/machines/999/start"))
        .body(Body::empty())
        .unwrap();
    let (status, body, _) = send(&app, req).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("CSRF"));
    // With it, the change is made (here: core finds no machine 999).
    let req = with_session(Request::post("/api/machines/999/start"))
        .header("x-csrf-token", &csrf)
        .body(Body::empty())
        .unwrap();
    let (status, body, _) = send(&app, req).await;
    assert_eq!(status, 404, "{body}");
    let last = &app.log.newest_first()[0];
    assert_eq!(
        (last.user.as_str(), last.action.as_str()),
        (user.name, "start 999")
    );

    // Logged out, the cookie is nothing.
    let req = with_session(Request::post("/logout"))
        .header("x-csrf-token", &csrf)
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, req).await.0, 303);
    let req = with_session(Request::get("/api/machines"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, req).await.0, 403);

    // Not in the group: the right password is not enough.
    let mut c = mkve_web::Config::new(test_uris());
    c.dir = d.join("pam2");
    c.login = true;
    c.group = "root".into();
    let other = mkve_web::App::new(c).unwrap();
    let (status, _, _) = send(&other, login_form(user.name, "Web-Test%207")).await;
    assert_eq!(status, 403);
    let e = &other.log.newest_first()[0];
    assert_eq!(e.error, "login refused: mkvewebt1 is not in group root");
    drop(user);
    assert!(nix::unistd::User::from_name("mkvewebt1").unwrap().is_none());
}

/// The status line a raw WebSocket upgrade of `path` gets from `addr`,
/// sent with `origin`.
fn upgrade(addr: std::net::SocketAddr, path: &str, origin: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Origin: {origin}\r\n\r\n"
    )
    .unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_from_another_site_is_refused() {
    let d = dirs("webacc-net");
    let app = app(test_uris(), &d.join("ws"), false);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            l,
            mkve_web::router(app).into_make_service_with_connect_info::<mkve_web::auth::Peer>(),
        )
        .await
    });
    let path = "/machines/999/console/ws";
    let (foreign, own) = tokio::task::spawn_blocking(move || {
        (
            upgrade(addr, path, "http://evil.example"),
            upgrade(addr, path, &format!("http://{addr}")),
        )
    })
    .await
    .unwrap();
    assert_eq!(foreign, "HTTP/1.1 403 Forbidden");
    // From its own page the upgrade passes the checks: core then finds no
    // machine 999.
    assert_eq!(own, "HTTP/1.1 404 Not Found");
    server.abort();
}
