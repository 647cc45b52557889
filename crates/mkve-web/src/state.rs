//! The state every request shares (sessions, the action log, uploads,
//! create jobs, what mkve-web saw of its machines: signatures, probes,
//! vulnerabilities, backups), and the one way an
//! action reaches core ([`App::act`]: in a blocking thread, logged with
//! its user and result).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mkve_core::{Error, Result};

use crate::audits::Audits;
use crate::auth::Sessions;
use crate::backups::Backups;
use crate::config::Config;
use crate::jobs::Jobs;
use crate::log::ActionLog;
use crate::signatures::Signatures;
use crate::uploads::Upload;

/// The state every request shares.
pub struct App {
    pub config: Config,
    pub sessions: Sessions,
    pub log: ActionLog,
    pub uploads: Mutex<HashMap<String, Upload>>,
    pub jobs: Jobs,
    /// Signature states of the bundles machines were made from here, by
    /// ID and bundle digest (see `signatures.rs`).
    pub signatures: Signatures,
    /// The probes last run for each machine (its page runs them), with
    /// when: the machines page shows them.
    pub probes: Mutex<HashMap<u32, (String, Vec<mkve_core::probe::Outcome>)>>,
    /// The machines' open vulnerabilities, as last worked out against
    /// `--feed` (audits.rs).
    pub audits: Audits,
    /// The last backup made here of each machine (backups.rs).
    pub backups: Backups,
}

pub type Shared = Arc<App>;

impl App {
    /// The application state: the log and the backups' records are read
    /// back from `config.dir`, which is made (mode 0700) if need be.
    /// Errors: the directory cannot be made (73).
    pub fn new(config: Config) -> Result<Shared> {
        crate::files::private_dir(&config.dir)?;
        let log = ActionLog::open(&config.dir.join("actions.log"), config.quiet)?;
        let signatures = Signatures::open(&config.dir.join("signatures.json"));
        let backups = Backups::open(&config.dir.join("backups"))?;
        Ok(Arc::new(App {
            sessions: Sessions::new(),
            log,
            uploads: Mutex::new(HashMap::new()),
            jobs: Jobs::default(),
            signatures,
            probes: Mutex::new(HashMap::new()),
            audits: Audits::default(),
            backups,
            config,
        }))
    }

    /// Run `f` (a call into core, which blocks) on a blocking thread, and
    /// log it as `what`, done by `user`: its result, and the error as the
    /// CLI words it.
    pub async fn act<T, F>(&self, user: &str, what: String, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let r = blocking(f).await;
        self.log.record(user, &what, r.as_ref().err());
        r
    }
}

/// Run `f` on tokio's blocking threads (libvirt and gpgme block).
pub async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::Other(format!("the work failed: {e}"))))
}
