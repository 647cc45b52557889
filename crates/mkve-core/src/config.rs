//! `~/.mkve/bundle-config` (mkve-bundle-config(5)): a bash program whose
//! variables, named like the options with `-` turned into `_`, give
//! defaults. It is run by bash itself, never reimplemented: after it has
//! run, the variables asked for are printed NUL-separated on a pipe of
//! their own, while anything the program prints goes to stderr.
//!
//! Which variables there are, and what their values mean, is the caller's
//! (mkve-bundle derives both from its command line); this module only
//! reads strings and arrays.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Problem, Result};
use crate::exec::Cmd;

/// Runs the file with `source`, then prints each variable asked for, on
/// fd 3, as `NAME \0 KIND \0 VALUE \0`: KIND `s` for a string, `a` once
/// per element of an indexed array, `A` (no value) for an associative
/// array. As a bash user expects: the status of the file's last command
/// does not matter (a false test on the last line is fine), and `exit 0`
/// ends the file early with the values set so far. `exit N` and a command
/// failing under `set -e` are told on stderr as `mkve-config-exit: STATUS
/// LINE` (the line from an `exit` wrapper or the ERR trap). `set +eu`:
/// the file's own shell options must not break the printing.
const READER: &str = r#"__mkve_print() {
    set +eu
    for __mkve_name in "${__mkve_names[@]}"; do
        case ${!__mkve_name@a} in
        *A*) printf '%s\0A\0\0' "$__mkve_name" ;;
        *a*)
            __mkve_all="$__mkve_name[@]"
            for __mkve_v in "${!__mkve_all}"; do printf '%s\0a\0%s\0' "$__mkve_name" "$__mkve_v"; done ;;
        *) if [[ -v $__mkve_name ]]; then printf '%s\0s\0%s\0' "$__mkve_name" "${!__mkve_name}"; fi ;;
        esac
    done >&3
}
exit() { local s=$?; __mkve_exit_line=${BASH_LINENO[0]}; builtin exit "${1:-$s}"; }
trap '__mkve_err_line=$LINENO' ERR
trap '__mkve_status=$?
if [ "$__mkve_status" = 0 ]; then __mkve_print
else printf "mkve-config-exit: %s %s\n" "$__mkve_status" "${__mkve_exit_line:-$__mkve_err_line}" >&2
fi' EXIT
exec 3>&1
__mkve_file=$1
shift
__mkve_names=("$@")
set --
source -- "$__mkve_file" >&2
exit 0"#;

/// What a variable holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    String(String),
    /// An indexed array's elements, in order.
    Array(Vec<String>),
}

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub path: PathBuf,
    /// The variables asked for that the file set.
    pub values: BTreeMap<String, Value>,
}

impl Config {
    /// Run `path` with bash and collect `names`; `Ok(None)` when the file
    /// does not exist.
    pub fn load(path: &Path, names: &[&str]) -> Result<Option<Config>> {
        if !path.exists() {
            return Ok(None);
        }
        invisible(path)?;
        let out = Cmd::new("bash")
            .args(["--noprofile", "--norc", "-c", READER, "mkve-config"])
            .arg(path)
            .args(names)
            .what(format!("{}", path.display()))
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if let Some(p) = bash_problem(path, &stderr, out.status.code()) {
            return Err(Error::InvalidConfig(p));
        }
        eprint!("{stderr}");
        let mut cfg = Config {
            path: path.to_path_buf(),
            values: BTreeMap::new(),
        };
        let mut fields = out.stdout.split(|&b| b == 0);
        while let (Some(k), Some(kind), Some(v)) = (fields.next(), fields.next(), fields.next()) {
            let name = String::from_utf8_lossy(k).into_owned();
            let v = String::from_utf8(v.to_vec())
                .map_err(|_| cfg.error(&name, "the value is not UTF-8"))?;
            match (kind, cfg.values.get_mut(&name)) {
                (b"s", _) => {
                    cfg.values.insert(name, Value::String(v));
                }
                (b"a", Some(Value::Array(items))) => items.push(v),
                (b"a", _) => {
                    cfg.values.insert(name, Value::Array(vec![v]));
                }
                _ => return Err(cfg.error(&name, "an associative array, not a list of values")),
            }
        }
        Ok(Some(cfg))
    }

    /// A variable that holds one value: `None` when it is unset or empty,
    /// an error when it is an array.
    pub fn value(&self, name: &str) -> Result<Option<&str>> {
        match self.values.get(name) {
            None => Ok(None),
            Some(Value::String(v)) => Ok(Some(v.as_str()).filter(|v| !v.is_empty())),
            Some(Value::Array(_)) => Err(self.error(name, "an array, but it takes one value")),
        }
    }

    /// A variable that holds a list: an array's elements, or a string as
    /// one element; empty ones are left out.
    pub fn list(&self, name: &str) -> Vec<&str> {
        let all: Vec<&str> = match self.values.get(name) {
            None => vec![],
            Some(Value::String(v)) => vec![v.as_str()],
            Some(Value::Array(items)) => items.iter().map(String::as_str).collect(),
        };
        all.into_iter().filter(|v| !v.is_empty()).collect()
    }

