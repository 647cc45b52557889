//! The binary as a server: its Unix socket is its user's alone, answers
//! the API, names the client in the log, is not taken from a server still
//! on it, and goes with SIGTERM; with --tls-cert and --tls-key it serves
//! HTTPS (a certificate made here by openssl, fetched with curl from
//! 127.0.0.1). On libvirt's test driver: no daemon, no root.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn web(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mkve-web"));
    c.args(["-c", "test:///default"])
        .args(args)
        .env("MKVE_STATEDIR", dir.join("state"))
        .env("MKVE_CONFDIR", dir.join("conf"))
        .env("MKVE_LOCKDIR", dir.join("lock"))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    c
}

/// mkve-web `--listen LISTEN --tls-cert CERT --tls-key KEY`.
fn web_tls(dir: &Path, listen: &str, cert: &Path, key: &Path) -> Command {
    let mut c = web(dir, &["--listen", listen]);
    c.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
    c
}

/// A server the test started, killed if the test fails before it ends it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn spawn(c: &mut Command) -> Server {
    Server(c.stderr(Stdio::piped()).spawn().unwrap())
}

/// The first line of stderr that says where it listens, within 10 s.
fn listening(child: &mut Child) -> String {
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            if let Some(at) = line.strip_prefix("mkve-web: listening on ") {
                let _ = tx.send(at.to_string());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("mkve-web says where it listens")
}

fn term(child: &mut Child) -> Option<i32> {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code();
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("mkve-web did not end on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An HTTP/1.0 request over the socket: the status line and the body.
fn ask(sock: &Path, method: &str, path: &str) -> (String, String) {
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.lines().next().unwrap_or("").to_string();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn the_socket_is_private_answers_and_goes_with_sigterm() {
    let d = tempfile::tempdir().unwrap();
    let sock = d.path().join("web.sock");
    // A socket file left by a killed run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let listen = format!("unix:{}", sock.display());
    let mut server = spawn(&mut web(d.path(), &["--listen", &listen]));
    let child = &mut server.0;
    assert_eq!(listening(child), listen);
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let (status, body) = ask(&sock, "GET", "/api/machines");
    assert_eq!(status, "HTTP/1.0 200 OK");
    assert_eq!(body, "[]\n");
    let (status, body) = ask(&sock, "POST", "/api/machines/nope/start");
    assert_eq!(status, "HTTP/1.0 404 Not Found");
    assert!(body.contains("no machine nope"), "{body}");

    // A second server does not take the socket from the first.
    let out = web(d.path(), &["--listen", &listen]).output().unwrap();
    assert_eq!(out.status.code(), Some(69));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "mkve-web: {}: another server listens there\n",
            sock.display()
        )
    );

    assert_eq!(term(child), Some(0));
    assert!(!sock.exists(), "the socket goes with the server");
    let log = std::fs::read_to_string(d.path().join("state/web/actions.log")).unwrap();
    let e: mkve_web::log::Entry = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    assert_eq!(e.user, format!("{me} (unix socket)"));
    assert_eq!(
        (e.action.as_str(), e.error.as_str()),
        ("start nope", "no machine nope")
    );
    let mode = std::fs::metadata(d.path().join("state/web"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn tls_serves_https_with_the_certificate_given() {
    let d = tempfile::tempdir().unwrap();
    let (cert, key) = (d.path().join("cert.pem"), d.path().join("key.pem"));
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(st.success());
    let mut server = spawn(&mut web_tls(d.path(), "127.0.0.1:0", &cert, &key));
    let child = &mut server.0;
    let url = listening(child);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&cert)
        .args(["--resolve"])
        .arg(format!(
            "localhost:{}:127.0.0.1",
            url.trim_end_matches('/').rsplit(':').next().unwrap()
        ))
        .arg(format!(
            "https://localhost:{}/api/machines",
            url.trim_end_matches('/').rsplit(':').next().unwrap()
        ))
        .output()
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[]\n");
    assert_eq!(term(child), Some(0));

    // A key that is not the certificate's is told, naming the files.
    let out = web_tls(d.path(), "127.0.0.1:0", &cert, &cert)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(65),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "mkve-web: {}: with {}: ",
            cert.display(),
            cert.display()
        )),
        "{err}"
    );
    // TLS is for an address, not a socket.
    let out = web_tls(
        d.path(),
        "unix:/nonexistent/s",
        Path::new("a"),
        Path::new("b"),
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_feed_that_does_not_read_is_refused_before_listening() {
    let d = tempfile::tempdir().unwrap();
    let sock = d.path().join("web.sock");
    let listen = format!("unix:{}", sock.display());
    let bad = d.path().join("feed");
    std::fs::write(&bad, "not zlib").unwrap();
    let out = web(
        d.path(),
        &["--listen", &listen, "--feed", bad.to_str().unwrap()],
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{err}");
    assert!(
        err.starts_with(&format!("mkve-web: {}: ", bad.display())),
        "{err}"
    );
    assert!(!sock.exists(), "nothing listened");
    let gone = d.path().join("nonexistent");
    let out = web(
        d.path(),
        &["--listen", &listen, "--feed", gone.to_str().unwrap()],
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&gone.display().to_string()), "{err}");
}
