//! Where machines' files live (`$MKVE_STATEDIR/vms/ID/`), and where creates
//! unpack bundles: `vms/.new.XXXXXX/`, a scratch directory (scratch.rs)
//! beside the machines' directories, renamed to `vms/ID/` when the machine
//! is defined. Killed creates leave theirs behind; the next create sweeps
//! them.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::scratch::Scratch;

/// `$MKVE_STATEDIR/vms`, made absolute: its paths go into domain XML,
/// which libvirt reads from its own working directory.
pub(crate) fn vms_dir() -> PathBuf {
    let dir = crate::paths::statedir().join("vms");
    if dir.is_relative() {
        if let Ok(cwd) = std::env::current_dir() {
            return cwd.join(dir);
        }
    }
    dir
}

/// A create's staging directory in `vms`, after the sweep of killed ones.
pub(super) fn staging(vms: &Path) -> Result<Scratch> {
    Scratch::new_in(vms, ".new.")
}
