//! Reaching another node's mkve-vm over ssh (mkve-vm(1), NODES): every
//! command but `list --all-nodes` run there as if typed there
//! ([`forward`]), and `create` with its bundle streamed there
//! ([`create_on`] here, [`create_from_stream`] there), as the pipeline
//! `mkve-bundle -o - | ssh node mkve-vm create -` did by hand.
//!
//! A create's options are read and checked here, where they were typed
//! (its password and key files, its parameter files, a keyring are this
//! host's files), and travel with the bundle: on ssh's stdin, one line
//! of JSON (`Request`) and then the bundle's bytes (a bundle given as an
//! `http(s)://` URL is not streamed: the node fetches it). The node checks them
//! again with the same types, verifies the bundle against its keyring (or
//! the one sent), and makes the machine as any create there would.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::create::{create, domain_xml, CreateOptions};
use crate::access::RootLogin;
use crate::error::{Error, Result};
use crate::exec::{Cmd, Report};
use crate::nodes::{Node, Nodes};

/// The longest request line a node reads (a keyring, hex-encoded, is the
/// largest part of it).
const REQUEST_MAX: u64 = 8 << 20;

/// The ssh command that runs `args` with the mkve-vm of `node`: mkve.conf's
/// `node_ssh_command`, `-t` for a terminal, the node's destination, and the
/// command line quoted for the remote shell.
pub(super) fn ssh_command(
    nodes: &Nodes,
    node: &Node,
    args: &[String],
    tty: bool,
) -> Result<Cmd<'static>> {
    let dest = node.ssh_destination(&nodes.path)?;
    let (program, options) = nodes
        .ssh_command
        .split_first()
        .ok_or_else(|| Error::Other("node_ssh_command is empty".into()))?;
    let remote = std::iter::once(node.mkve_vm.clone()).chain(args.iter().cloned());
    Ok(Cmd::new(program)
        .args(options)
        .args(if tty { &["-t"][..] } else { &[] })
        .arg(dest)
        .arg(shell_words::join(remote))
        .what(format!("ssh {dest}")))
}

/// The error of an ssh run that ended with `status`: ssh's own 255 is a
/// node that did not answer (69); any other status is mkve-vm's there.
pub(super) fn remote_failure(
    node: &Node,
    what: &str,
    status: std::process::ExitStatus,
    detail: String,
) -> Error {
    match status.code() {
        Some(255) => Error::Unavailable {
            what: format!(
                "node {} ({})",
                node.name,
                node.ssh.as_deref().unwrap_or_default()
            ),
            why: format!("ssh did not reach it, or was refused{detail}"),
        },
        code => Error::Remote {
            node: node.name.clone(),
            what: what.to_string(),
            status: code.unwrap_or(1),
            detail,
        },
    }
}

/// Run mkve-vm on node `name` with `args` (the command line as typed,
/// without `--node`), its stdin, stdout and stderr this one's, `tty`
/// asking ssh for a terminal (a console). Errors: no such node (2), ssh
/// did not reach it (69), the command failed there (its status).
pub fn forward(nodes: &Nodes, name: &str, args: &[String], tty: bool) -> Result<()> {
    let node = nodes.get(name)?;
    let status = ssh_command(nodes, node, args, tty)?.status_inherited()?;
    if status.success() {
        return Ok(());
    }
    let what = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .cloned()
        .unwrap_or_else(|| "mkve-vm".into());
    Err(remote_failure(node, &what, status, String::new()))
}

/// What a create on another node takes, checked again there by the same
/// types (mkve-vm(1), NODES): the values as the command line gives them.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Request {
    /// An `http://` or `https://` bundle, which the node fetches itself
    /// (none is streamed); `None`: the bundle follows the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    hypervisor: Option<String>,
    id: Option<String>,
    name: Option<String>,
    memory: String,
    vcpus: String,
    cpu_shares: Option<String>,
    blkio_weight: Option<String>,
    vnc: bool,
    connect: Option<String>,
    /// The keyring's bytes, hex.
    keyring: Option<String>,
    allow_unsigned: bool,
    start: bool,
    password: Option<String>,
    keys: Vec<String>,
    disk_format: Option<String>,
    disk_size: Option<String>,
    params: Vec<(String, String)>,
    no_base: bool,
    local_ids: bool,
    print_xml: bool,
}

