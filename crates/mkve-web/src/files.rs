//! mkve-web's own files: a private directory (uploads, the action log).

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use mkve_core::{Error, Result};

/// Make `dir` (and its parents) if need be, mode 0700: uploads may hold
/// secrets on their way (root's password is not written, but bundles
/// are the operator's). Errors: it cannot be made (73).
pub fn private_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::create(dir, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::create(dir, e))
}
