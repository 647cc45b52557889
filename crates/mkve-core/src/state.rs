//! State: the paths that hold a template's service's data (a mail spool,
//! a Kerberos database, an FTP tree), declared by the template so that
//! backups, restores and upgrades treat them as the machine's own; what
//! else a machine changed is drift, carried too but reported apart.
//!
//! A template declares them in its `state` file, which travels in the
//! bundle as the member `conf/state` under the one signature, beside
//! `conf/params` and `conf/probes` (mkve-template(5), mkve-bundle(5)): one
//! absolute path a line, `#` starts a comment line:
//!
//! ```text
//! # dovecot's mailboxes and its own index
//! /var/mail
//! /var/lib/dovecot
//! ```
//!
//! A path is absolute and written plainly (no `.` or `..` component, no
//! `//`, no trailing `/`), is not `/`, does not name the kernel's or the
//! run's file systems (`/proc`, `/sys`, `/dev`, `/run`, `/tmp` and what is
//! under them), and is neither repeated nor under another declared path.
//! This module reads and checks the list; it never touches a machine.

use std::path::{Component, Path, PathBuf};

use crate::error::{Problem, Result};

/// The bundle member that declares them.
pub const MEMBER: &str = "conf/state";
/// The most paths.
const COUNT_MAX: usize = 256;
/// The longest path, in bytes (Linux's `PATH_MAX`).
const PATH_MAX: usize = 4096;
/// What a machine's state cannot be: file systems the kernel or the boot
/// makes afresh, never data a backup could restore.
pub const VOLATILE: [&str; 5] = ["/proc", "/sys", "/dev", "/run", "/tmp"];

/// Parse a state file's text; `path` names it in errors (the template's
/// file, or the bundle's member). Errors: every bad line, with its number.
pub fn parse(text: &[u8], path: &Path) -> std::result::Result<Vec<PathBuf>, Vec<Problem>> {
    let mut problems = Vec::new();
    let Some(lines) = crate::declared::lines(text, path, &mut problems) else {
        return Err(problems);
    };
    let mut out: Vec<(PathBuf, usize)> = Vec::new();
    for (n, line) in lines {
        let mut bad = |why: String| problems.push(Problem::new(path, Some(n), why));
        if out.len() == COUNT_MAX {
            bad(format!("more than {COUNT_MAX} paths"));
            break;
        }
        if let Err(why) = check(line) {
            bad(why);
            continue;
        }
        let p = PathBuf::from(line);
        if let Some((_, first)) = out.iter().find(|(q, _)| *q == p) {
            bad(format!("{line} is declared twice (first on line {first})"));
            continue;
        }
        if let Some((q, at)) = out
            .iter()
            .find(|(q, _)| p.starts_with(q) || q.starts_with(&p))
        {
            let (inner, outer) = if p.starts_with(q) { (&p, q) } else { (q, &p) };
            bad(format!(
                "{} is under {} (line {at} and this one): declare only {}",
                inner.display(),
                outer.display(),
                outer.display()
            ));
            continue;
        }
        out.push((p, n));
    }
    if problems.is_empty() {
        Ok(out.into_iter().map(|(p, _)| p).collect())
    } else {
        Err(problems)
    }
}

/// mkve-template(5)'s rule for one declared path. Errors: why not.
pub fn check(line: &str) -> std::result::Result<(), String> {
    let shown = line.escape_debug();
    if line.contains(char::is_whitespace) {
        return Err(format!(
            "\"{shown}\": one path per line, without white space (a comment is a line of its own, starting with #)"
        ));
    }
    if !line.starts_with('/') {
        return Err(format!("\"{shown}\" is not an absolute path"));
    }
    if line == "/" {
        return Err("/ is the whole root, not the service's state: name its directories".into());
    }
    if line.len() > PATH_MAX {
        return Err(format!("the path is longer than {PATH_MAX} bytes"));
    }
    if line.split('/').any(|c| c == "..") {
        return Err(format!("\"{shown}\" has a .. component"));
    }
    let plain: PathBuf = Path::new(line)
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    if plain.as_os_str() != line {
        return Err(format!(
            "\"{shown}\" is not written plainly (write it as {})",
            plain.display()
        ));
    }
    if let Some(v) = VOLATILE.iter().find(|v| Path::new(line).starts_with(v)) {
        return Err(format!(
            "{line} is under {v}, which the machine makes afresh at each boot: it holds no state"
        ));
    }
    Ok(())
}

/// The state paths of a machine's or an unpacked bundle's directory
/// (`dir/conf/state`), none when there are none. `label` names the bundle
/// or machine in errors. Errors: the member does not parse (65).
pub fn of_dir(dir: &Path, label: &str) -> Result<Vec<PathBuf>> {
    crate::declared::of_dir(dir, MEMBER, label, parse)
}

