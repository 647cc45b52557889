//! mkve-vm's command line: the clap definitions, the create options they
//! make, and the candidates shell completion offers. Every value is
//! checked by its core type while it is parsed (exit 2), before anything
//! is made.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use mkve_cli::{Connect, KeyringArgs, Verbosity};
use mkve_core::access::RootLogin;
use mkve_core::hypervisor::Hypervisor;
use mkve_core::ids::MachineId;
use mkve_core::params::{self, Given};
use mkve_core::vm::{
    self, BlkioWeight, CpuShares, CreateOptions, DiskFormat, DiskSize, MachineName, Memory, Vcpus,
};
use mkve_core::{Error, Result};

/// Create, start, stop, delete and list machines made from mkve bundles.
#[derive(Parser, Debug)]
#[command(name = "mkve-vm", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub connect: Connect,
    /// Act on this node of mkve.conf (over ssh; see NODES in mkve-vm(1))
    #[arg(long, global = true, value_name = "NAME", add = ArgValueCandidates::new(nodes))]
    pub node: Option<String>,
    /// libvirt (this node's machines) or ganeti (a Ganeti cluster's instances, through RAPI) [default: engine in mkve.conf, else libvirt]
    #[arg(long, global = true, value_name = "ENGINE", value_parser = ["libvirt", "ganeti"])]
    pub engine: Option<String>,
    #[command(flatten)]
    pub verbosity: Verbosity,
    #[command(subcommand)]
    pub command: Command,
}

