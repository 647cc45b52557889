//! mkve-vm's command line: the clap definitions, the create options they
//! make, and the candidates shell completion offers.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use mkve_core::access::Access;
use mkve_core::template::Hypervisor;
use mkve_core::vm::{self, CreateOptions};
use mkve_core::{Error, Result};

/// Create, start, stop, delete and list machines made from mkve bundles.
#[derive(Parser, Debug)]
#[command(name = "mkve-vm", version, max_term_width = 100)]
pub struct Cli {
    /// libvirt URI [default: $LIBVIRT_DEFAULT_URI, else each hypervisor's own]
    #[arg(short, long, global = true, value_name = "URI")]
    pub connect: Option<String>,
    /// No progress lines
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Tell the XML given to libvirt and the commands run, on stderr
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a machine from a bundle (- for stdin) and print its ID
    Create(CreateArgs),
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

/// The options of `create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The bundle: a file, or - for stdin
    pub bundle: PathBuf,
    /// Refuse a bundle for another hypervisor
    #[arg(short = 'H', long, value_name = "HV", add = ArgValueCandidates::new(hypervisors))]
    pub hypervisor: Option<Hypervisor>,
    /// Use this ID instead of the next free one
    #[arg(long)]
    pub id: Option<u32>,
    /// Domain name [default: TEMPLATE-ID]
    #[arg(long)]
    pub name: Option<String>,
    /// Memory, as 512M or 1G
    #[arg(long, value_name = "SIZE", default_value = "512M", value_parser = vm::parse_mib)]
    pub memory: u64,
    /// Virtual CPUs
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub vcpus: u32,
    /// CPU weight (cgroup cpu shares)
    #[arg(long, value_name = "N")]
    pub cpu_shares: Option<u32>,
    /// Block I/O weight (cgroup blkio, 100 to 1000)
    #[arg(long, value_name = "N")]
    pub blkio_weight: Option<u32>,
    /// Keyring the bundle's signature must come from [default: $MKVE_CONFDIR/trusted.gpg]
    #[arg(long, value_name = "FILE")]
    pub keyring: Option<PathBuf>,
    /// Accept a bundle with no signature
    #[arg(long)]
    pub allow_unsigned: bool,
    /// Start the machine once created
    #[arg(long)]
    pub start: bool,
    /// Give qemu, kvm and xen guests a VNC display (on 127.0.0.1)
    #[arg(long)]
    pub vnc: bool,
    /// Print the domain XML that would be defined; take no ID, make nothing
    #[arg(long)]
    pub print_xml: bool,
    /// Set root's password to the first line of FILE (- for stdin)
    #[arg(long, value_name = "FILE")]
    pub root_password_file: Option<PathBuf>,
    /// Add the OpenSSH public keys in FILE to root's authorized_keys
    #[arg(long, value_name = "FILE")]
    pub ssh_key: Option<PathBuf>,
    /// Disk image format for qemu, kvm and xen: raw or qcow2
    #[arg(long, value_name = "FORMAT", default_value = "raw", add = ArgValueCandidates::new(disk_formats))]
    pub disk_format: vm::DiskFormat,
}

impl CreateArgs {
    /// What `vm::create` takes; the password and key files are read here,
    /// before anything is made.
    pub fn options(self, connect: Option<String>) -> Result<CreateOptions> {
        let stdin = Path::new("-");
        if self.bundle == stdin
            && (self.root_password_file.as_deref() == Some(stdin)
                || self.ssh_key.as_deref() == Some(stdin))
        {
            return Err(Error::Usage(
                "the bundle is read from stdin: give the password or key as a file".into(),
            ));
        }
        let access = Access::read(self.root_password_file.as_deref(), self.ssh_key.as_deref())?;
        Ok(CreateOptions {
            bundle: self.bundle,
            hypervisor: self.hypervisor,
            id: self.id,
            name: self.name,
            memory_mib: self.memory,
            vcpus: self.vcpus,
            cpu_shares: self.cpu_shares,
            blkio_weight: self.blkio_weight,
            vnc: self.vnc,
            connect,
            keyring: self.keyring,
            allow_unsigned: self.allow_unsigned,
            start: self.start,
            access,
            disk_format: self.disk_format,
        })
    }
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

fn disk_formats() -> Vec<CompletionCandidate> {
    ["raw", "qcow2"].map(CompletionCandidate::new).into()
}
