//! The API's edges (issue 20, item 6), in-process against libvirt's test
//! driver: every refusal is the JSON `{"error", "exit"}` with an HTTP
//! status matching the exit status; a create's fields are refused as
//! `mkve-vm create` refuses the same values, in the same words; fields
//! and query options nobody reads, or given twice, are refused, not
//! ignored; an upload cut short or malformed is a 400 that leaves no file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use axum::body::Body;
use axum::http::Request;
use common::*;
use serde_json::Value;

const B: &str = "mkveboundary7d1f";

/// A multipart body: `fields` (name, value as bytes) in order, then the
/// bundle `bytes` as the file field `bundle`.
fn form(fields: &[(&str, &[u8])], bundle: Option<&[u8]>) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{B}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(v);
        body.extend_from_slice(b"\r\n");
    }
    if let Some(bytes) = bundle {
        body.extend_from_slice(
            format!(
                "--{B}\r\nContent-Disposition: form-data; name=\"bundle\"; filename=\"junk.bun\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{B}--\r\n").as_bytes());
    body
}

fn junk() -> Vec<u8> {
    b"this is not a bundle at all, only some bytes\n".repeat(30)
}

fn upload(body: Vec<u8>, content_type: Option<&str>) -> Request<Body> {
    let mut r = Request::post("/api/machines").header("host", "localhost");
    if let Some(t) = content_type {
        r = r.header("content-type", t);
    }
    r.body(Body::from(body)).unwrap()
}

fn multipart_type() -> String {
    format!("multipart/form-data; boundary={B}")
}

/// The answer's status and its JSON error, checked to be exactly
/// `{"error": TEXT, "exit": N}` served as JSON.
async fn refused(app: &mkve_web::Shared, req: Request<Body>) -> (u16, String, i64) {
    let what = format!("{} {}", req.method(), req.uri());
    let (status, body, resp) = send(app, req).await;
    assert_eq!(
        resp.headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap()),
        Some("application/json"),
        "{what}: {status} {body}"
    );
    let v: Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: {e}: {status} {body}"));
    let o = v.as_object().unwrap();
    assert_eq!(o.len(), 2, "{what}: {body}");
    let (error, exit) = (o["error"].as_str().unwrap(), o["exit"].as_i64().unwrap());
    let expected = match exit {
        2 => [400, 404, 405],
        65 => [422; 3],
        69 => [503; 3],
        73 => [507; 3],
        _ => [500; 3],
    };
    assert!(
        expected.contains(&status),
        "{what}: HTTP {status} for exit {exit}: {body}"
    );
    (status, error.to_string(), exit)
}

fn no_upload_left(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir.join("uploads"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "uploads left: {left:?}");
}

