//! Moving a machine to another node (`mkve-vm migrate ID NODE`,
//! mkve-vm(1) NODES), run on the node it is on:
//!
//! - a running qemu or kvm machine moves **live**: libvirt's peer-to-peer
//!   migration, the source's libvirtd talking to the target's at its URI,
//!   memory and disk streamed to the target's address
//!   (`Dom::migrate_live`), into a blank disk of the same size made there
//!   first, with its kernel, initrd and seed disk (read-only: not copied
//!   by libvirt) sent ahead;
//! - an lxc machine, or a shut-off qemu or kvm one, moves **offline**: it
//!   is stopped, its files (an lxc machine on a base: its merged root, so
//!   it lands whole) streamed, defined and started on the target, and only
//!   then removed here.
//!
//! Its ID, address, mkve record (the domain's metadata), DHCP entry (in
//! the target's mkve network) and autostart go with it. Every check of the
//! target is made before anything changes (its URI answers, its network is
//! there, the ID is free there), and every failure after leaves the machine
//! whole where it was, started again if it ran.
//!
//! The target's side is [`receive`], `mkve-vm __receive` over ssh: it
//! holds the machine's lock there from its checks to the end, unpacks what
//! comes (`pack.rs`, framed so the stream goes on after it), and keeps it
//! only when the source says `commit`. The stream: one line of JSON
//! (`Header`), then `part dir` / `part rootfs` lines each followed by a
//! framed zstd tar, then `end`; it answers `ok` after its checks and
//! `ready PATH` once the files are in place. An offline move then sends
//! `define JSON` (`Define`: the domain's XML, whether to start it, its
//! autostart), and the target adds the DHCP entry, defines, sets the
//! autostart and starts the machine itself, answering `defined`. On
//! `abort`, or when the source goes away before `commit`, it removes all
//! it made: the files, and for an offline move the domain and the DHCP
//! entry too (a live move's domain is libvirt's doing: kept if it exists
//! by then, the machine having arrived).
//!
//! A killed offline move (SIGKILL, a Ctrl-C, the node's power) has one
//! rule: **the target keeps the machine only once it heard `commit`;
//! until then the source's copy is the machine, and after it the
//! target's.** The source writes its mark, `vms/ID.moving` ([`Mark`]:
//! the target, the domain's UUID, whether it ran), before it stops the
//! machine, turns it to `committing` just before it sends `commit`, and
//! removes it last, once its own copy is gone (or, on a failure, once the
//! machine runs here again). A mark left over is resolved under the
//! machine's lock by [`resume`]: `moving`, the machine is started again
//! here if it ran (one still running that the move asked to shut down is
//! waited for first, up to the move's `--timeout`); `committing`, the target is asked (`mkve-vm __arrived
//! ID UUID`, under its lock there, so after its `__receive` ended)
//! whether it holds the machine: yes, the copy here is removed (the move
//! finished); no, it is started again here; no answer, nothing is done
//! (neither copy is removed or started while one may run). The move
//! starts a watcher for this (`mkve-vm __finish-move ID`, in a process
//! group of its own, its stdin a pipe that ends with the move): it
//! resolves the mark as soon as the move is gone. Without it (killed too,
//! the node rebooted), the next command on the machine that takes its
//! lock (`start`, `stop`, `migrate`…) resolves it first, and `list` and
//! `info` warn of it.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::remote::{remote_failure, ssh_command, FrameReader, FrameWriter};
use super::staging::vms_dir;
use super::Uris;
use crate::error::{Error, IoContext, Result};
use crate::exec::{Cmd, Report, Talk};
use crate::hypervisor::Hypervisor;
use crate::ids::MachineId;
use crate::libvirt::{self, domain, network, Connection, Dom};
use crate::lock::{Lock, Mode};
use crate::net::NetConfig;
use crate::nodes::{Node, Nodes};
use crate::pack::{self, PackOptions, UnpackOptions};

/// How a machine moves.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// The node it moves to, as mkve.conf names it.
    pub to: String,
    /// An offline move asks the machine to shut down and waits this long
    /// for it; still running then, nothing moves (69).
    pub timeout: Duration,
    /// An offline move pulls the plug instead of asking.
    pub force: bool,
}

/// What the target is told first.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    id: u32,
    hypervisor: Hypervisor,
    /// Disk images to make empty there, for libvirt to copy into.
    blank: Vec<Blank>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Blank {
    /// Its name in the machine's directory.
    file: String,
    /// raw or qcow2.
    format: String,
    /// Its virtual size in bytes.
    bytes: u64,
}

/// An offline move's last step on the target, after `ready`: the machine
/// defined there by the target itself, so that all it made there is one
/// process's, undone by it when the source goes away before `commit`.
#[derive(Debug, Serialize, Deserialize)]
struct Define {
    /// The machine's name, for its DHCP entry.
    name: String,
    /// The domain's XML, its paths the target's.
    xml: String,
    /// Start it there (it ran here).
    start: bool,
    /// Its autostart there.
    autostart: bool,
}

/// The mark of a move on its source, `vms/ID.moving`: beside the
/// machine's directory (it outlives it), written before the machine is
/// stopped, removed last. One line of JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Mark {
    /// The node it moves to, as mkve.conf names it.
    pub to: String,
    /// Its domain's UUID (the same there: the XML keeps it).
    pub uuid: String,
    /// It ran before the move.
    pub running: bool,
    /// The seconds it was given to shut down when asked to (0: the plug
    /// was pulled, or it did not run): a machine found running is
    /// waited for that long after the mark was written, as it may be
    /// going down.
    #[serde(default)]
    pub shutdown: u64,
    pub step: Step,
}

