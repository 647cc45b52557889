//! Creates running in the background for the pages: each one's progress
//! lines (it is the create's `Report`) and, once done, its result; a job
//! is forgotten an hour after it started.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mkve_core::ids::MachineId;
use mkve_core::report::Report;

/// How long a job is remembered.
const JOB_TTL: Duration = Duration::from_secs(3600);

/// A create running: its progress lines and, once done, its result.
pub struct Job {
    pub what: String,
    /// Notes and programs' output go to stderr too (`-v`).
    pub verbose: bool,
    pub lines: Mutex<Vec<String>>,
    pub done: Mutex<Option<std::result::Result<MachineId, String>>>,
    pub started: Instant,
}

impl Report for Job {
    fn progress(&self, msg: &str) {
        if let Ok(mut l) = self.lines.lock() {
            l.push(msg.to_string());
        }
    }

    fn warning(&self, msg: &str) {
        self.progress(&format!("warning: {msg}"));
    }

    fn note(&self, msg: &str) {
        if self.verbose {
            eprintln!("{}", mkve_core::text::printable(msg));
        }
    }

    fn verbose(&self) -> bool {
        self.verbose
    }

    fn output(&self, bytes: &[u8]) {
        use std::io::Write;
        let _ = std::io::stderr().write_all(bytes);
    }
}

impl Job {
    /// A job just started: `what` it does, its notes on stderr when `verbose`.
    pub fn new(what: String, verbose: bool) -> Arc<Job> {
        Arc::new(Job {
            what,
            verbose,
            lines: Mutex::new(Vec::new()),
            done: Mutex::new(None),
            started: Instant::now(),
        })
    }
}

#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    map: Mutex<HashMap<u64, Arc<Job>>>,
}

impl Jobs {
    /// A new job, numbered from 1; jobs done an hour ago are forgotten.
    pub fn add(&self, what: String, verbose: bool) -> (u64, Arc<Job>) {
        let n = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let job = Job::new(what, verbose);
        if let Ok(mut m) = self.map.lock() {
            // Jobs done an hour ago are forgotten.
            m.retain(|_, j| j.started.elapsed() < JOB_TTL);
            m.insert(n, job.clone());
        }
        (n, job)
    }

    pub fn get(&self, n: u64) -> Option<Arc<Job>> {
        self.map.lock().ok()?.get(&n).cloned()
    }
}
