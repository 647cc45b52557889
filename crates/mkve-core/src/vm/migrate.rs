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
//! The target's side is `receive` (receive.rs), `mkve-vm __receive` over ssh: it
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
//! target's.** The source writes its mark, `vms/ID.moving` (`Mark`, moves.rs:
//! the target, the domain's UUID, whether it ran), before it stops the
//! machine, turns it to `committing` just before it sends `commit`, and
//! removes it last, once its own copy is gone (or, on a failure, once the
//! machine runs here again). A mark left over is resolved under the
//! machine's lock by `moves::resume`: `moving`, the machine is started again
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

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::layout::{moving_mark, vms_dir};
use super::moves::{remove_mark, Mark, Step};
use super::receive::{Answer, Blank, Define, Header, Part, Say};
use super::remote::{remote_failure, ssh_command, FrameWriter};
use super::Uris;
use crate::error::{Error, IoContext, Result};
use crate::exec::{Cmd, Report, Talk};
use crate::hypervisor::Hypervisor;
use crate::ids::MachineId;
use crate::libvirt::{self, domain, network, Connection, Dom};
use crate::net::NetConfig;
use crate::nodes::{Node, Nodes};
use crate::pack::{self, PackOptions};

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
    super::manage::refuse_snapshots(&m, &super::layout::machine_dir(m.id), "move")?;
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
    let dir = super::layout::machine_dir(m.id);
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
        let bytes = super::qemu_img::virtual_size(&f.path, report)?;
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
            let started = super::overlay::prepare_root(m)
                .and_then(|()| d.start(&format!("machine {}", m.id)));
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
        agent.send_part(Part::Dir, self.dir, exclude)?;
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
        let path = moving_mark(&vms_dir(), self.m.id.get());
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
        agent.send_part(Part::Dir, self.dir, exclude)?;
        if rootfs.is_dir() {
            if super::overlay::is_overlay(self.dir) {
                super::overlay::mount(self.dir)?;
            }
            agent.send_part(Part::Rootfs, &rootfs, Vec::new())?;
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
        agent.define(Define {
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
        super::staging::remove_leftovers(self.conn, self.m.id, self.report)
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
        a.expect(|x| (x == Answer::Ok).then_some(()))?;
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

    /// Say `s` (a line).
    fn say(&mut self, s: &Say) -> Result<()> {
        self.write(format!("{s}\n").as_bytes())
    }

    /// Read its next line, which must be an answer `want` takes: what it
    /// makes of it.
    fn expect<T>(&mut self, want: fn(Answer) -> Option<T>) -> Result<T> {
        match self
            .talk
            .read_line()?
            .as_deref()
            .and_then(Answer::parse)
            .and_then(want)
        {
            Some(t) => Ok(t),
            None => Err(self.failed()),
        }
    }

    /// Send `dir` (but `exclude`) as part `part`.
    fn send_part(&mut self, part: Part, dir: &Path, exclude: Vec<PathBuf>) -> Result<()> {
        self.say(&Say::Part(part))?;
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
        self.say(&Say::End)?;
        self.expect(|a| match a {
            Answer::Ready(dir) => Some(dir),
            _ => None,
        })
    }

    /// Have it define the machine (an offline move), and start it if
    /// asked: what it made there, it removes itself if no `commit` comes.
    fn define(&mut self, d: Define) -> Result<()> {
        self.say(&Say::Define(d))?;
        self.expect(|a| (a == Answer::Defined).then_some(()))
    }

    /// Tell it to remove what it made, and wait for it to end.
    fn abort(&mut self) {
        if !self.done {
            self.done = true;
            // Not through write(): its failure would wait for the agent.
            let abort = format!("{}\n", Say::Abort);
            let _ = self.stdin().map(|s| s.write_all(abort.as_bytes()));
            let _ = self.talk.wait();
        }
    }

    /// Keep what it received: the machine is there.
    fn commit(&mut self) -> Result<()> {
        self.say(&Say::Commit)?;
        self.expect(|a| (a == Answer::Committed).then_some(()))?;
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

/// Whether `e` is a write to a pipe whose reader went away.
fn broken_pipe(e: &Error) -> bool {
    match e {
        Error::CannotCreate { source, .. } | Error::Io { source, .. } => {
            source.kind() == std::io::ErrorKind::BrokenPipe
        }
        _ => false,
    }
}
