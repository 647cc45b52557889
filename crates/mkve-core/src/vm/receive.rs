//! A move's target side (`mkve-vm __receive`, run over ssh by the
//! source, migrate.rs) and the messages of its line protocol: what it
//! reads and says is in migrate.rs's documentation.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::layout::vms_dir;
use super::remote::FrameReader;
use crate::error::{Error, IoContext, Result};
use crate::exec::Report;
use crate::hypervisor::Hypervisor;
use crate::ids::MachineId;
use crate::libvirt::{self, network, Connection, Dom};
use crate::lock::{Lock, Mode};
use crate::net::NetConfig;
use crate::pack::{self, UnpackOptions};

/// What the target is told first.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Header {
    pub(super) id: u32,
    pub(super) hypervisor: Hypervisor,
    /// Disk images to make empty there, for libvirt to copy into.
    pub(super) blank: Vec<Blank>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Blank {
    /// Its name in the machine's directory.
    pub(super) file: String,
    /// raw or qcow2.
    pub(super) format: String,
    /// Its virtual size in bytes.
    pub(super) bytes: u64,
}

/// An offline move's last step on the target, after `ready`: the machine
/// defined there by the target itself, so that all it made there is one
/// process's, undone by it when the source goes away before `commit`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Define {
    /// The machine's name, for its DHCP entry.
    pub(super) name: String,
    /// The domain's XML, its paths the target's.
    pub(super) xml: String,
    /// Start it there (it ran here).
    pub(super) start: bool,
    /// Its autostart there.
    pub(super) autostart: bool,
}

/// The lines the moving side sends after the header (migrate.rs's
/// `Agent`), each read by [`Say::parse`] and written by its `Display`.
#[derive(Debug)]
pub(super) enum Say {
    /// `part dir` or `part rootfs`: that part follows, as frames.
    Part(Part),
    /// `end`: no more parts.
    End,
    /// `define JSON`: define the machine (an offline move), and start it
    /// if asked.
    Define(Define),
    /// `commit`: keep what came.
    Commit,
    /// `abort`: remove what came.
    Abort,
}

/// A part of a move: the machine's directory, or an lxc machine's root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    Dir,
    Rootfs,
}

impl std::fmt::Display for Say {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Say::Part(Part::Dir) => f.write_str("part dir"),
            Say::Part(Part::Rootfs) => f.write_str("part rootfs"),
            Say::End => f.write_str("end"),
            Say::Define(d) => {
                let json = serde_json::to_string(d).map_err(|_| std::fmt::Error)?;
                write!(f, "define {json}")
            }
            Say::Commit => f.write_str("commit"),
            Say::Abort => f.write_str("abort"),
        }
    }
}

impl Say {
    /// One line as read (its newline trimmed): `None` for a line that is
    /// no message (or the input's end). Errors: a `define` whose machine
    /// does not parse (usage, 2).
    pub(super) fn parse(line: &str) -> Result<Option<Say>> {
        Ok(Some(match line {
            "part dir" => Say::Part(Part::Dir),
            "part rootfs" => Say::Part(Part::Rootfs),
            "end" => Say::End,
            "commit" => Say::Commit,
            "abort" => Say::Abort,
            l => {
                match l.strip_prefix("define ") {
                    Some(json) => Say::Define(serde_json::from_str(json).map_err(|e| {
                        Error::Usage(format!("(stdin): not a machine to define: {e}"))
                    })?),
                    None => return Ok(None),
                }
            }
        }))
    }
}

/// The receiving side's answers, a line each.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Answer {
    /// `ok`: the header is taken (the ID is free here).
    Ok,
    /// `ready PATH`: the parts are here, in the machine's directory PATH.
    Ready(PathBuf),
    /// `defined`: the machine is defined (and started if asked).
    Defined,
    /// `committed`: what came is kept.
    Committed,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Ok => f.write_str("ok"),
            Answer::Ready(dir) => write!(f, "ready {}", dir.display()),
            Answer::Defined => f.write_str("defined"),
            Answer::Committed => f.write_str("committed"),
        }
    }
}

