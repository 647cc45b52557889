//! mkve-cache's command line: the clap definitions, and the steps in the
//! order they were given.

use std::path::PathBuf;

use clap::Parser;

use mkve_core::hooks::Step;
use mkve_core::{Error, Result};

/// Build a root with the given packages, change it, and pack it.
///
/// --copy, --hook and --command run inside the root in the order given.
#[derive(Parser, Debug)]
#[command(name = "mkve-cache", version, max_term_width = 100)]
pub struct Cli {
    /// Packages to install
    #[arg(value_name = "PKG", required_unless_present = "tarify_only")]
    pub packages: Vec<String>,
    /// Write the archive to FILE; - is stdout [default: $TMPDIR/output.tar[.gz|.zst]]
    #[arg(short, long, value_name = "FILE", alias = "output")]
    pub out: Option<PathBuf>,
    /// Compress with gzip
    #[arg(short = 'z', long = "gzip", conflicts_with = "zstd")]
    pub gzip: bool,
    /// Compress with zstd
    #[arg(long)]
    pub zstd: bool,
    /// Leave the root as the new directory DIR instead of packing it
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "gzip", "zstd"])]
    pub dir: Option<PathBuf>,
    /// Run a shell command inside the root (sh -c)
    #[arg(short, long = "command", value_name = "CMD")]
    pub command: Vec<String>,
    /// Copy a host file or directory into the root
    #[arg(long, value_name = "SRC:DEST")]
    pub copy: Vec<String>,
    /// Run a host executable inside the root
    #[arg(long, value_name = "FILE")]
    pub hook: Vec<PathBuf>,
    /// Only pack ROOT, an existing root (or a hasher work directory)
    #[arg(long, value_name = "ROOT", conflicts_with_all = ["packages", "command", "copy", "hook", "dir"])]
    pub tarify_only: Option<PathBuf>,
    /// Release to install [default: the host's]
    #[arg(long)]
    pub suite: Option<String>,
    /// Mirror URI, apt sources line or file (repeatable) [default: the host's apt sources]
    #[arg(long, value_name = "MIRROR")]
    pub mirror: Vec<String>,
    /// Architecture [default: the host's]
    #[arg(long)]
    pub arch: Option<String>,
    /// mmdebstrap variant [default: minbase]
    #[arg(long)]
    pub variant: Option<String>,
    /// Backend: mmdebstrap or hasher [default: by the host's distribution]
    #[arg(long)]
    pub backend: Option<String>,
    /// Do not use or fill the package-layer cache
    #[arg(long, conflicts_with = "refresh")]
    pub no_cache: bool,
    /// Build the package layer again and replace the cached one
    #[arg(long)]
    pub refresh: bool,
    /// Show the commands run and the tools' own output
    #[arg(short, long)]
    pub verbose: bool,
    /// No progress lines
    #[arg(short, long)]
    pub quiet: bool,
}

/// --copy, --hook and --command in the order they were given.
pub fn ordered_steps(m: &clap::ArgMatches, cli: &Cli) -> Result<Vec<Step>> {
    let at = |id: &str| {
        m.indices_of(id)
            .map(|i| i.collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let mut steps: Vec<(usize, Step)> = Vec::new();
    for (i, c) in at("command").into_iter().zip(&cli.command) {
        steps.push((i, Step::Command(c.clone())));
    }
    for (i, h) in at("hook").into_iter().zip(&cli.hook) {
        steps.push((i, Step::Hook(h.clone())));
    }
    for (i, c) in at("copy").into_iter().zip(&cli.copy) {
        let (src, dest) = c
            .split_once(':')
            .ok_or_else(|| Error::Usage(format!("--copy {c}: expected SRC:DEST")))?;
        steps.push((
            i,
            Step::Copy {
                src: src.into(),
                dest: dest.into(),
            },
        ));
    }
    steps.sort_by_key(|(i, _)| *i);
    Ok(steps.into_iter().map(|(_, s)| s).collect())
}

/// The name to complete as: hsh-pack when run under that name.
pub fn name() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            Some(
                std::path::Path::new(&a)
                    .file_name()?
                    .to_string_lossy()
                    .into_owned(),
            )
        })
        .filter(|n| n == "hsh-pack")
        .unwrap_or_else(|| "mkve-cache".into())
}
