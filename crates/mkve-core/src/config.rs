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

/// Prints each variable asked for as `NAME \0 KIND \0 VALUE \0`: KIND `s`
/// for a string, `a` once per element of an indexed array, `A` (no value)
/// for an associative array. `set +eu`: the file's own shell options must
/// not break the printing.
const READER: &str = r#"source -- "$1" >&2 || exit
set +eu
shift
for __mkve_name; do
    case ${!__mkve_name@a} in
    *A*) printf '%s\0A\0\0' "$__mkve_name" ;;
    *a*)
        __mkve_all="$__mkve_name[@]"
        for __mkve_v in "${!__mkve_all}"; do printf '%s\0a\0%s\0' "$__mkve_name" "$__mkve_v"; done ;;
    *) if [[ -v $__mkve_name ]]; then printf '%s\0s\0%s\0' "$__mkve_name" "${!__mkve_name}"; fi ;;
    esac
done"#;

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
        let out = Cmd::new("bash")
            .args(["--noprofile", "--norc", "-c", READER, "mkve-config"])
            .arg(path)
            .args(names)
            .what(format!("{}", path.display()))
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(Error::InvalidConfig(bash_problem(
                path,
                &stderr,
                out.status.code(),
            )));
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
                format!("{name}=\"{other}\": expected yes or no"),
            ))),
        }
    }

    /// What is wrong with the variable `name`, as `FILE: NAME: MESSAGE`.
    pub fn error(&self, name: &str, message: impl std::fmt::Display) -> Error {
        Error::InvalidConfig(Problem::new(&self.path, None, format!("{name}: {message}")))
    }
}

/// Turn bash's first complaint (`FILE: line N: message`) into a problem
/// with a line number.
fn bash_problem(path: &Path, stderr: &str, code: Option<i32>) -> Problem {
    let prefix = format!("{}: line ", path.display());
    let complaint = stderr.lines().find_map(|l| {
        let rest = l.strip_prefix(&prefix)?;
        let (n, msg) = rest.split_once(": ")?;
        Some((n.parse::<usize>().ok()?, msg.to_string()))
    });
    match complaint {
        Some((line, msg)) => Problem::new(path, Some(line), msg),
        None => {
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
            let status = code.map_or("a signal".to_string(), |c| format!("status {c}"));
            let msg = match last {
                Some(l) => format!("failed with {status}: {l}"),
                None => format!("failed with {status}"),
            };
            Problem::new(path, None, msg)
        }
    }
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
    fn a_failing_program_and_a_bad_flag_are_errors() {
        let e = load("hypervisor=qemu\nfalse\n").unwrap_err();
        assert!(
            e.to_string()
                .ends_with("bundle-config: failed with status 1"),
            "{e}"
        );
        let c = loaded("verbose=maybe\n");
        assert_eq!(
            c.flag("verbose").unwrap_err().to_string(),
            "cfg: verbose=\"maybe\": expected yes or no"
        );
    }

    #[test]
    fn a_missing_file_is_no_config() {
        assert!(Config::load(Path::new("/nonexistent/bundle-config"), NAMES)
            .unwrap()
            .is_none());
    }
}
