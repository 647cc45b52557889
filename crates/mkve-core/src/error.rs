//! The one error type of mkve. Every failure says what kind it is, so that
//! every binary prints it the same way and exits with the same status
//! (see EXIT STATUS in mkve(7)).

use std::fmt;
use std::path::{Path, PathBuf};

/// Exit statuses, from sysexits(3) where one fits.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const DATAERR: i32 = 65;
    pub const UNAVAILABLE: i32 = 69;
    pub const CANTCREAT: i32 = 73;
}

/// One problem found in an input file: `path[:line]: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<PathBuf>, line: Option<usize>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(n) => write!(f, "{}:{}: {}", self.path.display(), n, self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),

    /// What the command names is not there (`no machine 150`): a usage
    /// error for the command line (2), "not found" for mkve-web (404).
    #[error("{0}")]
    NotFound(String),

    /// A template has one or more problems; each is printed on its own line.
    #[error("{}", join_lines(.0))]
    InvalidTemplate(Vec<Problem>),

    /// A configuration file is wrong or failed to run.
    #[error("{0}")]
    InvalidConfig(Problem),

    /// A bundle (or a root archive) is malformed, tampered with or unsafe.
    #[error("{0}")]
    InvalidBundle(Problem),

    /// A signature is missing, bad, or made by a key not trusted.
    #[error("{0}")]
    Signature(Problem),

    /// Packages the distribution does not have.
    #[error("{} {} not available in {suite}", if names.len() == 1 { "package" } else { "packages" }, quoted(names))]
    UnknownPackages { suite: String, names: Vec<String> },

    /// A tool or service that is needed is not there.
    #[error("{what}: {why}")]
    Unavailable { what: String, why: String },

    /// An output could not be created.
    #[error("{}: cannot create: {source}", .path.display())]
    CannotCreate {
        path: PathBuf,
        source: std::io::Error,
    },

    /// An external program (a hook, a command, a tool) failed.
    #[error("{0}")]
    Process(Box<crate::process_error::ProcessError>),

    /// Reading or writing failed for a reason outside the other kinds.
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{0}")]
    Other(String),

    /// mkve-vm failed on another node (mkve-vm(1), NODES), which said why
    /// there; this one exits with the same status.
    #[error("node {node}: {what} failed there with exit status {status}{detail}")]
    Remote {
        node: String,
        what: String,
        status: i32,
        /// What it printed, as indented lines (empty when it went to the
        /// terminal as it came).
        detail: String,
    },

    /// A signal (SIGINT, SIGTERM, SIGHUP) stopped a run that catches them
    /// (interrupt.rs) while it worked on `what`; what it made is undone.
    /// Its status is the shell's for a process a signal ended, 128 + the
    /// signal's number; mkve-cli then ends by the signal itself.
    #[error("{what}: interrupted by {}", signal_name(*.signal))]
    Interrupted { what: String, signal: i32 },

    /// The reader of a tool's results went away (`mkve-vm list | head`):
    /// the tool ends quietly with status 0, as ripgrep does. Only results a
    /// tool prints are this; a bundle written to a pipe that closes early
    /// is `CannotCreate`.
    #[error("the reader of the results went away")]
    ReaderGone,
}

/// `SIGTERM` for 15, as kill -l names it.
fn signal_name(n: i32) -> String {
    nix::sys::signal::Signal::try_from(n).map_or_else(|_| format!("signal {n}"), |s| s.to_string())
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn join_lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

impl Error {
    /// The process exit status this failure maps to.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::NotFound(_) => exit::USAGE,
            Error::InvalidTemplate(_)
            | Error::InvalidConfig(_)
            | Error::InvalidBundle(_)
            | Error::Signature(_)
            | Error::UnknownPackages { .. } => exit::DATAERR,
            Error::Unavailable { .. } => exit::UNAVAILABLE,
            Error::CannotCreate { .. } => exit::CANTCREAT,
            Error::Process(_) | Error::Io { .. } | Error::Other(_) => exit::FAILURE,
            Error::Remote { status, .. } => match *status {
                s @ (exit::USAGE | exit::DATAERR | exit::UNAVAILABLE | exit::CANTCREAT) => s,
                _ => exit::FAILURE,
            },
            Error::Interrupted { signal, .. } => 128 + signal,
            Error::ReaderGone => exit::OK,
        }
    }

    /// A failure reading or writing `path`. A full disk, a quota or a
    /// read-only file system means an output cannot be made: `CannotCreate`
    /// (exit 73), whichever call hit it.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        if is_no_room(&source) {
            return Error::create(path, source);
        }
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub fn create(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::CannotCreate {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub fn bundle(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Error::InvalidBundle(Problem::new(path.as_ref(), None, message))
    }

    pub fn signature(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Error::Signature(Problem::new(path.as_ref(), None, message))
    }

    pub fn template(
        path: impl AsRef<Path>,
        line: Option<usize>,
        message: impl Into<String>,
    ) -> Self {
        Error::InvalidTemplate(vec![Problem::new(path.as_ref(), line, message)])
    }
}

/// Whether `e` says an output cannot be written: no room (ENOSPC, EDQUOT,
/// EFBIG), a read-only file system, or its reader gone (a closed pipe: the
/// results' reader going away is mkve-cli's to forgive, not data's).
pub fn is_no_room(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC | libc::EDQUOT | libc::EROFS | libc::EFBIG)
    ) || matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::BrokenPipe
    )
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach a path to an `io::Error`.
pub trait IoContext<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_print_one_per_line_with_line_numbers() {
        let e = Error::InvalidTemplate(vec![
            Problem::new("t/hypervisors", Some(2), "unknown hypervisor \"vmware\""),
            Problem::new("t/version/qemu", None, "missing"),
        ]);
        assert_eq!(
            e.to_string(),
            "t/hypervisors:2: unknown hypervisor \"vmware\"\nt/version/qemu: missing"
        );
        assert_eq!(e.exit_code(), 65);
    }

    #[test]
    fn each_kind_has_its_exit_code() {
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::NotFound("no machine 1".into()).exit_code(), 2);
        let unavailable = Error::Unavailable {
            what: "gpg".into(),
            why: "x".into(),
        };
        assert_eq!(unavailable.exit_code(), 69);
        let e = Error::create(
            "/x",
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert_eq!(e.exit_code(), 73);
        let remote = |status| Error::Remote {
            node: "n2".into(),
            what: "create".into(),
            status,
            detail: String::new(),
        };
        assert_eq!(remote(65).exit_code(), 65);
        assert_eq!(remote(9).exit_code(), 1);
        assert_eq!(
            remote(65).to_string(),
            "node n2: create failed there with exit status 65"
        );
        let e = crate::exec::Cmd::new("false").run_checked().unwrap_err();
        assert_eq!(e.exit_code(), 1);
    }
}
