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
pub use spec::{package_set, Backend, Resolved, RootSpec};

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
