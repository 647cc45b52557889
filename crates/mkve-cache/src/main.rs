//! mkve-cache(1), also installed as hsh-pack: build a root with the
//! distribution's own tool, copy files in, run hooks and commands in it,
//! and pack it; or only pack an existing root.

mod cli;

use std::process::ExitCode;

use cli::{Cli, Task};
use mkve_core::root::job::{self, Target};
use mkve_core::Result;

fn main() -> ExitCode {
    mkve_cli::main("mkve-cache", |cli: Cli, m| run(cli.task(m)?, &cli))
}

/// Do the task; print the result's path unless it went to stdout.
fn run(task: Task, cli: &Cli) -> Result<()> {
    let report = cli.verbosity.term();
    let result = match task {
        Task::Tarify {
            root,
            out,
            compression,
        } => {
            job::tarify(&root, &out, compression, &report)?;
            out
        }
        Task::Build(j) => {
            job::run(&j, &report)?;
            match j.target {
                Target::Dir(d) => d,
                Target::Archive { path, .. } => path,
            }
        }
    };
    if mkve_cli::is_dash(&result) {
        return Ok(());
    }
    mkve_cli::outln!("{}", result.display())
}
