//! The fuzz target of mkve-web's request readers (`fuzz/`, `api_request`),
//! which `tests/fuzz_corpus.rs` replays: the same code for both, as
//! mkve-core's `fuzzing.rs` is for its readers.
//!
//! Not part of mkve-web's interface: hidden from the documentation, and
//! free to change with the fuzzer.

// A target's checks are the fuzzer's oracle: a panic is how one reports.
#![allow(clippy::panic)]

use crate::actions::Action;
use crate::request::{field_name, pairs, FIELDS};

/// The input, split at its first NUL: before it a query string, read for
/// each action of `POST /api/machines/ID/ACTION` ([`Action::from_api`]);
/// after it a form's urlencoded body, read as the page's options form is
/// ([`pairs`]) and checked name by name ([`field_name`]) and whole
/// ([`crate::form::create_options`], the API's and the page's one
/// reader). Beyond "never panics" it checks that what is accepted is what
/// mkve-web(8) says is: every query key one the action takes, once, UTF-8,
/// force never with timeout; every field known, given once but `param`,
/// its value UTF-8; and that a refusal is a usage error (2) or, for a
/// password or a key, a data error (65), never another kind.
pub fn api_request(data: &[u8]) {
    let (query, body) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    // A URI's query is text; its %XX escapes may be any bytes.
    let query = String::from_utf8_lossy(query);
    let keys = pairs(query.as_bytes());
    for word in ["start", "reboot", "stop", "autostart", "explode"] {
        match Action::from_api(word, Some(&query)) {
            Ok(a) => {
                let takes: &[&[u8]] = match word {
                    "stop" => &[b"force", b"timeout"],
                    "autostart" => &[b"off"],
                    _ => &[],
                };
                for (i, (k, v)) in keys.iter().enumerate() {
                    assert!(takes.contains(&k.as_slice()), "{word}: {k:?} accepted");
                    assert!(
                        keys[..i].iter().all(|(o, _)| o != k),
                        "{word}: {k:?} accepted twice"
                    );
                    assert!(std::str::from_utf8(v).is_ok(), "{word}: {v:?} accepted");
                }
                if let Action::Stop { force: true, .. } = a {
                    assert!(
                        keys.iter().all(|(k, _)| k != b"timeout"),
                        "force accepted with timeout"
                    );
                }
            }
            Err(e) => {
                assert_eq!(e.exit_code(), 2, "{word}: {e}");
                let m = e.to_string();
                assert!(
                    m.starts_with("the query: ") || m.starts_with("no action "),
                    "{word}: {m}"
                );
            }
        }
    }

    let fields: crate::form::Fields = pairs(body)
        .into_iter()
        .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
        .collect();
    let mut seen: Vec<&str> = Vec::new();
    let mut names_ok = true;
    for (n, _) in &fields {
        if field_name(n, &seen).is_err() || n == "bundle" {
            names_ok = false;
        }
        seen.push(n);
    }
    let config = crate::config::Config::new(mkve_core::vm::Uris {
        list: Vec::new(),
        explicit: false,
    });
    match crate::form::create_options("b.bun".into(), &fields, &config) {
        Ok(o) => {
            assert!(names_ok, "{fields:?}: a field refused by name was accepted");
            for (n, v) in &fields {
                assert!(
                    FIELDS.contains(&n.as_str()) || n.starts_with("param."),
                    "{n} accepted"
                );
                assert!(std::str::from_utf8(v).is_ok(), "{n}: {v:?} accepted");
            }
            for (i, (n, _)) in o.params.iter().enumerate() {
                assert!(mkve_core::params::is_name(n), "parameter {n:?} accepted");
                assert!(
                    o.params[..i].iter().all(|(m, _)| m != n),
                    "parameter {n} accepted twice"
                );
            }
        }
        Err(e) => {
            let code = e.exit_code();
            assert!(code == 2 || code == 65, "{code}: {e}");
        }
    }
}