/// How far a move went, as its [`Mark`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Step {
    /// The target has not been told to keep it: the copy here is the
    /// machine.
    Moving,
    /// The target is being told to keep it: it holds the machine if it
    /// heard.
    Committing,
}

/// Where the mark of a move of machine `id` is, in `vms`.
pub(super) fn mark_path(vms: &Path, id: u32) -> PathBuf {
    vms.join(format!("{id}.moving"))
}

impl Mark {
    /// Write it at `path`, by a temporary name, synced, then renamed.
    /// Errors: the file cannot be written (73).
    pub(super) fn write(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("moving.tmp");
        let mut text = serde_json::to_vec(self).map_err(|e| Error::Other(e.to_string()))?;
        text.push(b'\n');
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&text).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&tmp, path));
        written.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::create(path, e)
        })
    }

    /// The mark at `path`; `None` when there is none. Errors: it cannot be
    /// read, or is not a mark (1, naming the file).
    pub(super) fn read(path: &Path) -> Result<Option<Mark>> {
        match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                Error::Other(format!(
                    "{}: not the mark of a move ({e}): remove it once the machine is where it should be",
                    path.display()
                ))
            }),
        }
    }
}

/// The moves on this node, as their source, that were interrupted: a
/// mark left and no run holding the machine's lock. Each machine's ID
/// and the node it was moving to, by ID.
pub fn interrupted_moves() -> Vec<(MachineId, String)> {
    let vms = vms_dir();
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&vms) else {
        return out;
    };
    for e in entries.flatten() {
        let Some(id) = e
            .file_name()
            .to_str()
            .and_then(|n| n.strip_suffix(".moving"))
            .and_then(|n| n.parse::<u32>().ok())
            .and_then(|n| MachineId::new(n).ok())
        else {
            continue;
        };
        let Ok(Some(_lock)) = Lock::try_acquire(&format!("machine-{id}.lock"), Mode::Exclusive)
        else {
            continue; // a move or another command holds it now
        };
        if let Ok(Some(mark)) = Mark::read(&e.path()) {
            out.push((id, mark.to));
        }
    }
    out.sort();
    out
}

/// What [`resume`] made of an interrupted move.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Resumed {
    /// No move of the machine was interrupted here.
    Nothing,
    /// The machine is the one here, started again if it ran; the move
    /// to this node is forgotten.
    Here(String),
    /// The target took it: the copy here is removed.
    Moved(String),
}

/// Resolve the move of machine `id` that was interrupted on this node, its
/// source, by the rule in the module's documentation; the caller holds
/// the machine's lock. Errors: the mark is unreadable; the target must be
/// asked and cannot answer (69: nothing is done, the mark stays); libvirt
/// refused to start or remove the copy here.
pub(super) fn resume(uris: &Uris, id: MachineId, report: &dyn Report) -> Result<Resumed> {
    let path = mark_path(&vms_dir(), id.get());
    let Some(mark) = Mark::read(&path)? else {
        return Ok(Resumed::Nothing);
    };
    let what = format!("machine {id}");
    let (here, any) = super::manage::by_id(uris, id, &mark.uuid)?;
    if mark.step == Step::Committing {
        let took = arrived_on(&mark, id, report).map_err(|e| Error::Unavailable {
            what: what.clone(),
            why: format!(
                "its move to node {} was interrupted as that node was told to keep it, \
                 and it cannot say whether it did ({e}): nothing is done; \
                 any command on the machine here asks again",
                mark.to
            ),
        })?;
        if took {
            report.progress(&format!(
                "{what} is on node {}: removing what its interrupted move left here",
                mark.to
            ));
            if let Some((_, d, _)) = &here {
                if d.is_active()? {
                    d.destroy(&what)?;
                }
                d.undefine(&what)?;
            }
            if let Some(conn) = here.as_ref().map(|(c, _, _)| c).or(any.as_ref()) {
                super::manage::remove_leftovers(conn, id, report)?;
            }
            remove_mark(&path)?;
            return Ok(Resumed::Moved(mark.to));
        }
    }
    match &here {
        Some((_, d, m)) => {
            if mark.running && d.is_active()? && mark.shutdown > 0 {
                wait_shutdown(d, &path, mark.shutdown, report)?;
            }
            if mark.running && !d.is_active()? {
                report.progress(&format!(
                    "starting {what} again where it was: its move to node {} was interrupted",
                    mark.to
                ));
                super::manage::prepare_root(m)?;
                d.start(&what)?;
            }
        }
        None => report.warning(&format!(
            "{what}: its move to node {} was interrupted, and its domain is not here",
            mark.to
        )),
    }
    remove_mark(&path)?;
    Ok(Resumed::Here(mark.to))
}

