//! Bundles uploaded for a create. An upload is streamed to disk as it
//! comes (never held in memory), under `--max-upload`, into a directory of
//! its own in `uploads/`, under the file name it was sent with; the
//! bundle's meta.json and signature are read at once (so the page can
//! offer what suits its hypervisor and ask for its template's
//! parameters). An upload waits an hour for its create; its directory goes
//! with it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mkve_core::bundle::{self, Check, ReadOptions};
use mkve_core::params::Param;
use mkve_core::sign::SigStatus;
use mkve_core::{Error, Result};
use tokio::io::AsyncWriteExt;

use crate::config::Config;

/// How long an upload waits for its create.
const UPLOAD_TTL: Duration = Duration::from_secs(3600);

/// An upload's directory in `uploads/`, removed with everything in it
/// when dropped: an upload refused, cut short or used leaves nothing.
struct UploadDir(PathBuf);

impl Drop for UploadDir {
    fn drop(&mut self) {
        let _ = mkve_core::scratch::remove_tree(&self.0);
    }
}

/// A bundle uploaded and read, waiting for its create options.
pub struct Upload {
    /// Its directory in `uploads/`, removed with it.
    #[allow(dead_code)]
    dir: UploadDir,
    /// The bundle's path on disk.
    pub path: PathBuf,
    /// The file name it was sent with.
    pub name: String,
    pub size: u64,
    pub meta: bundle::Meta,
    pub signature: SigStatus,
    pub params: Vec<Param>,
    at: Instant,
}

/// The file name an upload is kept under: the last part of what the
/// browser sent, in letters, digits and `._-` (others become `_`);
/// `bundle.bun` when nothing is left.
fn safe_name(sent: Option<&str>) -> String {
    let base = sent
        .unwrap_or("")
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect::<String>();
    let base = base.trim_start_matches('.');
    if base.is_empty() {
        "bundle.bun".into()
    } else {
        base.chars().take(200).collect()
    }
}

/// An upload in progress: the directory and file it is written to.
pub struct Incoming {
    dir: UploadDir,
    pub path: PathBuf,
    /// The file name it was sent with, made safe.
    pub name: String,
    size: u64,
}

/// Stream the multipart field `field` (the bundle) to a new directory in
/// `uploads/`, removed again if it fails. Errors: larger than the cap (2,
/// naming it), cut short or malformed (2), the disk full (73).
pub async fn receive(
    config: &Config,
    mut field: axum::extract::multipart::Field<'_>,
) -> Result<Incoming> {
    let uploads = config.dir.join("uploads");
    crate::files::private_dir(&uploads)?;
    let token = crate::auth::random_hex(16).map_err(Error::Other)?;
    let dir = uploads.join(&token);
    crate::files::private_dir(&dir)?;
    let dir = UploadDir(dir);
    let name = safe_name(field.file_name());
    let path = dir.0.join(&name);
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| Error::create(&path, e))?;
    let mut size: u64 = 0;
    let max = config.max_upload;
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| crate::request::multipart_error(&e))?
    {
        size += chunk.len() as u64;
        if size > max {
            return Err(Error::Usage(format!(
                "{name}: larger than the {} MiB an upload may be (mkve-web --max-upload)",
                max >> 20
            )));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| Error::io(&path, e))?;
    }
    file.flush().await.map_err(|e| Error::io(&path, e))?;
    Ok(Incoming {
        dir,
        path,
        name,
        size,
    })
}

/// The value of a form field other than the bundle, read whole up to
/// `request::FIELD_MAX` bytes. Errors (2): longer, cut short or malformed.
pub async fn field_value(
    mut field: axum::extract::multipart::Field<'_>,
    name: &str,
) -> Result<Vec<u8>> {
    let mut value = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| crate::request::multipart_error(&e))?
    {
        if value.len() + chunk.len() > crate::request::FIELD_MAX {
            return Err(Error::Usage(format!(
                "the field {name} is longer than {} bytes",
                crate::request::FIELD_MAX
            )));
        }
        value.extend_from_slice(&chunk);
    }
    Ok(value)
}

/// Read an upload's meta.json, signature and `conf/` members (its root is
/// read in the create): what the options page shows. Errors: not a bundle,
/// tampered meta.json or signature (65), its path reworded by the caller.
pub fn inspect(config: &Config, inc: Incoming) -> Result<Upload> {
    let keyring = config.keyring();
    let file = std::fs::File::open(&inc.path).map_err(|e| Error::io(&inc.path, e))?;
    let report = bundle::read(
        file,
        &inc.path,
        &ReadOptions {
            keyring: Some(&keyring),
            ..ReadOptions::lenient(Check::Conf)
        },
    )?;
    let params = report.declared_params(&inc.path)?;
    let Incoming {
        dir,
        path,
        name,
        size,
    } = inc;
    Ok(Upload {
        dir,
        path,
        name,
        size,
        meta: report.meta,
        signature: report.signature,
        params,
        at: Instant::now(),
    })
}

/// Forget uploads older than an hour (their files go with them).
pub fn sweep(uploads: &Mutex<HashMap<String, Upload>>) {
    if let Ok(mut m) = uploads.lock() {
        m.retain(|_, u| u.at.elapsed() < UPLOAD_TTL);
    }
}

/// Remove what earlier runs left in `uploads/` (a restart forgets them).
pub fn clear_uploads(dir: &Path) {
    let _ = mkve_core::scratch::remove_tree(&dir.join("uploads"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_uploads_stay_in_their_directory() {
        assert_eq!(safe_name(Some("ntp.bun")), "ntp.bun");
        assert_eq!(safe_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(safe_name(Some("C:\\x\\a b.bun")), "a_b.bun");
        assert_eq!(safe_name(Some("..")), "bundle.bun");
        assert_eq!(safe_name(Some(".hidden")), "hidden");
        assert_eq!(safe_name(None), "bundle.bun");
    }
}
