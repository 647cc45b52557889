//! Template parameters: what a service needs per machine (an admin's
//! password, a DNS forwarder), declared by the template and given by the
//! operator at create — never baked into a bundle.
//!
//! A template declares them in its `params` file, which travels in the
//! bundle as the member `conf/params` (mkve-template(5), mkve-bundle(5)):
//! one parameter a line, whitespace-separated,
//!
//! ```text
//! # NAME          FLAGS            DEFAULT  DESCRIPTION
//! admin_password  required,secret  -        password of admin/admin@MKVE.TEST
//! forwarder       -                -        DNS server to forward to, ADDRESS[@PORT]
//! ```
//!
//! NAME is `[a-z][a-z0-9_]*` (at most 64 bytes); FLAGS a comma list of
//! `required` and `secret`, or `-`; DEFAULT a word, or `-` for none; the
//! description is the rest of the line. `#` starts a comment line.
//!
//! At create each value (given, else the default) is written, before the
//! first boot, to `/etc/mkve/params/NAME` in the machine's root: the value's
//! bytes and nothing else, mode 0600 when secret, else 0644. A unit the
//! template ships reads it at boot. A parameter with neither value nor
//! default has no file.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, IoContext, Problem, Result};

/// Where the values are, inside a machine's root.
pub const DIR: &str = "etc/mkve/params";
/// The bundle member that declares them.
pub const MEMBER: &str = "conf/params";
/// The largest value, in bytes (a value is a password or an address, not a
/// file's contents).
pub const VALUE_MAX: usize = 64 << 10;
/// The most parameters.
const COUNT_MAX: usize = 256;

/// One declared parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Param {
    pub name: String,
    pub required: bool,
    pub secret: bool,
    pub default: Option<String>,
    pub description: String,
}