/// What `mkve-vm create ARGS junk.bun` prints on stderr and its status,
/// run where the bundle is.
fn cli_create(args: &[&[u8]]) -> (i32, String) {
    let (_dir, file) = mkve_testkit::temp_file("junk.bun", junk());
    let mut c = std::process::Command::new(bin("mkve-vm"));
    c.args(["-c", "test:///default", "create"]);
    for a in args {
        c.arg(std::ffi::OsStr::from_bytes(a));
    }
    let out = c
        .arg("junk.bun")
        .current_dir(file.parent().unwrap())
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A parameter's value the CLI refuses is refused by the API with the same
/// status and words, whichever way it is sent (`param.NAME`, `param`):
/// not UTF-8 (the input that was accepted as U+FFFD), longer than 64 KiB;
/// and one the CLI cannot be given (a NUL) in core's words for --param.
/// The options are refused before the bundle is read, as the CLI's are.
#[tokio::test]
async fn a_parameter_the_cli_refuses_is_refused_in_its_words() {
    let d = dirs("webtest-net");
    let dir = d.join("edges-param");
    let app = app(test_uris(), &dir, false);
    let long = [b"admin_password=".as_slice(), &[b'x'; 65537]].concat();
    for (arg, field) in [
        (b"admin_password=\xff".to_vec(), None),
        (
            b"admin_password=caf\xc3".to_vec(),
            Some("param.admin_password"),
        ),
        (long, None),
    ] {
        let (code, cli) = cli_create(&[b"--param", &arg]);
        assert_eq!(code, 2, "{cli}");
        let (name, value) = arg.split_at(arg.iter().position(|&b| b == b'=').unwrap());
        let req = match field {
            Some(f) => form(&[(f, &value[1..])], Some(&junk())),
            None => form(&[("param", &arg)], Some(&junk())),
        };
        let (status, error, exit) = refused(&app, upload(req, Some(&multipart_type()))).await;
        assert_eq!((status, exit), (400, 2), "{error}");
        assert_eq!(
            as_cli_prints(&error),
            cli,
            "{}",
            String::from_utf8_lossy(name)
        );
    }
    let (_, error, _) = refused(
        &app,
        upload(
            form(&[("param.motd", b"a\0b")], Some(&junk())),
            Some(&multipart_type()),
        ),
    )
    .await;
    assert_eq!(error, "--param: motd: the value holds a NUL byte");
    // A value with other control characters is the CLI's to accept: here
    // the junk bundle is what is refused.
    let (status, _, exit) = refused(
        &app,
        upload(
            form(&[("param.motd", b"a\x01b")], Some(&junk())),
            Some(&multipart_type()),
        ),
    )
    .await;
    assert_eq!((status, exit), (422, 65));
    no_upload_left(&dir);
}

/// The other fields: a value the CLI's option refuses, in its core words
/// (clap prefixes them with "invalid value … for …"); a field nobody reads,
/// a field given twice (a second bundle too), a checkbox neither on nor
/// off, a value not UTF-8, a parameter name --param refuses.
#[tokio::test]
async fn fields_unknown_repeated_or_bad_are_refused() {
    let d = dirs("webtest-net");
    let dir = d.join("edges-fields");
    let app = app(test_uris(), &dir, false);
    let (code, cli) = cli_create(&[b"--vcpus", b"0"]);
    assert_eq!(code, 2);
    let j = junk();
    type Case<'a> = (Vec<(&'a str, &'a [u8])>, Option<&'a [u8]>, String);
    let cases: Vec<Case> = vec![
        (
            vec![("vcpus", b"0")],
            Some(&j),
            // clap: "error: invalid value '0' for '--vcpus <N>': WORDS"
            format!(
                "--vcpus: {}",
                cli.lines().next().unwrap().split_once("': ").unwrap().1
            ),
        ),
        (
            vec![("memory", b"1G"), ("memory", b"2G")],
            Some(&j),
            "the field memory is given twice".into(),
        ),
        (
            vec![("memroy", b"1G")],
            Some(&j),
            "no field \"memroy\": a create takes bundle, hypervisor, id, name, memory, vcpus, \
             cpu_shares, blkio_weight, disk_format, disk_size, no_base, vnc, start, \
             allow_unsigned, root_password, ssh_key, param and param.NAME"
                .into(),
        ),
        (
            vec![("start", b"banana")],
            Some(&j),
            "--start: \"banana\" is neither on nor off".into(),
        ),
        (
            vec![("name", b"web\xff")],
            Some(&j),
            "--name: not UTF-8".into(),
        ),
        (
            vec![("param.Admin", b"x")],
            Some(&j),
            "--param: \"Admin\" is not a parameter name ([a-z][a-z0-9_]*, at most 64 bytes)".into(),
        ),
        (
            vec![("param", b"motd=1"), ("param.motd", b"2")],
            Some(&j),
            "parameter motd is given twice".into(),
        ),
        (
            vec![("memory", b"1G")],
            None,
            "no bundle: send the file as the field \"bundle\"".into(),
        ),
    ];
    for (fields, bundle, want) in cases {
        let (status, error, exit) =
            refused(&app, upload(form(&fields, bundle), Some(&multipart_type()))).await;
        assert_eq!((status, exit, error.as_str()), (400, 2, want.as_str()));
    }
    // A second bundle after the first: refused before it is read.
    let mut body = form(&[], Some(&j));
    let end = format!("--{B}--\r\n");
    body.truncate(body.len() - end.len());
    body.extend_from_slice(&form(&[], Some(&j)));
    let (status, error, _) = refused(&app, upload(body, Some(&multipart_type()))).await;
    assert_eq!(
        (status, error.as_str()),
        (400, "the field bundle is given twice")
    );
    // A field over a MiB is refused while it is read.
    let big = vec![b'a'; (1 << 20) + 1];
    let (status, error, _) = refused(
        &app,
        upload(
            form(&[("ssh_key", &big)], Some(&j)),
            Some(&multipart_type()),
        ),
    )
    .await;
    assert_eq!(
        (status, error.as_str()),
        (400, "the field ssh_key is longer than 1048576 bytes")
    );
    // A form of many parameters is refused past the 512th field.
    let names: Vec<String> = (0..600).map(|i| format!("param.p{i}")).collect();
    let many: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"1"[..])).collect();
    let (status, error, _) =
        refused(&app, upload(form(&many, Some(&j)), Some(&multipart_type()))).await;
    assert_eq!((status, error.as_str()), (400, "more than 512 form fields"));
    no_upload_left(&dir);
}

