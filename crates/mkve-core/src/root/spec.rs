//! A root as asked for ([`RootSpec`]), as a backend resolves it with its
//! defaults filled in ([`ResolvedSpec`], also the layer cache's key), and the
//! [`Backend`] interface each distribution's tool is behind: what
//! `mmdebstrap.rs`, `hasher.rs` and the cache all share, below them.

use std::path::Path;

use serde::Serialize;

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
pub struct ResolvedSpec {
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

impl ResolvedSpec {
    /// The cache key: sha256 of the canonical JSON of the resolved spec.
    pub fn key(&self) -> Result<String> {
        use sha2::Digest;
        let json = serde_json::to_vec(self).map_err(|e| Error::Other(e.to_string()))?;
        Ok(crate::digest::hex(&sha2::Sha256::digest(json)))
    }
}

/// A distribution's tool for building roots.
pub trait Backend {
    fn name(&self) -> &'static str;
    /// Fill in the defaults.
    fn resolve(&self, spec: &RootSpec) -> Result<ResolvedSpec>;
    /// Packages that certainly do not exist, when that can be told at once
    /// (before any download); an empty list when it cannot be told.
    fn unknown_packages(&self, resolved: &ResolvedSpec) -> Vec<String>;
    /// Install `resolved` into `target`, which does not exist yet. Downloaded
    /// packages are kept in `debs` and reused from there.
    fn build(
        &self,
        resolved: &ResolvedSpec,
        target: &Path,
        debs: &Path,
        report: &dyn Report,
    ) -> Result<()>;
}

/// Sorted, each once.
pub fn package_set<I: IntoIterator<Item = S>, S: Into<String>>(packages: I) -> Vec<String> {
    let mut v: Vec<String> = packages.into_iter().map(Into::into).collect();
    v.sort();
    v.dedup();
    v
}
