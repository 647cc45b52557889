//! mkve-vm(1): machines from bundles, through libvirt.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};

mod show;
use mkve_core::template::Hypervisor;
use mkve_core::vm::{self, CreateOptions};
use mkve_core::{exec, Error, Result};

/// Create, start, stop, delete and list machines made from mkve bundles.
#[derive(Parser, Debug)]
#[command(name = "mkve-vm", version, max_term_width = 100)]
struct Cli {
    /// libvirt URI [default: $LIBVIRT_DEFAULT_URI, else each hypervisor's own]
    #[arg(short, long, global = true, value_name = "URI")]
    connect: Option<String>,
    /// No progress lines
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Tell the XML given to libvirt and the commands run, on stderr
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a machine from a bundle (- for stdin) and print its ID
    Create {
        /// The bundle: a file, or - for stdin
        bundle: PathBuf,
        /// Refuse a bundle for another hypervisor
        #[arg(short = 'H', long, value_name = "HV", add = ArgValueCandidates::new(hypervisors))]
        hypervisor: Option<Hypervisor>,
        /// Use this ID instead of the next free one
        #[arg(long)]
        id: Option<u32>,
        /// Domain name [default: TEMPLATE-ID]
        #[arg(long)]
        name: Option<String>,
        /// Memory, as 512M or 1G
        #[arg(long, value_name = "SIZE", default_value = "512M", value_parser = vm::parse_mib)]
        memory: u64,
        /// Virtual CPUs
        #[arg(long, value_name = "N", default_value_t = 1)]
        vcpus: u32,
        /// CPU weight (cgroup cpu shares)
        #[arg(long, value_name = "N")]
        cpu_shares: Option<u32>,
        /// Block I/O weight (cgroup blkio, 100 to 1000)
        #[arg(long, value_name = "N")]
        blkio_weight: Option<u32>,
        /// Keyring the bundle's signature must come from [default: $MKVE_CONFDIR/trusted.gpg]
        #[arg(long, value_name = "FILE")]
        keyring: Option<PathBuf>,
        /// Accept a bundle with no signature
        #[arg(long)]
        allow_unsigned: bool,
        /// Start the machine once created
        #[arg(long)]
        start: bool,
        /// Give qemu, kvm and xen guests a VNC display (on 127.0.0.1)
        #[arg(long)]
        vnc: bool,
        /// Print the domain XML that would be defined; take no ID, make nothing
        #[arg(long)]
        print_xml: bool,
        /// Set root's password to the first line of FILE (- for stdin)
        #[arg(long, value_name = "FILE")]
        root_password_file: Option<PathBuf>,
        /// Add the OpenSSH public keys in FILE to root's authorized_keys
        #[arg(long, value_name = "FILE")]
        ssh_key: Option<PathBuf>,
        /// Disk image format for qemu, kvm and xen: raw or qcow2
        #[arg(long, value_name = "FORMAT", default_value = "raw",
              add = ArgValueCandidates::new(|| vec![CompletionCandidate::new("raw"), CompletionCandidate::new("qcow2")]))]
        disk_format: vm::DiskFormat,
    },
    /// Attach to a machine's console; Ctrl-] detaches
    Console {
        #[arg(add = ArgValueCandidates::new(machines))]
        machine: String,
        /// Take the console from a client already attached
        #[arg(long)]
        force: bool,
    },
    /// Start a machine (ID or name)
    Start {
        #[arg(add = ArgValueCandidates::new(machines))]
        machine: String,
    },
    /// Shut a machine down; --force pulls the plug
    Stop {
        #[arg(add = ArgValueCandidates::new(machines))]
        machine: String,
        #[arg(long)]
        force: bool,
    },
    /// Restart a machine
    Reboot {
        #[arg(add = ArgValueCandidates::new(machines))]
        machine: String,
    },
    /// Delete a machine and everything mkve made for it
    Delete {
        #[arg(add = ArgValueCandidates::new(machines))]
        machine: String,
    },
    /// Start a machine with libvirt, or not (--off)
    Autostart {
        #[arg(add = ArgValueCandidates::new(machines))]
        machine: String,
        #[arg(long)]
        off: bool,
    },
    /// Show one machine
    Info {
        #[arg(add = ArgValueCandidates::new(machines))]
        machine: String,
        #[arg(long)]
        json: bool,
    },
    /// Say which hypervisors this node can run now, and why not the others
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// Run the KVM probe in this process (used by doctor)
    #[command(name = "__probe-kvm", hide = true)]
    ProbeKvm,
    /// List mkve's machines
    List {
        #[arg(long)]
        json: bool,
    },
}

/// Shell completion: the IDs and names of the machines `list` shows.
fn machines() -> Vec<CompletionCandidate> {
    let mut out = Vec::new();
    for m in vm::list(&vm::uris(None)).unwrap_or_default() {
        out.push(CompletionCandidate::new(m.id.to_string()).help(Some(
            format!("{} ({}, {})", m.name, m.hypervisor, m.state).into(),
        )));
        out.push(CompletionCandidate::new(m.name));
    }
    out
}

fn hypervisors() -> Vec<CompletionCandidate> {
    Hypervisor::ALL
        .iter()
        .map(|h| CompletionCandidate::new(h.to_string()))
        .collect()
}

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
        Command::Create {
            bundle,
            hypervisor,
            id,
            name,
            memory,
            vcpus,
            cpu_shares,
            blkio_weight,
            keyring,
            allow_unsigned,
            start,
            vnc,
            print_xml,
            root_password_file,
            ssh_key,
            disk_format,
        } => {
            let stdin = std::path::Path::new("-");
            if bundle == stdin
                && (root_password_file.as_deref() == Some(stdin)
                    || ssh_key.as_deref() == Some(stdin))
            {
                return Err(Error::Usage(
                    "the bundle is read from stdin: give the password or key as a file".into(),
                ));
            }
            let access =
                mkve_core::access::Access::read(root_password_file.as_deref(), ssh_key.as_deref())?;
            let opts = CreateOptions {
                bundle,
                hypervisor,
                id,
                name,
                memory_mib: memory,
                vcpus,
                cpu_shares,
                blkio_weight,
                vnc,
                connect: cli.connect,
                keyring,
                allow_unsigned,
                start,
                access,
                disk_format,
            };
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
