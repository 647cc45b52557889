//! mkve-bundle(1): make a bundle from a template, check a template, or
//! inspect, verify and unpack a bundle.

mod cli;
mod config;
mod run;

use std::process::ExitCode;

use cli::Cli;

fn main() -> ExitCode {
    mkve_cli::main_with_argv("mkve-bundle", config::argv, |cli: Cli, _| run::run(cli))
}
