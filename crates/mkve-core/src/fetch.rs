//! Bundles read over HTTP(S) from a directory that `mkve-bundle
//! --publish` made (publish.rs), or any server holding the same files: the
//! URL `http[s]://host/dir/NAME` is trusted through `dir/SHA256SUMS` and its
//! detached signature `dir/SHA256SUMS.gpg` (the convention of
//! systemd-importd, machinectl(1) `pull-tar`).
//!
//! The list is fetched and its signature checked against the keyring
//! before the bundle is asked for; the bundle is then streamed, never held
//! in memory, through a sha256 into the bundle reader (bundle/read.rs),
//! which checks the bundle's own signature and digests as for a file. The
//! stream refuses to end (an error instead of its end) unless its sha256 is
//! the list's, so a reader that reads to the end (`Check::Digests`) fails
//! on a bundle that does not match before it returns, and a create before
//! it defines anything.
//!
//! Owns the HTTP client (ureq with rustls; servers' certificates verified
//! against the system's store, see `agent`), URLs of bundles, timeouts, and
//! which failure is which exit status: the server unreachable, silent, or
//! answering an error (HTTP 404 included) is `Error::Unavailable` (69); a
//! list that is unsigned, badly signed, or does not list the bundle, and
//! bytes that do not match it, are data (65). Not the list's format
//! (sums.rs) nor signatures (sign.rs).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bundle::{self, Check, HashTee, ReadOptions};
use crate::error::{Error, Result};
use crate::exec::Report;
use crate::files::{CopyingReader, Output};
use crate::seen::Seen;
use crate::sign;
use crate::stamp::Stamp;
use crate::sums::{self, Sums};
use sha2::Digest;

/// How long a server may stay silent, by default: while connecting, before
/// it answers, and between two reads of a download.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The environment variable that changes it, in seconds.
pub const TIMEOUT_VAR: &str = "MKVE_HTTP_TIMEOUT";
/// How long a whole fetch may take, by default: the list, its signature
/// and the bundle, from the first connection to the bundle's last byte.
/// A server that sends slowly but never stops is cut off here.
const DEADLINE: Duration = Duration::from_secs(3600);
/// The environment variable that changes it, in seconds.
pub const DEADLINE_VAR: &str = "MKVE_HTTP_DEADLINE";
/// How often a download's progress is told.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// The URL of a published bundle: `http://` or `https://`, a host, and a
/// path whose last segment, percent-decoded, is the bundle's name in the
/// directory's list (one `sums::check_name` allows). No query, fragment or
/// credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// As given.
    text: String,
    /// Everything up to and including the path's last `/`.
    dir: String,
    /// The last segment, decoded.
    name: String,
}

impl Url {
    /// Parse `s`. Errors are `Error::Usage`, saying what is wrong.
    pub fn parse(s: &str) -> Result<Url> {
        let bad = |why: &str| Error::Usage(format!("{s}: {why}"));
        let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
        let rest = if lower.starts_with("http://") {
            &s[7..]
        } else if lower.starts_with("https://") {
            &s[8..]
        } else {
            return Err(bad("not an http:// or https:// URL"));
        };
        if s.contains(['?', '#']) {
            return Err(bad("a bundle's URL has no query (?) or fragment (#)"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(
                "white space or a control character in a URL: percent-encode it",
            ));
        }
        let Some(slash) = rest.find('/') else {
            return Err(bad("names no file: give the bundle's URL, …/NAME.bun"));
        };
        let host = &rest[..slash];
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if host.contains('@') {
            return Err(bad("credentials in a URL are not supported"));
        }
        let at = s.len() - rest.len() + slash;
        let last = s.rfind('/').filter(|l| *l >= at).unwrap_or(at);
        let name = percent_decode(&s[last + 1..]).map_err(|why| bad(&why))?;
        if name.is_empty() {
            return Err(bad("names a directory: give the bundle's URL, …/NAME.bun"));
        }
        sums::check_name(&name).map_err(|why| bad(&format!("the bundle's name {why}")))?;
        Ok(Url {
            text: s.to_string(),
            dir: s[..=last].to_string(),
            name,
        })
    }

    /// A bundle argument that is a URL (`http://…` or `https://…`, any
    /// case), parsed; `None` for anything else, a file.
    pub fn of_arg(arg: &Path) -> Option<Result<Url>> {
        let s = arg.to_str()?;
        let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
        (lower.starts_with("http://") || lower.starts_with("https://")).then(|| Url::parse(s))
    }

    /// The bundle's name: in the list, and the file `--fetch` makes.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The URL of `file` in the bundle's directory.
    pub fn beside(&self, file: &str) -> String {
        format!("{}{file}", self.dir)
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// `%XX` escapes replaced by their bytes, which must make UTF-8.
fn percent_decode(s: &str) -> std::result::Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("\"{}\": a % not followed by two hex digits", s))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| format!("\"{s}\": the name decodes to bytes that are not UTF-8"))
}

