//! mkve-cache(1), also installed as hsh-pack: build a root with the
//! distribution's own tool, copy files in, run hooks and commands in it,
//! and pack it; or only pack an existing root.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

mod cli;
use cli::Cli;
use mkve_core::hooks::Step;
use mkve_core::pack::Compression;
use mkve_core::root::job::{self, Job, Target};
use mkve_core::root::{CachePolicy, RootSpec};
use mkve_core::{exec, Result};

fn main() -> ExitCode {
    // Completes as mkve-cache or as hsh-pack, whichever name it runs under.
    let name = cli::name();
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .bin(name.clone())
        .completer(name)
        .complete();
    let matches = Cli::command().get_matches();
    let result = Cli::from_arg_matches(&matches)
        .map_err(|e| e.exit())
        .and_then(|cli| {
            let steps = cli::ordered_steps(&matches, &cli)?;
            run(cli, steps)
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => mkve_core::error::report("mkve-cache", &e),
    }
}

fn run(cli: Cli, steps: Vec<Step>) -> Result<()> {
    exec::set_verbose(cli.verbose);
    exec::set_quiet(cli.quiet);
    let compression = match (cli.gzip, cli.zstd) {
        (true, _) => Compression::Gzip,
        (_, true) => Compression::Zstd,
        _ => Compression::None,
    };
    let out = cli
        .out
        .clone()
        .unwrap_or_else(|| job::default_output(compression));
    if let Some(root) = &cli.tarify_only {
        job::tarify(root, &out, compression)?;
    } else {
        let target = match &cli.dir {
            Some(d) => Target::Dir(d.clone()),
            None => Target::Archive {
                path: out.clone(),
                compression,
            },
        };
        let policy = match (cli.no_cache, cli.refresh) {
            (true, _) => CachePolicy::Skip,
            (_, true) => CachePolicy::Refresh,
            _ => CachePolicy::Use,
        };
        let spec = RootSpec {
            suite: cli.suite.clone(),
            mirrors: cli.mirror.clone(),
            arch: cli.arch.clone(),
            variant: cli.variant.clone(),
            packages: cli.packages.clone(),
        };
        job::run(&Job {
            backend: cli.backend.clone(),
            spec,
            policy,
            steps,
            target,
        })?;
    }
    let result = cli.dir.unwrap_or(out);
    if result.as_os_str() != "-" {
        println!("{}", result.display());
    }
    Ok(())
}