    /// A yes/no variable: yes, true, on, 1 / no, false, off, 0 or empty.
    pub fn flag(&self, name: &str) -> Result<bool> {
        match self.value(name)?.map(str::to_ascii_lowercase).as_deref() {
            None | Some("no") | Some("false") | Some("off") | Some("0") => Ok(false),
            Some("yes") | Some("true") | Some("on") | Some("1") => Ok(true),
            Some(other) => Err(Error::InvalidConfig(Problem::new(
                &self.path,
                None,
                format!("{name}=\"{other}\": expected yes (or true, on, 1) or no (or false, off, 0, empty)"),
            ))),
        }
    }

    /// What is wrong with the variable `name`, as `FILE: NAME: MESSAGE`.
    pub fn error(&self, name: &str, message: impl std::fmt::Display) -> Error {
        Error::InvalidConfig(Problem::new(&self.path, None, format!("{name}: {message}")))
    }
}

/// What is wrong with the file, if anything: bash's first complaint about
/// it (`FILE: line N: message`: a syntax error, a command not found, an
/// unbound variable under `set -u`), or an `exit N` or `set -e` failure
/// (`mkve-config-exit: N LINE`), or a status bash ended with otherwise.
fn bash_problem(path: &Path, stderr: &str, code: Option<i32>) -> Option<Problem> {
    let prefix = format!("{}: line ", path.display());
    let complaint = stderr.lines().find_map(|l| {
        let rest = l.strip_prefix(&prefix)?;
        let (n, msg) = rest.split_once(": ")?;
        Some((n.parse::<usize>().ok()?, msg.to_string()))
    });
    if let Some((line, msg)) = complaint {
        return Some(Problem::new(path, Some(line), visible(&msg)));
    }
    let exit = stderr
        .lines()
        .find_map(|l| l.strip_prefix("mkve-config-exit: "))
        .map(|rest| {
            let mut w = rest.split_whitespace();
            (
                w.next().unwrap_or("?").to_string(),
                w.next().and_then(|n| n.parse().ok()),
            )
        });
    match (exit, code) {
        (Some((status, line)), _) => Some(Problem::new(
            path,
            line,
            format!("ended with status {status} (exit, or a command failing under set -e)"),
        )),
        (None, Some(0)) => None,
        (None, code) => {
            let status = code.map_or("a signal".to_string(), |c| format!("status {c}"));
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
            Some(Problem::new(
                path,
                None,
                match last {
                    Some(l) => format!("failed with {status}: {}", visible(l)),
                    None => format!("failed with {status}"),
                },
            ))
        }
    }
}

/// Refuse what bash would choke on without saying why: a byte-order mark,
/// DOS line endings (each line's command would end in a carriage return).
fn invisible(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad =
        |line: usize, msg: &str| Err(Error::InvalidConfig(Problem::new(path, Some(line), msg)));
    if bytes.starts_with(&[0xef, 0xbb, 0xbf]) {
        return bad(
            1,
            "starts with a byte-order mark (U+FEFF): save the file without one",
        );
    }
    if let Some(n) = bytes
        .split(|b| *b == b'\n')
        .position(|l| l.ends_with(b"\r"))
    {
        return bad(
            n + 1,
            "ends with a carriage return (DOS line endings): convert the file, e.g. with dos2unix",
        );
    }
    Ok(())
}