/// The timeout: `MKVE_HTTP_TIMEOUT` seconds (1 or more), or 60.
fn timeout() -> Result<Duration> {
    seconds_of(
        TIMEOUT_VAR,
        std::env::var(TIMEOUT_VAR).ok().as_deref(),
        TIMEOUT,
    )
}

/// The deadline: `MKVE_HTTP_DEADLINE` seconds (1 or more), or 3600.
fn deadline() -> Result<Duration> {
    seconds_of(
        DEADLINE_VAR,
        std::env::var(DEADLINE_VAR).ok().as_deref(),
        DEADLINE,
    )
}

/// `value` of the variable `var` as whole seconds, 1 or more; `default`
/// when it is not set. Errors: anything else, `Error::Usage`.
fn seconds_of(var: &str, value: Option<&str>, default: Duration) -> Result<Duration> {
    match value {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Duration::from_secs(n)),
            _ => Err(Error::Usage(format!(
                "{var}={v}: a number of seconds, 1 or more"
            ))),
        },
    }
}

/// The HTTP client: HTTP/1.1 over TCP, TLS by rustls verifying the
/// server's certificate against the system's store (rustls-platform-
/// verifier, which on Linux reads what `SSL_CERT_FILE`/`SSL_CERT_DIR` name,
/// else /etc/ssl/certs as the ca-certificates package keeps it, so an
/// operator's own CA is trusted once installed there); proxies from
/// `http_proxy`, `https_proxy`, `no_proxy`; up to 10 redirects. Each phase
/// (resolve, connect with the TLS handshake, send, the answer's head, each
/// read of the body) may take the timeout, none of them more; the whole
/// fetch, the deadline (see [`Session`]). `unverified`: the server's
/// certificate is not checked (only for a loopback address: Ganeti's RAPI
/// on its own node, vm/ganeti_rapi.rs).
pub(crate) fn agent(timeout: Duration, unverified: bool) -> ureq::Agent {
    use ureq::tls::{RootCerts, TlsConfig};
    let t = Some(timeout);
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .user_agent(format!("mkve/{}", env!("CARGO_PKG_VERSION")))
        .tls_config(
            TlsConfig::builder()
                .root_certs(RootCerts::PlatformVerifier)
                .disable_verification(unverified)
                .build(),
        )
        .timeout_resolve(t)
        .timeout_connect(t)
        .timeout_send_request(t)
        .timeout_recv_response(t)
        .timeout_per_read(t)
        .build()
        .into()
}

/// One fetch: its client, its timeout and deadline, and its hold on the
/// signals (interrupt.rs): a signal caught shuts the client's connections
/// down, so a read blocked on a silent server returns at once, and every
/// failure after it is `Error::Interrupted`.
struct Session {
    agent: ureq::Agent,
    timeout: Duration,
    limit: Duration,
    deadline: Instant,
    _hook: crate::interrupt::Hook,
}