/// A machine named on the command line: its ID or its name.
#[derive(Args, Debug)]
pub struct Target {
    /// The machine: its ID or its name
    #[arg(value_name = "MACHINE", add = ArgValueCandidates::new(machines))]
    pub machine: String,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a machine from a bundle (- for stdin, or a URL) and print its ID
    Create(Box<CreateArgs>),
    /// Attach to a machine's console; Ctrl-] detaches
    Console {
        #[command(flatten)]
        target: Target,
        /// Take the console from a client already attached
        #[arg(long)]
        force: bool,
    },
    /// Start a machine (ID or name)
    Start(Target),
    /// Shut a machine down; --force pulls the plug
    Stop {
        #[command(flatten)]
        target: Target,
        /// Pull the plug instead of asking the machine to shut down
        #[arg(long)]
        force: bool,
        /// Wait SECONDS at most for it to be off (0: ask and return)
        #[arg(
            long,
            value_name = "SECONDS",
            default_value = "120",
            conflicts_with = "force"
        )]
        timeout: u64,
    },
    /// Restart a machine
    Reboot(Target),
    /// Delete a machine and everything mkve made for it (its base too, if no other machine stands on it)
    Delete {
        #[command(flatten)]
        target: Target,
        /// An adopted machine's disks too (kept otherwise: mkve did not make them)
        #[arg(long)]
        remove_storage: bool,
    },
    /// Take a libvirt domain mkve did not make under its care, keeping its name and disks, and print its ID
    Adopt {
        /// The domain's name
        #[arg(value_name = "DOMAIN")]
        domain: String,
        /// Give it this ID [default: the one its name ends in when free, else the next free one]
        #[arg(long)]
        id: Option<MachineId>,
        /// Look for it on this hypervisor's URI, and refuse a domain of another
        #[arg(short = 'H', long, value_name = "HV", add = ArgValueCandidates::new(mkve_cli::hypervisors))]
        hypervisor: Option<Hypervisor>,
        /// Print what would change, change nothing
        #[arg(long)]
        dry_run: bool,
        /// Move its first interface onto the mkve network (a DHCP entry for its ID there)
        #[arg(long)]
        network: bool,
    },
    /// Make a stopped machine independent of its base (a whole disk or root of its own)
    Detach(Target),
    /// Take a snapshot of a machine, running or not, and print its name (default: the time)
    Snapshot {
        #[command(flatten)]
        target: Target,
        /// Its name: letters, digits, - _ . (default YYYYMMDD-HHMMSS, UTC)
        #[arg(value_name = "NAME", required_if_eq("delete", "true"))]
        name: Option<String>,
        /// Delete snapshot NAME instead
        #[arg(long)]
        delete: bool,
    },
    /// Back up what makes a machine differ from its base, running or not, into a signed archive; with --prune, thin out a directory of backups
    Backup {
        /// The machine (its ID or name); with --prune, the directory of backups
        #[arg(value_name = "MACHINE|DIR", add = ArgValueCandidates::new(machines))]
        target: String,
        /// Write it to FILE (- for stdout)
        #[arg(short, long, value_name = "FILE", required_unless_present = "prune")]
        output: Option<PathBuf>,
        /// Remove the backups in DIR that the --keep rules do not keep (each machine's apart)
        #[arg(long, conflicts_with_all = ["output", "full", "sign_key", "force_no_sign", "include_secrets"])]
        prune: bool,
        /// Keep the newest N
        #[arg(long, value_name = "N", default_value = "0", requires = "prune")]
        keep_last: usize,
        /// Keep the newest of each of the last N days that have one
        #[arg(long, value_name = "N", default_value = "0", requires = "prune")]
        keep_daily: usize,
        /// Keep the newest of each of the last N weeks that have one
        #[arg(long, value_name = "N", default_value = "0", requires = "prune")]
        keep_weekly: usize,
        /// The whole root, not only what differs from the base
        #[arg(long)]
        full: bool,
        /// Sign with this key [default: GnuPG's default key]
        #[arg(long, value_name = "KEY")]
        sign_key: Option<String>,
        /// Write it unsigned (a restore then needs --allow-unsigned)
        #[arg(long)]
        force_no_sign: bool,
        /// Include the secret parameters, encrypted to KEY (a key ID, fingerprint or user ID in GnuPG's keyring); left out otherwise
        #[arg(long, value_name = "KEY")]
        include_secrets: Option<String>,
    },
    /// Make a machine from a backup (- for stdin) and print its ID
    Restore(Box<RestoreArgs>),
    /// Pack a stopped machine, or a snapshot of it, back into a signed bundle, without what mkve's seed put in and scrubbed
    Pack {
        #[command(flatten)]
        target: Target,
        /// Write the bundle to FILE (- for stdout)
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// The scrub operations, separated by commas, or none [default: all of them; see PACK in mkve-vm(1)]
        #[arg(long, value_name = "OPS", value_parser = parse_scrub)]
        scrub: Option<ScrubOps>,
        /// Pack even when a private key is left in the root
        #[arg(long)]
        allow_secrets: bool,
        /// The new bundle's template version [default: the machine's]
        #[arg(long, value_name = "V")]
        template_version: Option<String>,
        /// Pack what snapshot NAME froze (the machine may run)
        #[arg(long, value_name = "NAME")]
        snapshot: Option<String>,
        /// Sign with this key [default: GnuPG's default key]
        #[arg(long, value_name = "KEY")]
        sign_key: Option<String>,
        /// Write it unsigned
        #[arg(long, conflicts_with = "sign_key")]
        force_no_sign: bool,
    },
    /// List a machine's snapshots, oldest first
    Snapshots {
        #[command(flatten)]
        target: Target,
        /// As JSON (keys in mkve-vm(1))
        #[arg(long)]
        json: bool,
    },
    /// Put a stopped machine back as it was at a snapshot
    Revert {
        #[command(flatten)]
        target: Target,
        /// The snapshot
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Move a machine onto a newer bundle of its template, keeping what it holds; rolled back by itself when the new bundle's probes stay silent
    Upgrade(Box<UpgradeArgs>),
    /// List the bases machines stand on: size and machines
    Bases {
        /// Check each base's contents in full against the digest recorded when it was made (exit 65 if one differs)
        #[arg(long)]
        verify: bool,
        /// Remove the bases no machine stands on
        #[arg(long, conflicts_with = "verify")]
        prune: bool,
        /// As JSON (keys in mkve-vm(1))
        #[arg(long)]
        json: bool,
    },
    /// Start a machine with libvirt, or not (--off)
    Autostart {
        #[command(flatten)]
        target: Target,
        /// Turn autostart off
        #[arg(long)]
        off: bool,
    },
    /// Show one machine
    Info {
        #[command(flatten)]
        target: Target,
        /// As JSON (keys in mkve-vm(1))
        #[arg(long)]
        json: bool,
    },
    /// Wait until every probe of the machines answers (exit 69 at the timeout)
    Wait {
        /// The machines: IDs or names
        #[arg(value_name = "MACHINE", required = true, add = ArgValueCandidates::new(machines))]
        machines: Vec<String>,
        /// Give up after SECONDS in all
        #[arg(long, value_name = "SECONDS", default_value = "300")]
        timeout: u64,
    },
    /// Say which hypervisors this node can run now, and why not the others
    Doctor {
        /// As JSON
        #[arg(long)]
        json: bool,
    },
    /// List mkve's machines
    List {
        /// As JSON (keys in mkve-vm(1))
        #[arg(long)]
        json: bool,
        /// Every node mkve.conf lists, with a NODE column; a node that does not answer is told
        #[arg(long)]
        all_nodes: bool,
    },
    /// The open vulnerabilities of each machine's bundle, from its SBOM and a feed (exit 1 when one is open)
    Audit {
        /// Debian's security tracker data for the machines' suite, in debsecan's format (a file, or an http:// or https:// URL)
        #[arg(long, value_name = "FILE|URL")]
        feed: String,
        /// The decisions that hide accepted vulnerabilities [default: $MKVE_CONFDIR/accepted]
        #[arg(long, value_name = "FILE")]
        accepted: Option<PathBuf>,
        /// As JSON (keys in mkve-vm(1))
        #[arg(long)]
        json: bool,
        /// The machines of every node mkve.conf lists; a node that does not answer is told
        #[arg(long)]
        all_nodes: bool,
    },
    /// Move a machine to another node: qemu and kvm live, lxc offline (stopped, moved, started there)
    Migrate {
        #[command(flatten)]
        target: Target,
        /// The node it moves to, as mkve.conf names it
        #[arg(value_name = "NODE", add = ArgValueCandidates::new(nodes))]
        to: String,
        /// Offline: wait SECONDS at most for the machine to shut down
        #[arg(long, value_name = "SECONDS", default_value = "120")]
        timeout: u64,
        /// Offline: pull the plug instead of asking the machine to shut down
        #[arg(long)]
        force: bool,
    },
    /// Ganeti: the variants of the OS definition mkve, kept the same on every node of the cluster
    #[command(subcommand)]
    Ganeti(GanetiCommand),
    #[command(flatten)]
    Internal(Internal),
}

