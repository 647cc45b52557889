//! The action log: every change asked of mkve-web (and every login), with
//! its time, user, what was asked, result and error message in the words
//! the CLI prints. Kept as JSON lines in `actions.log` (mode 0600) beside
//! the uploads, so it outlives a restart; the newest [`KEPT`] are held in
//! memory for the log page.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mkve_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// How many entries the log page can show.
pub const KEPT: usize = 1000;

/// One action.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// When it ended, RFC 3339 in UTC.
    pub time: String,
    /// Who asked: a login name, or how a local client came (`root (unix
    /// socket)`, `127.0.0.1`).
    pub user: String,
    /// What was asked: `start 101`, `create ntp.bun`, `login`.
    pub action: String,
    /// `ok` or `failed`.
    pub result: String,
    /// The error as the CLI prints it (after `mkve-vm: `); empty when it
    /// worked.
    pub error: String,
}

pub struct ActionLog {
    path: PathBuf,
    entries: Mutex<VecDeque<Entry>>,
    quiet: bool,
}

/// Now, RFC 3339 in UTC.
pub fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    mkve_core::date::rfc3339(secs)
}

impl ActionLog {
    /// The log kept in `path`, its last entries read back. A line that
    /// is not an entry is skipped. Errors: `path` exists but cannot be
    /// read (1).
    pub fn open(path: &Path, quiet: bool) -> Result<ActionLog> {
        let mut entries = VecDeque::new();
        match std::fs::File::open(path) {
            Ok(f) => {
                for line in std::io::BufReader::new(f).lines() {
                    let line = line.map_err(|e| Error::io(path, e))?;
                    if let Ok(e) = serde_json::from_str::<Entry>(&line) {
                        if entries.len() == KEPT {
                            entries.pop_front();
                        }
                        entries.push_back(e);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(path, e)),
        }
        Ok(ActionLog {
            path: path.to_path_buf(),
            entries: Mutex::new(entries),
            quiet,
        })
    }

    /// Add an entry: `user` asked `action`, which ended with `error` (or
    /// worked). Written to the file at once; a log that cannot be
    /// written is told on stderr, and the action stands.
    pub fn record(&self, user: &str, action: &str, error: Option<&Error>) {
        let e = Entry {
            time: now(),
            user: user.to_string(),
            action: action.to_string(),
            result: if error.is_some() { "failed" } else { "ok" }.into(),
            error: error.map(|e| e.to_string()).unwrap_or_default(),
        };
        self.push(e);
    }

    /// Add `e` as it is (an upload's error, reworded).
    pub fn push(&self, e: Entry) {
        if !self.quiet {
            let tail = if e.error.is_empty() {
                String::new()
            } else {
                format!(": {}", e.error)
            };
            let line = format!("{}: {}: {}{tail}", e.user, e.action, e.result);
            eprintln!(
                "{}: {}",
                mkve_cli::tool(),
                mkve_core::text::printable(&line)
            );
        }
        if let Ok(line) = serde_json::to_string(&e).map(mkve_core::text::json_safe) {
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&self.path)
                .and_then(|mut f| writeln!(f, "{line}"));
            if let Err(err) = written {
                eprintln!(
                    "{}: warning: {}: {err}",
                    mkve_cli::tool(),
                    self.path.display()
                );
            }
        }
        if let Ok(mut q) = self.entries.lock() {
            if q.len() == KEPT {
                q.pop_front();
            }
            q.push_back(e);
        }
    }

    /// The entries, newest first.
    pub fn newest_first(&self) -> Vec<Entry> {
        self.entries
            .lock()
            .map(|q| q.iter().rev().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_kept_and_read_back() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("actions.log");
        let log = ActionLog::open(&p, true).unwrap();
        log.record("alice", "start 101", None);
        log.record(
            "bob",
            "delete 102",
            Some(&Error::Usage("no machine 102".into())),
        );
        let again = ActionLog::open(&p, true).unwrap().newest_first();
        assert_eq!(again.len(), 2);
        assert_eq!(again[0].user, "bob");
        assert_eq!(again[0].result, "failed");
        assert_eq!(again[0].error, "no machine 102");
        assert_eq!(again[1].action, "start 101");
        assert_eq!(again[1].error, "");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
