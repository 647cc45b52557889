//! The members of a bundle by name, and the limits on its metadata ones:
//! what every part of `bundle/` (writing, reading, meta.json's checks, the
//! provenance) names, below them all.

pub const META: &str = "meta.json";
pub const SIGNATURE: &str = "meta.json.asc";
pub const ROOTFS: &str = "rootfs.tar.zst";
pub const CONF: &str = "conf";

/// Limits on the metadata members, so a hostile bundle cannot make a
/// reader hold a large file in memory before anything is checked.
pub const META_MAX: u64 = 4 << 20;
pub const SIGNATURE_MAX: u64 = 64 << 10;
