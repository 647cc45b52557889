//! Publishing bundles (`--publish`) and fetching them back (`--fetch`)
//! from a directory served by `python3 -m http.server` on 127.0.0.1: the
//! list and its signature as sha256sum and gpgv read them; a fetch that
//! works; every kind of bad directory refused with exit status 65 leaving
//! no file; the network's failures told as 69, naming the URL.
//!
//! No root needed: the bundles are built from a plain root with no hooks.
//! All traffic is to 127.0.0.1.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use mkve_testkit::*;

fn new_env() -> Env {
    Env::new(env!("CARGO_BIN_EXE_mkve-bundle"))
}

/// Two different bundles of one root, both signed by the test signer: for
/// lxc and for openvz.
struct Bundles {
    a: PathBuf,
    b: PathBuf,
}

fn bundles() -> &'static Bundles {
    static B: OnceLock<Bundles> = OnceLock::new();
    B.get_or_init(|| {
        let dir = shared_dir().join("publish-bundles");
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("etc/hostname"), "template\n").unwrap();
        // Enough bytes that half a bundle is still a tar's worth of data.
        let noise: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(root.join("bin/noise"), noise).unwrap();
        let build = |hv: &str| {
            let out = dir.join(format!("{hv}.bun"));
            let env = new_env();
            run_ok(
                env.cmd()
                    .env("GNUPGHOME", &signer().home)
                    .args(["-H", hv, "--rootfs"])
                    .arg(&root)
                    .arg("-o")
                    .arg(&out)
                    .arg(good("two-containers")),
            );
            out
        };
        Bundles {
            a: build("lxc"),
            b: build("openvz"),
        }
    })
}

/// `mkve-bundle --publish DIR BUNDLES… --keyring (the signer's)`, signing
/// with the GnuPG home `home`.
fn publish(dir: &Path, bundles: &[&Path], home: &Path) -> Run {
    run(new_env()
        .cmd()
        .env("GNUPGHOME", home)
        .arg("--publish")
        .arg(dir)
        .args(bundles)
        .arg("--keyring")
        .arg(&signer().keyring))
}

/// `mkve-bundle --fetch URL --keyring (the signer's) EXTRA…`, in `cwd`.
fn fetch(url: &str, cwd: &Path, extra: &[&str]) -> Run {
    run(new_env()
        .cmd()
        .current_dir(cwd)
        .arg("--fetch")
        .arg(url)
        .arg("--keyring")
        .arg(&signer().keyring)
        .args(extra))
}

/// The directory's list as the test expects it: `HEX  NAME` lines sorted.
fn expected_list(entries: &[(&str, &Path)]) -> String {
    let mut lines: Vec<String> = entries
        .iter()
        .map(|(n, p)| format!("{}  {n}\n", sha256(&std::fs::read(p).unwrap())))
        .collect();
    lines.sort_by(|a, b| a[66..].cmp(&b[66..]));
    lines.concat()
}

