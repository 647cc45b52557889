//! The one place that runs external programs (chroot, cp, bash, hooks).
//!
//! Arguments are always a vector, never a shell string. In verbose mode the
//! command line is logged and the program's output goes to our stderr (never
//! our stdout, which carries results); otherwise the output is captured and
//! its last lines are quoted when the program fails. A program that is not
//! installed is `Error::Unavailable` (exit 69).

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Switch on logging of command lines and of the programs' own output.
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// Print a diagnostic line on stderr when verbose.
pub fn note(msg: impl AsRef<str>) {
    if verbose() {
        let _ = writeln!(std::io::stderr(), "{}", msg.as_ref());
    }
}

static QUIET: AtomicBool = AtomicBool::new(false);

/// Whether `program` is an executable file in a `$PATH` directory.
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p).any(|d| {
                std::fs::metadata(d.join(program))
                    .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                    .unwrap_or(false)
            })
        })
        .unwrap_or(false)
}

/// Switch off progress lines.
pub fn set_quiet(on: bool) {
    QUIET.store(on, Ordering::Relaxed);
}

/// Print a progress line (a phase of a long job) on stderr: when verbose,
/// or when stderr is a terminal and not quiet. Piped, a tool is silent.
pub fn progress(msg: impl AsRef<str>) {
    use std::io::IsTerminal;
    if verbose() || (!QUIET.load(Ordering::Relaxed) && std::io::stderr().is_terminal()) {
        let prog = std::env::args().next().unwrap_or_default();
        let prog = Path::new(&prog)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let _ = writeln!(std::io::stderr(), "{prog}: {}", msg.as_ref());
    }
}

/// How many lines of a failed program's output are quoted in the error.
const TAIL_LINES: usize = 10;

#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    env_clear: bool,
    cwd: Option<PathBuf>,
    what: Option<String>,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Cmd {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            env_clear: false,
            cwd: None,
            what: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Start from an empty environment (only what `env` adds).
    pub fn env_clear(mut self) -> Self {
        self.env_clear = true;
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// What this program is, for messages: `hook "01-root"`. Defaults to the
    /// program's name.
    pub fn what(mut self, what: impl Into<String>) -> Self {
        self.what = Some(what.into());
        self
    }

    /// The command line as a shell would read it, for logs.
    pub fn display(&self) -> String {
        let words = std::iter::once(&self.program).chain(&self.args);
        shell_words::join(words.map(|w| w.to_string_lossy().into_owned()))
    }

    fn label(&self) -> String {
        self.what
            .clone()
            .unwrap_or_else(|| Path::new(&self.program).display().to_string())
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        if self.env_clear {
            c.env_clear();
        }
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        c.stdin(Stdio::null());
        c
    }

    fn spawn_error(&self, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Unavailable {
                what: self.label(),
                why: format!(
                    "{} is not installed or not in PATH",
                    self.program.to_string_lossy()
                ),
            }
        } else {
            Error::Command(format!(
                "{}: cannot run {}: {e}",
                self.label(),
                self.program.to_string_lossy()
            ))
        }
    }

    /// Run to completion. Its output goes to our stderr in verbose mode and
    /// is kept for the error message otherwise.
    pub fn run(&self) -> Result<()> {
        let (status, out) = self.run_lines(|_| {})?;
        self.check(status, &out)
    }

    /// Run to completion with stdout and stderr merged into one pipe (so
    /// their order is kept), handing each line to `on_line` as it comes and
    /// echoing it to our stderr in verbose mode. Returns the status and all
    /// the output; only a program that cannot start is an error.
    pub fn run_lines(&self, mut on_line: impl FnMut(&str)) -> Result<(ExitStatus, Vec<u8>)> {
        note(format!("+ {}", self.display()));
        let mut c = self.command();
        let (reader, writer) = std::io::pipe().map_err(|e| self.spawn_error(e))?;
        let writer2 = writer.try_clone().map_err(|e| self.spawn_error(e))?;
        c.stdout(writer).stderr(writer2);
        let mut child = c.spawn().map_err(|e| self.spawn_error(e))?;
        drop(c);
        let mut out = Vec::new();
        let mut reader = std::io::BufReader::new(reader);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = std::io::BufRead::read_until(&mut reader, b'\n', &mut line)
                .map_err(|e| Error::Command(format!("{}: {e}", self.label())))?;
            if n == 0 {
                break;
            }
            if verbose() {
                let _ = std::io::stderr().write_all(&line);
            }
            on_line(String::from_utf8_lossy(&line).trim_end());
            out.extend_from_slice(&line);
        }
        let status = child.wait().map_err(|e| self.spawn_error(e))?;
        Ok((status, out))
    }

    /// Fail with the program's name, status and last lines unless `status`
    /// is success.
    pub fn check_status(&self, status: ExitStatus, output: &[u8]) -> Result<()> {
        self.check(status, output)
    }

    /// Run and capture stdout; stderr is kept for the error message (and
    /// shown in verbose mode).
    pub fn output(&self) -> Result<Output> {
        note(format!("+ {}", self.display()));
        let out = self.command().output().map_err(|e| self.spawn_error(e))?;
        if verbose() {
            let _ = std::io::stderr().write_all(&out.stderr);
        }
        self.check(out.status, &out.stderr)?;
        Ok(out)
    }

    /// Run and capture stdout and stderr whatever the status; only a
    /// program that cannot start is an error.
    pub fn capture_all(&self) -> Result<Output> {
        note(format!("+ {}", self.display()));
        self.command().output().map_err(|e| self.spawn_error(e))
    }

    fn check(&self, status: ExitStatus, output: &[u8]) -> Result<()> {
        if status.success() {
            return Ok(());
        }
        let how = match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(sig)) => format!("signal {sig}"),
            _ => "unknown status".to_string(),
        };
        Err(Error::Command(format!(
            "{} failed with {how}{}",
            self.label(),
            tail(output)
        )))
    }
}

/// The last lines of a program's output, indented under the error line.
pub fn tail(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    lines[start..].iter().map(|l| format!("\n  {l}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_names_the_program_status_and_last_lines() {
        let err = Cmd::new("sh")
            .args(["-c", "echo first; echo second >&2; exit 3"])
            .what("hook \"x\"")
            .run()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "hook \"x\" failed with exit status 3\n  first\n  second"
        );
        assert_eq!(err.exit_code(), 1);
    }

    #[test]
    fn missing_program_is_unavailable() {
        let err = Cmd::new("mkve-no-such-program").run().unwrap_err();
        assert_eq!(err.exit_code(), 69, "{err}");
    }

    #[test]
    fn display_quotes_like_a_shell() {
        assert_eq!(Cmd::new("sh").args(["-c", "a b"]).display(), "sh -c 'a b'");
    }

    #[test]
    fn output_captures_stdout() {
        let out = Cmd::new("printf").arg("a\\0b").output().unwrap();
        assert_eq!(out.stdout, b"a\0b");
    }
}
