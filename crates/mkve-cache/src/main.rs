//! mkve-cache(1), also installed as hsh-pack: build a root with the
//! distribution's own tool, copy files in, run hooks and commands in it,
//! and pack it; or only pack an existing root.

mod cli;

use std::process::ExitCode;

use cli::Cli;
use mkve_core::pack::Compression;
use mkve_core::root::job::{self, Job, Target};
use mkve_core::Result;

fn main() -> ExitCode {
    mkve_cli::main("mkve-cache", run)
}

fn run(cli: Cli, matches: &clap::ArgMatches) -> Result<()> {
    let report = cli.verbosity.term();
    let compression = match (cli.gzip, cli.zstd) {
        (true, _) => Compression::Gzip,
        (_, true) => Compression::Zstd,
        _ => Compression::None,
    };
    let out = cli
        .out
        .clone()
        .unwrap_or_else(|| job::default_output(compression));
    let target = match (&cli.tarify_only, &cli.dir) {
        (Some(root), _) => {
            return job::tarify(root, &out, compression, &report).and_then(|()| show(&out))
        }
        (None, Some(d)) => Target::Dir(d.clone()),
        (None, None) => Target::Archive {
            path: out.clone(),
            compression,
        },
    };
    let job = Job {
        backend: cli.root.backend.clone(),
        spec: cli.root.spec(cli.packages.clone()),
        policy: cli.root.policy(),
        steps: cli::ordered_steps(&cli, matches)?,
        target,
    };
    job::run(&job, &report)?;
    show(cli.dir.as_ref().unwrap_or(&out))
}

/// The result's path, unless it went to stdout.
fn show(result: &std::path::Path) -> Result<()> {
    if mkve_cli::is_dash(result) {
        return Ok(());
    }
    mkve_cli::outln!("{}", result.display())
}
