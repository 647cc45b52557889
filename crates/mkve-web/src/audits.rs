//! The open vulnerabilities of each machine's bundle (mkve-web(8),
//! `--feed`), as `mkve-vm audit` finds them (mkve-core's `audit` and
//! `vm::machine_packages`): the counts the machines page shows, kept
//! between its refreshes. Nothing here is used when no feed is given.
//!
//! The machines page refreshes every few seconds: the feed and the
//! accepted file are read again only when their size or time changed, and
//! a machine's count is worked out once for its bundle and that feed
//! ([`Audits::update`], which blocks: the route runs it on the blocking
//! thread before the page is drawn); drawing the table only reads what is
//! known ([`Audits::count`]). The page of one machine's vulnerabilities
//! reads the feed afresh ([`load`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use mkve_core::audit::{self, Accepted, Feed};
use mkve_core::ids::MachineId;
use mkve_core::vm;
use mkve_core::Result;

/// What the machines page shows of one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Count {
    /// How many vulnerabilities are open.
    Open(usize),
    /// Its packages are not known: why.
    NoSbom(String),
    /// Its SBOM could not be read: the CLI's words.
    Failed(String),
    /// The feed or the accepted file could not be read: the CLI's words.
    FeedUnreadable(String),
}

/// A file as last seen: its size and time, to tell when it changed.
type Stamp = Option<(u64, SystemTime)>;

fn stamp(path: &Path) -> Stamp {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
}

/// The feed and the accepted decisions as read, or why they could not be.
type Loaded = std::result::Result<Arc<(Feed, Vec<Accepted>)>, String>;

/// The feed and decisions as last read, and the counts worked out with
/// them, by machine ID (with the bundle each was for).
#[derive(Default)]
pub struct Audits {
    known: Mutex<Known>,
}

#[derive(Default)]
struct Known {
    stamps: (Stamp, Stamp),
    loaded: Option<Loaded>,
    counts: HashMap<u32, (String, Count)>,
}

/// The accepted file every audit hides the decisions of.
fn accepted_path() -> PathBuf {
    mkve_core::paths::confdir().join(audit::ACCEPTED)
}

/// The feed file, read and parsed. Errors: it cannot be read (1), it is
/// not a feed or too large (65).
pub fn load_feed(feed: &Path) -> Result<Feed> {
    audit::parse_feed(&audit::read_feed_file(feed)?, feed)
}

/// The feed and the accepted decisions, read. Errors: as [`load_feed`],
/// and an accepted file that is unsound (65).
pub fn load(feed: &Path) -> Result<(Feed, Vec<Accepted>)> {
    Ok((load_feed(feed)?, audit::load_accepted(&accepted_path())?))
}

impl Audits {
    /// Bring the counts of the machines `wanted` (ID, bundle digest) up to
    /// date against `feed`, read again if it or the accepted file changed;
    /// the counts of machines no longer wanted are forgotten. Blocks
    /// (reads the feed and each new machine's SBOM).
    pub fn update(&self, feed: &Path, wanted: &[(MachineId, String)]) {
        let Ok(mut k) = self.known.lock() else {
            return;
        };
        let stamps = (stamp(feed), stamp(&accepted_path()));
        if k.loaded.is_none() || k.stamps != stamps {
            k.loaded = Some(load(feed).map(Arc::new).map_err(|e| e.to_string()));
            k.stamps = stamps;
            k.counts.clear();
        }
        let loaded = match &k.loaded {
            Some(Ok(l)) => l.clone(),
            _ => return,
        };
        k.counts
            .retain(|id, (b, _)| wanted.iter().any(|(w, wb)| w.get() == *id && wb == b));
        for (id, bundle) in wanted {
            if k.counts.contains_key(&id.get()) {
                continue;
            }
            let count = match vm::machine_packages(*id, bundle) {
                Ok(Ok(p)) => Count::Open(audit::open_findings(&loaded.0, &p, &loaded.1).0.len()),
                Ok(Err(why)) => Count::NoSbom(why),
                Err(e) => Count::Failed(e.to_string()),
            };
            k.counts.insert(id.get(), (bundle.clone(), count));
        }
    }

    /// What is known of machine `id`: its count, or why the feed could not
    /// be read; `None` before [`update`](Audits::update) worked it out.
    pub fn count(&self, id: MachineId) -> Option<Count> {
        let k = self.known.lock().ok()?;
        if let Some(Err(e)) = &k.loaded {
            return Some(Count::FeedUnreadable(e.clone()));
        }
        k.counts.get(&id.get()).map(|(_, c)| c.clone())
    }
}
