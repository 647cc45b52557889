//! What mkve-vm does with its command line: `--node` forwarding, then
//! one call into mkve-core per subcommand, its result printed by show.rs.

use std::io::IsTerminal;
use std::time::Duration;

use crate::cli::{self, Cli, Command, Internal};
use crate::show;
use mkve_core::nodes::Nodes;
use mkve_core::{doctor, kvm, vm, Error, Result};

pub fn run(cli: Cli) -> Result<()> {
    let report = cli.verbosity.term();
    // Ganeti's: no mkve.conf node scheme, no libvirt.
    match cli.command {
        Command::Internal(Internal::GanetiOs { action, .. }) => {
            return vm::ganeti::os_action(action, &report)
        }
        Command::Ganeti(cli::GanetiCommand::Sync {
            source,
            keyring,
            this_node_only,
            json,
        }) => {
            let o = vm::ganeti::SyncOptions {
                source,
                keyring,
                this_node_only,
            };
            return show::synced(&vm::ganeti::sync(&o, &report)?, json);
        }
        Command::Ganeti(cli::GanetiCommand::Variants { json }) => {
            return show::variants(&vm::ganeti::variants()?, json)
        }
        _ => {}
    }
    let mut cli = cli;
    if let Some(engine) = vm::ganeti_rapi::configured(cli.engine.as_deref())? {
        match crate::ganeti::run(&engine, cli.command, cli.node.clone(), &report)? {
            None => return Ok(()),
            Some(c) => cli.command = c,
        }
    }
    if let Some(node) = cli.node.as_deref() {
        let nodes = Nodes::load()?;
        if !nodes.is_this(node) {
            return on_node(cli.command, cli.connect.uri, &nodes, node, &report);
        }
    }
    here(cli, report)
}