/// Whether `s` is a parameter name: `[a-z][a-z0-9_]*`, 1 to 64 bytes.
pub fn is_name(s: &str) -> bool {
    let mut b = s.bytes();
    s.len() <= 64
        && b.next().is_some_and(|c| c.is_ascii_lowercase())
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// Parse a declaration file's text; `path` names it in errors (the
/// template's file, or the bundle's member). Errors: every bad line, with
/// its number.
pub fn parse(text: &[u8], path: &Path) -> std::result::Result<Vec<Param>, Vec<Problem>> {
    let mut problems = Vec::new();
    let Some(lines) = crate::declared::lines(text, path, &mut problems) else {
        return Err(problems);
    };
    let mut out: Vec<Param> = Vec::new();
    for (n, line) in lines {
        let mut bad = |why: String| problems.push(Problem::new(path, Some(n), why));
        let mut words = line.split_whitespace();
        let (Some(name), Some(flags), Some(default)) = (words.next(), words.next(), words.next())
        else {
            bad("expected NAME FLAGS DEFAULT DESCRIPTION".into());
            continue;
        };
        let description = words.collect::<Vec<_>>().join(" ");
        if !is_name(name) {
            bad(format!(
                "\"{name}\" is not a parameter name ([a-z][a-z0-9_]*, at most 64 bytes)"
            ));
            continue;
        }
        if out.iter().any(|p| p.name == name) {
            bad(format!("parameter \"{name}\" is declared twice"));
            continue;
        }
        let (mut required, mut secret) = (false, false);
        if flags != "-" {
            for f in flags.split(',') {
                match f {
                    "required" | "secret" if flags.split(',').filter(|g| *g == f).count() > 1 => {
                        bad(format!("flag \"{f}\" of {name} is given twice"));
                        break;
                    }
                    "required" => required = true,
                    "secret" => secret = true,
                    _ => bad(format!(
                        "flag \"{f}\" of {name}: the flags are required and secret, or -"
                    )),
                }
            }
        }
        if default.contains(['"', '\'', '\\']) {
            bad(format!(
                "{name}: a default is one word without quotes or backslashes"
            ));
        }
        let default = (default != "-").then(|| default.to_string());
        if required && default.is_some() {
            bad(format!("{name}: a required parameter has no default"));
        } else if secret && default.is_some() {
            // A secret's default would be the same secret in every machine
            // of the bundle, and written in the bundle for anyone to read.
            bad(format!(
                "{name}: a secret parameter has no default (every machine would share it): use - and give it at create"
            ));
        }
        if description.is_empty() {
            bad(format!("{name}: no description"));
        }
        out.push(Param {
            name: name.into(),
            required,
            secret,
            default,
            description,
        });
        if out.len() > COUNT_MAX {
            bad(format!("more than {COUNT_MAX} parameters"));
            break;
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Read the declarations of an unpacked bundle (`dir/conf/params`), none
/// when it has none. Errors: the member is not a valid declaration (65).
pub fn of_unpacked(dir: &Path, label: &str) -> Result<Vec<Param>> {
    crate::declared::of_dir(dir, MEMBER, label, parse)
}

/// A value given on the command line: `NAME=VALUE` (`--param`) or
/// `NAME=FILE` (`--param-file`, `-` for stdin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Given {
    Value(String, String),
    File(String, PathBuf),
}

impl Given {
    pub fn name(&self) -> &str {
        match self {
            Given::Value(n, _) | Given::File(n, _) => n,
        }
    }

    /// Parse `NAME=VALUE` (`file` false) or `NAME=FILE`. Errors: see
    /// [`Given::parse_bytes`].
    pub fn parse(s: &str, file: bool) -> std::result::Result<Given, String> {
        Given::parse_bytes(s.as_bytes(), file)
    }

    /// Parse `NAME=VALUE` (`file` false) or `NAME=FILE` as given, which may
    /// not be UTF-8 (a command line's argument, a web form's field): the
    /// one check of a given value for `mkve-vm create --param` and
    /// mkve-web alike. Errors (a message, for the caller to prefix with
    /// the option): no `=`, a name that is not `[a-z][a-z0-9_]*` of at most
    /// 64 bytes, no file named, a value longer than [`VALUE_MAX`] bytes, a
    /// value holding a NUL byte or not UTF-8. A file name may be any bytes.
    pub fn parse_bytes(s: &[u8], file: bool) -> std::result::Result<Given, String> {
        use std::os::unix::ffi::OsStrExt;
        // The argument is not repeated whole: it may be a mistyped secret.
        let Some(eq) = s.iter().position(|&b| b == b'=') else {
            return Err(format!(
                "expected NAME={} (the argument has no =)",
                if file { "FILE" } else { "VALUE" }
            ));
        };
        let (name, value) = (String::from_utf8_lossy(&s[..eq]), &s[eq + 1..]);
        if !is_name(&name) {
            return Err(format!(
                "\"{name}\" is not a parameter name ([a-z][a-z0-9_]*, at most 64 bytes)"
            ));
        }
        if file {
            if value.is_empty() {
                return Err(format!("{name}: no file named"));
            }
            Ok(Given::File(
                name.into_owned(),
                std::ffi::OsStr::from_bytes(value).into(),
            ))
        } else {
            check_value(&name, value)?;
            let value = String::from_utf8(value.to_vec())
                .map_err(|_| format!("{name}: the value is not UTF-8"))?;
            Ok(Given::Value(name.into_owned(), value))
        }
    }
}

fn check_value(name: &str, v: &[u8]) -> std::result::Result<(), String> {
    if v.len() > VALUE_MAX {
        return Err(format!(
            "{name}: the value is longer than {VALUE_MAX} bytes"
        ));
    }
    if v.contains(&0) {
        return Err(format!("{name}: the value holds a NUL byte"));
    }
    Ok(())
}

/// The values a create writes, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values(pub BTreeMap<String, (String, bool)>);

/// Read the files of `given` (stdin once at most; one trailing newline is
/// dropped, as from `echo`), before the bundle is read. Errors: a name
/// given twice (2), a file that cannot be read (1) or holds a bad value (2).
pub fn read_given(given: &[Given]) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for g in given {
        if out.iter().any(|(n, _)| n == g.name()) {
            return Err(Error::Usage(format!(
                "parameter {} is given twice",
                g.name()
            )));
        }
        let value = match g {
            Given::Value(_, v) => v.clone(),
            Given::File(name, file) => {
                let mut bytes = Vec::new();
                let limit = VALUE_MAX as u64 + 2;
                let read = if file.as_os_str() == "-" {
                    std::io::stdin().lock().take(limit).read_to_end(&mut bytes)
                } else {
                    std::fs::File::open(file).and_then(|f| f.take(limit).read_to_end(&mut bytes))
                };
                read.map_err(|e| {
                    Error::Usage(format!("--param-file {name}={}: {e}", file.display()))
                })?;
                if bytes.ends_with(b"\n") {
                    bytes.pop();
                    if bytes.ends_with(b"\r") {
                        bytes.pop();
                    }
                }
                check_value(name, &bytes)
                    .map_err(|e| Error::Usage(format!("{}: {e}", file.display())))?;
                String::from_utf8(bytes).map_err(|_| {
                    Error::Usage(format!(
                        "{}: {name}: the value is not UTF-8",
                        file.display()
                    ))
                })?
            }
        };
        out.push((g.name().to_string(), value));
    }
    Ok(out)
}

/// Match the values given with what the bundle declares. Errors (exit 2,
/// naming the parameter): a name the bundle does not declare, a required
/// parameter without a value.
pub fn resolve(declared: &[Param], given: &[(String, String)], label: &str) -> Result<Values> {
    let unknown: Vec<&str> = given
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !declared.iter().any(|p| p.name == *n))
        .collect();
    if !unknown.is_empty() {
        let known = declared
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let (one, list) = (unknown.len() == 1, unknown.join(", "));
        return Err(Error::Usage(if known.is_empty() {
            format!(
                "{label} declares no parameters: {list} {}",
                if one { "is not one" } else { "are not" }
            )
        } else {
            format!(
                "{label} has no parameter{} {list} (it has: {known})",
                if one { "" } else { "s" }
            )
        }));
    }
    let mut out = BTreeMap::new();
    let mut missing = Vec::new();
    for p in declared {
        let value = given
            .iter()
            .find(|(n, _)| n == &p.name)
            .map(|(_, v)| v.clone())
            .or_else(|| p.default.clone());
        match value {
            Some(v) => {
                out.insert(p.name.clone(), (v, p.secret));
            }
            None if p.required => missing.push(p),
            None => {}
        }
    }
    if !missing.is_empty() {
        let what = missing
            .iter()
            .map(|p| {
                let how = if p.secret { "--param-file" } else { "--param" };
                format!("{} ({}; give {how} {}=…)", p.name, p.description, p.name)
            })
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Error::Usage(format!(
            "{label} needs {}: {what}",
            if missing.len() == 1 {
                "a parameter"
            } else {
                "parameters"
            }
        )));
    }
    Ok(Values(out))
}