/// Wait for a machine that may be shutting down (a move asked it to, and
/// was killed): until it is off, or `seconds` after the move's mark at
/// `path` was written.
fn wait_shutdown(d: &Dom, path: &Path, seconds: u64, report: &dyn Report) -> Result<()> {
    let since = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .unwrap_or_default();
    let Some(left) = Duration::from_secs(seconds).checked_sub(since) else {
        return Ok(());
    };
    report.progress(&format!(
        "waiting up to {} s for the machine to finish shutting down, as its move asked",
        left.as_secs()
    ));
    let start = std::time::Instant::now();
    while d.is_active()? && start.elapsed() < left {
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

fn remove_mark(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// Whether the node a move of machine `id` went to holds it now (asked
/// there under its lock). Errors: ssh did not reach it (69), it failed
/// there, or answered something else.
fn arrived_on(mark: &Mark, id: MachineId, report: &dyn Report) -> Result<bool> {
    let nodes = Nodes::load()?;
    let node = nodes.get(&mark.to)?;
    let args = ["__arrived".into(), id.to_string(), mark.uuid.clone()];
    let out = ssh_command(&nodes, node, &args, false)?
        .timeout(Duration::from_secs(60))
        .report(report)
        .output()?;
    if !out.status.success() {
        return Err(remote_failure(
            node,
            "saying whether it holds the machine",
            out.status,
            crate::process_error::tail(&out.stderr),
        ));
    }
    match String::from_utf8_lossy(&out.stdout).trim() {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => Err(Error::Other(format!(
            "node {}: \"{other}\" where yes or no was expected",
            node.name
        ))),
    }
}

/// The target's answer to [`arrived_on`] (`mkve-vm __arrived ID UUID`):
/// whether machine `id` with the domain UUID `uuid` is defined on `uris`,
/// asked under its lock, so that a `__receive` keeping or undoing it has
/// ended first. Errors: a URI does not answer, libvirt fails.
pub fn arrived(uris: &Uris, id: MachineId, uuid: &str) -> Result<bool> {
    let _lock = crate::ids::machine_lock(id.get())?;
    Ok(super::manage::by_id(uris, id, uuid)?.0.is_some())
}

/// The watcher a move starts on its source (`mkve-vm __finish-move ID`):
/// it waits for its stdin to end (the move ended, or was killed), then,
/// if the move's mark is left, takes the machine's lock and [`resume`]s
/// it, saying what it did. Errors: those of `resume`.
pub fn finish_move(uris: &Uris, id: MachineId, report: &dyn Report) -> Result<()> {
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    if !mark_path(&vms_dir(), id.get()).exists() {
        return Ok(());
    }
    let _lock = crate::ids::machine_lock(id.get())?;
    match resume(uris, id, report)? {
        Resumed::Nothing => {}
        Resumed::Here(to) => report.warning(&format!(
            "machine {id}: its move to node {to} was interrupted: it stays here, running if it ran"
        )),
        Resumed::Moved(to) => report.warning(&format!(
            "machine {id}: its move was interrupted after node {to} took it: it runs there, and its copy here is removed"
        )),
    }
    Ok(())
}

/// What of a machine's directory stays behind: its hold on a base here
/// and an overlay's layers (the merged root is sent as `rootfs`).
const LEFT_BEHIND: [&str; 4] = ["base", "upper", "work", "rootfs"];

/// Move machine `target` (an ID or a name, on `uris`) to node `o.to`.
/// Errors: no such machine or node, the machine stands on a base and
/// boots a disk (2: detach it first), a hypervisor that cannot move (69),
/// the target does not answer, has no mkve network or already holds the
/// ID (69, 69, 2), the machine would not shut down in time (69), libvirt
/// refused (1). Whatever fails, the machine is left where it was, running
/// if it ran.
pub fn migrate(
    uris: &Uris,
    target: &str,
    o: &MigrateOptions,
    report: &dyn Report,
) -> Result<MachineId> {
    let nodes = Nodes::load()?;
    let to = nodes.get(&o.to)?;
    if nodes.is_this(&to.name) {
        return Err(Error::Usage(format!(
            "machine {target} is on node {} already",
            to.name
        )));
    }
    let (conn, d, m, _lock) = super::manage::find_locked(uris, target)?;
    let what = format!("machine {}", m.id);
    let hv = m
        .hypervisor
        .hypervisor()
        .filter(|h| matches!(h, Hypervisor::Qemu | Hypervisor::Kvm | Hypervisor::Lxc))
        .ok_or_else(|| Error::Unavailable {
            what: what.clone(),
            why: format!(
                "{} machines cannot move yet: only qemu, kvm (live) and lxc (offline) do",
                m.hypervisor
            ),
        })?;
    let dir = vms_dir().join(m.id.to_string());
    let running = d.is_active()?;
    let files = domain::files_of(&d.inactive_xml()?)
        .map_err(|e| Error::Other(format!("{what}: its domain XML: {e}")))?;
    // A machine on a missing or changed base: that first (65).
    super::base::check_of_machine(&dir)?;
    if let Some(outside) = files.iter().find(|f| !f.path.starts_with(&dir)) {
        return Err(Error::Usage(match super::base::of_machine(&dir) {
            Some(digest) => format!(
                "{what} stands on base {} ({}): mkve-vm stop, mkve-vm detach and start it, then migrate it",
                super::base::short(&digest),
                outside.path.display()
            ),
            None => format!(
                "{what} uses {}, outside its directory {}: it cannot move",
                outside.path.display(),
                dir.display()
            ),
        }));
    }
    // The target, asked before anything changes here.
    let uri = to.uri(hv).ok_or_else(|| {
        Error::InvalidConfig(crate::error::Problem::new(
            &nodes.path,
            Some(to.line),
            format!(
                "node {}: no node.{}.uri.{hv}=URI for its {} driver",
                to.name,
                to.name,
                hv.title()
            ),
        ))
    })?;
    let tconn = libvirt::connect(uri).map_err(|e| Error::Unavailable {
        what: format!("node {}", to.name),
        why: e.to_string(),
    })?;
    let net = crate::nodes::network()?;
    let status = network::status(&tconn, &net)?;
    if !status.defined || !status.active {
        return Err(Error::Unavailable {
            what: format!("node {}", to.name),
            why: format!(
                "network {} is {} there: mkve-net create on node {} makes and starts it",
                net.name,
                if status.defined {
                    "not active"
                } else {
                    "not defined"
                },
                to.name
            ),
        });
    }
    let live = running && hv.boots_disk_image();
    let blank = if live {
        blanks(&files, &dir, report)?
    } else {
        Vec::new()
    };
    let autostart = d.autostart().unwrap_or(false);
    let cmd = ssh_command(&nodes, to, &["__receive".into()], false)?.report(report);
    report.progress(&format!("asking node {} to take {what}", to.name));
    let mut agent = Agent::start(
        &cmd,
        to,
        &Header {
            id: m.id.get(),
            hypervisor: hv,
            blank: blank.clone(),
        },
    )?;
    let moving = Moving {
        conn: &conn,
        d: &d,
        m: &m,
        dir: &dir,
        to,
        uri,
        tconn: &tconn,
        net: &net,
        autostart,
        report,
    };
    if live {
        moving.live(&mut agent, &blank)?;
    } else {
        moving.offline(&mut agent, running, o)?;
    }
    Ok(m.id)
}

/// The writable disks of a live machine, as blank images of their format
/// and size for the target to make. Errors: qemu-img cannot read one.
fn blanks(files: &[domain::DomainFile], dir: &Path, report: &dyn Report) -> Result<Vec<Blank>> {
    let mut out = Vec::new();
    for f in files.iter().filter(|f| f.writable) {
        let info = Cmd::new("qemu-img")
            .args(["info", "-U", "--output=json"])
            .arg(&f.path)
            .report(report)
            .output_checked()?;
        let v: serde_json::Value = serde_json::from_slice(&info.stdout)
            .map_err(|e| Error::Other(format!("qemu-img info {}: {e}", f.path.display())))?;
        let bytes = v["virtual-size"]
            .as_u64()
            .ok_or_else(|| Error::Other(format!("qemu-img info {}: no size", f.path.display())))?;
        let name = f.path.strip_prefix(dir).unwrap_or(&f.path);
        out.push(Blank {
            file: name.to_string_lossy().into_owned(),
            format: f.format.clone(),
            bytes,
        });
    }
    Ok(out)
}

/// A move under way: the machine here, the target there.
struct Moving<'a> {
    conn: &'a Connection,
    d: &'a Dom,
    m: &'a super::Machine,
    dir: &'a Path,
    to: &'a Node,
    uri: &'a str,
    tconn: &'a Connection,
    net: &'a NetConfig,
    autostart: bool,
    report: &'a dyn Report,
}

/// What a move changed here and on the target, undone when dropped
/// armed: a live move's DHCP entry there, the machine here started
/// again, the move's mark removed.
struct Undo<'a> {
    tconn: &'a Connection,
    net: &'a NetConfig,
    id: u32,
    host: bool,
    restart: Option<(&'a Dom, &'a super::Machine)>,
    /// The move's mark, removed last.
    mark: Option<PathBuf>,
    report: &'a dyn Report,
}

impl Undo<'_> {
    fn disarm(mut self) {
        self.host = false;
        self.restart = None;
        self.mark = None;
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if self.host {
            let _ = network::remove_host(self.tconn, self.net, self.id, self.report);
        }
        if let Some((d, m)) = self.restart.take() {
            self.report
                .progress(&format!("starting machine {} again where it was", m.id));
            let started =
                super::manage::prepare_root(m).and_then(|()| d.start(&format!("machine {}", m.id)));
            if let Err(e) = started {
                self.report
                    .warning(&format!("machine {} could not be started again: {e}", m.id));
            }
        }
        // The machine is whole here again (started, or it says why not).
        if let Some(p) = self.mark.take() {
            let _ = remove_mark(&p);
        }
    }
}

