//! What mkve-web was started with: the command line's choices, made into
//! one value every part reads (the connection, the keyring, whether a
//! login is asked, where its files live).

use std::path::PathBuf;

use mkve_core::vm::{self, Uris};
use mkve_core::Result;

/// What mkve-web was started with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where machines are looked for (`-c`, else every hypervisor's
    /// default URI).
    pub uris: Uris,
    /// `-c`: the URI creates and the network use, when given.
    pub connect: Option<String>,
    /// Keyring bundles are verified against; `None`: `$MKVE_CONFDIR/trusted.gpg`.
    pub keyring: Option<PathBuf>,
    /// Whether a login is asked (listening on an address that is not
    /// loopback).
    pub login: bool,
    /// Members of this group may log in, and root.
    pub group: String,
    /// Served over TLS: cookies are `Secure`.
    pub tls: bool,
    /// The largest upload, in bytes.
    pub max_upload: u64,
    /// Where uploads and the action log live (`$MKVE_STATEDIR/web`).
    pub dir: PathBuf,
    /// Nothing but errors on stderr (`-q`).
    pub quiet: bool,
    /// What creates give libvirt, and the programs' output, on stderr (`-v`).
    pub verbose: bool,
    /// `--feed`: the vulnerability feed machines are audited against
    /// (`audits.rs`); `None`: no audit shown.
    pub feed: Option<PathBuf>,
    /// `--publish-dir`: where packed bundles may be published
    /// (`mkve-bundle --publish`'s directory); `None`: not offered.
    pub publish_dir: Option<PathBuf>,
}

impl Config {
    /// The keyring bundles are checked against: `--keyring`, or
    /// `$MKVE_CONFDIR/trusted.gpg`.
    pub fn keyring(&self) -> PathBuf {
        self.keyring
            .clone()
            .unwrap_or_else(mkve_core::paths::default_keyring)
    }

    /// A configuration for `uris`, with mkve's defaults: no login, no
    /// TLS, group `mkve`, uploads up to 16 GiB, files in
    /// `$MKVE_STATEDIR/web`.
    pub fn new(uris: Uris) -> Config {
        Config {
            uris,
            connect: None,
            keyring: None,
            login: false,
            group: "mkve".into(),
            tls: false,
            max_upload: 16 << 30,
            dir: mkve_core::paths::statedir().join("web"),
            quiet: true,
            verbose: false,
            feed: None,
            publish_dir: None,
        }
    }
}

/// `vm::uris` for `-c`, as the CLI makes them. Errors: mkve.conf is
/// unsound (65), as for the CLI.
pub fn uris_for(connect: Option<&str>) -> Result<Uris> {
    vm::uris(connect)
}
