//! qemu-img(1), the one module that runs it: a machine's disk images made,
//! converted, rebased and measured. Each function is one qemu-img
//! command; errors are the command's (`ProcessError`: 69 when qemu-img
//! is missing, else its status and last lines).

use std::path::Path;

use crate::error::{Error, Result};
use crate::exec::{Cmd, Report};

/// `qemu-img create`: a `format` (raw, qcow2) image at `path`. `size` in
/// bytes (`None`: the backing file's); `backing`: the image it stands on
/// and that image's format (qcow2 only), its data never copied.
pub(crate) fn create(
    path: &Path,
    format: &str,
    size: Option<u64>,
    backing: Option<(&Path, &str)>,
    report: &dyn Report,
) -> Result<()> {
    let mut c = Cmd::new("qemu-img").args(["create", "-q", "-f", format]);
    if let Some((file, fmt)) = backing {
        c = c.args(["-F", fmt, "-b"]).arg(file);
    }
    c.arg(path)
        .args(size.map(|s| s.to_string()))
        .report(report)
        .run_checked()
}

/// `qemu-img convert`: the image `from` (format `from_format`, its whole
/// chain) written whole as `to` (format `to_format`).
pub(crate) fn convert(
    from: &Path,
    from_format: &str,
    to: &Path,
    to_format: &str,
    report: &dyn Report,
) -> Result<()> {
    Cmd::new("qemu-img")
        .args(["convert", "-f", from_format, "-O", to_format])
        .arg(from)
        .arg(to)
        .report(report)
        .run_checked()
}

/// `qemu-img rebase` (safe mode): the qcow2 image `image` made to stand
/// on `backing` (format `backing_format`), the data that differs copied
/// into it first.
pub(crate) fn rebase(
    image: &Path,
    backing: &Path,
    backing_format: &str,
    report: &dyn Report,
) -> Result<()> {
    Cmd::new("qemu-img")
        .args(["rebase", "-q", "-f", "qcow2", "-F", backing_format, "-b"])
        .arg(backing)
        .arg(image)
        .report(report)
        .run_checked()
}

/// An image's virtual size, in bytes (`qemu-img info -U`: read without
/// its lock, so also of a running machine's disk). Errors: qemu-img's, or
/// an answer without the size (1).
pub(crate) fn virtual_size(image: &Path, report: &dyn Report) -> Result<u64> {
    let out = Cmd::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(image)
        .report(report)
        .output_checked()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::Other(format!("qemu-img info {}: {e}", image.display())))?;
    v["virtual-size"].as_u64().ok_or_else(|| {
        Error::Other(format!(
            "qemu-img info {}: no virtual-size",
            image.display()
        ))
    })
}
