//! What can be done to a machine's snapshots, for the pages and the API
//! alike (mkve-vm(1) SNAPSHOTS): take one, revert to one (a stopped
//! machine), delete one; each one call into core, its words in the log
//! as the mkve-vm command line says it. A backup is the same kind of
//! action: [`backup`].

use mkve_core::vm::{self, BackupOptions, Uris};
use mkve_core::Result;

use crate::backups::Record;
use crate::state::Shared;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotAction {
    /// Take one, named so (default: the time).
    Take(Option<String>),
    /// Put the stopped machine back as it was at this one.
    Revert(String),
    Delete(String),
}

impl SnapshotAction {
    /// The words of the log: `snapshot 101 before-upgrade`, `revert 101
    /// before-upgrade`, `snapshot --delete 101 before-upgrade`.
    pub fn words(&self, target: &str) -> String {
        match self {
            SnapshotAction::Take(None) => format!("snapshot {target}"),
            SnapshotAction::Take(Some(n)) => format!("snapshot {target} {n}"),
            SnapshotAction::Revert(n) => format!("revert {target} {n}"),
            SnapshotAction::Delete(n) => format!("snapshot --delete {target} {n}"),
        }
    }

    /// Do it: the call `mkve-vm` makes; the snapshot's name. Blocks.
    /// Errors: as core's (a bad name or no such snapshot 2, a running
    /// machine refused a revert 2).
    pub fn run(self, uris: &Uris, target: &str) -> Result<String> {
        let quiet = &mkve_core::report::Silent;
        match self {
            SnapshotAction::Take(name) => vm::snapshot(uris, target, name.as_deref(), quiet),
            SnapshotAction::Revert(n) => vm::revert(uris, target, &n, quiet).map(|()| n),
            SnapshotAction::Delete(n) => vm::delete_snapshot(uris, target, &n, quiet).map(|()| n),
        }
    }
}

/// Run `action` on `target` for `user`, on a blocking thread, logged; the
/// snapshot's name.
pub async fn act(app: &Shared, user: &str, action: SnapshotAction, target: &str) -> Result<String> {
    let uris = app.config.uris.clone();
    let t = target.to_string();
    let words = action.words(target);
    app.act(user, words, move || action.run(&uris, &t)).await
}

/// The log's words of a backup: `backup --full 101`.
pub fn backup_words(o: &BackupOptions, target: &str) -> String {
    let mut w = String::from("backup");
    if o.full {
        w.push_str(" --full");
    }
    if o.no_sign {
        w.push_str(" --force-no-sign");
    }
    format!("{w} {target}")
}

/// Back up `target` into mkve-web's directory (backups.rs) for `user`, on
/// a blocking thread, logged: its record and its file, opened.
pub async fn backup(
    app: &Shared,
    user: &str,
    o: BackupOptions,
    target: &str,
) -> Result<(Record, std::fs::File)> {
    let words = backup_words(&o, target);
    let (a, t) = (app.clone(), target.to_string());
    app.act(user, words, move || a.backups.make(&a.config.uris, &t, &o))
        .await
}

/// The snapshots of `target`, oldest first (`mkve-vm snapshots`), on a
/// blocking thread.
pub async fn list(app: &Shared, target: &str) -> Result<Vec<vm::SnapshotInfo>> {
    let uris = app.config.uris.clone();
    let t = target.to_string();
    crate::state::blocking(move || vm::snapshots(&uris, &t)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_words_are_the_command_lines() {
        assert_eq!(SnapshotAction::Take(None).words("101"), "snapshot 101");
        assert_eq!(
            SnapshotAction::Take(Some("a".into())).words("101"),
            "snapshot 101 a"
        );
        assert_eq!(SnapshotAction::Revert("a".into()).words("7"), "revert 7 a");
        assert_eq!(
            SnapshotAction::Delete("a".into()).words("7"),
            "snapshot --delete 7 a"
        );
        let o = BackupOptions {
            full: true,
            sign_key: None,
            no_sign: true,
            secrets_to: None,
        };
        assert_eq!(backup_words(&o, "7"), "backup --full --force-no-sign 7");
        assert_eq!(backup_words(&BackupOptions::default(), "7"), "backup 7");
    }
}