/// What the command line asks of this node: one call into mkve-core per
/// subcommand, with the libvirt connections decided once.
fn here(cli: Cli, report: mkve_cli::Term) -> Result<()> {
    // Which libvirt each job opens, decided once (nodes::Connections).
    let connections = mkve_core::nodes::Connections::resolve(cli.connect.uri.as_deref())?;
    let uris = connections.machines();
    match cli.command {
        Command::Create(args) if args.print_xml => {
            mkve_cli::out!("{}", vm::domain_xml(&args.options(cli.connect.uri)?)?)
        }
        Command::Create(args) => {
            let o = args.options(cli.connect.uri)?;
            // A create from a URL undoes what it made when a signal stops
            // it (mkve-vm(1), SIGNALS).
            if mkve_core::fetch::Url::of_arg(&o.bundle).is_some() {
                mkve_core::interrupt::catch()?;
            }
            show::id(vm::create(&o, &report)?)
        }
        Command::Start(t) => vm::start(&uris, &t.machine),
        Command::Console { target, force } => vm::console(&uris, &target.machine, force),
        Command::Stop {
            target,
            force,
            timeout,
        } => vm::stop(&uris, &target.machine, force, Duration::from_secs(timeout)),
        Command::Reboot(t) => vm::reboot(&uris, &t.machine),
        Command::Delete {
            target,
            remove_storage,
        } => vm::delete_with(&uris, &target.machine, remove_storage, &report).map(drop),
        Command::Adopt {
            domain,
            id,
            hypervisor,
            dry_run,
            network,
        } => {
            let o = vm::AdoptOptions {
                id,
                hypervisor,
                dry_run,
                network,
            };
            let a = vm::adopt(&uris, &domain, &o, &report)?;
            if dry_run {
                for c in &a.changes {
                    mkve_cli::outln!("would: {c}")?;
                }
                Ok(())
            } else {
                show::id(a.id)
            }
        }
        Command::Detach(t) => vm::detach(&uris, &t.machine, &report).map(drop),
        Command::Snapshot {
            target,
            name: Some(name),
            delete: true,
        } => vm::delete_snapshot(&uris, &target.machine, &name, &report),
        Command::Snapshot { target, name, .. } => {
            let name = vm::snapshot(&uris, &target.machine, name.as_deref(), &report)?;
            mkve_cli::outln!("{name}")
        }
        Command::Backup {
            target,
            prune: true,
            keep_last,
            keep_daily,
            keep_weekly,
            ..
        } => {
            let keep = vm::Keep {
                last: keep_last,
                daily: keep_daily,
                weekly: keep_weekly,
            };
            for f in vm::prune_backups(std::path::Path::new(&target), keep)? {
                mkve_cli::outln!("removed {}", f.display())?;
            }
            Ok(())
        }
        Command::Backup {
            target,
            output,
            full,
            sign_key,
            force_no_sign,
            include_secrets,
            ..
        } => {
            let o = vm::BackupOptions {
                full,
                sign_key,
                no_sign: force_no_sign,
                secrets_to: include_secrets,
            };
            let output = output.ok_or_else(|| Error::Usage("backup: -o FILE is needed".into()))?;
            vm::backup(&uris, &target, &output, &o, &report).map(drop)
        }
        Command::Restore(args) => {
            let input = args.backup.clone();
            let o = args.options(cli.connect.uri.clone())?;
            show::id(vm::restore(&input, &o, &report)?)
        }
        Command::Pack {
            target,
            output,
            scrub,
            allow_secrets,
            template_version,
            snapshot,
            sign_key,
            force_no_sign,
        } => {
            if output.as_os_str() == "-" && std::io::stdout().is_terminal() {
                return Err(Error::Usage(
                    "pack: refusing to write a bundle to a terminal: redirect stdout or give -o FILE"
                        .into(),
                ));
            }
            let o = vm::PackMachineOptions {
                scrub: scrub.map(|s| s.0),
                allow_secrets,
                template_version,
                snapshot,
                signing: if force_no_sign {
                    mkve_core::bundle::Signing::Unsigned
                } else {
                    mkve_core::bundle::Signing::Key(sign_key)
                },
            };
            vm::pack(&uris, &target.machine, &output, &o, &report).map(drop)
        }
        Command::Snapshots { target, json } => {
            show::snapshots(&vm::snapshots(&uris, &target.machine)?, json)
        }
        Command::Revert { target, name } => vm::revert(&uris, &target.machine, &name, &report),
        Command::Upgrade(args) => match (&args.template, args.machine.as_deref()) {
            (Some(template), _) => {
                let o = vm::RolloutOptions {
                    each: args.options()?,
                    template: template.clone(),
                    canary: args.canary,
                    max_parallel: args.max_parallel.into(),
                    all_nodes: args.all_nodes,
                };
                show::rollout(&vm::rollout(&uris, &o, &report)?, args.json)
            }
            (None, Some(m)) if args.commit => vm::commit_upgrade(&uris, m, &report),
            (None, Some(m)) if args.rollback => vm::rollback_upgrade(&uris, m, &report),
            (None, Some(m)) => show::upgraded(&vm::upgrade(&uris, m, &args.options()?, &report)?),
            (None, None) => Err(Error::Usage(
                "upgrade: name a machine, or --template".into(),
            )),
        },
        Command::Bases {
            verify: _,
            prune: true,
            json,
        } => show::pruned(&vm::prune_bases(&report)?, json),
        Command::Bases { verify, json, .. } => show::bases(&vm::bases(verify, &report)?, json),
        Command::Autostart { target, off } => vm::autostart(&uris, &target.machine, !off),
        Command::Info { target, json } => {
            let i = vm::info(&uris, &target.machine)?;
            interrupted(&report, Some(i.machine.id));
            show::info(&i, json)
        }
        Command::List {
            json,
            all_nodes: true,
        } => show::site(&vm::list_nodes(&Nodes::load()?)?, json, &report),
        Command::List { json, .. } => {
            let all = vm::list(&uris)?;
            interrupted(&report, None);
            show::list(&all, json)
        }
        Command::Audit {
            feed,
            accepted,
            json,
            all_nodes,
        } => {
            let only = if all_nodes { None } else { Some("") };
            audit(&feed, accepted, json, only, Some(&uris), &report)
        }
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
        Command::Ganeti(_) => Ok(()),
        Command::Internal(i) => internal(i, &uris, &report),
        Command::Wait { machines, timeout } => {
            vm::wait(&uris, &machines, Duration::from_secs(timeout), &report)
        }
        Command::Doctor { json } => {
            let exe = std::env::current_exe().map_err(|e| Error::io("/proc/self/exe", e))?;
            let probe = || kvm::answers(&exe, "__probe-kvm", Duration::from_secs(5));
            show::doctor(&doctor::doctor(&connections, probe), json)
        }
    }
}