#[test]
fn published_bundles_are_fetched_checked_against_the_signed_list() {
    let b = bundles();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("pub");
    let r = publish(&dir, &[&b.a, &b.b], &signer().home);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!(
            "{}\n{}\n",
            dir.join("lxc.bun").display(),
            dir.join("openvz.bun").display()
        )
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap(),
        expected_list(&[("lxc.bun", &b.a), ("openvz.bun", &b.b)])
    );
    assert_eq!(
        dir_names(&dir),
        ["SHA256SUMS", "SHA256SUMS.gpg", "lxc.bun", "openvz.bun"]
    );
    // What sha256sum and gpgv (as systemd-importd runs gpg) make of it.
    assert_sums_hold(&dir);
    let sig = std::fs::read(dir.join("SHA256SUMS.gpg")).unwrap();
    assert!(!sig.starts_with(b"-----BEGIN"), "a binary signature");

    let server = HttpServer::serve(&dir);
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let r = fetch(&server.url("lxc.bun"), &out, &["-o", "got.bun"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "got.bun\n");
    assert_eq!(
        std::fs::read(out.join("got.bun")).unwrap(),
        std::fs::read(&b.a).unwrap()
    );
    // By default, under its name in the current directory.
    let r = fetch(&server.url("openvz.bun"), &out, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "openvz.bun\n");
    assert_eq!(
        std::fs::read(out.join("openvz.bun")).unwrap(),
        std::fs::read(&b.b).unwrap()
    );
    // To stdout, as it arrives.
    let r = fetch(&server.url("lxc.bun"), &out, &["-o", "-"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.raw_stdout, std::fs::read(&b.a).unwrap());
    // Progress (bytes and rate) with -v.
    let r = fetch(&server.url("lxc.bun"), &out, &["-v", "-o", "v.bun"]);
    r.assert_stderr(0, "sha256 as listed");
    r.assert_stderr(0, "/s)");
    assert_eq!(dir_names(&out), ["got.bun", "openvz.bun", "v.bun"]);

    // A name with a space: listed as it is, asked for percent-encoded.
    let spaced = work.path().join("ntp server.bun");
    std::fs::copy(&b.a, &spaced).unwrap();
    let r = publish(&dir, &[&spaced], &signer().home);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(std::fs::read_to_string(dir.join("SHA256SUMS"))
        .unwrap()
        .contains("  ntp server.bun\n"));
    let r = fetch(&server.url("ntp%20server.bun"), &out, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "ntp server.bun\n");
    assert_eq!(
        std::fs::read(out.join("ntp server.bun")).unwrap(),
        std::fs::read(&b.a).unwrap()
    );
}

/// Copy the published `src` directory to `dst`.
fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

#[test]
fn every_bad_published_directory_is_refused_with_65_and_leaves_no_file() {
    let b = bundles();
    let work = tempfile::tempdir().unwrap();
    let good = work.path().join("good");
    let r = publish(&good, &[&b.a], &signer().home);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let a = std::fs::read(&b.a).unwrap();
    let sums = std::fs::read_to_string(good.join("SHA256SUMS")).unwrap();

    // Each case a copy of the good directory with one thing wrong.
    let case = |name: &str| {
        let d = work.path().join(name);
        copy_dir(&good, &d);
        d
    };
    let edited = case("edited");
    let other = sha256(&std::fs::read(&b.b).unwrap());
    std::fs::write(edited.join("SHA256SUMS"), sums.replace(&sums[..64], &other)).unwrap();
    let unsigned = case("unsigned");
    std::fs::remove_file(unsigned.join("SHA256SUMS.gpg")).unwrap();
    let swapped = case("swapped");
    std::fs::copy(&b.b, swapped.join("lxc.bun")).unwrap();
    let truncated = case("truncated");
    std::fs::write(truncated.join("lxc.bun"), &a[..a.len() / 2]).unwrap();
    let flipped = case("flipped");
    let mut f = a.clone();
    let at = f.len() - 20_000;
    f[at] ^= 1;
    std::fs::write(flipped.join("lxc.bun"), f).unwrap();
    // Signed by a key the fetch does not trust.
    let stranger_dir = work.path().join("stranger");
    let r = publish(&stranger_dir, &[&b.a], &stranger().home);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("a key not in"),
        "a list the keyring cannot check is told: {}",
        r.stderr
    );

    let server = HttpServer::serve(work.path());
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    for (dir, name, part) in [
        ("edited", "lxc.bun", "/edited/SHA256SUMS.gpg: bad signature"),
        (
            "unsigned",
            "lxc.bun",
            "/unsigned/SHA256SUMS.gpg: not found (HTTP 404): the checksum list is not signed",
        ),
        ("swapped", "lxc.bun", "/swapped/lxc.bun: sha256 "),
        ("truncated", "lxc.bun", "/truncated/lxc.bun: "),
        ("flipped", "lxc.bun", "/flipped/lxc.bun: "),
        ("stranger", "lxc.bun", "a key not in the keyring"),
        (
            "good",
            "openvz.bun",
            "/good/SHA256SUMS: does not list \"openvz.bun\"",
        ),
    ] {
        let url = server.url(&format!("{dir}/{name}"));
        for o in ["new.bun", "-"] {
            let r = fetch(&url, &out, &["-o", o]);
            assert_eq!(r.code, 65, "{dir} -o {o}: {}", r.stderr);
            assert!(
                r.stderr.starts_with("mkve-bundle: http://127.0.0.1:") && r.stderr.contains(part),
                "{dir}: {}",
                r.stderr
            );
            assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
            assert!(dir_names(&out).is_empty(), "{dir}: {:?}", dir_names(&out));
        }
    }
    // A swapped bundle is a good bundle: only the list tells it apart.
    let r = fetch(&server.url("swapped/lxc.bun"), &out, &[]);
    assert!(
        r.stderr.contains("does not match SHA256SUMS"),
        "{}",
        r.stderr
    );
    let r = run(new_env()
        .cmd()
        .arg("--verify")
        .arg(swapped.join("lxc.bun"))
        .arg("--keyring")
        .arg(&signer().keyring));
    assert_eq!(r.code, 0, "{}", r.stderr);
    // --allow-unsigned is for bundles: the list is signed, always.
    let r = fetch(&server.url("unsigned/lxc.bun"), &out, &["--allow-unsigned"]);
    assert_eq!(r.code, 65, "{}", r.stderr);
    // And the default keyring, when there is none.
    let r = run(new_env()
        .cmd()
        .current_dir(&out)
        .arg("--fetch")
        .arg(server.url("good/lxc.bun")));
    r.assert_stderr(65, "the default keyring: give --keyring FILE");
    assert!(dir_names(&out).is_empty());
    // The good one still works, through the same server.
    let r = fetch(&server.url("good/lxc.bun"), &out, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn publishing_again_replaces_a_line_keeps_the_others_and_drops_the_gone() {
    let b = bundles();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("pub");
    let home = &signer().home;
    assert_eq!(publish(&dir, &[&b.a, &b.b], home).code, 0);
    // lxc.bun published again, with other bytes (a valid bundle).
    let again = work.path().join("again");
    std::fs::create_dir(&again).unwrap();
    std::fs::copy(&b.b, again.join("lxc.bun")).unwrap();
    let r = publish(&dir, &[&again.join("lxc.bun")], home);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap(),
        expected_list(&[("lxc.bun", &b.b), ("openvz.bun", &b.b)])
    );
    // A bundle removed by hand loses its line at the next publish.
    std::fs::remove_file(dir.join("openvz.bun")).unwrap();
    let r = publish(&dir, &[&b.a], home);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap(),
        expected_list(&[("lxc.bun", &b.a)])
    );

    // A list edited by hand: its lines are not taken on trust. A bundle
    // slipped in with it that verifies is listed again, signed anew...
    std::fs::copy(&b.b, dir.join("extra.bun")).unwrap();
    let mut list = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    list.push_str(&format!("{}  extra.bun\n", "0".repeat(64)));
    std::fs::write(dir.join("SHA256SUMS"), &list).unwrap();
    std::fs::copy(&b.b, work.path().join("openvz.bun")).unwrap();
    let r = publish(&dir, &[&work.path().join("openvz.bun")], home);
    r.assert_stderr(0, "SHA256SUMS.gpg: bad signature");
    r.assert_stderr(0, "verifying the 2 bundles it lists again");
    assert_eq!(
        std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap(),
        expected_list(&[("lxc.bun", &b.a), ("extra.bun", &b.b), ("openvz.bun", &b.b)])
    );
    // ... one that does not stops the publish, and nothing changes.
    std::fs::write(dir.join("extra.bun"), b"not a bundle").unwrap();
    let list = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let list = format!("{}{}", "1".repeat(64), &list[64..]);
    std::fs::write(dir.join("SHA256SUMS"), &list).unwrap();
    let before: Vec<(std::ffi::OsString, Vec<u8>)> = dir_names(&dir)
        .into_iter()
        .map(|n| (n.clone(), std::fs::read(dir.join(&n)).unwrap()))
        .collect();
    let r = publish(&dir, &[&b.a], home);
    r.assert_stderr(65, "extra.bun");
    let after: Vec<(std::ffi::OsString, Vec<u8>)> = dir_names(&dir)
        .into_iter()
        .map(|n| (n.clone(), std::fs::read(dir.join(&n)).unwrap()))
        .collect();
    assert!(before == after, "the directory changed");
}

