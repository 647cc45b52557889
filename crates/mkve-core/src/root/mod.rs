//! Build roots: a directory holding an installed system, made by the
//! distribution's own tool behind one `Backend` interface (mmdebstrap on
//! Debian, hasher on ALT), and kept in a package-layer cache so a rebuild
//! with the same package set installs nothing.
//!
//! What happens after the packages are installed (hooks, commands, copies,
//! packing) is not here: see `hooks.rs` and `pack.rs`.

mod cache;
mod hasher;
pub mod index;
pub mod job;
mod mmdebstrap;

use std::path::Path;

use serde::Serialize;

pub use cache::{layer, CachePolicy, Layer};
pub use hasher::Hasher;
pub use mmdebstrap::Mmdebstrap;

use crate::error::{Error, Result};
use crate::exec::Report;

/// What to install, and from where. `None` means the backend's default,
/// which for mmdebstrap is the host's own: its release, its apt sources,
/// its architecture.
#[derive(Debug, Clone, Default)]
pub struct RootSpec {
    pub suite: Option<String>,
    pub mirrors: Vec<String>,
    pub arch: Option<String>,
    pub variant: Option<String>,
    pub packages: Vec<String>,
}

/// A `RootSpec` with every default filled in; it is also the cache key, so
/// everything that changes the installed root must be in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    pub backend: String,
    /// The backend's way of building, numbered: a change to it (new tool
    /// options, say) changes every key, so old layers are not reused.
    pub recipe: u32,
    pub suite: String,
    /// Mirror URIs or the contents of apt source files, as given to the tool.
    pub mirrors: Vec<String>,
    pub arch: String,
    pub variant: String,
    /// Sorted, each once.
    pub packages: Vec<String>,
}

impl Resolved {
    /// The cache key: sha256 of the canonical JSON of the resolved spec.
    pub fn key(&self) -> Result<String> {
        use sha2::Digest;
        let json = serde_json::to_vec(self).map_err(|e| Error::Other(e.to_string()))?;
        Ok(crate::digest::hex(&sha2::Sha256::digest(json)))
    }
}

/// Files mmdebstrap copies from the build host into a root (its host
/// name, its resolver): hooks may use them while they run, but they never
/// go into what is packed; a machine gets its own at create.
pub const BUILD_HOST_FILES: &[&str] = &["etc/hostname", "etc/resolv.conf"];

/// `PackOptions` for a root built from packages: `BUILD_HOST_FILES` left
/// out.
pub fn pack_options() -> crate::pack::PackOptions {
    crate::pack::PackOptions {
        exclude: BUILD_HOST_FILES.iter().map(Into::into).collect(),
        ..crate::pack::PackOptions::from_env()
    }
}

pub trait Backend {
    fn name(&self) -> &'static str;
    /// Fill in the defaults.
    fn resolve(&self, spec: &RootSpec) -> Result<Resolved>;
    /// Packages that certainly do not exist, when that can be told at once
    /// (before any download); an empty list when it cannot be told.
    fn unknown_packages(&self, resolved: &Resolved) -> Vec<String>;
    /// Install `resolved` into `target`, which does not exist yet. Downloaded
    /// packages are kept in `debs` and reused from there.
    fn build(
        &self,
        resolved: &Resolved,
        target: &Path,
        debs: &Path,
        report: &dyn Report,
    ) -> Result<()>;
}

/// The backend for this system: mmdebstrap where `/etc/debian_version`
/// exists, hasher on ALT; `name` chooses one explicitly.
pub fn backend(name: Option<&str>) -> Result<Box<dyn Backend>> {
    match name {
        Some("mmdebstrap") => Ok(Box::new(Mmdebstrap)),
        Some("hasher") => Ok(Box::new(Hasher::default())),
        Some(other) => Err(Error::Usage(format!(
            "unknown backend \"{other}\" (known: mmdebstrap, hasher)"
        ))),
        None if Path::new("/etc/debian_version").exists() => Ok(Box::new(Mmdebstrap)),
        None if Path::new("/etc/altlinux-release").exists() => Ok(Box::new(Hasher::default())),
        None => Err(Error::Unavailable {
            what: "build root".into(),
            why: "neither Debian (mmdebstrap) nor ALT (hasher) here: choose one with --backend"
                .into(),
        }),
    }
}

/// Sorted, each once.
pub fn package_set<I: IntoIterator<Item = S>, S: Into<String>>(packages: I) -> Vec<String> {
    let mut v: Vec<String> = packages.into_iter().map(Into::into).collect();
    v.sort();
    v.dedup();
    v
}