impl Session {
    fn new() -> Result<Session> {
        let (timeout, limit) = (timeout()?, deadline()?);
        let agent = agent(timeout, false);
        let shut = agent.clone();
        let hook = crate::interrupt::on_signal(move || shut.clone().shutdown());
        Ok(Session {
            agent,
            timeout,
            limit,
            deadline: Instant::now() + limit,
            _hook: hook,
        })
    }

    /// Whether the fetch must stop now: interrupted, or past its deadline.
    fn stopped(&self, url: &str) -> Result<()> {
        crate::interrupt::check(url)?;
        if Instant::now() >= self.deadline {
            return Err(self.past_deadline(url));
        }
        Ok(())
    }

    fn past_deadline(&self, url: &str) -> Error {
        Error::Unavailable {
            what: url.to_string(),
            why: format!(
                "the fetch took longer than its deadline, {} s ({DEADLINE_VAR} sets the seconds)",
                self.limit.as_secs()
            ),
        }
    }

    /// GET `url`: the answer when it is 200 OK; `Ok(None)` for 404 Not
    /// Found or 410 Gone; `Error::Unavailable` for anything else. The
    /// request and the reading of its body end by the fetch's deadline.
    fn get(&self, url: &str) -> Result<Option<ureq::http::Response<ureq::Body>>> {
        self.stopped(url)?;
        let left = self.deadline.saturating_duration_since(Instant::now());
        let resp = self
            .agent
            .get(url)
            .config()
            .timeout_global(Some(left))
            .build()
            .call()
            .map_err(|e| self.unavailable(url, &e))?;
        let status = resp.status();
        match status.as_u16() {
            200 => Ok(Some(resp)),
            404 | 410 => Ok(None),
            _ => Err(Error::Unavailable {
                what: url.to_string(),
                why: format!("the server answered HTTP {status}"),
            }),
        }
    }

    /// A small file: its bytes, at most `max`; `Ok(None)` when the server
    /// has none (404, 410).
    fn get_small(&self, url: &str, max: u64) -> Result<Option<Vec<u8>>> {
        let Some(resp) = self.get(url)? else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        resp.into_body()
            .into_reader()
            .take(max + 1)
            .read_to_end(&mut buf)
            .map_err(|e| self.read_failure(url, e))?;
        if buf.len() as u64 > max {
            return Err(Error::bundle(url, format!("larger than {max} bytes")));
        }
        Ok(Some(buf))
    }

    /// Why a request to `url` failed, as `Error::Unavailable` naming it;
    /// `Error::Interrupted` when a signal stopped it.
    fn unavailable(&self, url: &str, e: &ureq::Error) -> Error {
        if let Some(s) = crate::interrupt::caught() {
            return crate::interrupt::interrupted(url, s);
        }
        let why = match e {
            ureq::Error::Timeout(ureq::Timeout::Global) => return self.past_deadline(url),
            ureq::Error::Timeout(t) => format!(
                "timed out ({t}; {TIMEOUT_VAR} sets the seconds, {})",
                self.timeout.as_secs()
            ),
            ureq::Error::HostNotFound => "host not found".into(),
            ureq::Error::ConnectionFailed => "cannot connect".into(),
            // rustls's refusals come as invalid data on the connection.
            ureq::Error::Io(io)
                if io.kind() == std::io::ErrorKind::InvalidData && is_https(url) =>
            {
                format!("TLS: {io}{TRUST}")
            }
            ureq::Error::Io(io) => io.to_string(),
            ureq::Error::Tls(why) => format!("TLS: {why}{TRUST}"),
            ureq::Error::Rustls(r) => format!("TLS: {r}{TRUST}"),
            other => other.to_string(),
        };
        Error::Unavailable {
            what: url.to_string(),
            why,
        }
    }

