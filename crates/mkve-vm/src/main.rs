//! mkve-vm(1): machines from bundles, through libvirt.

mod cli;
mod show;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use cli::{Cli, Command};
use mkve_core::nodes::Nodes;
use mkve_core::{doctor, kvm, vm, Error, Result};

fn main() -> ExitCode {
    mkve_cli::main("mkve-vm", |cli: Cli, _| run(cli))
}

fn run(cli: Cli) -> Result<()> {
    let report = cli.verbosity.term();
    if let Some(node) = cli.node.as_deref() {
        let nodes = Nodes::load()?;
        if !nodes.is_this(node) {
            return match cli.command {
                Command::Create(args) => {
                    let print = args.print_xml;
                    let o = args.options(cli.connect.uri)?;
                    mkve_cli::out!("{}", vm::create_on(&nodes, node, &o, print, &report)?)
                }
                Command::List {
                    all_nodes: true, ..
                } => Err(Error::Usage(
                    "--node and --all-nodes: give one (every node is listed from here)".into(),
                )),
                Command::LxcHook | Command::ProbeKvm | Command::CreateStream | Command::Receive => {
                    Err(Error::Usage("--node: not for this command".into()))
                }
                c => {
                    let tty =
                        matches!(c, Command::Console { .. }) && std::io::stdin().is_terminal();
                    vm::forward(&nodes, node, &cli::forwarded_args()?, tty)
                }
            };
        }
    }
    let uris = vm::uris(cli.connect.uri.as_deref());
    match cli.command {
        Command::Create(args) if args.print_xml => {
            mkve_cli::out!("{}", vm::print_xml(&args.options(cli.connect.uri)?)?)
        }
        Command::Create(args) => show::id(vm::create(&args.options(cli.connect.uri)?, &report)?),
        Command::Start(t) => vm::start(&uris, &t.machine),
        Command::Console { target, force } => vm::console(&uris, &target.machine, force),
        Command::Stop {
            target,
            force,
            timeout,
        } => vm::stop(&uris, &target.machine, force, Duration::from_secs(timeout)),
        Command::Reboot(t) => vm::reboot(&uris, &t.machine),
        Command::Delete(t) => vm::delete(&uris, &t.machine, &report).map(drop),
        Command::Detach(t) => vm::detach(&uris, &t.machine, &report).map(drop),
        Command::Bases {
            verify: _,
            prune: true,
            json,
        } => show::pruned(&vm::prune_bases(&report)?, json),
        Command::Bases { verify, json, .. } => show::bases(&vm::bases(verify, &report)?, json),
        Command::Autostart { target, off } => vm::autostart(&uris, &target.machine, !off),
        Command::Info { target, json } => show::info(&vm::info(&uris, &target.machine)?, json),
        Command::List {
            json,
            all_nodes: true,
        } => show::site(&vm::list_nodes(&Nodes::load()?)?, json, &report),
        Command::List { json, .. } => show::list(&vm::list(&uris)?, json),
        Command::Migrate {
            target,
            to,
            timeout,
            force,
        } => {
            let o = vm::MigrateOptions {
                to,
                timeout: Duration::from_secs(timeout),
                force,
            };
            vm::migrate(&uris, &target.machine, &o, &report).map(drop)
        }
        Command::CreateStream => mkve_cli::out!("{}", vm::create_from_stream(&report)?),
        Command::Receive => vm::receive(&report),
        Command::Wait { machines, timeout } => {
            vm::wait(&uris, &machines, Duration::from_secs(timeout), &report)
        }
        Command::LxcHook => {
            let mut xml = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut xml)
                .map_err(|e| Error::io("(stdin)", e))?;
            vm::prepare_lxc_root(&xml)
        }
        Command::ProbeKvm => kvm::probe().map_err(Error::Other),
        Command::Doctor { json } => {
            let exe = std::env::current_exe().map_err(|e| Error::io("/proc/self/exe", e))?;
            let probe = || kvm::answers(&exe, "__probe-kvm", Duration::from_secs(5));
            show::doctor(&doctor::doctor(cli.connect.uri.as_deref(), probe), json)
        }
    }
}
