//! mkve-vm(1): machines from bundles, through libvirt.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

mod cli;
mod show;
use cli::{Cli, Command};
use mkve_core::vm;
use mkve_core::{exec, Error, Result};

fn main() -> ExitCode {
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .completer("mkve-vm")
        .complete();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => mkve_core::error::report("mkve-vm", &e),
    }
}

fn run(cli: Cli) -> Result<()> {
    exec::set_quiet(cli.quiet);
    exec::set_verbose(cli.verbose);
    let uris = vm::uris(cli.connect.as_deref());
    match cli.command {
        Command::Create(args) => {
            let print_xml = args.print_xml;
            let opts = args.options(cli.connect)?;
            if print_xml {
                print!("{}", vm::print_xml(&opts)?);
            } else {
                println!("{}", vm::create(&opts)?);
            }
        }
        Command::Start { machine } => vm::start(&uris, &machine)?,
        Command::Console { machine, force } => vm::console(&uris, &machine, force)?,
        Command::Stop { machine, force } => vm::stop(&uris, &machine, force)?,
        Command::Reboot { machine } => vm::reboot(&uris, &machine)?,
        Command::ProbeKvm => mkve_core::kvm::probe().map_err(Error::Other)?,
        Command::Doctor { json } => {
            let exe = std::env::current_exe().map_err(|e| Error::io("/proc/self/exe", e))?;
            let caps = vm::doctor(cli.connect.as_deref(), || {
                mkve_core::kvm::answers(&exe, "__probe-kvm", std::time::Duration::from_secs(5))
            });
            show::doctor(&caps, json)?
        }
        Command::Delete { machine } => {
            vm::delete(&uris, &machine)?;
        }
        Command::Autostart { machine, off } => vm::autostart(&uris, &machine, !off)?,
        Command::Info { machine, json } => show::info(&vm::info(&uris, &machine)?, json)?,
        Command::List { json } => show::list(&vm::list(&uris)?, json)?,
    }
    Ok(())
}