/// An upload cut short (in the bundle's bytes, in a part's headers,
/// before the closing boundary) or malformed (no boundary, another
/// Content-Type, none): 400 with the JSON error, never 500, and nothing
/// left in uploads/.
#[tokio::test]
async fn a_cut_or_malformed_upload_is_a_400_that_leaves_nothing() {
    let d = dirs("webtest-net");
    let dir = d.join("edges-cut");
    let app = app(test_uris(), &dir, false);
    let whole = form(&[("start", b"on")], Some(&junk()));
    let header_at = whole
        .windows(12)
        .position(|w| w == b"Content-Type")
        .unwrap();
    let cuts = [
        whole.len() / 2,           // in the bundle's bytes
        whole.len() - 3,           // in the closing boundary
        header_at + 5,             // in a part's headers
        whole.len() - B.len() - 8, // after the bundle, before the boundary ends
        20,                        // in the first boundary
    ];
    for cut in cuts {
        let (status, error, exit) =
            refused(&app, upload(whole[..cut].to_vec(), Some(&multipart_type()))).await;
        assert_eq!((status, exit), (400, 2), "cut at {cut}: {error}");
        assert!(
            error.starts_with("the upload is cut short or malformed: "),
            "cut at {cut}: {error}"
        );
        no_upload_left(&dir);
    }
    for ty in [
        Some("application/json"),
        Some("multipart/form-data"),
        Some("text/plain; boundary=x"),
        None,
    ] {
        let (status, error, exit) = refused(&app, upload(whole.clone(), ty)).await;
        assert_eq!((status, exit), (400, 2), "{ty:?}: {error}");
        assert!(
            error.contains("not multipart/form-data with a boundary"),
            "{ty:?}: {error}"
        );
    }
    // Garbage where the parts should be.
    let (status, _, _) = refused(
        &app,
        upload(b"no parts here\r\n".to_vec(), Some(&multipart_type())),
    )
    .await;
    assert_eq!(status, 400);
    no_upload_left(&dir);
}

fn request(method: &str, uri: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "localhost")
        .body(Body::empty())
        .unwrap()
}

