//! mkve-cache's command line: the clap definitions, and the steps in the
//! order they were given.

use std::path::PathBuf;

use clap::Parser;

use mkve_cli::{RootArgs, Verbosity};
use mkve_core::hooks::Step;
use mkve_core::pack::Compression;
use mkve_core::root::job::{self, Job, Target};
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
    #[command(flatten)]
    pub verbosity: Verbosity,
    #[command(flatten)]
    pub root: RootArgs,
}

/// --copy, --hook and --command in the order they were given.
pub fn ordered_steps(cli: &Cli, m: &clap::ArgMatches) -> Result<Vec<Step>> {
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

/// What the command line asks for: a root to pack (`--tarify-only`), or a
/// root to build, change and leave or pack.
pub enum Task {
    Tarify {
        root: PathBuf,
        out: PathBuf,
        compression: Compression,
    },
    Build(Job),
}

impl Cli {
    /// The task, with --copy, --hook and --command in the order given.
    pub fn task(&self, m: &clap::ArgMatches) -> Result<Task> {
        let compression = match (self.gzip, self.zstd) {
            (true, _) => Compression::Gzip,
            (_, true) => Compression::Zstd,
            _ => Compression::None,
        };
        let out = self
            .out
            .clone()
            .unwrap_or_else(|| job::default_output(compression));
        if let Some(root) = &self.tarify_only {
            return Ok(Task::Tarify {
                root: root.clone(),
                out,
                compression,
            });
        }
        Ok(Task::Build(Job {
            backend: self.root.backend,
            spec: self.root.spec(self.packages.clone()),
            policy: self.root.policy(),
            steps: ordered_steps(self, m)?,
            target: match &self.dir {
                Some(d) => Target::Dir(d.clone()),
                None => Target::Archive {
                    path: out,
                    compression,
                },
            },
        }))
    }
}
