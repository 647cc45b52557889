//! Where mkve keeps things. Every directory can be moved by an environment
//! variable, so tests and unprivileged users never need /usr or /var.

use std::path::PathBuf;

fn dir(var: &str, default: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(default),
    }
}

/// `$MKVE_DATADIR`: templates/, hooks/, hypervisors/. The default is set
/// at build time (`make install PREFIX=…`).
pub fn datadir() -> PathBuf {
    dir(
        "MKVE_DATADIR",
        option_env!("MKVE_BUILD_DATADIR").unwrap_or("/usr/share/mkve"),
    )
}

/// `$MKVE_CONFDIR`: trusted.gpg, mkve.conf.
pub fn confdir() -> PathBuf {
    dir(
        "MKVE_CONFDIR",
        option_env!("MKVE_BUILD_CONFDIR").unwrap_or("/etc/mkve"),
    )
}

/// `$MKVE_STATEDIR`: VM disks and roots.
pub fn statedir() -> PathBuf {
    dir("MKVE_STATEDIR", "/var/lib/mkve")
}

/// `$MKVE_CACHEDIR`: package layers.
pub fn cachedir() -> PathBuf {
    dir("MKVE_CACHEDIR", "/var/cache/mkve")
}

/// `$MKVE_LOCKDIR`: lock files only (it is a tmpfs on most systems).
pub fn lockdir() -> PathBuf {
    dir("MKVE_LOCKDIR", "/var/lock/mkve")
}

pub fn templates_dir() -> PathBuf {
    datadir().join("templates")
}

pub fn default_hooks_dir() -> PathBuf {
    datadir().join("hooks")
}

/// The keyring bundles are verified against unless `--keyring` says otherwise.
pub fn default_keyring() -> PathBuf {
    confdir().join("trusted.gpg")
}

/// `~/.mkve/bundle-config`, or `None` without a home directory.
pub fn bundle_config() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".mkve/bundle-config"))
}
