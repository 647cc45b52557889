//! The backups made through mkve-web (mkve-web(8), Backups): each
//! machine's last one, made by `vm::backup` (the call `mkve-vm backup`
//! makes) into `DIR/backups/` as `ID-NAME-DATE.mkvebak`, and a record of
//! it beside (`ID.json`, written whole or not at all), which the machines
//! page shows the date of and a download reads. A new backup of a machine
//! replaces its last one: one file per machine is kept, so mkve-web's
//! directory does not fill up; an operator keeps them elsewhere (the
//! download). The records are read once at start and held in memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mkve_core::vm::{self, BackupOptions, Uris};
use mkve_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// A backup's file name ends so.
pub const SUFFIX: &str = ".mkvebak";

/// The record of a machine's last backup made here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The machine's ID and its name when it was backed up (an ID given
    /// again to another machine does not show this backup as its own).
    pub id: u32,
    pub name: String,
    /// Its file's name in `DIR/backups/`.
    pub file: String,
    /// When it was made, RFC 3339 in UTC.
    pub made: String,
    /// The file's size in bytes.
    pub bytes: u64,
    /// The whole root, not what differs from the base.
    pub full: bool,
    /// Signed by the node's GnuPG key.
    pub signed: bool,
}

/// The records of the last backups, by machine ID.
pub struct Backups {
    dir: PathBuf,
    last: Mutex<HashMap<u32, Record>>,
}

/// `name` as a file name's part: letters, digits, `.`, `_`, `-` kept,
/// anything else `_`.
fn file_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `ID-NAME-DATE.mkvebak`, DATE the RFC 3339 time in its basic form
/// (`20261206T101500Z`).
pub fn file_name(id: u32, name: &str, made: &str) -> String {
    let date: String = made.chars().filter(|c| !matches!(c, '-' | ':')).collect();
    format!("{id}-{}-{date}{SUFFIX}", file_part(name))
}

impl Backups {
    /// The records kept in `dir` (`DIR/backups`), which is made (mode
    /// 0700) if need be; a record that does not read is skipped. Errors:
    /// the directory cannot be made (73).
    pub fn open(dir: &Path) -> Result<Backups> {
        crate::files::private_dir(dir)?;
        let mut last = HashMap::new();
        for e in std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name
                .strip_suffix(".json")
                .and_then(|i| i.parse::<u32>().ok())
            else {
                continue;
            };
            let r = std::fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<Record>(&b).ok());
            if let Some(r) = r.filter(|r| r.id == id && r.file == file_part(&r.file)) {
                last.insert(id, r);
            }
        }
        Ok(Backups {
            dir: dir.to_path_buf(),
            last: Mutex::new(last),
        })
    }

    /// The last backup made here of machine `id`, if it was named `name`
    /// then.
    pub fn last(&self, id: u32, name: &str) -> Option<Record> {
        let m = self.last.lock().ok()?;
        m.get(&id).filter(|r| r.name == name).cloned()
    }

    /// The last backup made here of machine `target`: an ID, or a name
    /// as it was named when backed up.
    pub fn last_of(&self, target: &str) -> Option<Record> {
        let m = self.last.lock().ok()?;
        m.values()
            .find(|r| r.id.to_string() == target || r.name == target)
            .cloned()
    }

    /// The last backup made here of machine `target` ([`last_of`](Backups::last_of)),
    /// and its file opened. Errors: none
    /// (404), its file is gone (1).
    pub fn open_last(&self, target: &str) -> Result<(Record, std::fs::File)> {
        let r = self.last_of(target).ok_or_else(|| {
            Error::NotFound(format!("no backup of machine {target} was made here"))
        })?;
        let path = self.dir.join(&r.file);
        let f = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        Ok((r, f))
    }

    /// Back up machine `target` (`vm::backup`, as `mkve-vm backup` does)
    /// into this directory; it becomes the machine's last backup here, the
    /// one before removed. Returns its record and its file, opened (a
    /// download reads it even if another backup replaces it meanwhile).
    /// Blocks. Errors: as `vm::backup`; the record cannot be written (73).
    pub fn make(
        &self,
        uris: &Uris,
        target: &str,
        o: &BackupOptions,
    ) -> Result<(Record, std::fs::File)> {
        let (_, _, m) = vm::find(uris, target)?;
        let made = crate::log::now();
        let file = file_name(m.id.get(), &m.name, &made);
        let path = self.dir.join(&file);
        vm::backup(
            uris,
            &m.id.to_string(),
            &path,
            o,
            &mkve_core::report::Silent,
        )?;
        let f = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        let bytes = f.metadata().map_err(|e| Error::io(&path, e))?.len();
        let r = Record {
            id: m.id.get(),
            name: m.name.clone(),
            file,
            made,
            bytes,
            full: o.full,
            signed: !o.no_sign,
        };
        self.commit(&r)?;
        Ok((r, f))
    }

    /// Make `r` the machine's last backup: its record written, the file
    /// of the one before removed. A backup older than the one recorded
    /// (two made at once, ending out of order) is removed instead.
    fn commit(&self, r: &Record) -> Result<()> {
        let Ok(mut last) = self.last.lock() else {
            return Err(Error::Other("the backups' records are poisoned".into()));
        };
        if let Some(old) = last.get(&r.id) {
            if old.made > r.made {
                let _ = std::fs::remove_file(self.dir.join(&r.file));
                return Ok(());
            }
        }
        let json = serde_json::to_vec_pretty(r).map_err(|e| Error::Other(e.to_string()))?;
        mkve_core::files::write_atomic(&self.dir.join(format!("{}.json", r.id)), &json)?;
        if let Some(old) = last.insert(r.id, r.clone()) {
            if old.file != r.file {
                let _ = std::fs::remove_file(self.dir.join(&old.file));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_say_machine_and_date() {
        assert_eq!(
            file_name(101, "ntp-101", "2026-12-06T10:15:00Z"),
            "101-ntp-101-20261206T101500Z.mkvebak"
        );
        assert_eq!(
            file_name(7, "a b/c\"", "2026-01-02T03:04:05Z"),
            "7-a_b_c_-20260102T030405Z.mkvebak"
        );
    }

    #[test]
    fn records_are_kept_and_the_one_before_goes() {
        let d = tempfile::tempdir().unwrap();
        let b = Backups::open(d.path()).unwrap();
        let rec = |made: &str| Record {
            id: 101,
            name: "ntp".into(),
            file: file_name(101, "ntp", made),
            made: made.into(),
            bytes: 3,
            full: false,
            signed: true,
        };
        let (first, second) = (rec("2026-12-06T10:00:00Z"), rec("2026-12-06T11:00:00Z"));
        for r in [&first, &second] {
            std::fs::write(d.path().join(&r.file), "abc").unwrap();
        }
        b.commit(&first).unwrap();
        b.commit(&second).unwrap();
        assert!(!d.path().join(&first.file).exists());
        assert_eq!(b.last(101, "ntp"), Some(second.clone()));
        assert_eq!(b.last(101, "other"), None);
        let again = Backups::open(d.path()).unwrap();
        assert_eq!(again.last(101, "ntp"), Some(second.clone()));
        assert_eq!(again.open_last("ntp").unwrap().0, second);
        assert!(matches!(again.open_last("102"), Err(Error::NotFound(_))));
        // One that ends after a newer one is not kept.
        let older = rec("2026-12-06T09:00:00Z");
        std::fs::write(d.path().join(&older.file), "abc").unwrap();
        b.commit(&older).unwrap();
        assert!(!d.path().join(&older.file).exists());
        assert_eq!(b.last(101, "ntp"), Some(second));
    }
}