/// The bundle as a URL, when it is one: a node fetches it itself rather
/// than have it streamed.
fn url_of(bundle: &Path) -> Option<String> {
    bundle
        .to_str()
        .filter(|s| s.starts_with("http://") || s.starts_with("https://"))
        .map(str::to_string)
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Request {
    fn of(o: &CreateOptions, print_xml: bool) -> Result<Request> {
        let keyring = keyring_hex(&o.keyring)?;
        Ok(Request {
            url: url_of(&o.bundle),
            hypervisor: o.hypervisor.map(|h| h.to_string()),
            id: o.id.map(|i| i.to_string()),
            name: o.name.as_ref().map(|n| n.to_string()),
            memory: format!("{}M", o.memory.mib()),
            vcpus: o.vcpus.get().to_string(),
            cpu_shares: o.cpu_shares.map(|c| c.get().to_string()),
            blkio_weight: o.blkio_weight.map(|b| b.get().to_string()),
            vnc: o.vnc,
            connect: o.connect.clone(),
            keyring,
            allow_unsigned: o.allow_unsigned,
            start: o.start,
            password: o.access.password().map(str::to_string),
            keys: o.access.keys().to_vec(),
            disk_format: o.disk_format.map(|f| f.name().to_string()),
            disk_size: o.disk_size.map(|d| format!("{}M", d.mib())),
            params: o.params.clone(),
            no_base: o.no_base,
            local_ids: o.local_ids,
            print_xml,
        })
    }

    /// The options, every value checked again (2 when one is refused);
    /// the keyring, if one came, written to `keyring_file`.
    fn options(self, label: &str, keyring_file: &Path) -> Result<CreateOptions> {
        fn parse<T: std::str::FromStr<Err = String>>(v: &str) -> Result<T> {
            v.parse().map_err(Error::Usage)
        }
        fn opt<T: std::str::FromStr<Err = String>>(v: &Option<String>) -> Result<Option<T>> {
            v.as_deref().map(parse).transpose()
        }
        let from = Path::new(label);
        let keys = self.keys.join("\n");
        let access = RootLogin::from_texts(
            self.password.as_deref().map(|p| (from, p)),
            (!self.keys.is_empty()).then_some((from, keys.as_str())),
        )?;
        let keyring = keyring_from_hex(&self.keyring, label, keyring_file)?;
        Ok(CreateOptions {
            bundle: PathBuf::from(self.url.as_deref().unwrap_or("-")),
            hypervisor: opt(&self.hypervisor)?,
            id: opt(&self.id)?,
            name: opt(&self.name)?,
            again: None,
            memory: parse(&self.memory)?,
            vcpus: parse(&self.vcpus)?,
            cpu_shares: opt(&self.cpu_shares)?,
            blkio_weight: opt(&self.blkio_weight)?,
            vnc: self.vnc,
            connect: self.connect,
            keyring,
            allow_unsigned: self.allow_unsigned,
            start: self.start,
            access,
            disk_format: opt(&self.disk_format)?,
            disk_size: opt(&self.disk_size)?,
            params: self.params,
            no_base: self.no_base,
            local_ids: self.local_ids,
            source: None,
        })
    }
}

/// Create a machine on node `name` from the bundle of `o` (a file, or `-`
/// for stdin), streamed to that node's `mkve-vm __create-stream` over
/// ssh, which verifies and unpacks it; `print_xml` asks for the domain XML
/// instead. Returns what the node printed: the new ID, or the XML. What
/// the node tells on stderr comes through as it is told. Errors: no such
/// node (2), a file named by `o` cannot be read, ssh did not reach the
/// node (69), the create failed there (its exit status: 65 for a bundle
/// refused, and so on).
pub fn create_on(
    nodes: &Nodes,
    name: &str,
    o: &CreateOptions,
    print_xml: bool,
    report: &dyn Report,
) -> Result<String> {
    let node = nodes.get(name)?;
    let mut request =
        serde_json::to_vec(&Request::of(o, print_xml)?).map_err(|e| Error::Other(e.to_string()))?;
    request.push(b'\n');
    let bundle: Box<dyn Read + Send> = match url_of(&o.bundle) {
        Some(url) => {
            report.progress(&format!("node {name} fetches {url}"));
            Box::new(std::io::empty())
        }
        None => {
            report.progress(&format!("streaming the bundle to node {name}"));
            crate::files::open_input(&o.bundle)?
        }
    };
    let mut input = std::io::Cursor::new(request).chain(bundle);
    let cmd = ssh_command(nodes, node, &["__create-stream".into()], false)?.report(report);
    let (status, out) = cmd.run_with_input(&mut input)?;
    if !status.success() {
        return Err(remote_failure(node, "create", status, String::new()));
    }
    String::from_utf8(out).map_err(|_| Error::Other(format!("node {name}: its answer is not text")))
}

/// How a request on stdin is named in errors.
const REQUEST_LABEL: &str = "(request on stdin)";

/// The request line a node's side reads first from stdin (through the
/// process's one buffered stdin, so what follows it stays there), for
/// `command` (`create`, `restore`). Errors (2): no whole line, not the
/// request's JSON.
pub(super) fn read_request<T: serde::de::DeserializeOwned>(command: &str) -> Result<T> {
    let mut line = Vec::new();
    std::io::stdin()
        .lock()
        .take(REQUEST_MAX)
        .read_until(b'\n', &mut line)
        .map_err(|e| Error::io("(stdin)", e))?;
    if !line.ends_with(b"\n") {
        return Err(Error::Usage(format!(
            "{REQUEST_LABEL}: no request line (this is what mkve-vm --node NAME {command} sends)"
        )));
    }
    serde_json::from_slice(&line).map_err(|e| Error::Usage(format!("{REQUEST_LABEL}: {e}")))
}

/// The node's side of [`create_on`]: read the request line from stdin,
/// then create from the bundle that follows it. Returns what to print
/// (the ID and a newline, or the domain XML).
pub fn create_from_stream(report: &dyn Report) -> Result<String> {
    let label = REQUEST_LABEL;
    let request: Request = read_request("create")?;
    let print = request.print_xml;
    let dir = tempfile::Builder::new()
        .prefix("mkve-create-stream.")
        .tempdir()
        .map_err(|e| Error::create(std::env::temp_dir(), e))?;
    let o = request.options(label, &dir.path().join("keyring.gpg"))?;
    if print {
        return domain_xml(&o);
    }
    create(&o, report).map(|id| format!("{id}\n"))
}

/// What a restore on another node takes (mkve-vm(1), NODES): the values
/// as the command line gives them, checked again there. On ssh's stdin:
/// this line of JSON, the backup in frames ([`FrameWriter`]'s), then the
/// bundle's bytes when one is streamed.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreRequest {
    id: Option<String>,
    /// An `http://` or `https://` bundle, which the node fetches itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    /// The bundle follows the backup on the stream.
    bundle_follows: bool,
    connect: Option<String>,
    /// The keyring's bytes, hex.
    keyring: Option<String>,
    allow_unsigned: bool,
    start: bool,
    params: Vec<(String, String)>,
}