/// mkve-vm's own plumbing: the hidden `__` subcommands other programs run
/// (libvirt's lxc hook, Ganeti's OS scripts, mkve-vm on another node over
/// ssh, doctor's probe), never typed by hand. Their names are the protocol
/// between nodes and hooks, so they stay as they are.
#[derive(Subcommand, Debug)]
pub enum Internal {
    /// libvirt's lxc hook: mount an lxc machine's overlay root before it starts (domain XML on stdin)
    #[command(name = "__lxc-hook", hide = true)]
    LxcHook,
    /// Run the KVM probe in this process (used by doctor)
    #[command(name = "__probe-kvm", hide = true)]
    ProbeKvm,
    /// A node's machines and their bundles' packages, as JSON, for mkve-vm audit on another node
    #[command(name = "__audit-data", hide = true)]
    AuditData,
    /// What the scripts of Ganeti's OS definition mkve run (ganeti-os-interface(7))
    #[command(name = "__ganeti-os", hide = true)]
    GanetiOs {
        /// create, verify, import, export or rename
        action: vm::ganeti::OsAction,
        /// What Ganeti passes (verify: parameters)
        #[arg(allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// A create sent by mkve-vm --node: the request line, then the bundle, on stdin
    #[command(name = "__create-stream", hide = true)]
    CreateStream,
    /// A restore sent by mkve-vm --node: the request line, the backup, the bundle, on stdin
    #[command(name = "__restore-stream", hide = true)]
    RestoreStream,
    /// An upgrade sent by a rollout over nodes (upgrade --template --all-nodes): the request line on stdin
    #[command(name = "__upgrade-stream", hide = true)]
    UpgradeStream,
    /// A machine moving here (mkve-vm migrate on its node): its files on stdin
    #[command(name = "__receive", hide = true)]
    Receive,
    /// Whether a machine moved here is here (its ID and domain UUID), asked by its old node
    #[command(name = "__arrived", hide = true)]
    Arrived { id: MachineId, uuid: String },
    /// A move's watcher: when stdin ends, resolve what the move left of the machine
    #[command(name = "__finish-move", hide = true)]
    FinishMove { id: MachineId },
}

/// `mkve-vm ganeti ...`
#[derive(Subcommand, Debug)]
pub enum GanetiCommand {
    /// Bring a published directory (or its URL) to every node: its bundles become the variants of the OS mkve
    Sync {
        /// The directory mkve-bundle --publish made, or its http:// or https:// URL
        #[arg(value_name = "DIR|URL")]
        source: String,
        /// Check the list and the bundles against this keyring (default: trusted.gpg in mkve's configuration directory; each other node uses its own)
        #[arg(long, value_name = "FILE")]
        keyring: Option<PathBuf>,
        /// This node only (what the sync runs on each other node)
        #[arg(long)]
        this_node_only: bool,
        /// As JSON
        #[arg(long)]
        json: bool,
    },
    /// List the variants this node has: bundle, kernel and initrd an instance boots, parameters
    Variants {
        /// As JSON
        #[arg(long)]
        json: bool,
    },
}

/// `--scrub`'s value: the operations named, in order.
#[derive(Debug, Clone)]
pub struct ScrubOps(pub Vec<&'static vm::ScrubOp>);

/// `--scrub`'s value, checked by core (vm::parse_scrub).
fn parse_scrub(s: &str) -> std::result::Result<ScrubOps, String> {
    vm::parse_scrub(s).map(ScrubOps).map_err(|e| e.to_string())
}

/// The options of `create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The bundle: a file, - for stdin, or the http:// or https:// URL of a published one
    pub bundle: PathBuf,
    /// Refuse a bundle for another hypervisor
    #[arg(short = 'H', long, value_name = "HV", add = ArgValueCandidates::new(mkve_cli::hypervisors))]
    pub hypervisor: Option<Hypervisor>,
    /// Use this ID instead of the next free one
    #[arg(long)]
    pub id: Option<MachineId>,
    /// Domain name: letters, digits, - _ . (not all digits) [default: TEMPLATE-ID]
    #[arg(long)]
    pub name: Option<MachineName>,
    /// Memory, as 512M or 1G (16M to 16384G)
    #[arg(long, value_name = "SIZE", default_value = "512M")]
    pub memory: Memory,
    /// Virtual CPUs (1 to 4096)
    #[arg(long, value_name = "N", default_value = "1")]
    pub vcpus: Vcpus,
    /// CPU weight (cgroup cpu shares, 2 to 262144)
    #[arg(long, value_name = "N")]
    pub cpu_shares: Option<CpuShares>,
    /// Block I/O weight (cgroup blkio, 100 to 1000)
    #[arg(long, value_name = "N")]
    pub blkio_weight: Option<BlkioWeight>,
    #[command(flatten)]
    pub keys: KeyringArgs,
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
    /// Disk image format for qemu, kvm and xen: raw or qcow2 [default: qcow2 on a base, raw with --no-base]
    #[arg(long, value_name = "FORMAT", add = ArgValueCandidates::new(disk_formats))]
    pub disk_format: Option<DiskFormat>,
    /// Make a private root or disk instead of standing on the bundle's base
    #[arg(long)]
    pub no_base: bool,
    /// Disk size for qemu, kvm and xen, as 20G (256M to 64T); on a base the root file system grows to it at the first boot [default: 1.5 times the root + 512M, at least 1G]
    #[arg(long, value_name = "SIZE")]
    pub disk_size: Option<DiskSize>,
    #[command(flatten)]
    pub params: ParamArgs,
    /// When a node mkve.conf lists does not answer, take an ID with what this node knows (it may be one a machine holds there)
    #[arg(long)]
    pub local_ids: bool,
}

impl CreateArgs {
    /// What `vm::create` takes; the password and key files are read here,
    /// before anything is made.
    pub fn options(self, connect: Option<String>) -> Result<CreateOptions> {
        let dash = |p: &Option<PathBuf>| p.as_deref().is_some_and(mkve_cli::is_dash);
        let given = self.params.given()?;
        let params_dashed = given
            .iter()
            .filter(|g| matches!(g, Given::File(_, f) if mkve_cli::is_dash(f)))
            .count();
        let dashed = [
            mkve_cli::is_dash(&self.bundle),
            dash(&self.root_password_file),
            dash(&self.ssh_key),
        ]
        .iter()
        .filter(|d| **d)
        .count()
            + params_dashed;
        if dashed > 1 {
            return Err(Error::Usage(
                "stdin (-) can be read once: give the bundle, password, key or parameters as files"
                    .into(),
            ));
        }
        let access = RootLogin::read(self.root_password_file.as_deref(), self.ssh_key.as_deref())?;
        let params = params::read_given(&given)?;
        Ok(CreateOptions {
            bundle: self.bundle,
            hypervisor: self.hypervisor,
            id: self.id,
            name: self.name,
            again: None,
            memory: self.memory,
            vcpus: self.vcpus,
            cpu_shares: self.cpu_shares,
            blkio_weight: self.blkio_weight,
            vnc: self.vnc,
            connect,
            keyring: self.keys.keyring,
            allow_unsigned: self.keys.allow_unsigned,
            start: self.start,
            access,
            disk_format: self.disk_format,
            disk_size: self.disk_size,
            params,
            no_base: self.no_base,
            local_ids: self.local_ids,
            source: None,
        })
    }
}

/// `upgrade`'s arguments.
#[derive(Args, Debug)]
pub struct UpgradeArgs {
    /// The machine (its ID or name)
    #[arg(value_name = "MACHINE", required_unless_present = "template", add = ArgValueCandidates::new(machines))]
    pub machine: Option<String>,
    /// The new bundle: a file or URL
    #[arg(value_name = "BUNDLE", required_unless_present_any = ["commit", "rollback", "template"], conflicts_with_all = ["commit", "rollback"])]
    pub bundle: Option<PathBuf>,
    /// Upgrade every machine of template NAME on this node (with --to), canaries first, then in waves
    #[arg(long, value_name = "NAME", requires = "to", conflicts_with_all = ["machine", "bundle", "commit", "rollback"])]
    pub template: Option<String>,
    /// The new bundle of a --template rollout: a file or URL
    #[arg(long, value_name = "BUNDLE", requires = "template")]
    pub to: Option<PathBuf>,
    /// Upgrade N machines first, one at a time, before the others
    #[arg(long, value_name = "N", default_value = "1", requires = "template")]
    pub canary: usize,
    /// After the canaries, upgrade N machines at once
    #[arg(long, value_name = "N", default_value = "1", requires = "template", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub max_parallel: u16,
    /// Print the rollout's report as JSON (keys in mkve-vm(1))
    #[arg(long, requires = "template")]
    pub json: bool,
    /// Upgrade the template's machines on every node mkve.conf lists, each on its node
    #[arg(long, requires = "template")]
    pub all_nodes: bool,
    /// Keep the machine's last upgrade: remove its snapshot and free the old base
    #[arg(long, conflicts_with = "rollback")]
    pub commit: bool,
    /// Put the machine back on the bundle it had before its last upgrade (not committed)
    #[arg(long)]
    pub rollback: bool,
    /// Give the new bundle's probes SECONDS to answer before rolling back
    #[arg(long, value_name = "SECONDS", default_value = "300")]
    pub timeout: u64,
    /// Upgrade although files the machine changed are changed in the new bundle too (the machine's are kept)
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub keys: KeyringArgs,
    // The template's parameters: one the new bundle requires, or a new value.
    #[command(flatten)]
    pub params: ParamArgs,
}

impl UpgradeArgs {
    pub fn options(&self) -> Result<vm::UpgradeOptions> {
        Ok(vm::UpgradeOptions {
            bundle: self
                .bundle
                .clone()
                .or_else(|| self.to.clone())
                .unwrap_or_default(),
            keyring: self.keys.keyring.clone(),
            allow_unsigned: self.keys.allow_unsigned,
            params: self.params.read()?,
            timeout: std::time::Duration::from_secs(self.timeout),
            force: self.force,
        })
    }
}

/// `--param` and `--param-file` values, read.
/// `--param` and `--param-file`: the template's parameters given to
/// create, upgrade and restore.
#[derive(Args, Debug, Default)]
pub struct ParamArgs {
    /// Give the template parameter NAME (see mkve-bundle --info)
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<OsString>,
    /// Give the template parameter NAME from FILE, one trailing newline dropped (- for stdin); for secrets
    #[arg(long = "param-file", value_name = "NAME=FILE")]
    pub param_files: Vec<OsString>,
}

impl ParamArgs {
    /// The values as given, `--param`s first; files not yet read. Parsed
    /// here, not by clap, whose error would repeat the whole argument (a
    /// value may be a secret), and as bytes: the check, and its words, are
    /// core's, as mkve-web's for the same field. Errors: a malformed one
    /// (usage, 2).
    pub fn given(&self) -> Result<Vec<Given>> {
        let mut given = Vec::new();
        for (args, file, opt) in [
            (&self.params, false, "--param"),
            (&self.param_files, true, "--param-file"),
        ] {
            for a in args {
                given.push(
                    Given::parse_bytes(a.as_bytes(), file)
                        .map_err(|e| Error::Usage(format!("{opt}: {e}")))?,
                );
            }
        }
        Ok(given)
    }

