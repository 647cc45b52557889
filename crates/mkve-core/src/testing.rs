//! Helpers for the unit tests of this crate.

use std::path::Path;

/// A temporary directory holding `files` (paths relative to it, parent
/// directories made as needed, with their contents).
pub fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (path, text) in files {
        write(&d.path().join(path), text);
    }
    d
}

/// Write `text` to `path`, making its directory first.
pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Held by a test that sets the `MKVE_*DIR` variables (they are the
/// process's, and tests run on many threads at once).
pub static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());
