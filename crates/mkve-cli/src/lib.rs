//! What the mkve tools' command lines share, so each binary keeps only its
//! own options and a `main.rs` of a few lines:
//!
//! - [`main`]: shell completion, parsing, the run, the error report and
//!   the exit status (mkve(7) EXIT STATUS); a closed stdout (`| head`)
//!   ends the tool quietly with status 0, as ripgrep and uutils do.
//! - [`Verbosity`], [`RootArgs`], [`KeyringArgs`], [`Connect`]: arguments
//!   several tools take, declared once.
//! - [`Term`]: core's [`Report`] printed on stderr as `TOOL: message`.
//! - [`outln!`] and [`print_json`]: results on stdout, never panicking.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::{ArgMatches, Args, CommandFactory, FromArgMatches};
use mkve_core::exec::Report;
use mkve_core::root::{CachePolicy, RootSpec};
use mkve_core::text::printable;
use mkve_core::{Error, Result};

static TOOL: OnceLock<String> = OnceLock::new();

/// The name the tool runs under (argv[0]'s file name, so `hsh-pack` when
/// mkve-cache runs as hsh-pack), set once by [`main`].
pub fn tool() -> &'static str {
    TOOL.get().map(String::as_str).unwrap_or("mkve")
}

fn name_from_argv(default: &str) -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// Run a tool: answer shell completion (`COMPLETE=bash …`), parse the
/// command line as `C` (usage errors exit 2), call `run` with what was
/// parsed and the raw matches (for argument order), and turn its result
/// into an exit status, printing an error as `TOOL: message`.
pub fn main<C, F>(default_name: &str, run: F) -> ExitCode
where
    C: CommandFactory + FromArgMatches,
    F: FnOnce(C, &ArgMatches) -> Result<()>,
{
    main_with_argv(default_name, |_| Ok(std::env::args_os().collect()), run)
}

/// [`main`], parsing the arguments `argv` returns instead of the process's
/// own (mkve-bundle adds its config file's values); `argv` is given the
/// command they will be parsed with, and its error is reported as any.
pub fn main_with_argv<C, A, F>(default_name: &str, argv: A, run: F) -> ExitCode
where
    C: CommandFactory + FromArgMatches,
    A: FnOnce(&clap::Command) -> Result<Vec<std::ffi::OsString>>,
    F: FnOnce(C, &ArgMatches) -> Result<()>,
{
    let name = TOOL.get_or_init(|| name_from_argv(default_name)).clone();
    clap_complete::CompleteEnv::with_factory(C::command)
        .bin(name.clone())
        .completer(name.clone())
        .complete();
    // The name it runs under in --version too (hsh-pack); leaked once.
    let cmd = C::command()
        .name(&*Box::leak(name.clone().into_boxed_str()))
        .bin_name(name);
    let args = match argv(&cmd) {
        Ok(a) => a,
        Err(e) => return report_error(&e),
    };
    let matches = cmd.get_matches_from(args);
    let cli = C::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = run(cli, &matches).and_then(|()| std::io::stdout().flush().map_err(stdout_error));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let code = report_error(&e);
            // Stopped by a signal it caught, once its work is undone: it
            // ends by that signal, as its parent expects (a shell's loop
            // stops at a ^C).
            if let Error::Interrupted { signal, .. } = e {
                mkve_core::interrupt::resend(signal);
            }
            code
        }
    }
}

/// Whether `e` is our results' reader having gone away.
fn closed_pipe(e: &Error) -> bool {
    matches!(e, Error::ReaderGone)
}

/// A failure to print results: the reader gone, or a real error.
fn stdout_error(e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Error::ReaderGone
    } else {
        Error::io("(stdout)", e)
    }
}

/// Print `err` as `TOOL: message` (every line that is not an indented
/// continuation gets the prefix) and return its exit status.
pub fn report_error(err: &Error) -> ExitCode {
    let mut text = String::new();
    let message = err.to_string();
    for line in printable(&message).lines() {
        if !line.starts_with(char::is_whitespace) {
            text.push_str(tool());
            text.push_str(": ");
        }
        text.push_str(line);
        text.push('\n');
    }
    let _ = std::io::stderr().write_all(text.as_bytes());
    ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(1))
}

/// Write formatted text and a newline to stdout; a failure (a closed
/// pipe) is an error for [`main`] to judge, never a panic.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Write formatted text to stdout; see [`outln!`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!($($arg)*))
    };
}

#[doc(hidden)]
pub fn write_stdout(args: std::fmt::Arguments) -> Result<()> {
    let text = std::fmt::format(args);
    std::io::stdout()
        .lock()
        .write_all(printable(&text).as_bytes())
        .map_err(stdout_error)
}