/// `text` with control characters and invisible marks written out
/// (`\r`, `\u{feff}`), so a message shows what is there.
fn visible(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() || c == '\u{feff}' || c == '\u{200b}' {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &[&str] = &["hypervisor", "output", "verbose", "force_no_sign", "mirror"];

    fn load(text: &str) -> Result<Option<Config>> {
        let (_d, p) = mkve_testkit::temp_file("bundle-config", text);
        Config::load(&p, NAMES).map(|c| {
            c.map(|mut c| {
                c.path = PathBuf::from("cfg");
                c
            })
        })
    }

    /// A config that loads.
    fn loaded(text: &str) -> Config {
        load(text).unwrap().unwrap()
    }

    #[test]
    fn plain_assignments_and_flags() {
        let c = loaded("hypervisor=openvz\nverbose=yes\nforce_no_sign=yes\nunrelated=1\n");
        assert_eq!(c.value("hypervisor").unwrap(), Some("openvz"));
        assert!(c.flag("verbose").unwrap() && c.flag("force_no_sign").unwrap());
        assert!(
            !c.values.contains_key("unrelated"),
            "only the variables asked for are read"
        );
        assert_eq!(c.value("output").unwrap(), None);
    }

    #[test]
    fn bash_logic_runs_and_its_output_does_not_mix_with_values() {
        let c = loaded("echo chatter\nx=qemu\nif [ \"$x\" = qemu ]; then hypervisor=$x; fi\noutput=/b/$(printf %s a b)-$((1+2)).bun\n");
        assert_eq!(c.value("hypervisor").unwrap(), Some("qemu"));
        assert_eq!(c.value("output").unwrap(), Some("/b/ab-3.bun"));
    }

    #[test]
    fn arrays_are_lists_and_strings_one_item() {
        let c = loaded("mirror=(a '' 'deb http://x y main')\noutput=(o)\nset -u\n");
        assert_eq!(c.list("mirror"), ["a", "deb http://x y main"]);
        assert_eq!(
            c.value("output").unwrap_err().to_string(),
            "cfg: output: an array, but it takes one value"
        );
        let c = loaded("mirror='deb http://x y main'\nhypervisor=\n");
        assert_eq!(c.list("mirror"), ["deb http://x y main"]);
        assert_eq!(c.list("hypervisor"), Vec::<&str>::new());
        assert_eq!(c.value("hypervisor").unwrap(), None, "empty is unset");
        let e = load("declare -A mirror=([a]=b)\n").unwrap_err();
        assert!(
            e.to_string()
                .ends_with("bundle-config: mirror: an associative array, not a list of values"),
            "{e}"
        );
    }

    /// What a bash user expects of an ordinary file.
    #[test]
    fn the_file_runs_as_bash_users_expect() {
        let value = |text: &str| {
            load(text)
                .unwrap()
                .unwrap()
                .value("hypervisor")
                .unwrap()
                .map(str::to_string)
        };
        for (text, want) in [
            // The last command's status does not matter.
            ("hypervisor=qemu\nfalse\n", Some("qemu")),
            (
                "hypervisor=qemu\n[ -d /nonexistent ] && hypervisor=lxc\n",
                Some("qemu"),
            ),
            // exit 0 ends the file with the values so far.
            ("hypervisor=qemu\nexit 0\nhypervisor=lxc\n", Some("qemu")),
            ("exit\nhypervisor=lxc\n", None),
            ("true\nexit\nhypervisor=lxc\n", None),
        ] {
            assert_eq!(value(text).as_deref(), want, "{text:?}");
        }
    }

    #[test]
    fn errors_name_the_line() {
        let err = |text: &str| load(text).unwrap_err().to_string();
        assert!(
            err("hypervisor=qemu\nexit 3\n").ends_with(
                "bundle-config:2: ended with status 3 (exit, or a command failing under set -e)"
            ),
            "{}",
            err("hypervisor=qemu\nexit 3\n")
        );
        assert!(
            err("set -e\ntrue\nfalse\nhypervisor=qemu\n")
                .contains("bundle-config:3: ended with status 1"),
            "{}",
            err("set -e\ntrue\nfalse\n")
        );
        assert!(
            err("hypervisor=qemu\nnosuchcommand-mkve\n")
                .ends_with("bundle-config:2: nosuchcommand-mkve: command not found"),
            "{}",
            err("hypervisor=qemu\nnosuchcommand-mkve\n")
        );
        assert!(
            err("set -u\nx=$undefined\n").contains("bundle-config:2: undefined: unbound variable")
        );
        // A bare exit exits with the last command's status, as in bash.
        assert!(
            err("hypervisor=qemu\nfalse\nexit\n").contains("bundle-config:3: ended with status 1")
        );
    }

    #[test]
    fn nothing_invisible_reaches_a_message() {
        let err = |text: &str| load(text).unwrap_err().to_string();
        let dos = err("hypervisor=qemu\r\noutput=x\r\n");
        assert!(
            dos.ends_with("bundle-config:1: ends with a carriage return (DOS line endings): convert the file, e.g. with dos2unix"),
            "{dos}"
        );
        let bom = err("\u{feff}hypervisor=qemu\n");
        assert!(bom.ends_with("bundle-config:1: starts with a byte-order mark (U+FEFF): save the file without one"), "{bom}");
        for e in [dos, bom] {
            assert!(!e.contains(['\r', '\u{feff}']), "{e:?}");
        }
        assert_eq!(visible("a\rb\u{feff}"), "a\\rb\\u{feff}");
    }

    #[test]
    fn a_syntax_error_names_the_line() {
        let (_d, p) = mkve_testkit::temp_file("bundle-config", "hypervisor=qemu\nif then\n");
        let e = Config::load(&p, NAMES).unwrap_err();
        assert_eq!(e.exit_code(), 65);
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("{}:2: syntax error", p.display())),
            "{msg}"
        );
    }

    #[test]
    fn a_bad_flag_is_an_error() {
        let c = loaded(
            "verbose=maybe
",
        );
        assert_eq!(
            c.flag("verbose").unwrap_err().to_string(),
            "cfg: verbose=\"maybe\": expected yes (or true, on, 1) or no (or false, off, 0, empty)"
        );
    }

    #[test]
    fn a_missing_file_is_no_config() {
        assert!(Config::load(Path::new("/nonexistent/bundle-config"), NAMES)
            .unwrap()
            .is_none());
    }
}