/// The query options each action takes, and nothing else: unknown keys
/// (on stop, start, a GET), a key given twice, a bad timeout (not a
/// number, negative, too large, empty), force with timeout (the CLI's
/// conflict), a flag neither true nor false, a value not UTF-8; a path
/// segment not UTF-8, an action that is none, a route that is none, a
/// method a route does not take: each the JSON error, before anything is
/// asked of libvirt.
#[tokio::test]
async fn queries_paths_routes_and_methods_answer_the_json_error() {
    let d = dirs("webtest-net");
    let app = app(test_uris(), &d.join("edges-query"), false);
    let cases = [
        (
            "POST",
            "/api/machines/150/stop?forse=true",
            400,
            "the query: unknown field `forse`, expected `force` or `timeout`",
        ),
        (
            "POST",
            "/api/machines/150/stop?force=true&force=true",
            400,
            "the query: duplicate field `force`",
        ),
        (
            "POST",
            "/api/machines/150/stop?timeout=abc",
            400,
            "the query: timeout=abc: invalid digit found in string",
        ),
        (
            "POST",
            "/api/machines/150/stop?timeout=-1",
            400,
            "the query: timeout=-1: invalid digit found in string",
        ),
        (
            "POST",
            "/api/machines/150/stop?timeout=99999999999999999999",
            400,
            "the query: timeout=99999999999999999999: number too large to fit in target type",
        ),
        (
            "POST",
            "/api/machines/150/stop?timeout=",
            400,
            "the query: timeout=: cannot parse integer from empty string",
        ),
        (
            "POST",
            "/api/machines/150/stop?force=true&timeout=5",
            400,
            "the query: force=true cannot be used with timeout (a forced stop does not wait)",
        ),
        (
            "POST",
            "/api/machines/150/stop?force=yes",
            400,
            "the query: force=yes: expected true or false",
        ),
        (
            "POST",
            "/api/machines/150/stop?force=tr%FFue",
            400,
            "the query: force: the value is not UTF-8",
        ),
        (
            "POST",
            "/api/machines/150/start?force=true",
            400,
            "the query: unknown field `force`, there are no fields",
        ),
        (
            "POST",
            "/api/machines/150/autostart?off=maybe",
            400,
            "the query: off=maybe: expected true or false",
        ),
        (
            "GET",
            "/api/machines?all=1",
            400,
            "the query: unknown field `all`, there are no fields",
        ),
        (
            "DELETE",
            "/api/machines/150?force=true",
            400,
            "the query: unknown field `force`, there are no fields",
        ),
        (
            "GET",
            "/api/machines/%FF",
            400,
            "the path's id is not UTF-8",
        ),
        (
            "POST",
            "/api/machines/150/explode",
            400,
            "no action explode",
        ),
        (
            "GET",
            "/api/nothing",
            404,
            "no GET /api/nothing: mkve-web(8) lists the API",
        ),
        (
            "PUT",
            "/api/machines",
            405,
            "/api/machines does not take PUT: mkve-web(8) lists the API",
        ),
        (
            "GET",
            "/api/machines/150/start",
            405,
            "/api/machines/150/start does not take GET: mkve-web(8) lists the API",
        ),
        (
            "POST",
            "/api/machines?x=1",
            400,
            "the query: unknown field `x`, there are no fields",
        ),
    ];
    for (method, uri, want_status, want) in cases {
        let (status, error, exit) = refused(&app, request(method, uri)).await;
        assert_eq!(
            (status, exit, error.as_str()),
            (want_status, 2, want),
            "{method} {uri}"
        );
    }
    // Pages keep their plain answers.
    let (status, body, _) = send(&app, request("GET", "/nothing")).await;
    assert_eq!((status, body.as_str()), (404, "not found\n"));
    // What is right still passes the reader (the machine is not there).
    for uri in [
        "/api/machines/150/stop?force=false&timeout=0",
        "/api/machines/150/autostart?off=true",
        "/api/machines/150/start?",
    ] {
        let (status, error, _) = refused(&app, request("POST", uri)).await;
        assert_eq!((status, error.as_str()), (404, "no machine 150"), "{uri}");
    }
}