/// Print `rows` on stdout as a table: each column as wide as its widest
/// cell (in characters, as [`printable`] shows it), two spaces between
/// columns, no trailing blanks; the first row is usually the header.
/// Errors: stdout's, as [`outln!`]'s.
pub fn print_table<const N: usize>(rows: &[[String; N]]) -> Result<()> {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| printable(c).into_owned()).collect())
        .collect();
    let widths: Vec<usize> = (0..N)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        outln!("{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}

/// Print `v` as pretty JSON on stdout (the `--json` of every tool).
pub fn print_json(v: &impl serde::Serialize) -> Result<()> {
    let text = json_text(v)?;
    outln!("{text}")
}

/// `v` as the `--json` of every tool prints it (pretty, without the
/// trailing newline): what mkve-web's API answers too, so a script gets
/// the same text from either.
pub fn json_text(v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string_pretty(v)
        .map(mkve_core::text::json_safe)
        .map_err(|e| Error::Other(e.to_string()))
}

/// `-q` and `-v`, on every tool.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct Verbosity {
    /// No progress lines
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Show the commands run and their output (and what is given to libvirt), on stderr
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

impl Verbosity {
    /// The report core's calls take.
    pub fn term(self) -> Term {
        Term {
            quiet: self.quiet,
            verbose: self.verbose,
            tty: std::io::stderr().is_terminal(),
        }
    }
}

/// Core's report on stderr: progress lines when verbose, or when stderr
/// is a terminal and not quiet (piped, a tool is silent); notes and the
/// programs' own output when verbose.
#[derive(Debug, Clone, Copy)]
pub struct Term {
    quiet: bool,
    verbose: bool,
    tty: bool,
}

impl Report for Term {
    fn progress(&self, msg: &str) {
        if self.verbose || (self.tty && !self.quiet) {
            let _ = writeln!(std::io::stderr(), "{}: {}", tool(), printable(msg));
        }
    }

    fn warning(&self, msg: &str) {
        let _ = writeln!(std::io::stderr(), "{}: warning: {}", tool(), printable(msg));
    }

    fn note(&self, msg: &str) {
        if self.verbose {
            let _ = writeln!(std::io::stderr(), "{}", printable(msg));
        }
    }

    fn verbose(&self) -> bool {
        self.verbose
    }

    fn output(&self, bytes: &[u8]) {
        let _ = std::io::stderr().write_all(bytes);
    }
}

/// How a root is built from packages (mkve-bundle, mkve-cache).
/// Flatten it last: its heading goes on to the arguments that follow.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Building roots")]
pub struct RootArgs {
    /// Release to install [default: the host's]
    #[arg(long)]
    pub suite: Option<String>,
    /// Mirror URI, apt sources line or file (repeatable) [default: the host's apt sources]
    #[arg(long, value_name = "MIRROR")]
    pub mirror: Vec<String>,
    /// Architecture [default: the host's]
    #[arg(long)]
    pub arch: Option<String>,
    /// mmdebstrap variant [default: minbase]
    #[arg(long)]
    pub variant: Option<String>,
    /// Backend: mmdebstrap or hasher [default: by the host's distribution]
    #[arg(long, add = clap_complete::engine::ArgValueCandidates::new(backends))]
    pub backend: Option<mkve_core::root::BackendName>,
    /// Do not use or fill the package-layer cache
    #[arg(long, conflicts_with = "refresh")]
    pub no_cache: bool,
    /// Build the package layer again and replace the cached one
    #[arg(long)]
    pub refresh: bool,
}

impl RootArgs {
    /// The root to build, with `packages`.
    pub fn spec(&self, packages: Vec<String>) -> RootSpec {
        RootSpec {
            suite: self.suite.clone(),
            mirrors: self.mirror.clone(),
            arch: self.arch.clone(),
            variant: self.variant.clone(),
            packages,
        }
    }

    pub fn policy(&self) -> CachePolicy {
        match (self.no_cache, self.refresh) {
            (true, _) => CachePolicy::Skip,
            (_, true) => CachePolicy::Refresh,
            _ => CachePolicy::Use,
        }
    }
}

/// Whose signatures a bundle is checked against (mkve-bundle, mkve-vm).
#[derive(Args, Debug, Clone, Default)]
pub struct KeyringArgs {
    /// Keyring the bundle's signature must come from [default: $MKVE_CONFDIR/trusted.gpg]
    #[arg(long, value_name = "FILE")]
    pub keyring: Option<PathBuf>,
    /// Accept a bundle that has no signature (a bad one is still refused)
    #[arg(long)]
    pub allow_unsigned: bool,
}

/// `-c`/`--connect`: the libvirt connection (mkve-net, mkve-vm).
#[derive(Args, Debug, Clone, Default)]
pub struct Connect {
    /// libvirt URI [default: $LIBVIRT_DEFAULT_URI, else the default for the hypervisor (see the man page)]
    #[arg(
        id = "connect",
        short = 'c',
        long = "connect",
        global = true,
        value_name = "URI"
    )]
    pub uri: Option<String>,
}

/// Shell completion candidates for `--hypervisor`.
pub fn hypervisors() -> Vec<clap_complete::engine::CompletionCandidate> {
    mkve_core::hypervisor::Hypervisor::names()
        .map(clap_complete::engine::CompletionCandidate::new)
        .into()
}

/// Shell completion candidates for `--backend`.
pub fn backends() -> Vec<clap_complete::engine::CompletionCandidate> {
    mkve_core::root::BackendName::ALL
        .map(|b| clap_complete::engine::CompletionCandidate::new(b.as_str()))
        .into()
}

/// `-` as a path: stdin or stdout.
pub fn is_dash(p: &Path) -> bool {
    p.as_os_str() == "-"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_is_not_an_error_worth_telling() {
        assert!(closed_pipe(&stdout_error(
            std::io::ErrorKind::BrokenPipe.into()
        )));
        let other = stdout_error(std::io::ErrorKind::PermissionDenied.into());
        assert!(!closed_pipe(&other));
        // A bundle written to a pipe that closed is an output not made.
        let data = Error::io("(stdout)", std::io::ErrorKind::BrokenPipe.into());
        assert!(!closed_pipe(&data));
        assert_eq!(data.exit_code(), 73);
    }

    #[test]
    fn root_args_make_the_policy() {
        let mut r = RootArgs::default();
        assert_eq!(r.policy(), CachePolicy::Use);
        r.refresh = true;
        assert_eq!(r.policy(), CachePolicy::Refresh);
        r.no_cache = true;
        assert_eq!(r.policy(), CachePolicy::Skip);
    }
}