/// The command sent to `node`, another node of mkve.conf: a create or
/// restore streamed there, an audit asked for its packages, anything else
/// run there by its own mkve-vm over ssh. Errors: a command that is not
/// for another node (2); the node's.
fn on_node(
    command: Command,
    uri: Option<String>,
    nodes: &Nodes,
    node: &str,
    report: &mkve_cli::Term,
) -> Result<()> {
    match command {
        Command::Create(args) => {
            let print = args.print_xml;
            let o = args.options(uri)?;
            mkve_cli::out!("{}", vm::create_on(nodes, node, &o, print, report)?)
        }
        Command::Restore(args) => {
            let input = args.backup.clone();
            let o = args.options(uri)?;
            mkve_cli::out!("{}", vm::restore_on(nodes, node, &input, &o, report)?)
        }
        Command::List {
            all_nodes: true, ..
        }
        | Command::Audit {
            all_nodes: true, ..
        } => Err(Error::Usage(
            "--node and --all-nodes: give one (every node is listed from here)".into(),
        )),
        Command::Upgrade(args) if args.all_nodes => Err(Error::Usage(
            "--node and --all-nodes: give one (every node is listed from here)".into(),
        )),
        // The feed and the accepted file are this host's: the
        // node is asked for its machines' packages only.
        Command::Audit {
            feed,
            accepted,
            json,
            ..
        } => audit(&feed, accepted, json, Some(node), None, report),
        Command::Internal(_) | Command::Ganeti(_) => {
            Err(Error::Usage("--node: not for this command".into()))
        }
        c => {
            let tty = matches!(c, Command::Console { .. }) && std::io::stdin().is_terminal();
            vm::forward(nodes, node, &cli::forwarded_args()?, tty)
        }
    }
}

/// The hidden plumbing (cli.rs's `Internal`), on this node.
fn internal(i: Internal, uris: &vm::Uris, report: &dyn mkve_core::exec::Report) -> Result<()> {
    match i {
        Internal::CreateStream => mkve_cli::out!("{}", vm::create_from_stream(report)?),
        Internal::RestoreStream => show::id(vm::restore_from_stream(report)?),
        Internal::UpgradeStream => vm::upgrade_from_stream(uris, report).map(drop),
        Internal::Receive => vm::receive(report),
        Internal::Arrived { id, uuid } => {
            mkve_cli::outln!(
                "{}",
                if vm::arrived(uris, id, &uuid)? {
                    "yes"
                } else {
                    "no"
                }
            )
        }
        Internal::FinishMove { id } => vm::finish_move(uris, id, report),
        Internal::LxcHook => {
            let mut xml = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut xml)
                .map_err(|e| Error::io("(stdin)", e))?;
            vm::prepare_lxc_root(&xml)
        }
        Internal::ProbeKvm => kvm::probe().map_err(Error::Other),
        Internal::AuditData => mkve_cli::print_json(&vm::node_sboms(uris)?),
        Internal::GanetiOs { action, .. } => vm::ganeti::os_action(action, report),
    }
}

/// Warn of the moves from this node that were interrupted (of machine
/// `only`, or all).
fn interrupted(report: &dyn mkve_core::exec::Report, only: Option<mkve_core::ids::MachineId>) {
    for (id, to) in vm::interrupted_moves() {
        if only.is_none_or(|o| o == id) {
            report.warning(&format!(
                "machine {id}: its move to node {to} was interrupted: \
                 any command on it here (mkve-vm start {id}) finishes or undoes it"
            ));
        }
    }
}

/// `audit`: this node's machines (`only` empty), one node's (`only` its
/// name), or every node's (`None`), against the feed; exit 1 when a
/// vulnerability is open, 69 when none is but a node did not answer.
fn audit(
    feed: &str,
    accepted: Option<std::path::PathBuf>,
    json: bool,
    only: Option<&str>,
    uris: Option<&vm::Uris>,
    report: &dyn mkve_core::exec::Report,
) -> Result<()> {
    use mkve_core::audit;
    let feed = audit::load_feed(feed)?;
    let accepted_path =
        accepted.unwrap_or_else(|| mkve_core::paths::confdir().join(audit::ACCEPTED));
    let decisions = audit::load_accepted(&accepted_path)?;
    let nodes = Nodes::load()?;
    let here = match uris {
        Some(u) => u.clone(),
        None => vm::uris(None)?,
    };
    let result = match only {
        Some("") => vm::audit_node(&vm::this_node_name(&nodes), &here, &feed, &decisions)?,
        Some(name) => vm::audit_nodes(&nodes, Some(name), &here, &feed, &decisions, report)?,
        None => vm::audit_nodes(&nodes, None, &here, &feed, &decisions, report)?,
    };
    if result.accepted > 0 {
        report.note(&format!(
            "{} accepted in {} not shown",
            result.accepted,
            accepted_path.display()
        ));
    }
    show::audit(&result, json, report)
}
