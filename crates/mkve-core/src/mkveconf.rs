//! mkve.conf's lines, read one way for every part of mkve that reads the
//! file (the network, net.rs; the nodes, nodes.rs): `KEY=VALUE` lines,
//! blank lines and `#` comments (mkve-net(1), FILES). Every key must be
//! one mkve knows, each given once; a byte-order mark, a line that is no
//! `KEY=VALUE` and an unknown key are refused with the file and line. So a
//! file one command refuses is refused by all (`nodes::load`, which every
//! reader goes through, checks what the keys hold as well).

use std::path::Path;

use crate::error::{Error, Problem, Result};

/// The top-level keys; besides these, `node.NAME.KEY` (nodes.rs). The
/// engine's (`engine`, `ganeti_*`) are read by vm/ganeti_rapi.rs.
pub const KEYS: [&str; 10] = [
    "network_name",
    "network_bridge",
    "network_address",
    "this_node",
    "node_ssh_command",
    "engine",
    "ganeti_rapi",
    "ganeti_rapi_credentials",
    "ganeti_network",
    "ganeti_disk_template",
];

/// One `KEY=VALUE` line: its number, the key and the value, both trimmed
/// (the value of surrounding double quotes too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub n: usize,
    pub key: String,
    pub value: String,
}

/// The lines of mkve.conf at `path`; `None` when it does not exist.
/// Errors (65, `FILE:LINE: cause`): a byte-order mark, a control
/// character, text that is not UTF-8, a line that is no `KEY=VALUE`, an
/// unknown key (with the keys there are), a key given twice.
pub fn lines(path: &Path) -> Result<Option<Vec<Line>>> {
    let bad = |n: usize, msg: String| Error::InvalidConfig(Problem::new(path, Some(n), msg));
    match std::fs::read(path) {
        Ok(b) if b.starts_with(&[0xef, 0xbb, 0xbf]) => {
            return Err(bad(
                1,
                "starts with a byte-order mark (U+FEFF): save the file without one".into(),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    let list = match crate::listfile::read(path) {
        Ok(Some(l)) => l,
        Ok(None) => return Ok(None),
        Err(p) => return Err(Error::InvalidConfig(p)),
    };
    let mut out: Vec<Line> = Vec::new();
    for (n, text) in list {
        let Some((k, v)) = text.split_once('=') else {
            return Err(bad(
                n,
                format!(
                    "expected KEY=VALUE, found \"{}\"",
                    crate::text::printable(&text)
                ),
            ));
        };
        let (key, value) = (k.trim(), v.trim().trim_matches('"'));
        if !KEYS.contains(&key) && !key.starts_with("node.") {
            return Err(bad(
                n,
                format!(
                    "unknown key \"{}\" (mkve.conf takes {}, node.NAME.KEY)",
                    crate::text::printable(key),
                    KEYS.join(", ")
                ),
            ));
        }
        if let Some(first) = out.iter().find(|l| l.key == key) {
            return Err(bad(
                n,
                format!("{key} is given twice (first on line {})", first.n),
            ));
        }
        out.push(Line {
            n,
            key: key.to_string(),
            value: value.to_string(),
        });
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &[u8]) -> std::result::Result<Vec<Line>, String> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("mkve.conf");
        std::fs::write(&p, text).unwrap();
        lines(&p)
            .map(Option::unwrap_or_default)
            .map_err(|e| e.to_string().replace(&p.display().to_string(), "F"))
    }

    #[test]
    fn keys_values_and_comments() {
        let l = read(b"# c\n\nnetwork_name = \"n1\"  # why\nnode.a.ids=100-199\n").unwrap();
        assert_eq!(
            l,
            [
                Line {
                    n: 3,
                    key: "network_name".into(),
                    value: "n1".into()
                },
                Line {
                    n: 4,
                    key: "node.a.ids".into(),
                    value: "100-199".into()
                },
            ]
        );
    }

    #[test]
    fn what_no_reader_takes_is_refused_with_its_line() {
        for (text, want) in [
            (
                &b"network_name=a\nnod_ssh_command=ssh\n"[..],
                "F:2: unknown key \"nod_ssh_command\"",
            ),
            (
                b"\xef\xbb\xbfnetwork_name=a\n",
                "F:1: starts with a byte-order mark",
            ),
            (
                b"\xef\xbb\xbf# comment\nnetwork_name=a\n",
                "F:1: starts with a byte-order mark",
            ),
            (
                b"network_name=a\nnetwork_name=b\n",
                "F:2: network_name is given twice (first on line 1)",
            ),
            (
                b"network_name a\n",
                "F:1: expected KEY=VALUE, found \"network_name a\"",
            ),
            (b"Network_Name=a\n", "F:1: unknown key \"Network_Name\""),
            (
                b"network_name=a\nnetwork_mtu=9000\n",
                "F:2: unknown key \"network_mtu\"",
            ),
        ] {
            let e = read(text).unwrap_err();
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
    }
}