    /// A failed read of a body: the ureq error inside the `io::Error`,
    /// when there is one.
    fn read_failure(&self, url: &str, e: std::io::Error) -> Error {
        if let Some(s) = crate::interrupt::caught() {
            return crate::interrupt::interrupted(url, s);
        }
        match e.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>()) {
            Some(u) => self.unavailable(url, u),
            None if e.kind() == std::io::ErrorKind::UnexpectedEof => Error::Unavailable {
                what: url.to_string(),
                why: "the server closed the connection before the end of the file".into(),
            },
            None => Error::Unavailable {
                what: url.to_string(),
                why: e.to_string(),
            },
        }
    }
}

/// A file of at most `max` bytes at the http(s) URL `url` (a feed, not a
/// bundle), with the timeouts, deadline and signals of every fetch.
/// Errors: 69 when the server cannot be reached, answers anything but 200
/// (404 included) or the transfer fails; 65 when the file is larger.
pub fn get_file(url: &str, max: u64) -> Result<Vec<u8>> {
    let session = Session::new()?;
    session
        .get_small(url, max)?
        .ok_or_else(|| Error::Unavailable {
            what: url.to_string(),
            why: "not found (HTTP 404)".into(),
        })
}

/// Several small files from one place (a mirror's Release and Packages
/// indexes, `mkve-bundle --outdated`) in one session: the timeouts,
/// deadline and signals of every fetch, the deadline for them all.
pub struct Files(Session);

impl Files {
    pub fn new() -> Result<Files> {
        Session::new().map(Files)
    }

    /// The file at `url`, at most `max` bytes; `None` when the server has
    /// none (404, 410). Errors: 69 when the server cannot be reached,
    /// answers another error or the transfer fails; 65 when the file is
    /// larger.
    pub fn get(&self, url: &str, max: u64) -> Result<Option<Vec<u8>>> {
        self.0.get_small(url, max)
    }
}

/// Where a server's certificate is checked, said when it is refused.
const TRUST: &str =
    " (servers' certificates are checked against the system's store, /etc/ssl/certs, or SSL_CERT_FILE)";

fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// `n` bytes for a person: `812 bytes`, `3.4 KiB`, `12.0 MiB`, `1.2 GiB`.
fn size(n: u64) -> String {
    let f = n as f64;
    match n {
        0..1024 => format!("{n} bytes"),
        1024..1_048_576 => format!("{:.1} KiB", f / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", f / 1_048_576.0),
        _ => format!("{:.1} GiB", f / 1_073_741_824.0),
    }
}

/// The sha256 the signed list beside `url` gives the bundle, the list
/// fetched and its signature checked against `keyring` first.
///
/// Errors: the server unreachable, silent or answering an error other than
/// 404 for the signature: `Error::Unavailable`; the signature missing (404),
/// bad, or by a key not in `keyring`, or the list not naming the bundle:
/// `Error::Signature`; a list that does not read: `Error::InvalidBundle`.
/// `--allow-unsigned` has no say here: a directory's list is always signed.
fn listed_sha256(session: &Session, url: &Url, keyring: &Path) -> Result<String> {
    let list_url = url.beside(sums::FILE);
    let sig_url = url.beside(sums::SIGNATURE);
    let Some(text) = session.get_small(&list_url, sums::MAX_BYTES)? else {
        return Err(Error::Unavailable {
            what: list_url,
            why: "not found (HTTP 404): the bundle's directory is not published (mkve-bundle --publish)".into(),
        });
    };
    let Some(sig) = session.get_small(&sig_url, sums::SIGNATURE_MAX_BYTES)? else {
        return Err(Error::signature(
            &sig_url,
            "not found (HTTP 404): the checksum list is not signed, and an unsigned list is refused (--allow-unsigned is for bundles, not lists)",
        ));
    };
    let verified = sign::verify_detached_full(&text, &sig, Some(keyring))?;
    let status = &verified.status;
    if !status.is_valid() {
        return Err(Error::signature(
            &sig_url,
            format!("{} (keyring {})", status.describe(), keyring.display()),
        ));
    }
    let list = Sums::parse(&text, Path::new(&list_url))?;
    fresh(url, &verified, &text)?;
    list.get(url.name()).map(str::to_string).ok_or_else(|| {
        Error::signature(
            &list_url,
            format!(
                "does not list \"{}\": it is not published there",
                url.name()
            ),
        )
    })
}

/// Whether the list beside `url` (its bytes `text`, its signature
/// `verified`, good) may be believed now: not past the end of validity
/// its signature carries, and not older than the newest list this host
/// accepted from its directory (seen.rs), which it then becomes.
///
/// Errors: a stamp that does not read, an expired list, an older list or
/// another of the same serial: `Error::Signature` (65); the memory, as
/// `seen::accept` says.
fn fresh(url: &Url, verified: &sign::Verified, text: &[u8]) -> Result<()> {
    let sig_url = url.beside(sums::SIGNATURE);
    let list_url = url.beside(sums::FILE);
    let notations = verified
        .notations
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()));
    let stamp = Stamp::from_notations(notations).map_err(|why| Error::signature(&sig_url, why))?;
    let signed = verified.created.unwrap_or(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if let Some(until) = stamp.and_then(|s| s.valid_until) {
        if now > until {
            return Err(Error::signature(
                &list_url,
                format!(
                    "expired: signed {}, valid until {}; the directory was not published again since (mkve-bundle --publish), or is served frozen",
                    crate::date::rfc3339(signed),
                    crate::date::rfc3339(until)
                ),
            ));
        }
    }
    let seen = Seen {
        url: crate::seen::source(&url.beside("")),
        serial: stamp.map_or(0, |s| s.serial),
        signed,
        sha256: crate::digest::hex(&sha2::Sha256::digest(text)),
    };
    crate::seen::accept(&crate::seen::dir()?, &list_url, &seen)
}

