//! mkve-cache(1), also installed as hsh-pack: build a root with the
//! distribution's own tool, copy files in, run hooks and commands in it,
//! and pack it; or only pack an existing root.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};
use mkve_core::hooks::Step;
use mkve_core::pack::Compression;
use mkve_core::root::job::{self, Job, Target};
use mkve_core::root::{CachePolicy, RootSpec};
use mkve_core::{exec, Error, Result};

/// Build a root with the given packages, change it, and pack it.
///
/// --copy, --hook and --command run inside the root in the order given.
#[derive(Parser, Debug)]
#[command(name = "mkve-cache", version, max_term_width = 100)]
struct Cli {
    /// Packages to install
    #[arg(value_name = "PKG", required_unless_present = "tarify_only")]
    packages: Vec<String>,
    /// Write the archive to FILE; - is stdout [default: $TMPDIR/output.tar[.gz|.zst]]
    #[arg(short, long, value_name = "FILE", alias = "output")]
    out: Option<PathBuf>,
    /// Compress with gzip
    #[arg(short = 'z', long = "gzip", conflicts_with = "zstd")]
    gzip: bool,
    /// Compress with zstd
    #[arg(long)]
    zstd: bool,
    /// Leave the root as the new directory DIR instead of packing it
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "gzip", "zstd"])]
    dir: Option<PathBuf>,
    /// Run a shell command inside the root (sh -c)
    #[arg(short, long = "command", value_name = "CMD")]
    command: Vec<String>,
    /// Copy a host file or directory into the root
    #[arg(long, value_name = "SRC:DEST")]
    copy: Vec<String>,
    /// Run a host executable inside the root
    #[arg(long, value_name = "FILE")]
    hook: Vec<PathBuf>,
    /// Only pack ROOT, an existing root (or a hasher work directory)
    #[arg(long, value_name = "ROOT", conflicts_with_all = ["packages", "command", "copy", "hook", "dir"])]
    tarify_only: Option<PathBuf>,
    /// Release to install [default: the host's]
    #[arg(long)]
    suite: Option<String>,
    /// Mirror URI, apt sources line or file (repeatable) [default: the host's apt sources]
    #[arg(long, value_name = "MIRROR")]
    mirror: Vec<String>,
    /// Architecture [default: the host's]
    #[arg(long)]
    arch: Option<String>,
    /// mmdebstrap variant [default: minbase]
    #[arg(long)]
    variant: Option<String>,
    /// Backend: mmdebstrap or hasher [default: by the host's distribution]
    #[arg(long)]
    backend: Option<String>,
    /// Do not use or fill the package-layer cache
    #[arg(long, conflicts_with = "refresh")]
    no_cache: bool,
    /// Build the package layer again and replace the cached one
    #[arg(long)]
    refresh: bool,
    /// Show the commands run and the tools' own output
    #[arg(short, long)]
    verbose: bool,
    /// No progress lines
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    // Completes as mkve-cache or as hsh-pack, whichever name it runs under.
    let name = std::env::args_os()
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
        .unwrap_or_else(|| "mkve-cache".into());
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .bin(name.clone())
        .completer(name)
        .complete();
    let matches = Cli::command().get_matches();
    let result = Cli::from_arg_matches(&matches)
        .map_err(|e| e.exit())
        .and_then(|cli| {
            let steps = ordered_steps(&matches, &cli)?;
            run(cli, steps)
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => mkve_core::error::report("mkve-cache", &e),
    }
}

/// --copy, --hook and --command in the order they were given.
fn ordered_steps(m: &clap::ArgMatches, cli: &Cli) -> Result<Vec<Step>> {
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
