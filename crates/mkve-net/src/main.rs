//! mkve-net(1): the libvirt network mkve's machines live on.

mod cli;
mod show;

use std::process::ExitCode;

use cli::{Cli, Command};
use mkve_core::libvirt::{self, network};
use mkve_core::Result;

fn main() -> ExitCode {
    mkve_cli::main("mkve-net", |cli: Cli, _| run(cli))
}

fn run(cli: Cli) -> Result<()> {
    let report = cli.verbosity.term();
    let cfg = mkve_core::nodes::network()?;
    let uri = mkve_core::nodes::Connections::resolve(cli.connect.uri.as_deref())?.network();
    let conn = || libvirt::connect(&uri);
    match cli.command {
        // These need no libvirt.
        Command::Create { print_xml: true } => mkve_cli::out!("{}", network::xml(&cfg)),
        Command::Ip { id, json } => show::ip(id, cfg.address_of(id.get())?, json),
        Command::GanetiConnect {
            name,
            group,
            dry_run,
            json,
        } => show::ganeti(
            &mkve_core::ganeti_net::connect(&cfg, &name, &group, dry_run, &report)?,
            dry_run,
            json,
        ),
        Command::Create { .. } => network::create(&conn()?, &cfg, &report),
        Command::Delete { force } => network::delete(&conn()?, &cfg, force),
        Command::Start => network::start(&conn()?, &cfg),
        Command::Stop => network::stop(&conn()?, &cfg),
        Command::Status { json } => {
            let conn = conn()?;
            let machines = mkve_core::ids::used_on_node(&conn)?;
            show::status(&network::status(&conn, &cfg)?, &machines, json)
        }
    }
}