    /// The values, files read (params.rs's `read_given`).
    pub fn read(&self) -> Result<Vec<(String, String)>> {
        params::read_given(&self.given()?)
    }
}

/// `restore`'s arguments.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup: a file, or - for stdin
    #[arg(value_name = "BACKUP")]
    pub backup: PathBuf,
    /// The ID to give it [default: the backup's when free, else the next free one]
    #[arg(long, value_name = "ID")]
    pub id: Option<MachineId>,
    /// Make it from this bundle (a file or URL) [default: the bundle's head its base keeps when this node has the base, else where the backup says it came from]
    #[arg(long, value_name = "FILE|URL")]
    pub bundle: Option<PathBuf>,
    #[command(flatten)]
    pub keys: KeyringArgs,
    // The template's parameters: a secret the backup left out.
    #[command(flatten)]
    pub params: ParamArgs,
    /// Start it once restored
    #[arg(long)]
    pub start: bool,
}

impl RestoreArgs {
    pub fn options(self, connect: Option<String>) -> Result<vm::RestoreOptions> {
        let params = self.params.read()?;
        Ok(vm::RestoreOptions {
            id: self.id,
            bundle: self.bundle,
            keyring: self.keys.keyring,
            allow_unsigned: self.keys.allow_unsigned,
            params,
            connect,
            start: self.start,
        })
    }
}

