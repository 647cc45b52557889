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
mod spec;

use std::path::Path;

pub use cache::{layer, CachePolicy, Layer};
pub use hasher::Hasher;
pub use mmdebstrap::Mmdebstrap;
pub use spec::{package_set, Backend, ResolvedSpec, RootSpec};

use crate::error::{Error, Result};

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

/// A build-root backend by name (`--backend`, the `backend` variable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendName {
    /// Debian's mmdebstrap.
    Mmdebstrap,
    /// ALT's hasher.
    Hasher,
}

impl BackendName {
    /// Every backend, as `--backend` names it.
    pub const ALL: [BackendName; 2] = [BackendName::Mmdebstrap, BackendName::Hasher];

    pub fn as_str(self) -> &'static str {
        match self {
            BackendName::Mmdebstrap => "mmdebstrap",
            BackendName::Hasher => "hasher",
        }
    }
}

impl std::fmt::Display for BackendName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BackendName {
    type Err = String;

    /// Errors: a name that is none of them, naming them.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|b| b.as_str() == s)
            .ok_or_else(|| format!("unknown backend \"{s}\" (known: mmdebstrap, hasher)"))
    }
}

/// The backend for this system: mmdebstrap where `/etc/debian_version`
/// exists, hasher on ALT; `name` chooses one explicitly. Errors: neither
/// system, and no name (69).
pub fn backend(name: Option<BackendName>) -> Result<Box<dyn Backend>> {
    match name {
        Some(BackendName::Mmdebstrap) => Ok(Box::new(Mmdebstrap)),
        Some(BackendName::Hasher) => Ok(Box::new(Hasher::default())),
        None if Path::new("/etc/debian_version").exists() => Ok(Box::new(Mmdebstrap)),
        None if Path::new("/etc/altlinux-release").exists() => Ok(Box::new(Hasher::default())),
        None => Err(Error::Unavailable {
            what: "build root".into(),
            why: "neither Debian (mmdebstrap) nor ALT (hasher) here: choose one with --backend"
                .into(),
        }),
    }
}
