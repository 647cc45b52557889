//! A qcow2 chain as one raw file this process reads and writes, with
//! nothing mounted on the node: `qemu-storage-daemon` opens the chain (the
//! machine's overlay and, through its header, the base's `disk.img` it
//! stands on) and exports it through FUSE onto an empty file in a scratch
//! directory, from a mount namespace of its own (`unshare --mount
//! --propagation private`). The mount is only in that namespace, so it
//! goes with the daemon however the daemon ends (stopped here, or killed
//! with this process: `PR_SET_PDEATHSIG`), and no stale FUSE mount can be
//! left on the node. This process (and debugfs) reach the file through
//! `/proc/PID/root`, the daemon's view of the tree.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::exec::{Cmd, Report, Service};
use crate::scratch::Scratch;

/// How long the daemon may take to export the chain.
const READY: Duration = Duration::from_secs(20);

/// A running export. Dropped, the daemon is stopped (SIGTERM, then
/// SIGKILL), its namespace and mount with it, then the scratch directory
/// removed.
pub(super) struct Export {
    service: Option<Service>,
    view: PathBuf,
    _scratch: Scratch,
}

/// An option value for qemu's `key=value,...` syntax: a comma is doubled.
fn qemu_value(p: &Path) -> Result<String> {
    let s = p.to_str().ok_or_else(|| {
        Error::Usage(format!(
            "{}: qemu-storage-daemon cannot be given a path that is not UTF-8",
            p.display()
        ))
    })?;
    Ok(s.replace(',', ",,"))
}

impl Export {
    /// Export the qcow2 image `top` (with its backing chain), writable or
    /// not. Errors: qemu-storage-daemon or unshare missing (69), the
    /// image cannot be opened (in use by a running machine: qemu's image
    /// locks), the export does not appear.
    pub(super) fn start(top: &Path, writable: bool, report: &dyn Report) -> Result<Export> {
        let top = std::path::absolute(top).map_err(|e| Error::io(top, e))?;
        let parent = std::path::absolute(std::env::temp_dir())
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let scratch = Scratch::new_in(&parent, "mkve-image.")?;
        let point = scratch.path().join("disk");
        std::fs::File::create(&point).map_err(|e| Error::create(&point, e))?;
        let ro = if writable { "" } else { ",read-only=on" };
        let service = Cmd::new("unshare")
            .args(["--mount", "--propagation", "private", "--"])
            .arg("qemu-storage-daemon")
            .arg("--blockdev")
            .arg(format!(
                "driver=file,node-name=file,filename={}{ro}",
                qemu_value(&top)?
            ))
            .arg("--blockdev")
            .arg(format!("driver=qcow2,node-name=disk,file=file{ro}"))
            .arg("--export")
            .arg(format!(
                "type=fuse,id=export,node-name=disk,mountpoint={},writable={}",
                qemu_value(&point)?,
                if writable { "on" } else { "off" }
            ))
            .what(format!("qemu-storage-daemon (exporting {})", top.display()))
            .report(report)
            .spawn_service()?;
        let view = Path::new("/proc")
            .join(service.id().to_string())
            .join("root")
            .join(point.strip_prefix("/").unwrap_or(&point));
        let mut export = Export {
            service: Some(service),
            view,
            _scratch: scratch,
        };
        export.wait_ready(&point, &top)?;
        Ok(export)
    }

    /// Wait until the daemon's view of `point` is its export: another
    /// device than the empty file.
    fn wait_ready(&mut self, point: &Path, top: &Path) -> Result<()> {
        let plain = std::fs::metadata(point)
            .map_err(|e| Error::io(point, e))?
            .dev();
        let deadline = Instant::now() + READY;
        loop {
            if let Some(s) = self.service.as_mut() {
                if let Some(e) = s.ended() {
                    return Err(e);
                }
            }
            if std::fs::metadata(&self.view).is_ok_and(|m| m.dev() != plain) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Other(format!(
                    "{}: qemu-storage-daemon did not export it within {} s",
                    top.display(),
                    READY.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The raw file: the chain's bytes.
    pub(super) fn view(&self) -> &Path {
        &self.view
    }

    /// Stop the daemon, telling a failure (a write it could not flush).
    pub(super) fn stop(mut self) -> Result<()> {
        match self.service.take() {
            Some(s) => s.stop(),
            None => Ok(()),
        }
    }
}