impl Answer {
    /// One line as read: `None` for one that is no answer.
    pub(super) fn parse(line: &str) -> Option<Answer> {
        match line {
            "ok" => Some(Answer::Ok),
            "defined" => Some(Answer::Defined),
            "committed" => Some(Answer::Committed),
            l => l
                .strip_prefix("ready ")
                .map(|d| Answer::Ready(PathBuf::from(d))),
        }
    }
}

/// The target's side of a move (`mkve-vm __receive`, run over ssh by the
/// source): see migrate.rs's documentation for what it reads and says.
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
    let conn =
        libvirt::connect(&crate::nodes::Connections::resolve(None)?.create(header.hypervisor))?;
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
    if super::taken::taken_ids(&conn, &net, &vms)?.contains(&id.get()) {
        return Err(Error::Usage(format!(
            "ID {id} is taken here (a machine, its files or a DHCP entry holds it)"
        )));
    }
    say(&Answer::Ok)?;
    let staging = super::staging::staging(&vms)?;
    let made = staging.path().join("machine");
    std::fs::create_dir(&made).map_err(|e| Error::create(&made, e))?;
    loop {
        line.clear();
        input
            .read_line(&mut line)
            .map_err(|e| Error::io("(stdin)", e))?;
        match Say::parse(line.trim_end())? {
            Some(Say::End) => break,
            Some(Say::Part(Part::Dir)) => unpack_part(
                &mut input,
                &made,
                UnpackOptions {
                    absolute_symlinks: false,
                    devices: false,
                },
            )?,
            Some(Say::Part(Part::Rootfs)) => {
                let root = made.join("rootfs");
                std::fs::create_dir_all(&root).map_err(|e| Error::create(&root, e))?;
                unpack_part(&mut input, &root, UnpackOptions::ROOTFS)?
            }
            _ => {
                return Err(Error::Usage(format!(
                    "(stdin): \"{}\" where a part or its end was expected",
                    crate::text::printable(line.trim_end())
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
        super::qemu_img::create(&file, &b.format, Some(b.bytes), None, report)?;
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
    say(&Answer::Ready(dir.clone()))?;
    let aborted = loop {
        line.clear();
        if input.read_line(&mut line).is_err() {
            line.clear();
        }
        match Say::parse(line.trim_end())? {
            Some(Say::Commit) => {
                got.keep();
                return say(&Answer::Committed);
            }
            Some(Say::Define(d)) => {
                got.define(&d)?;
                say(&Answer::Defined)?;
            }
            said => break matches!(said, Some(Say::Abort)),
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
    if aborted {
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
fn say(answer: &Answer) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{answer}")
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("(stdout)", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_move_s_lines_read_as_they_are_written() {
        let d = Define {
            name: "ntp-101".into(),
            xml: "<domain/>".into(),
            start: true,
            autostart: false,
        };
        for say in [
            Say::Part(Part::Dir),
            Say::Part(Part::Rootfs),
            Say::End,
            Say::Define(d),
            Say::Commit,
            Say::Abort,
        ] {
            let line = say.to_string();
            assert!(!line.contains('\n'), "{line}");
            let back = Say::parse(&line).unwrap().unwrap();
            assert_eq!(back.to_string(), line);
        }
        assert!(Say::parse("part etc").unwrap().is_none());
        assert!(Say::parse("").unwrap().is_none());
        assert_eq!(Say::parse("define {").unwrap_err().exit_code(), 2);
        for a in [
            Answer::Ok,
            Answer::Ready("/var/lib/mkve/vms/101".into()),
            Answer::Defined,
            Answer::Committed,
        ] {
            assert_eq!(Answer::parse(&a.to_string()), Some(a));
        }
        assert_eq!(Answer::parse("okay"), None);
    }
}
