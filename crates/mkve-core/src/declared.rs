//! What the two small declaration files a template and its bundle carry,
//! `params` (params.rs) and `probes` (probe.rs), share: how their lines are
//! read, and how a machine's or an unpacked bundle's copy is found.

use std::path::Path;

use crate::error::{Error, Problem, Result};

/// The largest declaration file, in bytes.
pub(crate) const FILE_MAX: usize = 64 << 10;

/// The lines to parse of a declaration file, numbered from 1: trimmed of
/// spaces and tabs, blank lines and `#` comment lines left out. A line
/// holding a control character other than tab is a problem instead (these
/// lines are shown on terminals and written back). `None`, with the one
/// problem, when the file is larger than `FILE_MAX` or not UTF-8.
pub(crate) fn lines<'t>(
    text: &'t [u8],
    path: &Path,
    problems: &mut Vec<Problem>,
) -> Option<Vec<(usize, &'t str)>> {
    if text.len() > FILE_MAX {
        problems.push(Problem::new(
            path,
            None,
            format!("larger than {FILE_MAX} bytes"),
        ));
        return None;
    }
    let Ok(text) = std::str::from_utf8(text) else {
        problems.push(Problem::new(path, None, "not UTF-8 text"));
        return None;
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // A banner regex says \t or \x0c instead.
        match line.chars().find(|c| c.is_control() && *c != '\t') {
            Some(c) => problems.push(Problem::new(
                path,
                Some(i + 1),
                format!("control character U+{:04X} in the line", c as u32),
            )),
            None => out.push((i + 1, line)),
        }
    }
    Some(out)
}

/// A declaration file's parser: its text and the path naming it in errors.
pub(crate) type Parse<T> = fn(&[u8], &Path) -> std::result::Result<Vec<T>, Vec<Problem>>;

/// The declarations kept as `dir/member` (a machine's directory or an
/// unpacked bundle), parsed by `parse`; none when there is no such file.
/// `label` names the bundle or machine in errors. Errors: it does not
/// parse (65, its first problem), it cannot be read (1).
pub(crate) fn of_dir<T>(dir: &Path, member: &str, label: &str, parse: Parse<T>) -> Result<Vec<T>> {
    let path = dir.join(member);
    match std::fs::read(&path) {
        Ok(text) => parse(&text, &Path::new(label).join(member))
            .map_err(|mut p| Error::InvalidBundle(p.remove(0))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(&path, e)),
    }
}
