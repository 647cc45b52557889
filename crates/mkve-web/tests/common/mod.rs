//! What mkve-web's tests share: requests through the router in-process,
//! a node of libvirt's test driver with mkve machines on it, the binaries
//! of the other tools, and a root a machine can log in on.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Request, Response};
use http_body_util::BodyExt;
use mkve_core::libvirt::{self, domain, Connection};
use mkve_core::vm::Uris;
use tower::ServiceExt;

/// Point mkve's directories at a temporary tree for this test process,
/// once: `MKVE_CONFDIR` (with an mkve.conf naming `net`), `MKVE_STATEDIR`,
/// `MKVE_LOCKDIR`. The tree goes when the process ends (testkit's
/// `shared_dir`).
pub fn dirs(net: &str) -> &'static Path {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let d = mkve_testkit::shared_dir().join("web");
        std::fs::create_dir_all(d.join("conf")).unwrap();
        std::fs::write(
            d.join("conf/mkve.conf"),
            format!("network_name={net}\nnetwork_bridge={}br0\n", &net[..3]),
        )
        .unwrap();
        std::env::set_var("MKVE_CONFDIR", d.join("conf"));
        std::env::set_var("MKVE_STATEDIR", d.join("state"));
        std::env::set_var("MKVE_LOCKDIR", d.join("lock"));
        d
    })
}

/// An app on `uris`, its files under `dir`.
pub fn app(uris: Uris, dir: &Path, login: bool) -> mkve_web::Shared {
    let mut c = mkve_web::Config::new(uris.clone());
    if uris.explicit {
        c.connect = uris.list.first().cloned();
    }
    c.dir = dir.to_path_buf();
    c.login = login;
    mkve_web::App::new(c).unwrap()
}

pub fn test_uris() -> Uris {
    Uris {
        list: vec!["test:///default".into()],
        explicit: true,
    }
}

/// A request through the router, as a client on this node sends it.
pub async fn send(app: &mkve_web::Shared, req: Request<Body>) -> (u16, String, Response<()>) {
    let resp = mkve_web::router(app.clone()).oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status.as_u16(),
        String::from_utf8_lossy(&bytes).into_owned(),
        Response::from_parts(parts, ()),
    )
}

pub fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", "localhost:8080")
        .body(Body::empty())
        .unwrap()
}

/// A POST as a browser on mkve-web's own page sends it: same Origin,
/// with `csrf` as its token when given.
pub fn post(path: &str, csrf: Option<&str>, body: &str) -> Request<Body> {
    let mut r = Request::post(path)
        .header("host", "localhost:8080")
        .header("origin", "http://localhost:8080")
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(t) = csrf {
        r = r.header("x-csrf-token", t);
    }
    r.body(Body::from(body.to_string())).unwrap()
}

/// The CSRF token a page carries (`hx-headers` of its body).
pub fn csrf_of(page: &str) -> String {
    let i = page.find("X-CSRF-Token&quot;:&quot;").expect("a token") + 25;
    page[i..i + 64].to_string()
}

/// Define a machine of mkve's on the test driver: a domain of the test
/// type carrying mkve's record.
pub fn define_test_machine(conn: &Connection, id: u32, name: &str) {
    let record = domain::Record {
        id,
        address: format!("192.0.2.{id}").parse().unwrap(),
        template: "tiny".into(),
        version: "3".into(),
        bundle: "0123abcd".into(),
        signed_by: None,
        source: None,
        adopted: false,
    };
    define_with_record(conn, &record, name);
}

/// Define the domain `name` of the test type carrying `record`.
pub fn define_with_record(conn: &Connection, record: &domain::Record, name: &str) {
    let xml = format!(
        "<domain type='test'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type>hvm</type></os><metadata>{}</metadata></domain>",
        domain::metadata_xml(record)
    );
    conn.define(&xml, name).unwrap();
}

pub fn test_conn() -> Connection {
    libvirt::connect("test:///default").unwrap()
}

/// The path of a binary of the workspace (mkve-vm, mkve-bundle,
/// mkve-net, mkve-web), built first when it is not there (`cargo test
/// -p mkve-web` alone builds only this crate's).
pub fn bin(name: &str) -> PathBuf {
    // target/debug/deps/<test binary> → target/debug
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let p = dir.join(name);
    if !p.exists() {
        let st = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", name])
            .status()
            .unwrap();
        assert!(st.success(), "cargo build -p {name}");
    }
    p
}

/// A root a machine boots and logs in on: busybox as init, /bin/login on
/// the console, root in /etc/passwd and /etc/shadow (the password is set
/// at create).
pub fn login_root(dir: &Path) -> PathBuf {
    use std::os::unix::fs::symlink;
    let r = dir.join("root");
    for d in ["bin", "sbin", "etc", "root", "tmp", "dev", "proc", "sys"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::copy("/usr/bin/busybox", r.join("bin/busybox")).expect("busybox-static");
    for a in ["sh", "login", "cat", "echo", "ls", "mount", "poweroff"] {
        symlink("busybox", r.join("bin").join(a)).unwrap();
    }
    symlink("../bin/busybox", r.join("sbin/init")).unwrap();
    std::fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(r.join("etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
    std::fs::write(r.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::write(
        r.join("etc/inittab"),
        "::sysinit:/bin/mount -t proc proc /proc\nconsole::respawn:/bin/login\n",
    )
    .unwrap();
    r
}

/// `msg` as mkve-vm prints it on stderr: each line that is not an
/// indented continuation prefixed with `mkve-vm: `.
pub fn as_cli_prints(msg: &str) -> String {
    msg.lines()
        .map(|l| {
            if l.starts_with(char::is_whitespace) {
                format!("{l}\n")
            } else {
                format!("mkve-vm: {l}\n")
            }
        })
        .collect()
}

/// A multipart form as a browser sends an upload: the `fields`, then the
/// bundle `bytes` as the file `name`. Its content type and body.
pub fn multipart(name: &str, bytes: &[u8], fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let b = "mkveboundary7d1f";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"bundle\"; filename=\"{name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={b}"), body)
}

/// `POST /api/machines` of that form.
pub fn upload(name: &str, bytes: &[u8], fields: &[(&str, &str)]) -> Request<Body> {
    let (ty, body) = multipart(name, bytes, fields);
    Request::post("/api/machines")
        .header("content-type", ty)
        .body(Body::from(body))
        .unwrap()
}