/// A bundle being downloaded: a reader of its bytes as they arrive,
/// hashing them on a thread of its own, telling progress (bytes of the total) to the report every
/// few seconds. Its end is an error unless their sha256 is `expected`, and
/// a failure of the network is kept too: [`Download::verdict`] and
/// [`Download::finish`] give them as what they are, not as a bundle's
/// broken tar.
pub struct Download<'r> {
    session: Session,
    url: String,
    body: HashTee<ureq::BodyReader<'static>>,
    expected: String,
    bytes: u64,
    total: Option<u64>,
    report: &'r dyn Report,
    started: Instant,
    told: Instant,
    ended: bool,
    failure: Option<Error>,
}

/// Start downloading the bundle at `url`, once the signed list beside it
/// (checked against `keyring`, see [`listed_sha256`]) gives its sha256.
pub fn open<'r>(url: &Url, keyring: &Path, report: &'r dyn Report) -> Result<Download<'r>> {
    let session = Session::new()?;
    report.progress(&format!("checking {}", url.beside(sums::FILE)));
    let expected = listed_sha256(&session, url, keyring)?;
    let Some(resp) = session.get(url.as_str())? else {
        return Err(Error::Unavailable {
            what: url.to_string(),
            why: "not found (HTTP 404), though its directory's SHA256SUMS lists it".into(),
        });
    };
    let total = resp.body().content_length();
    report.progress(&format!(
        "downloading {url}{}",
        total.map(|t| format!(" ({})", size(t))).unwrap_or_default()
    ));
    let now = Instant::now();
    Ok(Download {
        session,
        url: url.to_string(),
        body: HashTee::new(resp.into_body().into_reader()),
        expected,
        bytes: 0,
        total,
        report,
        started: now,
        told: now,
        ended: false,
        failure: None,
    })
}