/// The bytes of keyring `k`, hex, as a request carries them. Errors: it
/// cannot be read (1).
fn keyring_hex(k: &Option<PathBuf>) -> Result<Option<String>> {
    k.as_ref()
        .map(|k| {
            std::fs::read(k)
                .map(|b| crate::digest::hex(&b))
                .map_err(|e| Error::io(k, e))
        })
        .transpose()
}

/// A request's keyring (`keyring_hex`) written to `file`, which is
/// returned. Errors: not hex (2), `file` cannot be written (73).
fn keyring_from_hex(hex: &Option<String>, label: &str, file: &Path) -> Result<Option<PathBuf>> {
    let Some(hex) = hex else { return Ok(None) };
    let bytes =
        hex_decode(hex).ok_or_else(|| Error::Usage(format!("{label}: the keyring is not hex")))?;
    std::fs::write(file, bytes).map_err(|e| Error::create(file, e))?;
    Ok(Some(file.to_path_buf()))
}

/// Restore the backup `backup` (a file, or `-` for stdin) on node `name`:
/// streamed to that node's `mkve-vm __restore-stream` over ssh, with the
/// bundle of `--bundle` when it is a file here (a URL the node fetches;
/// without `--bundle` the node makes the machine on its own base, or from
/// where the backup says the bundle came from, as a restore there would).
/// Returns what the node printed: the new ID. Errors: no such node (2), a
/// file named cannot be read, ssh did not reach the node (69), the restore
/// failed there (its exit status: 65 for an archive refused, 69 for a
/// bundle it cannot have, and so on).
pub fn restore_on(
    nodes: &Nodes,
    name: &str,
    backup: &Path,
    o: &super::RestoreOptions,
    report: &dyn Report,
) -> Result<String> {
    let node = nodes.get(name)?;
    let url = o.bundle.as_deref().and_then(url_of);
    let streamed = o.bundle.as_ref().filter(|_| url.is_none());
    let request = RestoreRequest {
        id: o.id.map(|i| i.to_string()),
        url,
        bundle_follows: streamed.is_some(),
        connect: o.connect.clone(),
        keyring: keyring_hex(&o.keyring)?,
        allow_unsigned: o.allow_unsigned,
        start: o.start,
        params: o.params.clone(),
    };
    let mut line = serde_json::to_vec(&request).map_err(|e| Error::Other(e.to_string()))?;
    line.push(b'\n');
    let bundle: Box<dyn Read + Send> = match streamed {
        Some(b) => crate::files::open_input(b)?,
        None => Box::new(std::io::empty()),
    };
    report.progress(&format!("streaming the backup to node {name}"));
    let archive = Framed::new(crate::files::open_input(backup)?);
    let mut input = std::io::Cursor::new(line).chain(archive).chain(bundle);
    let cmd = ssh_command(nodes, node, &["__restore-stream".into()], false)?.report(report);
    let (status, out) = cmd.run_with_input(&mut input)?;
    if !status.success() {
        return Err(remote_failure(node, "restore", status, String::new()));
    }
    String::from_utf8(out).map_err(|_| Error::Other(format!("node {name}: its answer is not text")))
}

