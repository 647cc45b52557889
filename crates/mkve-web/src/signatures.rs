//! What mkve-web checked of the bundles it made machines from, kept in
//! `signatures.json` beside the action log, for the machines made before
//! mkve recorded the signature in the machine itself.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mkve_core::ids::MachineId;
use mkve_core::sign::SigStatus;

/// Machines made here and the signature of their bundle, kept in
/// `signatures.json`: the machines page says "verified" only for a machine
/// whose bundle mkve-web checked (by ID and the digest of its root, so a
/// machine made later under the same ID by another tool is not taken for
/// it). Machines made by `mkve-vm create` show as unknown.
pub struct Signatures {
    path: PathBuf,
    map: Mutex<HashMap<u32, (String, String)>>,
}

impl Signatures {
    pub fn open(path: &Path) -> Signatures {
        let map = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Signatures {
            path: path.to_path_buf(),
            map: Mutex::new(map),
        }
    }

    /// Remember that machine `id`, made from the bundle whose root has
    /// `digest`, had the signature `sig`; written at once.
    pub fn record(&self, id: MachineId, digest: &str, sig: &SigStatus) {
        let Ok(mut m) = self.map.lock() else { return };
        m.insert(id.get(), (digest.to_string(), sig.describe()));
        if let Ok(text) = serde_json::to_vec(&*m) {
            let tmp = self.path.with_extension("tmp");
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, &self.path);
            }
        }
    }

    /// What was checked of machine `id`'s bundle, if mkve-web made it
    /// from the bundle whose root has `digest`.
    pub fn of(&self, id: MachineId, digest: &str) -> Option<String> {
        let m = self.map.lock().ok()?;
        m.get(&id.get())
            .filter(|(d, _)| !d.is_empty() && d == digest)
            .map(|(_, s)| s.clone())
    }
}
