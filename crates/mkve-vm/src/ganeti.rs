//! mkve-vm's commands on a Ganeti cluster (mkve-vm(1), GANETI), when
//! mkve.conf says `engine=ganeti` or `--engine ganeti` is given: create,
//! list, info, start, stop, delete and migrate become RAPI calls and jobs,
//! wait runs the variant's probes against the instance's address; the other
//! commands are this node's libvirt ones.

use std::time::Duration;

use crate::cli::Command;
use crate::show;
use mkve_core::vm::ganeti_rapi::{CreateRequest, Engine};
use mkve_core::{Error, Result};

/// Run `command` on the cluster; `Ok(None)` hands it back (not one the
/// cluster does).
pub fn run(
    engine: &Engine,
    command: Command,
    node: Option<String>,
    report: &dyn mkve_core::exec::Report,
) -> Result<Option<Command>> {
    match command {
        Command::Create(args) => {
            if args.print_xml {
                return Err(Error::Usage(
                    "--print-xml: a Ganeti instance has no domain XML of mkve's".into(),
                ));
            }
            let variant = args.bundle.to_string_lossy().into_owned();
            let name = args.name.as_ref().map(ToString::to_string).ok_or_else(|| {
                Error::Usage("--name: a Ganeti instance is named: give it (an FQDN, say)".into())
            })?;
            let o = args.options(None)?;
            let mut params = o.params;
            if let Some(pw) = o.access.password() {
                params.push((mkve_core::vm::ganeti::ROOT_PASSWORD.into(), pw.to_string()));
            }
            if !o.access.keys().is_empty() {
                params.push((
                    mkve_core::vm::ganeti::SSH_KEYS.into(),
                    o.access.keys().join("\n"),
                ));
            }
            let r = CreateRequest {
                name,
                variant,
                params,
                memory_mib: o.memory.mib(),
                vcpus: o.vcpus.get(),
                disk_mib: o.disk_size.map_or(1024, |d| d.mib()),
                node,
                start: o.start,
            };
            let i = engine.create(&r, report)?;
            report.progress(&format!(
                "{} on {}, address {}",
                i.name,
                i.node,
                i.address.as_deref().unwrap_or("-")
            ));
            mkve_cli::outln!("{}", i.name)?;
        }
        Command::List { json, .. } => show::instances(&engine.list()?, json)?,
        Command::Info { target, json } => show::instance(&engine.info(&target.machine)?, json)?,
        Command::Start(t) => engine.start(&t.machine, report)?,
        Command::Stop {
            target,
            force,
            timeout,
        } => {
            let t = if force { 0 } else { timeout };
            engine.stop(&target.machine, Duration::from_secs(t), report)?
        }
        Command::Delete { target, .. } => engine.delete(&target.machine, report)?,
        Command::Migrate { target, to, .. } => {
            engine.migrate(&target.machine, Some(&to), report)?
        }
        Command::Wait { machines, timeout } => {
            engine.wait(&machines, Duration::from_secs(timeout), report)?
        }
        c => return Ok(Some(c)),
    }
    Ok(None)
}