/// The node's side of [`restore_on`]: the request line from stdin, then
/// the backup that follows it, then the bundle when one follows. Returns
/// the new machine's ID.
pub fn restore_from_stream(report: &dyn Report) -> Result<crate::ids::MachineId> {
    let label = REQUEST_LABEL;
    let r: RestoreRequest = read_request("restore")?;
    let dir = tempfile::Builder::new()
        .prefix("mkve-restore-stream.")
        .tempdir()
        .map_err(|e| Error::create(std::env::temp_dir(), e))?;
    let o = super::RestoreOptions {
        id: r
            .id
            .as_deref()
            .map(|v| v.parse().map_err(Error::Usage))
            .transpose()?,
        bundle: match (r.url, r.bundle_follows) {
            (Some(u), _) => Some(PathBuf::from(u)),
            (None, true) => Some(PathBuf::from("-")),
            (None, false) => None,
        },
        keyring: keyring_from_hex(&r.keyring, label, &dir.path().join("keyring.gpg"))?,
        allow_unsigned: r.allow_unsigned,
        params: r.params,
        connect: r.connect,
        start: r.start,
    };
    // The global stdin, buffered once: what the frames' reader read ahead
    // is there for the bundle's.
    let archive = Box::new(FrameReader::new(std::io::stdin()));
    super::backup::restore_from(archive, Path::new("(backup on stdin)"), &o, report)
}

/// Frames a reader's bytes as [`FrameWriter`] writes them, with the end
/// mark after its last byte: a backup on a stream that goes on after it.
struct Framed<R: Read> {
    inner: R,
    out: Vec<u8>,
    at: usize,
    ended: bool,
}

impl<R: Read> Framed<R> {
    fn new(inner: R) -> Self {
        Framed {
            inner,
            out: Vec::new(),
            at: 0,
            ended: false,
        }
    }
}