/// Shell completion: the IDs and names of the machines `list` shows.
fn machines() -> Vec<CompletionCandidate> {
    let mut out = Vec::new();
    for m in vm::uris(None)
        .and_then(|u| vm::list(&u))
        .unwrap_or_default()
    {
        out.push(CompletionCandidate::new(m.id.to_string()).help(Some(
            format!("{} ({}, {})", m.name, m.hypervisor, m.state).into(),
        )));
        if !m.name.is_empty() {
            out.push(CompletionCandidate::new(m.name));
        }
    }
    out
}

/// Shell completion: the nodes mkve.conf lists.
fn nodes() -> Vec<CompletionCandidate> {
    mkve_core::nodes::Nodes::load()
        .map(|n| {
            n.list
                .iter()
                .map(|n| CompletionCandidate::new(n.name.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The command line as typed, without `--node NAME`: what runs on that
/// node. Errors (2): an argument that is not UTF-8.
pub fn forwarded_args() -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        let a = a
            .into_string()
            .map_err(|a| Error::Usage(format!("{}: not UTF-8", a.to_string_lossy())))?;
        if a == "--node" {
            args.next();
        } else if !a.starts_with("--node=") {
            out.push(a);
        }
    }
    Ok(out)
}

fn disk_formats() -> Vec<CompletionCandidate> {
    DiskFormat::NAMES.map(CompletionCandidate::new).into()
}
