//! mkve-net's command line.

use clap::{Parser, Subcommand};
use mkve_cli::{Connect, Verbosity};
use mkve_core::ids::MachineId;

/// Manage the libvirt network of mkve machines (mkve-network on mkvebr0,
/// 192.0.2.1/24 unless $MKVE_CONFDIR/mkve.conf says otherwise).
#[derive(Parser, Debug)]
#[command(name = "mkve-net", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub connect: Connect,
    #[command(flatten)]
    pub verbosity: Verbosity,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
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
    /// Make the network's prefix a Ganeti network (its pool gives instances their addresses, those below ID 100 reserved) bridged to the network's bridge; on the cluster's master
    GanetiConnect {
        /// The Ganeti network's name
        #[arg(long, value_name = "NAME", default_value = "mkve")]
        name: String,
        /// The node group it is connected to
        #[arg(long, value_name = "GROUP", default_value = "default")]
        group: String,
        /// Print the gnt-network commands and run none
        #[arg(long)]
        dry_run: bool,
        /// As JSON: {"commands": [[…]], "reserved": […]}
        #[arg(long)]
        json: bool,
    },
    /// Print the address of the machine with this ID
    Ip {
        /// The machine's ID
        id: MachineId,
        /// As JSON: {"id": ID, "address": "…"}
        #[arg(long)]
        json: bool,
    },
}
