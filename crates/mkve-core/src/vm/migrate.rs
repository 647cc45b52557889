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
//! only when the source says `commit`; on `abort`, or when the source goes
//! away, it removes what it made, unless a domain with the ID exists there
//! by then (the machine made it). The stream: one line of JSON
//! (`Header`), then `part dir` / `part rootfs` lines each followed by a
//! framed zstd tar, then `end`; it answers `ok` after its checks and
//! `ready PATH` once the files are in place.

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
    let net = NetConfig::load()?;
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

/// What a move made on the target, undone when dropped armed; and the
/// machine here, started again.
struct Undo<'a> {
    tconn: &'a Connection,
    net: &'a NetConfig,
    id: u32,
    domain: Option<Dom>,
    host: bool,
    restart: Option<(&'a Dom, &'a super::Machine)>,
    report: &'a dyn Report,
}

impl Undo<'_> {
    fn disarm(mut self) {
        self.domain = None;
        self.host = false;
        self.restart = None;
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if let Some(d) = self.domain.take() {
            d.discard();
        }
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
            domain: None,
            host: false,
            restart: None,
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

    /// Stop, send the files, define and start there, then remove here.
    fn offline(&self, agent: &mut Agent, running: bool, o: &MigrateOptions) -> Result<()> {
        let mut undo = self.undo();
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
        network::add_host(
            self.tconn,
            self.net,
            self.m.id.get(),
            &self.m.name,
            self.report,
        )?;
        undo.host = true;
        let xml = rewrite(&self.d.inactive_xml()?, self.dir, &there);
        self.report
            .note(&format!("defining on node {}:\n{xml}", self.to.name));
        let tdom = undo.domain.insert(self.tconn.define(&xml, &self.what())?);
        if running {
            self.report.progress(&format!(
                "starting {} on node {}",
                self.what(),
                self.to.name
            ));
            tdom.start(&self.what())?;
        }
        let tdom = undo.domain.take();
        undo.disarm();
        self.finish(agent, tdom, false)
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
        self.d.shutdown(&what)?;
        let start = std::time::Instant::now();
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

    /// The machine runs there: its autostart there, the target told to
    /// keep what it received, and what is left of it here removed.
    fn finish(&self, agent: &mut Agent, tdom: Option<Dom>, live: bool) -> Result<()> {
        if self.autostart {
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
        agent.commit()?;
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
                crate::exec::tail(&stderr),
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
        if !self.done {
            let _ = self.stdin().map(|s| s.write_all(b"abort\n"));
            let _ = self.talk.wait();
        }
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
    let net = NetConfig::load()?;
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
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).at(&dir)?;
    drop(staging);
    say(&format!("ready {}", dir.display()))?;
    line.clear();
    let _ = input.read_line(&mut line);
    if line.trim_end() == "commit" {
        return say("committed");
    }
    // Aborted, or the source went away: what came is removed, unless the
    // machine made it here after all (its domain is defined).
    if crate::ids::used_on_node(&conn)?.contains(&id.get()) {
        report.warning(&format!(
            "the move of machine {id} ended without its last word, but machine {id} is defined here: kept"
        ));
        return Ok(());
    }
    let _ = network::remove_host(&conn, &net, id.get(), report);
    super::overlay::remove_machine_dir(&dir)?;
    if line.trim_end() == "abort" {
        return Ok(());
    }
    Err(Error::Other(format!(
        "the move of machine {id} ended without its last word: what came is removed"
    )))
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