impl Download<'_> {
    /// `result`, unless the download failed: then its failure, the cause.
    pub fn verdict<T>(&mut self, result: Result<T>) -> Result<T> {
        match self.failure.take() {
            Some(f) => Err(f),
            None => result,
        }
    }

    /// Read what is left, to the end, and say whether the bytes were the
    /// list's (their sha256), or why not.
    pub fn finish(mut self) -> Result<()> {
        let rest = std::io::copy(&mut self, &mut std::io::sink());
        if let Some(f) = self.failure.take() {
            return Err(f);
        }
        rest.map_err(|e| self.session.read_failure(&self.url, e))
            .map(drop)
    }

    fn fail(&mut self, e: Error) -> std::io::Error {
        let io = std::io::Error::other(e.to_string());
        self.failure = Some(e);
        io
    }

    fn tell(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.told) < PROGRESS_EVERY {
            return;
        }
        self.told = now;
        let of = match self.total {
            Some(t) if t > 0 => format!(
                " of {} ({}%)",
                size(t),
                (self.bytes.min(t) as u128 * 100 / t as u128)
            ),
            _ => String::new(),
        };
        self.report
            .progress(&format!("{}: {}{of}", self.url, size(self.bytes)));
    }

    fn end(&mut self) -> std::io::Result<usize> {
        self.ended = true;
        let got = self.body.finish();
        if got != self.expected {
            let e = Error::bundle(
                &self.url,
                format!(
                    "sha256 {got} of the {} bytes received does not match SHA256SUMS ({}): not the bundle published under this name (changed, truncated or replaced)",
                    self.bytes, self.expected
                ),
            );
            return Err(self.fail(e));
        }
        let secs = self.started.elapsed().as_secs_f64();
        self.report.progress(&format!(
            "{}: {} in {secs:.1} s ({}/s), sha256 as listed",
            self.url,
            size(self.bytes),
            size((self.bytes as f64 / secs.max(0.001)) as u64)
        ));
        Ok(0)
    }
}

impl Read for Download<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(f) = &self.failure {
            return Err(std::io::Error::other(f.to_string()));
        }
        if self.ended {
            return Ok(0);
        }
        if let Err(e) = self.session.stopped(&self.url) {
            return Err(self.fail(e));
        }
        match self.body.read(buf) {
            // A signal's shutdown of the socket reads as its end.
            Ok(0) if !buf.is_empty() => match self.session.stopped(&self.url) {
                Err(stop) => Err(self.fail(stop)),
                Ok(()) => self.end(),
            },
            Ok(n) => {
                self.bytes += n as u64;
                self.tell();
                Ok(n)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                match self.session.stopped(&self.url) {
                    Err(stop) => Err(self.fail(stop)),
                    Ok(()) => Err(e),
                }
            }
            Err(e) => {
                let failure = self.session.read_failure(&self.url, e);
                Err(self.fail(failure))
            }
        }
    }
}

