//! The snapshot commands (mkve-vm(1) SNAPSHOTS): `snapshot`, `snapshots`,
//! `revert`, `snapshot --delete`, each on the machine found and locked;
//! the records and the work are snapshot_store.rs's.

use std::path::Path;

use serde::Serialize;

use super::layout::{machine_dir, snapshots_dir};
use super::manage::find_locked;
use super::snapshot_store::{
    check_name, delete_locked, records, revert_locked, snapshot_locked, Record,
};
use super::Uris;
use crate::error::Result;
use crate::exec::Report;

/// A snapshot as `mkve-vm snapshots` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotInfo {
    #[serde(flatten)]
    pub record: Record,
    /// The space it holds on its own, in bytes (allocated blocks).
    pub bytes: u64,
}

/// A name for a snapshot taken now: `YYYYMMDD-HHMMSS` (UTC), the
/// RFC 3339 date date.rs writes without its separators.
fn default_name() -> String {
    let t = crate::date::rfc3339(crate::date::now());
    t.replace('T', "-")
        .replace([':', 'Z'], "")
        .replacen('-', "", 2)
}

/// Take a snapshot of machine `target`, named `name` (default: the time,
/// `YYYYMMDD-HHMMSS`). Running or not. Returns its name. Errors: no
/// such machine, a bad or taken name (2), a machine that cannot have
/// snapshots (2), libvirt or a copy failed (1, 73): nothing is left of
/// the snapshot then, and a frozen machine is thawed.
pub fn snapshot(
    uris: &Uris,
    target: &str,
    name: Option<&str>,
    report: &dyn Report,
) -> Result<String> {
    let name = name.map_or_else(default_name, str::to_string);
    check_name(&name)?;
    let (_conn, d, m, _lock) = find_locked(uris, target)?;
    snapshot_locked(&d, &m, &name, report)?;
    Ok(name)
}

/// The snapshots of machine `target`, oldest first.
pub fn snapshots(uris: &Uris, target: &str) -> Result<Vec<SnapshotInfo>> {
    let (_, _, m) = super::lookup::find(uris, target)?;
    let dir = machine_dir(m.id);
    Ok(records(&dir)?
        .into_iter()
        .map(|r| {
            let bytes = match &r.image {
                Some(image) => allocated(&dir.join(image)),
                None => super::base::disk_usage(&snapshots_dir(&dir).join(&r.name)),
            };
            SnapshotInfo { record: r, bytes }
        })
        .collect())
}

fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map_or(0, |m| m.blocks() * 512)
}

/// Put machine `target` back as it was when snapshot `name` was taken.
/// The machine must be stopped; the snapshot stays. What it held since is
/// gone (take a snapshot first to keep it). Errors: no such machine or
/// snapshot (2), the machine runs (2), a copy or libvirt failed: the
/// machine is then as it was before.
pub fn revert(uris: &Uris, target: &str, name: &str, report: &dyn Report) -> Result<()> {
    let (conn, d, m, _lock) = find_locked(uris, target)?;
    revert_locked(&conn, &d, &m, name, report)
}

/// Delete snapshot `name` of machine `target`. A running disk machine
/// keeps the image while its disk stands on it; a stopped one has it
/// merged into the image above it. Errors: no such machine or snapshot
/// (2).
pub fn delete(uris: &Uris, target: &str, name: &str, report: &dyn Report) -> Result<()> {
    let (_conn, d, m, _lock) = find_locked(uris, target)?;
    delete_locked(&d, &m, name, report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["a", "before-upgrade", "2026.12.06_1", &"x".repeat(64)] {
            check_name(good).unwrap();
        }
        for bad in [
            "",
            ".x",
            "-x",
            "a/b",
            "a b",
            "ü",
            &"x".repeat(65),
            "a\u{202e}",
        ] {
            assert_eq!(check_name(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
        let n = default_name();
        check_name(&n).unwrap();
        assert_eq!(n.len(), 15, "{n}");
    }
}
