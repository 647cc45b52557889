//! mkve's list files: one item a line, blank lines and `#` comments
//! dropped, each item kept with its line number for messages. A
//! template's lists and mkve.conf's lines are all read through [`read`].

use std::path::Path;

use crate::error::{Problem, Result};

/// The meaningful lines of a list file, numbered from 1: blank lines and
/// `#` comments (whole-line, or after white space) are dropped.
/// `Ok(None)` when the file does not exist.
pub fn read(path: &Path) -> Result<Option<Vec<(usize, String)>>, Problem> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
            return Err(Problem::new(path, None, "is a directory, expected a file"))
        }
        Err(e) => return Err(Problem::new(path, None, e.to_string())),
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        Problem::new(path, Some(line), "not valid UTF-8 text")
    })?;
    Ok(Some(
        text.lines()
            .enumerate()
            .filter_map(|(i, l)| {
                // The first `#` that starts the line or follows white
                // space, not merely the first `#`: `c#sharp # x` is c#sharp.
                let comment = l.char_indices().find(|&(at, c)| {
                    c == '#' && (at == 0 || l[..at].ends_with(char::is_whitespace))
                });
                let l = comment.map_or(l, |(at, _)| &l[..at]);
                let l = l.trim();
                (!l.is_empty()).then(|| (i + 1, l.to_string()))
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_drop_comments_and_blank_lines_and_keep_numbers() {
        let d = crate::testing::tree(&[(
            "l",
            "# head\n\nvsftpd  # the server\n  chrony\nc#sharp\nc#sharp # a#b\n",
        )]);
        let f = d.path().join("l");
        let got = read(&f).unwrap().unwrap();
        assert_eq!(
            got,
            vec![
                (3, "vsftpd".into()),
                (4, "chrony".into()),
                (5, "c#sharp".into()),
                (6, "c#sharp".into())
            ]
        );
        assert_eq!(read(&d.path().join("none")).unwrap(), None);
    }

    #[test]
    fn invalid_utf8_names_its_line() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("l");
        std::fs::write(&f, b"a\nb\n\xff\n").unwrap();
        assert_eq!(read(&f).unwrap_err().line, Some(3));
    }
}
