//! A program that ran and failed, as a value: what it was, its arguments,
//! its exit status or signal, and what it printed. It lives below the
//! runner (`exec.rs`), as cargo's `process_error.rs` lives beside its
//! `ProcessBuilder`, so `error.rs` can carry it without importing the runner.

use std::fmt;
use std::process::ExitStatus;
use std::time::Duration;

/// How many lines of a failed program's output are quoted in the error.
const TAIL_LINES: usize = 10;

/// A program that ran and failed: exited non-zero, was killed by a
/// signal, or ran past its timeout.
#[derive(Debug, Clone)]
pub struct ProcessError {
    /// What the program is, for messages: `hook "01-root"`, `mkfs.ext4`.
    pub what: String,
    pub program: String,
    pub args: Vec<String>,
    /// `None` when it could not be waited for.
    pub status: Option<ExitStatus>,
    /// Set when it was killed for running longer than this.
    pub timed_out: Option<Duration>,
    /// Everything it printed (stdout and stderr, as captured).
    pub output: Vec<u8>,
}

impl ProcessError {
    /// The exit code, when it exited.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// The output as text (lossy).
    pub fn output_text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match (self.timed_out, self.status) {
            (Some(t), _) => format!("did not finish in {} s and was killed", t.as_secs()),
            (None, Some(s)) => {
                match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                    (Some(code), _) => format!("failed with exit status {code}"),
                    (None, Some(sig)) => format!("failed with signal {sig}"),
                    _ => "failed".to_string(),
                }
            }
            (None, None) => "failed".to_string(),
        };
        write!(f, "{} {how}{}", self.what, tail(&self.output))
    }
}

impl std::error::Error for ProcessError {}

/// The last lines of a program's output, indented under the error line.
pub fn tail(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    lines[start..].iter().map(|l| format!("\n  {l}")).collect()
}