/// Whether the absolute path `p` (in the machine's root) is state: one of
/// `state` or under one.
pub fn covers(state: &[PathBuf], p: &Path) -> bool {
    state.iter().any(|s| p.starts_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> std::result::Result<Vec<PathBuf>, Vec<String>> {
        parse(text.as_bytes(), Path::new("t/state"))
            .map_err(|ps| ps.iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn paths_parse_with_comments_and_blank_lines() {
        let got = p("# dovecot\n\n/var/mail\n  /var/lib/dovecot\t\n/srv/ftp\n/var/lib/krb5kdc\n")
            .unwrap();
        assert_eq!(
            got,
            [
                "/var/mail",
                "/var/lib/dovecot",
                "/srv/ftp",
                "/var/lib/krb5kdc"
            ]
            .map(PathBuf::from)
            .to_vec()
        );
        assert_eq!(p("").unwrap(), Vec::<PathBuf>::new());
    }

    #[test]
    fn each_bad_kind_names_its_file_and_line() {
        for (text, want) in [
            ("var/mail\n", "t/state:1: \"var/mail\" is not an absolute path"),
            (
                "# c\n/var/../etc\n",
                "t/state:2: \"/var/../etc\" has a .. component",
            ),
            (
                "/var/mail/\n",
                "t/state:1: \"/var/mail/\" is not written plainly (write it as /var/mail)",
            ),
            (
                "/var//mail\n",
                "t/state:1: \"/var//mail\" is not written plainly (write it as /var/mail)",
            ),
            (
                "/var/./mail\n",
                "t/state:1: \"/var/./mail\" is not written plainly (write it as /var/mail)",
            ),
            (
                "/\n",
                "t/state:1: / is the whole root, not the service's state: name its directories",
            ),
            (
                "/srv\n/var/mail\n/var/mail\n",
                "t/state:3: /var/mail is declared twice (first on line 2)",
            ),
            (
                "/var/lib\n/var/lib/dovecot\n",
                "t/state:2: /var/lib/dovecot is under /var/lib (line 1 and this one): declare only /var/lib",
            ),
            (
                "/var/lib/dovecot\n/var/lib\n",
                "t/state:2: /var/lib/dovecot is under /var/lib (line 1 and this one): declare only /var/lib",
            ),
            (
                "/run/dovecot\n",
                "t/state:1: /run/dovecot is under /run, which the machine makes afresh at each boot: it holds no state",
            ),
            ("/tmp\n", "t/state:1: /tmp is under /tmp"),
            ("/proc/1\n", "t/state:1: /proc/1 is under /proc"),
            ("/sys\n", "t/state:1: /sys is under /sys"),
            ("/dev/shm\n", "t/state:1: /dev/shm is under /dev"),
            (
                "/var/mail # the spool\n",
                "t/state:1: \"/var/mail # the spool\": one path per line, without white space",
            ),
            ("/a\x07\n", "t/state:1: control character U+0007 in the line"),
        ] {
            let errs = p(text).unwrap_err();
            assert!(
                errs.len() == 1 && errs[0].starts_with(want),
                "{text:?}: {errs:?}"
            );
        }
        // Not under /run: /runner, /tmpfiles are paths of their own.
        assert!(p("/runner\n/var/tmp\n/srv/tmp\n").is_ok());
        // Every bad line at once.
        assert_eq!(p("a\n/b\nc\n").unwrap_err().len(), 2);
        assert_eq!(
            p(&"/x\n".repeat(2)).unwrap_err(),
            vec!["t/state:2: /x is declared twice (first on line 1)"]
        );
        let many: String = (0..=COUNT_MAX).map(|i| format!("/srv/{i}\n")).collect();
        assert_eq!(
            p(&many).unwrap_err(),
            vec![format!(
                "t/state:{}: more than {COUNT_MAX} paths",
                COUNT_MAX + 1
            )]
        );
        assert_eq!(
            parse(b"/a\n\xff\n", Path::new("t/state"))
                .unwrap_err()
                .remove(0)
                .to_string(),
            "t/state: not UTF-8 text"
        );
    }

    #[test]
    fn covers_tells_state_from_drift() {
        let s = p("/var/mail\n/var/lib/dovecot\n").unwrap();
        assert!(covers(&s, Path::new("/var/mail")));
        assert!(covers(&s, Path::new("/var/mail/admin")));
        assert!(!covers(&s, Path::new("/var/mailx")));
        assert!(!covers(&s, Path::new("/etc/dovecot/dovecot.conf")));
    }
}