#[test]
fn a_bundle_that_does_not_verify_is_not_published() {
    let b = bundles();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("pub");
    let mut bytes = std::fs::read(&b.a).unwrap();
    let at = bytes.len() - 20_000;
    bytes[at] ^= 1;
    let bad = work.path().join("bad.bun");
    std::fs::write(&bad, bytes).unwrap();
    let r = publish(&dir, &[&b.a, &bad], &signer().home);
    r.assert_stderr(65, "bad.bun: member \"rootfs.tar.zst\"");
    assert!(dir_names(&dir).is_empty(), "{:?}", dir_names(&dir));

    // Unsigned: refused, unless --allow-unsigned; the list is signed.
    let env = new_env();
    let unsigned = work.path().join("unsigned.bun");
    run_ok(
        env.cmd()
            .args(["-H", "lxc", "--force-no-sign", "--rootfs"])
            .arg(shared_dir().join("publish-bundles/root"))
            .arg("-o")
            .arg(&unsigned)
            .arg(good("two-containers")),
    );
    publish(&dir, &[&unsigned], &signer().home).assert_stderr(65, "not signed");
    assert!(dir_names(&dir).is_empty());
    let r = run(new_env()
        .cmd()
        .env("GNUPGHOME", &signer().home)
        .arg("--publish")
        .arg(&dir)
        .arg(&unsigned)
        .args(["--allow-unsigned", "--keyring"])
        .arg(&signer().keyring));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        dir_names(&dir),
        ["SHA256SUMS", "SHA256SUMS.gpg", "unsigned.bun"]
    );

    // No name outside the directory, no name twice, no stdin.
    for (args, part) in [
        (vec!["-"], "has none"),
        (vec![".hidden.bun"], "starts with \".\""),
        (vec!["SHA256SUMS"], "the name of the list"),
    ] {
        let r = run(new_env().cmd().arg("--publish").arg(&dir).args(&args));
        r.assert_stderr(2, part);
    }
    let r = publish(&dir, &[&b.a, &work.path().join("lxc.bun")], &signer().home);
    r.assert_stderr(2, "also named \"lxc.bun\"");
}

/// What sha256sum and gpgv (as systemd-importd runs gpg) make of the
/// published directory `dir`: every file its SHA256SUMS lists matches,
/// and SHA256SUMS.gpg is the test key's signature of the list.
fn assert_sums_hold(dir: &Path) {
    let ok = Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    let gpgv = Command::new("gpgv")
        .arg("--keyring")
        .arg(&signer().keyring)
        .arg(dir.join("SHA256SUMS.gpg"))
        .arg(dir.join("SHA256SUMS"))
        .output()
        .unwrap();
    assert!(gpgv.status.success(), "{gpgv:?}");
}

/// A one-shot HTTP server on 127.0.0.1 for what python's will not do:
/// each connection is answered by `answer` (given the request's path),
/// which writes the whole answer; it serves `count` connections.
fn serve_raw(count: usize, answer: fn(&str, &mut std::net::TcpStream)) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for _ in 0..count {
            let Ok((mut s, _)) = l.accept() else { return };
            let path = request_path(&mut s).unwrap_or_default();
            answer(&path, &mut s);
        }
    });
    port
}