impl<R: Read> Read for Framed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.out.len() {
            if self.ended {
                return Ok(0);
            }
            let mut chunk = Vec::with_capacity(FRAME);
            (&mut self.inner)
                .take(FRAME as u64)
                .read_to_end(&mut chunk)?;
            self.ended = chunk.is_empty();
            self.out.clear();
            self.out
                .extend_from_slice(&(chunk.len() as u32).to_be_bytes());
            self.out.extend_from_slice(&chunk);
            self.at = 0;
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Frames on a byte stream that goes on after them (a migration's files,
/// then its last word): each is a 4-byte big-endian length and that many
/// bytes; a length of 0 ends them.
pub(super) struct FrameWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

const FRAME: usize = 1 << 16;

impl<W: Write> FrameWriter<W> {
    pub(super) fn new(inner: W) -> Self {
        FrameWriter {
            inner,
            buf: Vec::with_capacity(FRAME),
        }
    }

    fn flush_frame(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.inner
            .write_all(&(self.buf.len() as u32).to_be_bytes())?;
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Write what is left and the end mark; return the stream.
    pub(super) fn finish(mut self) -> std::io::Result<W> {
        self.flush_frame()?;
        self.inner.write_all(&0u32.to_be_bytes())?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for FrameWriter<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(FRAME - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == FRAME {
            self.flush_frame()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.flush_frame()?;
        self.inner.flush()
    }
}

/// Reads what a [`FrameWriter`] wrote, up to its end mark and not a byte
/// further.
pub(super) struct FrameReader<R: Read> {
    inner: R,
    left: usize,
    done: bool,
}

impl<R: Read> FrameReader<R> {
    pub(super) fn new(inner: R) -> Self {
        FrameReader {
            inner,
            left: 0,
            done: false,
        }
    }

    /// Read on to the end mark, whatever is left.
    pub(super) fn drain(&mut self) -> std::io::Result<()> {
        std::io::copy(self, &mut std::io::sink()).map(drop)
    }
}

impl<R: Read> Read for FrameReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.done || out.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut len = [0u8; 4];
            self.inner.read_exact(&mut len)?;
            self.left = u32::from_be_bytes(len) as usize;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
            if self.left > FRAME {
                return Err(std::io::Error::other("a frame longer than 64 KiB"));
            }
        }
        let want = out.len().min(self.left);
        let n = self.inner.read(&mut out[..want])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::{Memory, Vcpus};

    #[test]
    fn frames_carry_bytes_and_stop_at_their_end() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = FrameWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let mut stream = w.finish().unwrap();
        stream.extend_from_slice(b"commit\n");
        let mut r = FrameReader::new(&stream[..]);
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        let mut rest = String::new();
        r.inner.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "commit\n", "not a byte past the end mark is read");
        // A stream cut short is an error, not a short file.
        let cut = &stream[..1000];
        assert!(FrameReader::new(cut).read_to_end(&mut Vec::new()).is_err());
    }

    #[test]
    fn a_framed_reader_writes_what_a_frame_reader_reads() {
        for len in [0usize, 1, FRAME - 1, FRAME, FRAME + 1, 3 * FRAME + 7] {
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let mut stream = Vec::new();
            Framed::new(&data[..]).read_to_end(&mut stream).unwrap();
            stream.extend_from_slice(b"BUNDLE");
            let mut r = FrameReader::new(&stream[..]);
            let mut back = Vec::new();
            r.read_to_end(&mut back).unwrap();
            assert_eq!(back, data, "{len} bytes");
            let mut rest = Vec::new();
            r.inner.read_to_end(&mut rest).unwrap();
            assert_eq!(
                rest, b"BUNDLE",
                "{len} bytes: the bundle follows the end mark"
            );
        }
    }

    #[test]
    fn a_request_carries_the_options_and_is_checked_again() {
        let d = tempfile::tempdir().unwrap();
        let ring = d.path().join("ring.gpg");
        std::fs::write(&ring, b"\x99\x01keyring").unwrap();
        let o = CreateOptions {
            bundle: "b.bun".into(),
            hypervisor: Some(crate::hypervisor::Hypervisor::Lxc),
            id: Some("205".parse().unwrap()),
            name: Some("web".parse().unwrap()),
            again: None,
            memory: "1G".parse::<Memory>().unwrap(),
            vcpus: "2".parse::<Vcpus>().unwrap(),
            cpu_shares: Some("512".parse().unwrap()),
            blkio_weight: None,
            vnc: false,
            connect: None,
            keyring: Some(ring),
            allow_unsigned: true,
            start: true,
            access: RootLogin::from_texts(
                Some((Path::new("pw"), "s3cret\n")),
                Some((
                    Path::new("k"),
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2eXampleKey k\n",
                )),
            )
            .unwrap(),
            disk_format: None,
            disk_size: Some("2G".parse().unwrap()),
            params: vec![("admin".into(), "x y".into())],
            no_base: true,
            local_ids: true,
            source: None,
        };
        let json = serde_json::to_string(&Request::of(&o, false).unwrap()).unwrap();
        assert!(!json.contains('\n'), "one line");
        let back: Request = serde_json::from_str(&json).unwrap();
        let got = back.options("(test)", &d.path().join("k.gpg")).unwrap();
        assert_eq!(got.bundle, Path::new("-"), "the bundle follows the request");
        let mut by_url: Request = serde_json::from_str(&json).unwrap();
        by_url.url = url_of(Path::new("https://b.example/d/ntp.bun"));
        let o2 = by_url.options("(test)", &d.path().join("k3.gpg")).unwrap();
        assert_eq!(o2.bundle, Path::new("https://b.example/d/ntp.bun"));
        assert_eq!(url_of(Path::new("./http:/x.bun")), None);
        assert_eq!(got.id.unwrap().get(), 205);
        assert_eq!(got.name.unwrap().as_str(), "web");
        assert_eq!((got.memory.mib(), got.vcpus.get()), (1024, 2));
        assert_eq!(got.disk_size.unwrap().mib(), 2048);
        assert_eq!(got.access.password(), Some("s3cret"));
        assert_eq!(got.access.keys().len(), 1);
        assert_eq!(got.params, o.params);
        assert!(got.no_base && got.local_ids && got.start && got.allow_unsigned);
        assert_eq!(
            std::fs::read(got.keyring.unwrap()).unwrap(),
            b"\x99\x01keyring"
        );
        // A value the node's types refuse is refused there too.
        let mut bad: Request = serde_json::from_str(&json).unwrap();
        bad.memory = "1M".into();
        let Err(e) = bad.options("(test)", &d.path().join("k2")) else {
            panic!("1M of memory was taken")
        };
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn the_remote_command_is_quoted_for_the_node_s_shell() {
        let d = tempfile::tempdir().unwrap();
        let conf = d.path().join("mkve.conf");
        std::fs::write(
            &conf,
            "node_ssh_command=ssh -F /x/ssh_config\nnode.n2.ids=100-150\n\
             node.n2.uri.lxc=lxc:///\nnode.n2.ssh=root@10.0.0.2\nnode.n2.mkve_vm=/opt/mkve vm\n\
             node.n3.ids=151-160\nnode.n3.uri.lxc=lxc:///\n",
        )
        .unwrap();
        let net = crate::net::NetConfig::from_file(&conf).unwrap();
        let nodes = Nodes::from_file(&conf, &net).unwrap();
        let cmd = ssh_command(
            &nodes,
            nodes.get("n2").unwrap(),
            &["stop".into(), "web 1".into()],
            true,
        )
        .unwrap();
        // The last word is the remote command line, quoted once for the
        // node's shell (and once more here, for display).
        let last = shell_words::quote("'/opt/mkve vm' stop 'web 1'").into_owned();
        assert_eq!(
            cmd.to_string(),
            format!("ssh -F /x/ssh_config -t root@10.0.0.2 {last}")
        );
        let Err(e) = ssh_command(&nodes, nodes.get("n3").unwrap(), &[], false) else {
            panic!("a node without ssh= was reached")
        };
        assert!(
            e.to_string()
                .contains(":6: node n3: no node.n3.ssh=DESTINATION"),
            "{e}"
        );
        assert!(hex_decode("0aff").unwrap() == [10, 255] && hex_decode("0").is_none());
    }
}