impl Moving<'_> {
    fn what(&self) -> String {
        format!("machine {}", self.m.id)
    }

    fn undo(&self) -> Undo<'_> {
        Undo {
            tconn: self.tconn,
            net: self.net,
            id: self.m.id.get(),
            host: false,
            restart: None,
            mark: None,
            report: self.report,
        }
    }

    /// The machine's files but its writable disks, then libvirt's live
    /// migration.
    fn live(&self, agent: &mut Agent, blank: &[Blank]) -> Result<()> {
        let mut undo = self.undo();
        let mut exclude: Vec<PathBuf> = LEFT_BEHIND.iter().map(PathBuf::from).collect();
        exclude.extend(blank.iter().map(|b| PathBuf::from(&b.file)));
        agent.send_part("dir", self.dir, exclude)?;
        let there = agent.ready()?;
        network::add_host(
            self.tconn,
            self.net,
            self.m.id.get(),
            &self.m.name,
            self.report,
        )?;
        undo.host = true;
        let xml = rewrite(&self.d.migratable_xml()?, self.dir, &there);
        let host = self.to.migration_host().map(|h| format!("tcp://{h}"));
        self.report.progress(&format!(
            "migrating {} live to node {} ({})",
            self.what(),
            self.to.name,
            host.as_deref().unwrap_or(self.uri)
        ));
        let moved = self
            .d
            .migrate_live(self.uri, host.as_deref(), &xml, &self.what());
        if let Err(e) = moved {
            // libvirt resumes the guest here when a migration fails; if it
            // runs there after all, the move happened.
            if self.d.is_active().unwrap_or(true) || self.tconn.domain(&self.m.name).is_none() {
                return Err(e);
            }
            self.report
                .warning(&format!("libvirt said the migration failed, yet {} runs on node {}: taking it as moved ({e})", self.what(), self.to.name));
        }
        let tdom = self.tconn.domain(&self.m.name);
        undo.disarm();
        self.finish(agent, tdom, true)
    }

    /// Stop, send the files, have the target define and start it, then
    /// remove it here; its mark and its watcher from before the stop to
    /// the end (see the module's documentation).
    fn offline(&self, agent: &mut Agent, running: bool, o: &MigrateOptions) -> Result<()> {
        let path = mark_path(&vms_dir(), self.m.id.get());
        let exe = std::env::current_exe().map_err(|e| Error::io("/proc/self/exe", e))?;
        // Declared before `undo`, dropped after it: it finds the mark gone
        // when this run ends by itself. It looks where the machine is.
        let _watcher = Cmd::new(exe)
            .args([
                "-c",
                self.conn.uri(),
                "__finish-move",
                &self.m.id.to_string(),
            ])
            .report(self.report)
            .spawn_watcher()?;
        let mut mark = Mark {
            to: self.to.name.clone(),
            uuid: self.d.uuid()?,
            running,
            shutdown: if running && !o.force {
                o.timeout.as_secs()
            } else {
                0
            },
            step: Step::Moving,
        };
        mark.write(&path)?;
        let mut undo = self.undo();
        undo.mark = Some(path.clone());
        let done = self.offline_steps(agent, &mut undo, running, o);
        if done.is_err() {
            // The target removes what it made before the machine starts
            // here again.
            agent.abort();
            return done;
        }
        mark.step = Step::Committing;
        if let Err(e) = mark.write(&path) {
            agent.abort();
            return Err(e);
        }
        undo.disarm();
        self.finish(agent, None, false)
    }

    /// The steps of an offline move up to the target's `defined`, what
    /// they change here recorded in `undo`.
    fn offline_steps<'s>(
        &'s self,
        agent: &mut Agent,
        undo: &mut Undo<'s>,
        running: bool,
        o: &MigrateOptions,
    ) -> Result<()> {
        if running {
            self.stop(o)?;
            undo.restart = Some((self.d, self.m));
        }
        let rootfs = super::overlay::mount_point(self.dir);
        let exclude: Vec<PathBuf> = LEFT_BEHIND.iter().map(PathBuf::from).collect();
        agent.send_part("dir", self.dir, exclude)?;
        if rootfs.is_dir() {
            if super::overlay::is_overlay(self.dir) {
                super::overlay::mount(self.dir)?;
            }
            agent.send_part("rootfs", &rootfs, Vec::new())?;
        }
        let there = agent.ready()?;
        let xml = rewrite(&self.d.inactive_xml()?, self.dir, &there);
        self.report
            .note(&format!("defining on node {}:\n{xml}", self.to.name));
        if running {
            self.report.progress(&format!(
                "starting {} on node {}",
                self.what(),
                self.to.name
            ));
        }
        agent.define(&Define {
            name: self.m.name.clone(),
            xml,
            start: running,
            autostart: self.autostart,
        })
    }

    /// Ask the machine to stop (or pull the plug), and wait.
    fn stop(&self, o: &MigrateOptions) -> Result<()> {
        let what = self.what();
        if o.force {
            return self.d.destroy(&what);
        }
        self.report.progress(&format!(
            "stopping {what} (up to {} s)",
            o.timeout.as_secs()
        ));
        let start = std::time::Instant::now();
        // A container just started may not be askable yet (manage::stop).
        let mut why = String::new();
        while !self.d.shutdown_if_ready(&what, &mut why)? {
            if !self.d.is_active()? {
                return Ok(());
            }
            if start.elapsed() >= o.timeout {
                return Err(Error::Unavailable {
                    what,
                    why: format!(
                        "could not be asked to shut down for {} s ({why}): nothing moved; \
                         --force pulls the plug",
                        o.timeout.as_secs()
                    ),
                });
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        while self.d.is_active()? {
            if start.elapsed() >= o.timeout {
                return Err(Error::Unavailable {
                    what,
                    why: format!(
                        "still running {} s after it was asked to shut down: nothing moved; \
                         --force pulls the plug",
                        o.timeout.as_secs()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// The machine runs there: its autostart there (a live move's: an
    /// offline one's target set it), the target told to keep what it
    /// received, and what is left of it here removed (with the move's
    /// mark, last).
    fn finish(&self, agent: &mut Agent, tdom: Option<Dom>, live: bool) -> Result<()> {
        if live && self.autostart {
            match &tdom {
                Some(t) => {
                    if let Err(e) = t.set_autostart(true, &self.what()) {
                        self.report.warning(&format!("{e}"));
                    }
                }
                None => self.report.warning(&format!(
                    "{} is not found on node {} to set its autostart",
                    self.what(),
                    self.to.name
                )),
            }
        }
        agent.commit().map_err(|e| {
            if live {
                return e;
            }
            Error::Other(format!(
                "{e}: whether node {} took {} is not known: its copy here is kept, stopped, \
                 until that node answers (asked as this command ends, and by the next \
                 mkve-vm command on the machine here)",
                self.to.name,
                self.what()
            ))
        })?;
        self.report.progress(&format!(
            "{} runs on node {}: removing it here",
            self.what(),
            self.to.name
        ));
        if live {
            // libvirt undefined it here (UNDEFINE_SOURCE); once more in
            // case it kept it.
            let _ = self.d.undefine(&self.what());
        } else {
            self.d.undefine(&self.what()).map_err(|e| {
                Error::Other(format!(
                    "{e}: the machine runs on node {}, and its stopped copy is still defined here: \
                     mkve-vm delete {} here removes it",
                    self.to.name, self.m.id
                ))
            })?;
        }
        super::manage::remove_leftovers(self.conn, self.m.id, self.report)
    }
}

/// `xml` with the machine's directory here replaced by `there`.
fn rewrite(xml: &str, here: &Path, there: &Path) -> String {
    xml.replace(
        &libvirt::esc(&here.to_string_lossy()),
        &libvirt::esc(&there.to_string_lossy()),
    )
}

/// The target's `__receive`, over ssh.
struct Agent<'c> {
    talk: Talk<'c>,
    node: &'c Node,
    done: bool,
}

impl<'c> Agent<'c> {
    /// Start it and send `header`; its `ok` says the ID is free there.
    fn start(cmd: &'c Cmd<'c>, node: &'c Node, header: &Header) -> Result<Agent<'c>> {
        let mut a = Agent {
            talk: cmd.talk()?,
            node,
            done: false,
        };
        let mut line = serde_json::to_vec(header).map_err(|e| Error::Other(e.to_string()))?;
        line.push(b'\n');
        a.write(&line)?;
        a.expect("ok")?;
        Ok(a)
    }

    fn stdin(&mut self) -> Result<&mut std::process::ChildStdin> {
        self.talk
            .stdin
            .as_mut()
            .ok_or_else(|| Error::Other("the receiving side's stdin is closed".into()))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let r = self.stdin()?.write_all(bytes);
        match r {
            Ok(()) => Ok(()),
            Err(_) => Err(self.failed()),
        }
    }

    /// Its failure, once it has ended: what it said on stderr.
    fn failed(&mut self) -> Error {
        self.done = true;
        match self.talk.wait() {
            Ok((status, stderr)) if !status.success() => remote_failure(
                self.node,
                "receiving the machine",
                status,
                crate::process_error::tail(&stderr),
            ),
            Ok(_) => Error::Other(format!(
                "node {}: the receiving side ended early",
                self.node.name
            )),
            Err(e) => e,
        }
    }

    /// Read its next line, which must start with `word`; the rest of it.
    fn expect(&mut self, word: &str) -> Result<String> {
        match self.talk.read_line()? {
            Some(l) if l == word => Ok(String::new()),
            Some(l) if l.starts_with(&format!("{word} ")) => Ok(l[word.len() + 1..].to_string()),
            _ => Err(self.failed()),
        }
    }

    /// Send `dir` (but `exclude`) as part `name`.
    fn send_part(&mut self, name: &str, dir: &Path, exclude: Vec<PathBuf>) -> Result<()> {
        self.write(format!("part {name}\n").as_bytes())?;
        let stdin = self.stdin()?;
        let sent = (|| -> Result<()> {
            let frames = FrameWriter::new(&mut *stdin);
            let z = zstd::stream::write::Encoder::new(frames, 1).at(dir)?;
            let opts = PackOptions {
                clamp_mtime: None,
                exclude,
            };
            let (z, _) = pack::pack_dir(dir, z, &opts)?;
            z.finish().at(dir)?.finish().at(dir)?;
            Ok(())
        })();
        match sent {
            Ok(()) => Ok(()),
            // A closed pipe: the other side ended, and says why.
            Err(e) if broken_pipe(&e) => Err(self.failed()),
            Err(e) => Err(e),
        }
    }

    /// The files are sent; where they are there.
    fn ready(&mut self) -> Result<PathBuf> {
        self.write(b"end\n")?;
        self.expect("ready").map(PathBuf::from)
    }

    /// Have it define the machine (an offline move), and start it if
    /// asked: what it made there, it removes itself if no `commit` comes.
    fn define(&mut self, d: &Define) -> Result<()> {
        let mut line = b"define ".to_vec();
        serde_json::to_writer(&mut line, d).map_err(|e| Error::Other(e.to_string()))?;
        line.push(b'\n');
        self.write(&line)?;
        self.expect("defined").map(drop)
    }

    /// Tell it to remove what it made, and wait for it to end.
    fn abort(&mut self) {
        if !self.done {
            self.done = true;
            let _ = self.stdin().map(|s| s.write_all(b"abort\n"));
            let _ = self.talk.wait();
        }
    }

    /// Keep what it received: the machine is there.
    fn commit(&mut self) -> Result<()> {
        self.write(b"commit\n")?;
        self.expect("committed")?;
        self.done = true;
        let (status, stderr) = self.talk.wait()?;
        if !status.success() {
            return Err(self.talk.failure(status, stderr));
        }
        Ok(())
    }
}

impl Drop for Agent<'_> {
    fn drop(&mut self) {
        self.abort();
    }
}

/// The target's side of a move (`mkve-vm __receive`, run over ssh by the
/// source): see the module's documentation for what it reads and says.
/// Errors: the ID is taken or busy here (2), the mkve network is missing
/// (69), the stream is malformed, the files cannot be made (73).
pub fn receive(report: &dyn Report) -> Result<()> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| Error::io("(stdin)", e))?;
    let header: Header = serde_json::from_str(&line)
        .map_err(|e| Error::Usage(format!("(stdin): not a migration's header: {e}")))?;
    let id = MachineId::new(header.id).map_err(Error::Usage)?;
    let net = crate::nodes::network()?;
    let conn = libvirt::connect(&libvirt::uri(
        None,
        &crate::nodes::local_uri(header.hypervisor),
    ))?;
    let status = network::status(&conn, &net)?;
    if !status.defined || !status.active {
        return Err(Error::Unavailable {
            what: format!("network {}", net.name),
            why: "not defined or not active here: mkve-net create makes it".into(),
        });
    }
    let _lock = Lock::try_acquire(&format!("machine-{id}.lock"), Mode::Exclusive)?
        .ok_or_else(|| Error::Usage(format!("ID {id} is busy here: an operation on it runs")))?;
    let vms = vms_dir();
    if super::create::taken_ids(&conn, &net, &vms)?.contains(&id.get()) {
        return Err(Error::Usage(format!(
            "ID {id} is taken here (a machine, its files or a DHCP entry holds it)"
        )));
    }
    say("ok")?;
    let staging = super::staging::staging(&vms)?;
    let made = staging.path().join("machine");
    std::fs::create_dir(&made).map_err(|e| Error::create(&made, e))?;
    loop {
        line.clear();
        input
            .read_line(&mut line)
            .map_err(|e| Error::io("(stdin)", e))?;
        match line.trim_end() {
            "end" => break,
            "part dir" => unpack_part(
                &mut input,
                &made,
                UnpackOptions {
                    absolute_symlinks: false,
                    devices: false,
                },
            )?,
            "part rootfs" => {
                let root = made.join("rootfs");
                std::fs::create_dir_all(&root).map_err(|e| Error::create(&root, e))?;
                unpack_part(&mut input, &root, UnpackOptions::ROOTFS)?
            }
            other => {
                return Err(Error::Usage(format!(
                    "(stdin): \"{other}\" where a part or its end was expected"
                )))
            }
        }
    }
    for b in &header.blank {
        let file = made.join(&b.file);
        if !file.starts_with(&made) || b.file.contains("..") {
            return Err(Error::Usage(format!(
                "(stdin): blank disk {}: not a name",
                b.file
            )));
        }
        report.progress(&format!(
            "making a blank {} disk of {} bytes",
            b.format, b.bytes
        ));
        Cmd::new("qemu-img")
            .args(["create", "-q", "-f", &b.format])
            .arg(&file)
            .arg(b.bytes.to_string())
            .report(report)
            .run_checked()?;
    }
    let dir = vms.join(id.to_string());
    std::fs::rename(&made, &dir).map_err(|e| Error::create(&dir, e))?;
    let mut got = Received {
        conn: &conn,
        net: &net,
        id,
        dir: Some(dir.clone()),
        host: false,
        domain: None,
        report,
    };
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).at(&dir)?;
    drop(staging);
    say(&format!("ready {}", dir.display()))?;
    let last = loop {
        line.clear();
        if input.read_line(&mut line).is_err() {
            line.clear();
        }
        match line.trim_end() {
            "commit" => {
                got.keep();
                return say("committed");
            }
            l if l.starts_with("define ") => {
                let d: Define = serde_json::from_str(&l["define ".len()..])
                    .map_err(|e| Error::Usage(format!("(stdin): not a machine to define: {e}")))?;
                got.define(&d)?;
                say("defined")?;
            }
            l => break l.to_string(),
        }
    };
    // Aborted, or the source went away: what came is removed. A live
    // move's domain is libvirt's doing: if it is defined, the machine
    // came after all, and all is kept.
    if got.domain.is_none() {
        if crate::ids::used_on_node(&conn)?.contains(&id.get()) {
            got.keep();
            report.warning(&format!(
                "the move of machine {id} ended without its last word, but machine {id} is defined here: kept"
            ));
            return Ok(());
        }
        // The source added its DHCP entry (a live move).
        got.host = true;
    }
    drop(got);
    if last == "abort" {
        return Ok(());
    }
    Err(Error::Other(format!(
        "the move of machine {id} ended without its last word: what came is removed"
    )))
}

/// What a `__receive` made here, removed when dropped unless kept: the
/// machine's directory, its DHCP entry, its domain.
struct Received<'a> {
    conn: &'a Connection,
    net: &'a NetConfig,
    id: MachineId,
    dir: Option<PathBuf>,
    host: bool,
    domain: Option<Dom>,
    report: &'a dyn Report,
}

impl Received<'_> {
    /// The machine's DHCP entry and domain, with its autostart, started
    /// if asked. Errors: libvirt refused.
    fn define(&mut self, d: &Define) -> Result<()> {
        let what = format!("machine {}", self.id);
        network::add_host(self.conn, self.net, self.id.get(), &d.name, self.report)?;
        self.host = true;
        let dom = self.domain.insert(self.conn.define(&d.xml, &what)?);
        if d.autostart {
            dom.set_autostart(true, &what)?;
        }
        if d.start {
            dom.start(&what)?;
        }
        Ok(())
    }

    fn keep(&mut self) {
        self.dir = None;
        self.host = false;
        self.domain = None;
    }
}

impl Drop for Received<'_> {
    fn drop(&mut self) {
        if let Some(d) = self.domain.take() {
            d.discard();
        }
        if self.host {
            let _ = network::remove_host(self.conn, self.net, self.id.get(), self.report);
        }
        if let Some(dir) = self.dir.take() {
            if let Err(e) = super::overlay::remove_machine_dir(&dir) {
                self.report.warning(&format!("{e}"));
            }
        }
    }
}

