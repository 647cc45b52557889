//! mkve-vm(1): machines from bundles, through libvirt.

mod cli;
mod ganeti;
mod run;
mod show;

use std::process::ExitCode;

use cli::Cli;

fn main() -> ExitCode {
    mkve_cli::main("mkve-vm", |cli: Cli, _| run::run(cli))
}
