//! mkve-web's command line: where it listens, TLS, who may log in, the
//! keyring and the upload cap. Every value is checked while it is parsed
//! (exit 2), before anything listens.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::Parser;
use mkve_cli::{Connect, Verbosity};

/// The web front-end of an mkve node: machines, create, console, network, log.
#[derive(Parser, Debug)]
#[command(name = "mkve-web", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub connect: Connect,
    #[command(flatten)]
    pub verbosity: Verbosity,
    /// Where to listen: ADDR:PORT, or unix:PATH (root only); an address that is not loopback asks for a login
    #[arg(
        long,
        value_name = "ADDR:PORT|unix:PATH",
        default_value = "unix:/run/mkve-web.sock"
    )]
    pub listen: Listen,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Members of GROUP may log in (root always may)
    #[arg(long, value_name = "GROUP", default_value = "mkve")]
    pub group: String,
    /// Keyring bundles' signatures must come from [default: $MKVE_CONFDIR/trusted.gpg]
    #[arg(long, value_name = "FILE")]
    pub keyring: Option<PathBuf>,
    /// Show each machine's open vulnerabilities: the SBOM of its bundle against this feed (debsecan's format, a file; decisions in $MKVE_CONFDIR/accepted)
    #[arg(long, value_name = "FILE")]
    pub feed: Option<PathBuf>,
    /// Offer to publish packed bundles into DIR, as mkve-bundle --publish does (DIR's SHA256SUMS signed by this node's GnuPG key)
    #[arg(long, value_name = "DIR")]
    pub publish_dir: Option<PathBuf>,
    /// Refuse an uploaded bundle larger than SIZE, as 512M or 8G
    #[arg(long, value_name = "SIZE", default_value = "16G")]
    pub max_upload: ByteSize,
}

/// Where mkve-web listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A Unix socket, made mode 0600 (root's).
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl Listen {
    /// Whether only this node reaches it (a Unix socket, a loopback
    /// address): then no login is asked.
    pub fn is_local(&self) -> bool {
        match self {
            Listen::Unix(_) => true,
            Listen::Tcp(a) => a.ip().is_loopback(),
        }
    }
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Listen, String> {
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err("unix: needs a path, as unix:/run/mkve-web.sock".into());
            }
            return Ok(Listen::Unix(PathBuf::from(p)));
        }
        s.parse().map(Listen::Tcp).map_err(|_| {
            format!("\"{s}\" is neither ADDR:PORT (127.0.0.1:8080, [::1]:8080) nor unix:PATH")
        })
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
            Listen::Tcp(a) => write!(f, "{a}"),
        }
    }
}

/// A size in bytes, written as 512M, 8G or 1T (binary units; a bare
/// number is bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<ByteSize, String> {
        let bad = || format!("\"{s}\" is not a size (as 512M, 8G)");
        let (num, shift) = match s.char_indices().last() {
            Some((i, 'K' | 'k')) => (&s[..i], 10),
            Some((i, 'M' | 'm')) => (&s[..i], 20),
            Some((i, 'G' | 'g')) => (&s[..i], 30),
            Some((i, 'T' | 't')) => (&s[..i], 40),
            _ => (s, 0),
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        let bytes = n.checked_mul(1u64 << shift).ok_or_else(bad)?;
        if bytes == 0 {
            return Err(format!("\"{s}\": the size must be above 0"));
        }
        Ok(ByteSize(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_an_address_or_a_socket() {
        assert_eq!(
            "unix:/run/x.sock".parse::<Listen>().unwrap(),
            Listen::Unix("/run/x.sock".into())
        );
        let l: Listen = "127.0.0.1:8080".parse().unwrap();
        assert!(l.is_local());
        assert!("[::1]:8080".parse::<Listen>().unwrap().is_local());
        assert!(!"0.0.0.0:8080".parse::<Listen>().unwrap().is_local());
        assert!(!"192.0.2.1:443".parse::<Listen>().unwrap().is_local());
        assert!("localhost:8080".parse::<Listen>().is_err());
        assert!("unix:".parse::<Listen>().is_err());
    }

    #[test]
    fn sizes_are_binary() {
        assert_eq!("512M".parse::<ByteSize>().unwrap().0, 512 << 20);
        assert_eq!("8G".parse::<ByteSize>().unwrap().0, 8 << 30);
        assert_eq!("100".parse::<ByteSize>().unwrap().0, 100);
        assert!("0".parse::<ByteSize>().is_err());
        assert!("G".parse::<ByteSize>().is_err());
        assert!("99999999999T".parse::<ByteSize>().is_err());
    }
}