/// The good directory's files, for the raw servers.
fn published() -> &'static Path {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let d = shared_dir().join("publish-raw");
        let r = publish(&d, &[&bundles().a], &signer().home);
        assert_eq!(r.code, 0, "{}", r.stderr);
        d
    })
}

fn send_file(name: &str, s: &mut std::net::TcpStream, cut: bool) {
    let Ok(body) = std::fs::read(published().join(name)) else {
        let _ = s
            .write_all(b"HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
        return;
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(if cut { &body[..body.len() / 2] } else { &body });
}

#[test]
fn the_networks_failures_are_69_naming_the_url() {
    published();
    let out = tempfile::tempdir().unwrap();
    let refused = free_port();
    let r = fetch(
        &format!("http://127.0.0.1:{refused}/d/lxc.bun"),
        out.path(),
        &[],
    );
    r.assert_stderr(
        69,
        &format!("mkve-bundle: http://127.0.0.1:{refused}/d/SHA256SUMS: "),
    );
    assert!(r.stderr.contains("refused"), "{}", r.stderr);

    // A server that accepts and never answers: the timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = std::time::Instant::now();
    let r = run(new_env()
        .cmd()
        .env("MKVE_HTTP_TIMEOUT", "1")
        .current_dir(out.path())
        .arg("--fetch")
        .arg(format!("http://127.0.0.1:{port}/lxc.bun"))
        .arg("--keyring")
        .arg(&signer().keyring));
    r.assert_stderr(69, "SHA256SUMS: timed out");
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
    drop(silent);

    // The bundle cut short by the server: the network's failure, not the
    // bundle's.
    let port = serve_raw(3, |path, s| {
        let name = path.trim_start_matches('/');
        send_file(name, s, name == "lxc.bun")
    });
    let r = fetch(&format!("http://127.0.0.1:{port}/lxc.bun"), out.path(), &[]);
    r.assert_stderr(
        69,
        &format!("http://127.0.0.1:{port}/lxc.bun: the server closed the connection"),
    );
    // An error answered for the bundle, a missing list.
    let port = serve_raw(3, |path, s| {
        if path == "/lxc.bun" {
            let _ = s.write_all(b"HTTP/1.1 500 Internal Server Error\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
        } else {
            send_file(path.trim_start_matches('/'), s, false)
        }
    });
    let r = fetch(&format!("http://127.0.0.1:{port}/lxc.bun"), out.path(), &[]);
    r.assert_stderr(
        69,
        "lxc.bun: the server answered HTTP 500 Internal Server Error",
    );
    let port = serve_raw(1, |_, s| {
        let _ = s
            .write_all(b"HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    });
    let r = fetch(
        &format!("http://127.0.0.1:{port}/x/lxc.bun"),
        out.path(),
        &[],
    );
    r.assert_stderr(69, "/x/SHA256SUMS: not found (HTTP 404)");
    assert!(dir_names(out.path()).is_empty());
    // A URL that is not one of a bundle: a usage error, before any request.
    let r = fetch("http://127.0.0.1:1/d/", out.path(), &[]);
    r.assert_stderr(2, "names a directory");
}

/// `openssl s_server -WWW` serving the current directory over TLS on
/// 127.0.0.1 with `cert`, until dropped.
struct TlsServer {
    child: std::process::Child,
    port: u16,
}

impl TlsServer {
    fn serve(dir: &Path, cert: &Path, key: &Path) -> TlsServer {
        let port = free_port();
        let mut child = Command::new("openssl")
            .args(["s_server", "-quiet", "-WWW", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return TlsServer { child, port };
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("openssl s_server did not start");
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn https_servers_are_checked_against_the_system_store_or_ssl_cert_file() {
    let dir = published();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // A CA of the test's own, and a certificate it signs for 127.0.0.1.
    let openssl = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(w)
            .output()
            .unwrap();
        assert!(o.status.success(), "openssl {args:?}: {o:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509", "-days", "2", "-subj", "/CN=mkve test CA"],
            &ec[..],
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req", "-subj", "/CN=127.0.0.1"],
            &ec[..],
            &["-keyout", "leaf.key", "-out", "leaf.csr"],
        ]
        .concat(),
    );
    std::fs::write(
        w.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext",
        "-out",
        "leaf.pem",
    ]);
    let server = TlsServer::serve(dir, &w.join("leaf.pem"), &w.join("leaf.key"));
    let url = format!("https://127.0.0.1:{}/lxc.bun", server.port);
    let out = w.join("out");
    std::fs::create_dir(&out).unwrap();

    // Its CA is in no system store: refused, saying where trust comes from.
    let r = fetch(&url, &out, &[]);
    r.assert_stderr(
        69,
        &format!(
            "https://127.0.0.1:{}/SHA256SUMS: TLS: invalid peer certificate",
            server.port
        ),
    );
    assert!(r.stderr.contains("SSL_CERT_FILE"), "{}", r.stderr);
    assert!(dir_names(&out).is_empty());
    // Trusted through SSL_CERT_FILE, as an operator's own CA would be.
    let r = run(new_env()
        .cmd()
        .env("SSL_CERT_FILE", w.join("ca.pem"))
        .current_dir(&out)
        .arg("--fetch")
        .arg(&url)
        .arg("--keyring")
        .arg(&signer().keyring));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read(out.join("lxc.bun")).unwrap(),
        std::fs::read(&bundles().a).unwrap()
    );
}

/// How a raw server answers a request for a path.
type Answer = fn(&str, &mut std::net::TcpStream);

/// The head of a 200 answer with no length: the body ends when the
/// connection does.
const OPEN_ENDED: &[u8] = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n";

/// The good directory's bundle, then `byte` until the client goes.
fn bundle_then_endless(s: &mut std::net::TcpStream, byte: u8) {
    let body = std::fs::read(published().join("lxc.bun")).unwrap();
    let _ = s.write_all(OPEN_ENDED);
    let _ = s.write_all(&body);
    let more = vec![byte; 64 << 10];
    let started = std::time::Instant::now();
    while s.write_all(&more).is_ok() && started.elapsed().as_secs() < 60 {}
}

/// How a fetch of `lxc.bun` from `port` ends, `-o o` in `out`, with the
/// environment `env` added; and how long it took.
fn fetch_timed(port: u16, out: &Path, o: &str, env: &[(&str, &str)]) -> (Run, f64) {
    let started = std::time::Instant::now();
    let r = run(new_env()
        .cmd()
        .envs(env.iter().copied())
        .current_dir(out)
        .arg("--fetch")
        .arg(format!("http://127.0.0.1:{port}/lxc.bun"))
        .arg("--keyring")
        .arg(&signer().keyring)
        .args(["-o", o]));
    (r, started.elapsed().as_secs_f64())
}

#[test]
fn a_download_that_never_ends_is_refused_at_once_and_leaves_no_file() {
    published();
    let out = tempfile::tempdir().unwrap();
    let size = std::fs::metadata(published().join("lxc.bun"))
        .unwrap()
        .len();
    let servers: [(&str, Answer, &str); 4] = [
        // The issue's: a valid bundle, then zeros for ever.
        (
            "endless zeros",
            |p, s| match p {
                "/lxc.bun" => bundle_then_endless(s, 0),
                _ => send_file(p.trim_start_matches('/'), s, false),
            },
            "more zeros after the end of the archive than pad it to a 10240-byte record",
        ),
        (
            "endless bytes",
            |p, s| match p {
                "/lxc.bun" => bundle_then_endless(s, 1),
                _ => send_file(p.trim_start_matches('/'), s, false),
            },
            "data after the end of the archive",
        ),
        // Finite, with its length told, but past the record.
        (
            "a MiB of zeros",
            |p, s| match p {
                "/lxc.bun" => {
                    let mut body = std::fs::read(published().join("lxc.bun")).unwrap();
                    body.resize(body.len() + (1 << 20), 0);
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(head.as_bytes());
                    let _ = s.write_all(&body);
                }
                _ => send_file(p.trim_start_matches('/'), s, false),
            },
            "more zeros after the end of the archive",
        ),
        // Zeros to the record, then a block more.
        (
            "one block past the record",
            |p, s| match p {
                "/lxc.bun" => {
                    let mut body = std::fs::read(published().join("lxc.bun")).unwrap();
                    body.resize(body.len().div_ceil(10240) * 10240 + 512, 0);
                    let _ = s.write_all(OPEN_ENDED);
                    let _ = s.write_all(&body);
                }
                _ => send_file(p.trim_start_matches('/'), s, false),
            },
            "more zeros after the end of the archive",
        ),
    ];
    for (what, answer, part) in servers {
        let port = serve_raw(6, answer);
        for o in ["got.bun", "-"] {
            let (r, secs) = fetch_timed(port, out.path(), o, &[]);
            r.assert_stderr(65, &format!("http://127.0.0.1:{port}/lxc.bun: {part}"));
            assert_eq!(r.stderr.lines().count(), 1, "{what}: {}", r.stderr);
            assert!(secs < 20.0, "{what} -o {o}: {secs} s");
            assert!(
                r.raw_stdout.len() as u64 <= size.div_ceil(10240) * 10240 + 64 * 1024,
                "{what} -o {o}: {} bytes written",
                r.raw_stdout.len()
            );
            assert!(
                dir_names(out.path()).is_empty(),
                "{what}: {:?}",
                dir_names(out.path())
            );
        }
    }

    // A server that sends a little, often enough for the per-read timeout
    // never to end it: the deadline does.
    let port = serve_raw(3, |p, s| match p {
        "/lxc.bun" => {
            let body = std::fs::read(published().join("lxc.bun")).unwrap();
            let _ = s.write_all(OPEN_ENDED);
            for chunk in body.chunks(16) {
                if s.write_all(chunk).is_err() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
        _ => send_file(p.trim_start_matches('/'), s, false),
    });
    let (r, secs) = fetch_timed(
        port,
        out.path(),
        "slow.bun",
        &[("MKVE_HTTP_DEADLINE", "3"), ("MKVE_HTTP_TIMEOUT", "2")],
    );
    r.assert_stderr(
        69,
        &format!("http://127.0.0.1:{port}/lxc.bun: the fetch took longer than its deadline, 3 s (MKVE_HTTP_DEADLINE sets the seconds)"),
    );
    assert!(secs < 15.0, "{secs} s");
    assert!(dir_names(out.path()).is_empty());
    // The deadline counts from the fetch's start: a list that comes slowly
    // uses it up too.
    let port = serve_raw(3, |p, s| {
        if p == "/SHA256SUMS" {
            let _ = s.write_all(OPEN_ENDED);
            for _ in 0..100 {
                if s.write_all(b"\n").is_err() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        } else {
            send_file(p.trim_start_matches('/'), s, false)
        }
    });
    let (r, secs) = fetch_timed(port, out.path(), "slow.bun", &[("MKVE_HTTP_DEADLINE", "2")]);
    r.assert_stderr(
        69,
        "/SHA256SUMS: the fetch took longer than its deadline, 2 s",
    );
    assert!(secs < 15.0, "{secs} s");
    let (r, _) = fetch_timed(port, out.path(), "x.bun", &[("MKVE_HTTP_DEADLINE", "0")]);
    r.assert_stderr(2, "MKVE_HTTP_DEADLINE=0: a number of seconds, 1 or more");
    assert!(dir_names(out.path()).is_empty());
}

#[test]
fn endless_zeros_after_a_bundle_file_or_pipe_are_refused_within_a_record() {
    let b = std::fs::read(&bundles().a).unwrap();
    let work = tempfile::tempdir().unwrap();
    let verify = |input: &Path| {
        new_env()
            .cmd()
            .arg("--verify")
            .arg(input)
            .arg("--keyring")
            .arg(&signer().keyring)
            .output()
            .unwrap()
    };
    // Files: padded to the record is a bundle; a block or a MiB more is not.
    let record = b.len().div_ceil(10240) * 10240;
    for (len, ok) in [
        (record, true),
        (record + 512, false),
        (record + (1 << 20), false),
    ] {
        let mut bytes = b.clone();
        bytes.resize(len, 0);
        let f = work.path().join(format!("{len}.bun"));
        std::fs::write(&f, &bytes).unwrap();
        let o = verify(&f);
        assert_eq!(o.status.success(), ok, "{len}: {o:?}");
        if !ok {
            assert_eq!(o.status.code(), Some(65));
            let e = String::from_utf8_lossy(&o.stderr);
            assert!(e.contains("more zeros after the end of the archive"), "{e}");
        }
    }
    // A pipe that never ends: read to the record, no further.
    let started = std::time::Instant::now();
    let mut child = new_env()
        .cmd()
        .args(["--verify", "-", "--keyring"])
        .arg(&signer().keyring)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&b);
        let zeros = vec![0u8; 64 << 10];
        let mut sent = 0u64;
        while stdin.write_all(&zeros).is_ok() && sent < (1 << 34) {
            sent += zeros.len() as u64;
        }
        sent
    });
    let o = child.wait_with_output().unwrap();
    let sent = writer.join().unwrap();
    assert_eq!(o.status.code(), Some(65), "{o:?}");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.starts_with("mkve-bundle: (stdin): more zeros after the end"),
        "{e}"
    );
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
    assert!(
        sent < 64 << 20,
        "{sent} bytes of zeros taken before the refusal"
    );
}

/// A server that sends the list and its signature, and for the bundle
/// its head and `upto` bytes, then holds the connection open and silent.
fn serve_stalling(count: usize, stall: fn(&str) -> Option<usize>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for _ in 0..count {
            let Ok((mut s, _)) = l.accept() else { return };
            std::thread::spawn(move || {
                let Some(path) = request_path(&mut s) else {
                    return;
                };
                match stall(&path) {
                    None => send_file(path.trim_start_matches('/'), &mut s, false),
                    Some(upto) => {
                        if upto > 0 {
                            let body = std::fs::read(published().join("lxc.bun")).unwrap();
                            let head = format!(
                                "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
                                body.len()
                            );
                            let _ = s.write_all(head.as_bytes());
                            let _ = s.write_all(&body[..upto.min(body.len())]);
                        }
                        std::thread::sleep(std::time::Duration::from_secs(60));
                    }
                }
            });
        }
    });
    port
}

#[test]
fn a_signal_during_a_fetch_ends_it_at_once_leaving_no_part_file() {
    use nix::sys::signal::Signal;
    use std::os::unix::process::ExitStatusExt;
    published();
    let out = tempfile::tempdir().unwrap();
    // Stalled in the bundle's middle, or before the list's answer.
    let mid = serve_stalling(30, |p| (p == "/lxc.bun").then_some(2048));
    let list = serve_stalling(30, |p| (p == "/SHA256SUMS").then_some(0));
    for (port, sig) in [
        (mid, Signal::SIGTERM),
        (mid, Signal::SIGINT),
        (mid, Signal::SIGHUP),
        (list, Signal::SIGTERM),
        (list, Signal::SIGHUP),
    ] {
        let child = new_env()
            .cmd()
            .current_dir(out.path())
            .arg("--fetch")
            .arg(format!("http://127.0.0.1:{port}/lxc.bun"))
            .arg("--keyring")
            .arg(&signer().keyring)
            .args(["-o", "got.bun"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Its part file is there while it waits.
        let started = std::time::Instant::now();
        while dir_names(out.path()).is_empty() {
            assert!(started.elapsed().as_secs() < 20, "no part file");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(700));
        let part = dir_names(out.path());
        assert!(
            part[0].to_string_lossy().starts_with(".got.bun.")
                && part[0].to_string_lossy().ends_with(".mkve-part"),
            "{part:?}"
        );
        let sent = std::time::Instant::now();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(sent.elapsed().as_secs() < 10, "{sig}: {:?}", sent.elapsed());
        assert_eq!(o.status.signal(), Some(sig as i32), "{sig}: {o:?}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            e.starts_with(&format!("mkve-bundle: http://127.0.0.1:{port}/"))
                && e.trim_end().ends_with(&format!("interrupted by {sig}")),
            "{e}"
        );
        assert!(
            dir_names(out.path()).is_empty(),
            "{sig}: {:?}",
            dir_names(out.path())
        );
    }
}

/// `src`'s files put in place of `dst`'s.
fn serve_copy_of(src: &Path, dst: &Path) {
    if dst.exists() {
        std::fs::remove_dir_all(dst).unwrap();
    }
    copy_dir(src, dst);
}

/// Sign `dir`'s SHA256SUMS by hand (gpg, the signer's key) with
/// `notations` (`name=value`), as an older signature could have been.
fn sign_by_hand(dir: &Path, notations: &[String]) {
    let sig = dir.join("SHA256SUMS.gpg");
    let _ = std::fs::remove_file(&sig);
    let mut c = Command::new("gpg");
    c.arg("--homedir")
        .arg(&signer().home)
        .args(["--batch", "--quiet", "--yes", "--detach-sign"]);
    for n in notations {
        c.args(["--sig-notation", n]);
    }
    let o = c
        .arg("-o")
        .arg(&sig)
        .arg(dir.join("SHA256SUMS"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
}

/// The serial `dir`'s list was signed with (gpg --list-packets).
fn serial_of(dir: &Path) -> u64 {
    let o = Command::new("gpg")
        .arg("--homedir")
        .arg(&signer().home)
        .arg("--list-packets")
        .arg(dir.join("SHA256SUMS.gpg"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let at = text.find("serial@mkve=").expect("a serial");
    text[at + 12..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn an_older_list_served_in_place_of_a_newer_one_is_refused() {
    let b = bundles();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (v1, v2) = (w.join("v1"), w.join("v2"));
    // The first list, then a second with another bundle added: each
    // publish signs a greater serial, the clock's, never SOURCE_DATE_EPOCH's.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let pub_dir = w.join("pub");
    assert_eq!(publish(&pub_dir, &[&b.a], &signer().home).code, 0);
    copy_dir(&pub_dir, &v1);
    let r = publish(&pub_dir, &[&b.b], &signer().home);
    assert_eq!(r.code, 0, "{}", r.stderr);
    copy_dir(&pub_dir, &v2);
    let (s1, s2) = (serial_of(&v1), serial_of(&v2));
    assert!(s1 >= now && s1 < now + 600, "serial {s1}, now {now}");
    assert!(s2 > s1, "{s2} after {s1}");
    // Still what sha256sum and gpgv read.
    assert_sums_hold(&v2);

    let served = w.join("served");
    std::fs::create_dir(&served).unwrap();
    let d = served.join("d");
    let server = HttpServer::serve(&served);
    let out = w.join("out");
    std::fs::create_dir(&out).unwrap();
    // One client: one home, so one memory, across its runs.
    let env = new_env();
    let fetch_as = |url: &str, o: &str| {
        run(env
            .cmd()
            .current_dir(&out)
            .arg("--fetch")
            .arg(url)
            .arg("--keyring")
            .arg(&signer().keyring)
            .args(["-o", o]))
    };
    // A first fetch believes what it is given: even the older list.
    serve_copy_of(&v1, &d);
    let r = fetch_as(&server.url("d/lxc.bun"), "1.bun");
    assert_eq!(r.code, 0, "{}", r.stderr);
    serve_copy_of(&v2, &d);
    let r = fetch_as(&server.url("d/lxc.bun"), "2.bun");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = fetch_as(&server.url("d/openvz.bun"), "3.bun");
    assert_eq!(r.code, 0, "the same list again: {}", r.stderr);
    let fetched = dir_names(&out);

    // Replays, each of another kind.
    let same_serial = w.join("same-serial");
    copy_dir(&v2, &same_serial);
    let list = std::fs::read_to_string(same_serial.join("SHA256SUMS")).unwrap();
    let one_line: String = list.lines().take(1).map(|l| format!("{l}\n")).collect();
    std::fs::write(same_serial.join("SHA256SUMS"), one_line).unwrap();
    sign_by_hand(&same_serial, &[format!("serial@mkve={s2}")]);
    let unstamped = w.join("unstamped");
    copy_dir(&v2, &unstamped);
    sign_by_hand(&unstamped, &[]);
    let older = format!("older (serial {s1}, signed ");
    let seen = format!("before (serial {s2}, signed ");
    for (name, dir, url, part) in [
        // The issue's: the older list and its bundle in place of the new.
        ("v1", &v1, server.url("d/lxc.bun"), older.as_str()),
        // The same, asking for a bundle only the new list has.
        ("v1 openvz", &v1, server.url("d/openvz.bun"), older.as_str()),
        // The same directory under its host's name in upper case.
        (
            "v1, HTTP://",
            &v1,
            server.url("d/lxc.bun").replace("http://", "HTTP://"),
            older.as_str(),
        ),
        // Another list signed with the serial already seen.
        (
            "same serial",
            &same_serial,
            server.url("d/lxc.bun"),
            "another list with the same serial as the one",
        ),
        // A list signed afresh, by hand, with no serial.
        (
            "no serial",
            &unstamped,
            server.url("d/lxc.bun"),
            "older (no serial, signed ",
        ),
    ] {
        serve_copy_of(dir, &d);
        let r = fetch_as(&url, "x.bun");
        assert_eq!(r.code, 65, "{name}: {}", r.stderr);
        assert!(
            r.stderr
                .to_ascii_lowercase()
                .starts_with("mkve-bundle: http://127.0.0.1:")
                && r.stderr.contains("/d/SHA256SUMS: ")
                && r.stderr.contains(part)
                && r.stderr.contains(&seen),
            "{name}: {}",
            r.stderr
        );
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert_eq!(dir_names(&out), fetched, "{name}");
    }
    // The newer list is still taken, and a newer one still.
    serve_copy_of(&v2, &d);
    assert_eq!(fetch_as(&server.url("d/lxc.bun"), "4.bun").code, 0);
    let r = publish(&pub_dir, &[&b.a], &signer().home);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serve_copy_of(&pub_dir, &d);
    let r = fetch_as(&server.url("d/lxc.bun"), "5.bun");
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn an_expired_list_is_refused() {
    let b = bundles();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let short = w.join("short");
    let r = run(new_env()
        .cmd()
        .env("GNUPGHOME", &signer().home)
        .arg("--publish")
        .arg(&short)
        .arg(&b.a)
        .args(["--valid-for", "1s", "-v", "--keyring"])
        .arg(&signer().keyring));
    r.assert_stderr(0, ", valid until ");
    let long = w.join("long");
    let r = run(new_env()
        .cmd()
        .env("GNUPGHOME", &signer().home)
        .arg("--publish")
        .arg(&long)
        .arg(&b.a)
        .args(["--valid-for", "7d", "--keyring"])
        .arg(&signer().keyring));
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Signed by hand, valid until a time long past.
    let past = w.join("past");
    copy_dir(&long, &past);
    sign_by_hand(
        &past,
        &[
            format!("serial@mkve={}", serial_of(&long) + 1),
            "valid-until@mkve=2020-01-01T00:00:00Z".into(),
        ],
    );
    // And one whose stamp does not read.
    let garbled = w.join("garbled");
    copy_dir(&long, &garbled);
    sign_by_hand(&garbled, &["serial@mkve=12x".into()]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let server = HttpServer::serve(w);
    let out = w.join("out");
    std::fs::create_dir(&out).unwrap();
    let r = fetch(&server.url("long/lxc.bun"), &out, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::fs::remove_file(out.join("lxc.bun")).unwrap();
    for (dir, part) in [
        ("short", "/short/SHA256SUMS: expired: signed "),
        ("past", "/past/SHA256SUMS: expired: signed 2"),
        (
            "garbled",
            "/garbled/SHA256SUMS.gpg: serial@mkve=\"12x\": not a serial",
        ),
    ] {
        let r = fetch(&server.url(&format!("{dir}/lxc.bun")), &out, &[]);
        r.assert_stderr(65, part);
        assert!(dir_names(&out).is_empty(), "{dir}");
    }
    let r = fetch(&server.url("past/lxc.bun"), &out, &[]);
    assert!(
        r.stderr.contains("valid until 2020-01-01T00:00:00Z"),
        "{}",
        r.stderr
    );
    // --valid-for's values.
    for bad in ["0s", "7", "1y", "-1d", "", "999999999w"] {
        let r = run(new_env()
            .cmd()
            .arg("--publish")
            .arg(w.join("never"))
            .arg(&b.a)
            .args(["--valid-for", bad]));
        assert_eq!(r.code, 2, "{bad}: {}", r.stderr);
    }
}

#[test]
fn output_dir_is_made_at_once_or_named_when_it_cannot_be() {
    bundles();
    let root = shared_dir().join("publish-bundles/root");
    let work = tempfile::tempdir().unwrap();
    let all = |dir: &Path| {
        run(new_env()
            .cmd()
            .args(["--all-hypervisors", "--force-no-sign", "--rootfs"])
            .arg(&root)
            .arg("--output-dir")
            .arg(dir)
            .arg(good("two-containers")))
    };
    // Missing, with a missing parent: made as mkdir -p makes it.
    let nested = work.path().join("a/b/bundles");
    let r = all(&nested);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        dir_names(&nested),
        ["two-containers-lxc.bun", "two-containers-openvz.bun"]
    );
    // One that cannot be made: named, before anything is built.
    let file = work.path().join("file");
    std::fs::write(&file, "").unwrap();
    for dir in [
        file.clone(),
        file.join("sub"),
        PathBuf::from("/proc/mkve-no"),
    ] {
        let r = all(&dir);
        r.assert_stderr(
            73,
            &format!("mkve-bundle: {}: cannot create", dir.display()),
        );
        assert!(!r.stderr.contains("mkve-part"), "{}", r.stderr);
    }
    assert_eq!(dir_names(work.path()), ["a", "file"]);
}
