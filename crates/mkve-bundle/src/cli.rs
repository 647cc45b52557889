//! mkve-bundle's command line: the clap definitions and the candidates
//! shell completion offers. The config file's variables are derived from
//! these definitions (config.rs).

use std::path::PathBuf;

use clap::Parser;
use clap_complete::engine::{
    ArgValueCandidates, ArgValueCompleter, CompletionCandidate, ValueCompleter,
};
use mkve_cli::{KeyringArgs, RootArgs, Verbosity};
use mkve_core::hypervisor::Hypervisor;

/// Make a bundle from an mkve template, or check, inspect, verify and unpack bundles.
///
/// Options not given on the command line are read from ~/.mkve/bundle-config,
/// a bash program whose variables are named like the options (force_no_sign=yes).
#[derive(Parser, Debug)]
#[command(name = "mkve-bundle", version, max_term_width = 100)]
pub struct Cli {
    /// Template: a directory, or a name under $MKVE_DATADIR/templates
    #[arg(add = ArgValueCompleter::new(complete_template))]
    pub template: Option<String>,
    /// Hypervisor to build for (openvz, qemu, kvm, lxc, xen)
    #[arg(short = 'H', long, value_name = "HV", add = ArgValueCandidates::new(mkve_cli::hypervisors))]
    pub hypervisor: Option<Hypervisor>,
    /// Write the bundle to FILE; - is stdout
    #[arg(short, long, value_name = "FILE", alias = "out")]
    pub output: Option<PathBuf>,
    /// Look for hooks here after the template's hooks/ [default: $MKVE_DATADIR/hooks]
    #[arg(long, value_name = "DIR")]
    pub hooks: Option<PathBuf>,
    /// Use this root (directory, tar, tar.gz, tar.zst, or - for a tar on stdin)
    /// instead of building one from the template's packages
    #[arg(long, value_name = "PATH")]
    pub rootfs: Option<PathBuf>,
    /// Build a bundle for every hypervisor the template lists, as DIR/NAME-HV.bun
    #[arg(long, requires = "output_dir", conflicts_with_all = ["hypervisor", "output"])]
    pub all_hypervisors: bool,
    /// Directory for --all-hypervisors
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Do not sign meta.json
    #[arg(long)]
    pub force_no_sign: bool,
    /// Sign with this key [default: GnuPG's default key]
    #[arg(long, value_name = "KEYID", conflicts_with = "force_no_sign")]
    pub sign_key: Option<String>,
    /// Check the template and build nothing
    #[arg(long, group = "mode")]
    pub check: bool,
    /// Print a bundle's meta.json and signature status as JSON
    #[arg(long, value_name = "BUNDLE", group = "mode")]
    pub info: Option<PathBuf>,
    /// Check a bundle's signature and every digest
    #[arg(long, value_name = "BUNDLE", group = "mode")]
    pub verify: Option<PathBuf>,
    /// Print a bundle's SBOM (FORMAT spdx: SPDX 2.3 JSON as signed; cyclonedx: CycloneDX 1.5 JSON), its signature checked as --verify checks it
    #[arg(long, value_names = ["FORMAT", "BUNDLE"], num_args = 2, group = "mode")]
    pub sbom: Vec<PathBuf>,
    /// Audit bundles offline: the vulnerabilities of their SBOM's packages that --feed lists; exit 1 when one is open
    #[arg(long, value_name = "BUNDLE", num_args = 1.., group = "mode")]
    pub audit: Vec<PathBuf>,
    /// With --audit: Debian's security tracker data for the bundles' suite, in debsecan's format (a file, or an http:// or https:// URL)
    #[arg(long, value_name = "FILE|URL")]
    pub feed: Option<String>,
    /// With --audit: the decisions that hide accepted vulnerabilities [default: $MKVE_CONFDIR/accepted]
    #[arg(long, value_name = "FILE")]
    pub accepted: Option<PathBuf>,
    /// With --audit: print the findings as a JSON array; with --outdated: what it found as a JSON object
    #[arg(long)]
    pub json: bool,
    /// List the packages of a bundle's SBOM that --mirror has newer versions of (security updates marked); exit 1 when one is newer
    #[arg(long, value_name = "BUNDLE", group = "mode")]
    pub outdated: Option<PathBuf>,
    /// Verify a bundle and unpack it into the new directory given by -C
    #[arg(long, value_name = "BUNDLE", group = "mode", requires = "directory")]
    pub extract: Option<PathBuf>,
    /// Verify bundles and publish them in DIR, keeping its signed SHA256SUMS (for --fetch, mkve-vm create URL, machinectl pull-tar)
    #[arg(long, value_names = ["DIR", "BUNDLE"], num_args = 2.., group = "mode")]
    pub publish: Vec<PathBuf>,
    /// With --publish: sign the list as valid for this long (N followed by s, m, h, d or w: 7d); fetches refuse it after that
    #[arg(long, value_name = "DURATION")]
    pub valid_for: Option<ValidFor>,
    /// Download a published bundle (http:// or https://), checked against the signed SHA256SUMS beside it and verified, to -o FILE [default: its name, here]
    #[arg(long, value_name = "URL", group = "mode")]
    pub fetch: Option<String>,
    /// Directory to create for --extract
    #[arg(short = 'C', long, value_name = "DIR")]
    pub directory: Option<PathBuf>,
    #[command(flatten)]
    pub keys: KeyringArgs,
    /// Read defaults from FILE [default: ~/.mkve/bundle-config]
    #[arg(long, value_name = "FILE", conflicts_with = "no_config")]
    pub config: Option<PathBuf>,
    /// Read no config file
    #[arg(long)]
    pub no_config: bool,
    #[command(flatten)]
    pub verbosity: Verbosity,
    #[command(flatten)]
    pub root: RootArgs,
}

/// Shell completion: template names under $MKVE_DATADIR/templates, and
/// directories.
fn complete_template(current: &std::ffi::OsStr) -> Vec<CompletionCandidate> {
    let prefix = current.to_string_lossy();
    let mut out: Vec<CompletionCandidate> = mkve_core::template::shipped_names()
        .into_iter()
        .filter(|n| n.starts_with(prefix.as_ref()))
        .map(CompletionCandidate::new)
        .collect();
    out.extend(clap_complete::engine::PathCompleter::dir().complete(current));
    out
}

/// `--valid-for`: a number of seconds, minutes, hours, days or weeks
/// (`90m`, `7d`), 1 second to 100 years.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidFor(pub std::time::Duration);

impl std::str::FromStr for ValidFor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("\"{s}\": a number followed by s, m, h, d or w (7d)");
        let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
        let per: u64 = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return Err(bad()),
        };
        let n: u64 = n.parse().map_err(|_| bad())?;
        let secs = n
            .checked_mul(per)
            .filter(|t| (1..=100 * 365 * 86_400).contains(t));
        secs.map(|t| ValidFor(std::time::Duration::from_secs(t)))
            .ok_or_else(|| format!("\"{s}\": from 1 second to 100 years"))
    }
}