/// Read the bundle at `url` as `bundle::read` reads a file with `opts`
/// (whose keyring, required here, also checks the list: see
/// [`listed_sha256`]), writing its bytes to `out` as they are read when
/// given (`mkve-bundle --fetch`). Unless only meta.json is asked for
/// (`Check::Meta`, nothing unpacked or copied), the whole bundle is read
/// and must match the list before this returns `Ok`.
pub fn read(
    url: &Url,
    opts: &ReadOptions,
    out: Option<&mut Output>,
    report: &dyn Report,
) -> Result<bundle::ReadResult> {
    let keyring = opts.keyring.ok_or_else(|| {
        Error::Usage(format!("{url}: a bundle fetched over HTTP needs a keyring"))
    })?;
    let whole = opts.check != Check::Meta || opts.unpack_to.is_some() || out.is_some();
    let label = PathBuf::from(url.as_str());
    let mut dl = open(url, keyring, report)?;
    let result = {
        let mut copy = CopyingReader::new(&mut dl, out);
        let read = bundle::read(&mut copy, &label, opts);
        match copy.take_write_error() {
            Some(e) => Err(e),
            None if whole => read.and_then(|r| copy.finish(&label).map(|_| r)),
            None => read,
        }
    };
    let report = dl.verdict(result)?;
    if whole {
        dl.finish()?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundles_url_gives_its_directory_and_its_name() {
        let u = Url::parse("http://127.0.0.1:8080/pub/ntp.bun").unwrap();
        assert_eq!(u.name(), "ntp.bun");
        assert_eq!(
            u.beside("SHA256SUMS"),
            "http://127.0.0.1:8080/pub/SHA256SUMS"
        );
        assert_eq!(u.to_string(), "http://127.0.0.1:8080/pub/ntp.bun");
        let u = Url::parse("HTTPS://example.org/a%20b%2Fc.bun").unwrap_err();
        assert!(
            u.to_string().contains("\"/\""),
            "an encoded / is still a /: {u}"
        );
        let u = Url::parse("HTTPS://example.org/ntp%20server.bun").unwrap();
        assert_eq!(u.name(), "ntp server.bun");
        assert_eq!(u.beside("x"), "HTTPS://example.org/x");
        let u = Url::parse("http://h/a/b/c/x.bun").unwrap();
        assert_eq!(u.beside("SHA256SUMS"), "http://h/a/b/c/SHA256SUMS");
    }

    #[test]
    fn no_url_can_name_a_file_outside_its_directory_or_the_list() {
        for (url, part) in [
            ("ftp://h/x.bun", "not an http"),
            ("http://h", "names no file"),
            ("http://h/", "names a directory"),
            ("http://h/dir/", "names a directory"),
            ("http:///x.bun", "no host"),
            ("http://u:p@h/x.bun", "credentials"),
            ("http://h/x.bun?v=1", "query"),
            ("http://h/x.bun#f", "fragment"),
            ("http://h/a b.bun", "white space"),
            ("http://h/..", "starts with \".\""),
            ("http://h/%2e%2e", "starts with \".\""),
            ("http://h/d/%2E%2E%2Fx", "\"/\""),
            ("http://h/d/..%2F..%2Fetc%2Fpasswd", "\"/\""),
            ("http://h/d/%5C..", "\"\\\""),
            ("http://h/SHA256SUMS", "the list or its signature"),
            ("http://h/SHA256SUMS.gpg", "the list or its signature"),
            ("http://h/x%0a.bun", "control character"),
            ("http://h/x%00.bun", "control character"),
            ("http://h/x%zz.bun", "two hex digits"),
            ("http://h/x%2", "two hex digits"),
            ("http://h/x%ff.bun", "not UTF-8"),
        ] {
            let e = Url::parse(url).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{url}");
            assert!(e.to_string().starts_with(url), "{url}: {e}");
            assert!(e.to_string().contains(part), "{url}: {e}");
        }
    }

    #[test]
    fn only_http_and_https_arguments_are_urls() {
        assert!(Url::of_arg(Path::new("b.bun")).is_none());
        assert!(Url::of_arg(Path::new("-")).is_none());
        assert!(Url::of_arg(Path::new("./http://h/x.bun")).is_none());
        assert!(Url::of_arg(Path::new("http:x.bun")).is_none());
        assert!(Url::of_arg(Path::new("Http://h/x.bun")).unwrap().is_ok());
        assert!(Url::of_arg(Path::new("https://h/")).unwrap().is_err());
    }

    #[test]
    fn sizes_read_as_a_person_reads_them() {
        assert_eq!(size(0), "0 bytes");
        assert_eq!(size(1023), "1023 bytes");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(12 << 20), "12.0 MiB");
        assert_eq!(size(3 << 30), "3.0 GiB");
    }

    #[test]
    fn the_timeout_and_the_deadline_are_seconds_from_the_environment() {
        for (var, default) in [(TIMEOUT_VAR, TIMEOUT), (DEADLINE_VAR, DEADLINE)] {
            assert_eq!(seconds_of(var, None, default).unwrap(), default);
            assert_eq!(
                seconds_of(var, Some("5"), default).unwrap(),
                Duration::from_secs(5)
            );
            for bad in ["0", "-1", "1.5", "x", ""] {
                let e = seconds_of(var, Some(bad), default).unwrap_err();
                assert_eq!(e.exit_code(), 2, "{bad}");
                assert!(e.to_string().starts_with(&format!("{var}=")), "{e}");
            }
        }
    }
}
