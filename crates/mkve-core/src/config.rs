//! `~/.mkve/bundle-config` (mkve-bundle-config(5)): a bash program whose
//! variables, named like the options with `-` turned into `_`, give
//! defaults. It is run by bash itself, never reimplemented: after it has
//! run, the variables asked for are printed NUL-separated on a pipe of
//! their own, while anything the program prints goes to stderr.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Problem, Result};
use crate::exec::Cmd;

/// The variables mkve-bundle reads from its config file.
pub const BUNDLE_VARIABLES: &[&str] = &[
    "template",
    "hypervisor",
    "output",
    "hooks",
    "rootfs",
    "force_no_sign",
    "verbose",
    "sign_key",
    "keyring",
    "all_hypervisors",
    "output_dir",
    "suite",
    "arch",
    "variant",
    "backend",
    "no_cache",
];

const READER: &str = r#"source -- "$1" >&2 || exit
shift
for __mkve_name; do
    if [[ -v $__mkve_name ]]; then printf '%s\0%s\0' "$__mkve_name" "${!__mkve_name}"; fi
done"#;

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub path: PathBuf,
    pub values: BTreeMap<String, String>,
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
        let mut values = BTreeMap::new();
        let mut fields = out.stdout.split(|&b| b == 0);
        while let (Some(k), Some(v)) = (fields.next(), fields.next()) {
            if k.is_empty() {
                break;
            }
            let v = String::from_utf8(v.to_vec()).map_err(|_| {
                Error::InvalidConfig(Problem::new(
                    path,
                    None,
                    format!("{} is not UTF-8", String::from_utf8_lossy(k)),
                ))
            })?;
            values.insert(String::from_utf8_lossy(k).into_owned(), v);
        }
        Ok(Some(Config {
            path: path.to_path_buf(),
            values,
        }))
    }

    /// A non-empty value (an empty variable counts as unset).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A yes/no variable: yes, true, on, 1 / no, false, off, 0 or empty.
    pub fn flag(&self, name: &str) -> Result<bool> {
        match self
            .values
            .get(name)
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("") | Some("no") | Some("false") | Some("off") | Some("0") => Ok(false),
            Some("yes") | Some("true") | Some("on") | Some("1") => Ok(true),
            Some(other) => Err(Error::InvalidConfig(Problem::new(
                &self.path,
                None,
                format!("{name}=\"{other}\": expected yes or no"),
            ))),
        }
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

    fn load(text: &str) -> Result<Option<Config>> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bundle-config");
        std::fs::write(&p, text).unwrap();
        Config::load(&p, BUNDLE_VARIABLES).map(|c| {
            c.map(|mut c| {
                c.path = PathBuf::from("cfg");
                c
            })
        })
    }

    #[test]
    fn plain_assignments_and_flags() {
        let c = load("hypervisor=openvz\nverbose=yes\nforce_no_sign=yes\nunrelated=1\n")
            .unwrap()
            .unwrap();
        assert_eq!(c.get("hypervisor"), Some("openvz"));
        assert!(c.flag("verbose").unwrap() && c.flag("force_no_sign").unwrap());
        assert_eq!(
            c.get("unrelated"),
            None,
            "only the variables asked for are read"
        );
        assert_eq!(c.get("output"), None);
    }

    #[test]
    fn bash_logic_runs_and_its_output_does_not_mix_with_values() {
        let c = load("echo chatter\nx=qemu\nif [ \"$x\" = qemu ]; then hypervisor=$x; fi\noutput=/b/$(printf %s a b)-$((1+2)).bun\n")
            .unwrap()
            .unwrap();
        assert_eq!(c.get("hypervisor"), Some("qemu"));
        assert_eq!(c.get("output"), Some("/b/ab-3.bun"));
    }

    #[test]
    fn a_syntax_error_names_the_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bundle-config");
        std::fs::write(&p, "hypervisor=qemu\nif then\n").unwrap();
        let e = Config::load(&p, BUNDLE_VARIABLES).unwrap_err();
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
        let c = load("verbose=maybe\n").unwrap().unwrap();
        assert_eq!(
            c.flag("verbose").unwrap_err().to_string(),
            "cfg: verbose=\"maybe\": expected yes or no"
        );
    }

    #[test]
    fn a_missing_file_is_no_config() {
        assert!(
            Config::load(Path::new("/nonexistent/bundle-config"), BUNDLE_VARIABLES)
                .unwrap()
                .is_none()
        );
    }
}
