//! mkve-net(1): the libvirt network mkve's machines live on.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mkve_core::libvirt::{self, network};
use mkve_core::net::NetConfig;
use mkve_core::{Error, Result};

/// Manage the libvirt network of mkve machines (mkve-network on mkvebr0,
/// 192.0.2.1/24 unless $MKVE_CONFDIR/mkve.conf says otherwise).
#[derive(Parser, Debug)]
#[command(name = "mkve-net", version, max_term_width = 100)]
struct Cli {
    /// libvirt URI [default: $LIBVIRT_DEFAULT_URI, else qemu:///system]
    #[arg(short, long, global = true, value_name = "URI")]
    connect: Option<String>,
    /// Print nothing but what a command is for (status, ip)
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Tell the XML given to libvirt on stderr
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Define, start and autostart the network (again: nothing changes)
    Create {
        /// Print the network XML and touch nothing
        #[arg(long)]
        print_xml: bool,
    },
    /// Stop and undefine the network
    Delete {
        /// Even while machines still have addresses in it
        #[arg(long)]
        force: bool,
    },
    /// Start the network
    Start,
    /// Stop the network
    Stop,
    /// Show the network's state and its machines' entries
    Status {
        /// As JSON
        #[arg(long)]
        json: bool,
    },
    /// Print the address of the machine with this ID
    Ip {
        id: u32,
        /// As JSON: {"id": ID, "address": "…"}
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command)
        .completer("mkve-net")
        .complete();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => mkve_core::error::report("mkve-net", &e),
    }
}

fn run(cli: Cli) -> Result<()> {
    mkve_core::exec::set_quiet(cli.quiet);
    mkve_core::exec::set_verbose(cli.verbose);
    let cfg = NetConfig::load()?;
    // Commands that need no libvirt.
    match cli.command {
        Command::Create { print_xml: true } => {
            print!("{}", network::xml(&cfg));
            return Ok(());
        }
        Command::Ip { id, json } => {
            let address = cfg.address_of(id)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "id": id, "address": address.to_string() })
                );
            } else {
                println!("{address}");
            }
            return Ok(());
        }
        _ => {}
    }
    let conn = libvirt::connect(&libvirt::uri(cli.connect.as_deref(), "qemu:///system"))?;
    match cli.command {
        Command::Create { .. } => network::create(&conn, &cfg),
        Command::Delete { force } => network::delete(&conn, &cfg, force),
        Command::Start => network::start(&conn, &cfg),
        Command::Stop => network::stop(&conn, &cfg),
        Command::Status { json } => {
            let s = network::status(&conn, &cfg)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&s).map_err(|e| Error::Other(e.to_string()))?
                );
            } else {
                let state = match (s.defined, s.active) {
                    (false, _) => "undefined",
                    (true, true) => "active",
                    (true, false) => "inactive",
                };
                let yn = |b: bool| if b { "yes" } else { "no" };
                println!(
                    "name       {}\nstate      {state}\nautostart  {}",
                    s.name,
                    yn(s.autostart)
                );
                println!(
                    "bridge     {}\naddress    {}\nmachines   {}",
                    s.bridge,
                    s.address,
                    s.hosts.len()
                );
                for h in &s.hosts {
                    println!(
                        "  {:<6} {:<17} {}",
                        h.id.map_or("-".into(), |i| i.to_string()),
                        h.mac,
                        h.ip
                    );
                }
            }
            Ok(())
        }
        Command::Ip { .. } => unreachable!("answered above"),
    }
}