impl Values {
    /// Write the values into `root/etc/mkve/params/` (made 0755, root's);
    /// secrets 0600. Errors: the root cannot be written (1, or 73 when full).
    pub fn write(&self, root: &Path) -> Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let dir = root.join(DIR);
        // A symbolic link in the unpacked root must not lead the write out.
        for anc in [root.join("etc"), root.join("etc/mkve"), dir.clone()] {
            if let Ok(md) = std::fs::symlink_metadata(&anc) {
                if !md.is_dir() {
                    return Err(Error::Other(format!(
                        "{}: not a directory in the machine's root; parameters cannot be written",
                        anc.display()
                    )));
                }
            }
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::create(&dir, e))?;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).at(&dir)?;
        for (name, (value, secret)) in &self.0 {
            let path = dir.join(name);
            let mode = if *secret { 0o600 } else { 0o644 };
            let _ = std::fs::remove_file(&path);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|e| Error::create(&path, e))?;
            std::io::Write::write_all(&mut f, value.as_bytes()).map_err(|e| Error::io(&path, e))?;
            // Whatever the umask said.
            f.set_permissions(std::fs::Permissions::from_mode(mode))
                .at(&path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> std::result::Result<Vec<Param>, Vec<String>> {
        parse(text.as_bytes(), Path::new("t/params"))
            .map_err(|ps| ps.iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn declarations_parse_with_flags_defaults_and_descriptions() {
        let ps = p("# c\n\nadmin_password required,secret - the admin's  password\nforwarder - 192.0.2.1@53 where to forward\n").unwrap();
        assert_eq!(ps.len(), 2);
        assert!(ps[0].required && ps[0].secret && ps[0].default.is_none());
        assert_eq!(ps[0].description, "the admin's password");
        assert_eq!(ps[1].default.as_deref(), Some("192.0.2.1@53"));
        assert!(!ps[1].required && !ps[1].secret);
    }

    #[test]
    fn bad_declarations_name_their_line() {
        for (text, want) in [
            (
                "Admin - - x\n",
                "t/params:1: \"Admin\" is not a parameter name",
            ),
            ("a - -\n", "t/params:1: a: no description"),
            ("a\n", "t/params:1: expected NAME FLAGS DEFAULT"),
            (
                "\na - - x\na - - y\n",
                "t/params:3: parameter \"a\" is declared twice",
            ),
            ("a mandatory - x\n", "t/params:1: flag \"mandatory\" of a"),
            (
                "a - - \x1b]0;owned\x07\n",
                "t/params:1: control character U+001B",
            ),
            (
                "a required x y\n",
                "t/params:1: a: a required parameter has no default",
            ),
            (
                "admin_password secret changeme the admin's password\n",
                "t/params:1: admin_password: a secret parameter has no default",
            ),
            (
                "# ok\nfwd - 192.0.2.1 forwarder\ntoken secret,required x y\n",
                "t/params:3: token: a required parameter has no default",
            ),
            (
                "key secret - ok\npsk secret shared the pre-shared key\n",
                "t/params:2: psk: a secret parameter has no default",
            ),
        ] {
            let errs = p(text).unwrap_err();
            assert!(errs[0].starts_with(want), "{text:?}: {errs:?}");
        }
        let e = parse(b"\xff\n", Path::new("t/params")).unwrap_err();
        assert!(e[0].to_string().contains("not UTF-8"));
    }

    #[test]
    fn values_resolve_against_declarations() {
        let ps =
            p("pw required,secret - the password\nfwd - 192.0.2.1 forwarder\nopt - - optional\n")
                .unwrap();
        let v = resolve(&ps, &[("pw".into(), "s3cret".into())], "b.bun").unwrap();
        assert_eq!(v.0["pw"], ("s3cret".to_string(), true));
        assert_eq!(v.0["fwd"], ("192.0.2.1".to_string(), false));
        assert!(!v.0.contains_key("opt"));
        let e = resolve(&ps, &[], "b.bun").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            "b.bun needs a parameter: pw (the password; give --param-file pw=…)"
        );
        let e = resolve(
            &ps,
            &[("pw".into(), "x".into()), ("nope".into(), "y".into())],
            "b.bun",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "b.bun has no parameter nope (it has: pw, fwd, opt)"
        );
        let e = resolve(
            &ps,
            &[("x".into(), "1".into()), ("y".into(), "2".into())],
            "b.bun",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "b.bun has no parameters x, y (it has: pw, fwd, opt)"
        );
        let e = resolve(&[], &[("x".into(), "y".into())], "b.bun").unwrap_err();
        assert_eq!(e.to_string(), "b.bun declares no parameters: x is not one");
    }

    #[test]
    fn given_values_parse_and_files_lose_one_newline() {
        assert_eq!(
            Given::parse("a=b=c", false).unwrap(),
            Given::Value("a".into(), "b=c".into())
        );
        assert!(Given::parse("a", false)
            .unwrap_err()
            .contains("expected NAME=VALUE"));
        assert!(Given::parse("A=1", false).is_err());
        assert!(Given::parse("a=", true).is_err());
        let d = crate::testing::tree(&[("pw", "line one\n")]);
        let f = d.path().join("pw");
        let got = read_given(&[Given::File("pw".into(), f.clone())]).unwrap();
        assert_eq!(got, vec![("pw".to_string(), "line one".to_string())]);
        let e = read_given(&[
            Given::File("pw".into(), f.clone()),
            Given::Value("pw".into(), "x".into()),
        ])
        .unwrap_err();
        assert_eq!(e.to_string(), "parameter pw is given twice");
    }

    #[test]
    fn given_bytes_are_refused_as_the_words_say() {
        let refused = |s: &[u8]| Given::parse_bytes(s, false).unwrap_err();
        assert_eq!(refused(b"a=\xff"), "a: the value is not UTF-8");
        assert_eq!(refused(b"a=x\0y"), "a: the value holds a NUL byte");
        let long = [b"a=".as_slice(), &[b'x'; VALUE_MAX + 1]].concat();
        assert_eq!(refused(&long), "a: the value is longer than 65536 bytes");
        assert!(refused(b"\xff=1").contains("is not a parameter name"));
        assert!(refused(b"\xff").contains("has no ="));
        assert_eq!(
            Given::parse_bytes(b"a=caf\xc3\xa9\x01", false).unwrap(),
            Given::Value("a".into(), "caf\u{e9}\u{1}".into())
        );
        assert!(matches!(
            Given::parse_bytes(b"a=/tmp/\xff", true).unwrap(),
            Given::File(n, _) if n == "a"
        ));
    }

    #[test]
    fn values_are_written_with_their_modes_and_nothing_else() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let mut v = Values::default();
        v.0.insert("pw".into(), ("s3cret".into(), true));
        v.0.insert("fwd".into(), ("192.0.2.1@5353".into(), false));
        v.write(root.path()).unwrap();
        let dir = root.path().join(DIR);
        assert_eq!(std::fs::read(dir.join("pw")).unwrap(), b"s3cret");
        let mode = |f: &str| std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o7777;
        assert_eq!((mode("pw"), mode("fwd")), (0o600, 0o644));
        // A link planted in the root does not lead the write outside it.
        let root2 = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root2.path().join("etc")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root2.path().join("etc/mkve")).unwrap();
        assert!(v.write(root2.path()).is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