/// One framed zstd tar into `dest`, read to its end mark.
fn unpack_part(input: &mut impl BufRead, dest: &Path, opts: UnpackOptions) -> Result<()> {
    let mut frames = FrameReader::new(input);
    {
        let z = zstd::stream::read::Decoder::new(&mut frames).at(dest)?;
        pack::unpack(z, Some(dest), Path::new("(the machine's files)"), opts)?;
    }
    frames.drain().at(dest)
}

/// One line to the source.
fn say(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("(stdout)", e))
}

/// Whether `e` is a write to a pipe whose reader went away.
fn broken_pipe(e: &Error) -> bool {
    match e {
        Error::CannotCreate { source, .. } | Error::Io { source, .. } => {
            source.kind() == std::io::ErrorKind::BrokenPipe
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Silent;
    use crate::libvirt::domain;

    #[test]
    fn a_mark_is_written_read_and_told_apart_from_garbage() {
        let d = tempfile::tempdir().unwrap();
        let path = mark_path(d.path(), 101);
        assert!(path.ends_with("101.moving"));
        assert_eq!(Mark::read(&path).unwrap(), None);
        let mut mark = Mark {
            to: "n2".into(),
            uuid: "0f1e2d3c-0000-4000-8000-000000000101".into(),
            running: true,
            shutdown: 0,
            step: Step::Moving,
        };
        mark.write(&path).unwrap();
        assert_eq!(Mark::read(&path).unwrap().as_ref(), Some(&mark));
        mark.step = Step::Committing;
        mark.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"step\":\"committing\""), "{text}");
        assert_eq!(Mark::read(&path).unwrap(), Some(mark));
        // No temporary file is left beside it.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        std::fs::write(&path, "{\"to\":").unwrap();
        let e = Mark::read(&path).unwrap_err().to_string();
        assert!(e.contains("101.moving: not the mark of a move"), "{e}");
    }

    /// An interrupted move of an mkve machine on the in-process test
    /// driver, resolved by each rule: `moving` starts it again here;
    /// `committing` asks the target (a stand-in for ssh that answers, or
    /// does not): no answer changes nothing, "no" starts it here, "yes"
    /// removes the copy here. A mark whose machine's lock is held is a
    /// move under way, not an interrupted one.
    #[test]
    fn an_interrupted_move_is_resolved_by_its_mark() {
        let _env = crate::testing::ENV
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let d = tempfile::tempdir().unwrap();
        let answer = d.path().join("answer");
        let ssh = d.path().join("ssh");
        crate::testing::write(&ssh, &format!("#!/bin/sh\nexec cat {}\n", answer.display()));
        std::fs::set_permissions(&ssh, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        crate::testing::write(
            &d.path().join("conf/mkve.conf"),
            &format!(
                "this_node=n1\nnode_ssh_command={}\nnode.n1.ids=100-149\n\
                 node.n2.ids=150-199\nnode.n2.ssh=root@n2.invalid\n\
                 node.n2.uri.qemu=qemu+ssh://root@n2.invalid/system\n",
                ssh.display()
            ),
        );
        std::env::set_var("MKVE_CONFDIR", d.path().join("conf"));
        std::env::set_var("MKVE_STATEDIR", d.path().join("state"));
        std::env::set_var("MKVE_LOCKDIR", d.path().join("lock"));
        let id = MachineId::new(141).unwrap();
        let conn = libvirt::connect("test:///default").unwrap();
        let xml = format!(
            "<domain type='test'><name>moving-141</name><memory>65536</memory>\
             <os><type>hvm</type></os><metadata>{}</metadata></domain>",
            domain::metadata_xml(&domain::Record {
                id: 141,
                address: "10.0.0.141".parse().unwrap(),
                template: "t".into(),
                version: "1".into(),
                bundle: "00".repeat(32),
                signed_by: None,
            })
        );
        let dom = conn.define(&xml, "moving-141").unwrap();
        let uris = Uris {
            list: vec!["test:///default".into()],
            explicit: true,
        };
        let vms = vms_dir();
        std::fs::create_dir_all(vms.join("141")).unwrap();
        let path = mark_path(&vms, 141);
        let mut mark = Mark {
            to: "n2".into(),
            uuid: dom.uuid().unwrap(),
            running: true,
            shutdown: 0,
            step: Step::Moving,
        };
        assert_eq!(resume(&uris, id, &Silent).unwrap(), Resumed::Nothing);

        mark.write(&path).unwrap();
        {
            let _held = crate::ids::machine_lock(141).unwrap();
            assert!(interrupted_moves().is_empty(), "a move under way");
        }
        assert_eq!(interrupted_moves(), [(id, "n2".to_string())]);
        assert_eq!(
            resume(&uris, id, &Silent).unwrap(),
            Resumed::Here("n2".into())
        );
        assert!(dom.is_active().unwrap(), "started again: it ran");
        assert!(!path.exists() && interrupted_moves().is_empty());
        // Found running, as when a move was killed while the machine shut
        // down: waited for (here 1 s, in vain), then left as it is.
        mark.shutdown = 1;
        mark.write(&path).unwrap();
        let t0 = std::time::Instant::now();
        assert_eq!(
            resume(&uris, id, &Silent).unwrap(),
            Resumed::Here("n2".into())
        );
        assert!(t0.elapsed() >= Duration::from_millis(500));
        assert!(dom.is_active().unwrap() && !path.exists());
        mark.shutdown = 0;

        dom.destroy("moving-141").unwrap();
        mark.step = Step::Committing;
        mark.write(&path).unwrap();
        // No answer (empty): nothing is done, the mark stays.
        std::fs::write(&answer, "").unwrap();
        let e = resume(&uris, id, &Silent).unwrap_err();
        assert_eq!(e.exit_code(), 69, "{e}");
        let text = e.to_string();
        assert!(
            text.contains("nothing is done") && text.contains("where yes or no was expected"),
            "{e}"
        );
        assert!(path.exists() && !dom.is_active().unwrap());
        // The target does not hold it: it is the one here.
        std::fs::write(&answer, "no\n").unwrap();
        assert_eq!(
            resume(&uris, id, &Silent).unwrap(),
            Resumed::Here("n2".into())
        );
        assert!(dom.is_active().unwrap() && !path.exists());
        // The target holds it: the copy here goes, its files and mark too.
        mark.write(&path).unwrap();
        std::fs::write(&answer, "yes\n").unwrap();
        assert_eq!(
            resume(&uris, id, &Silent).unwrap(),
            Resumed::Moved("n2".into())
        );
        assert!(conn.domain("moving-141").is_none());
        assert!(!vms.join("141").exists() && !path.exists());
    }
}
