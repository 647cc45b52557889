//! Probes: how a template says its service is up, as data (a bundle is not
//! trusted to run anything on the host). mkve implements the few kinds
//! itself and runs them from the node against the machine's address.
//!
//! A template declares them in its `probes` file, which travels in the
//! bundle as the member `conf/probes` (mkve-template(5), mkve-bundle(5)):
//! one probe a line, words split as the shell does (quotes allowed), `#`
//! starts a comment line:
//!
//! | line | up when |
//! | --- | --- |
//! | `tcp PORT` | a TCP connection is accepted |
//! | `tcp PORT banner REGEX` | the server's first line matches REGEX (regex-lite syntax) |
//! | `udp PORT ntp` | an NTP server answers a client's request (RFC 5905, mode 3 → 4) |
//! | `dns PORT NAME TYPE` | a DNS server answers the query with NOERROR or NXDOMAIN (RFC 1035) |
//! | `http PORT [PATH]` | an HTTP server answers `GET PATH` (default `/`) with a status line |
//!
//! TYPE is A, AAAA, CNAME, MX, NS, PTR, SOA, SRV or TXT, or a number.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Problem, Result};

/// The bundle member that declares them.
pub const MEMBER: &str = "conf/probes";
const COUNT_MAX: usize = 64;
/// The most a banner or status line is read, in bytes.
const LINE_MAX: usize = 512;

#[derive(Debug, Clone)]
pub enum Kind {
    Tcp { banner: Option<regex_lite::Regex> },
    Ntp,
    Dns { name: String, qtype: u16 },
    Http { path: String },
}

/// One probe: what to ask, on which port, and the line that declared it.
#[derive(Debug, Clone)]
pub struct Probe {
    pub kind: Kind,
    pub port: u16,
    /// The declaring line, as written: how the probe is named to users.
    pub text: String,
}

/// The outcome of one run of a probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// The probe, as declared.
    pub probe: String,
    pub up: bool,
    /// What answered (a banner, a status line, a stratum), or why it is
    /// taken as down.
    pub detail: String,
}

fn qtype(s: &str) -> Option<u16> {
    Some(match s.to_ascii_uppercase().as_str() {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "PTR" => 12,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "SRV" => 33,
        n => return n.parse().ok().filter(|&t| t > 0),
    })
}

/// Whether `name` can be asked of DNS: dot-separated labels of 1 to 63
/// bytes of letters, digits, `-` and `_`, 253 bytes at most, or `.`.
fn is_dns_name(name: &str) -> bool {
    let n = name.strip_suffix('.').unwrap_or(name);
    name == "."
        || (!n.is_empty()
            && n.len() <= 253
            && n.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            }))
}

fn parse_line(line: &str, words: &[String]) -> std::result::Result<Probe, String> {
    let text = line.to_string();
    let kind = words.first().map(String::as_str).unwrap_or("");
    if !["tcp", "udp", "dns", "http"].contains(&kind) {
        return Err(format!(
            "\"{kind}\" is not a probe kind (tcp, udp, dns, http)"
        ));
    }
    let port = match words.get(1) {
        None => return Err(format!("{kind}: no port")),
        // Decimal digits, no sign, no leading zero: one way to write a port.
        Some(p) if p.starts_with('0') || !p.bytes().all(|c| c.is_ascii_digit()) => {
            return Err(format!("\"{p}\" is not a port (1 to 65535)"))
        }
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("\"{p}\" is not a port (1 to 65535)"))?,
    };
    let rest = &words[2..];
    let kind = match (kind, rest) {
        ("tcp", []) => Kind::Tcp { banner: None },
        ("tcp", [b, re]) if b == "banner" => Kind::Tcp {
            banner: Some(
                regex_lite::RegexBuilder::new(re)
                    .size_limit(1 << 16)
                    .build()
                    .map_err(|e| format!("banner \"{re}\": {e}"))?,
            ),
        },
        ("tcp", _) => return Err("expected tcp PORT, or tcp PORT banner REGEX".into()),
        ("udp", [p]) if p == "ntp" => Kind::Ntp,
        ("udp", _) => return Err("expected udp PORT ntp (the one UDP protocol probed)".into()),
        ("dns", [name, t]) => {
            if !is_dns_name(name) {
                return Err(format!("\"{name}\" is not a DNS name"));
            }
            Kind::Dns {
                name: name.clone(),
                qtype: qtype(t).ok_or_else(|| format!("\"{t}\" is not a DNS record type"))?,
            }
        }
        ("dns", _) => return Err("expected dns PORT NAME TYPE".into()),
        ("http", []) => Kind::Http { path: "/".into() },
        ("http", [p]) if p.starts_with('/') && p.bytes().all(|c| c.is_ascii_graphic()) => {
            Kind::Http { path: p.clone() }
        }
        ("http", _) => return Err("expected http PORT [PATH], PATH from / without spaces".into()),
        (k, _) => return Err(format!("\"{k}\" is not a probe kind (tcp, udp, dns, http)")),
    };
    Ok(Probe { kind, port, text })
}

/// Parse a probes file's text; `path` names it in errors. Errors: every
/// bad line, with its number.
pub fn parse(text: &[u8], path: &Path) -> std::result::Result<Vec<Probe>, Vec<Problem>> {
    let (mut out, mut problems) = (Vec::new(), Vec::new());
    let Some(lines) = crate::declared::lines(text, path, &mut problems) else {
        return Err(problems);
    };
    for (n, line) in lines {
        let parsed = shell_words::split(line)
            .map_err(|e| format!("{e}"))
            .and_then(|w| parse_line(line, &w));
        match parsed {
            Ok(p) => out.push(p),
            Err(why) => problems.push(Problem::new(path, Some(n), why)),
        }
        if out.len() > COUNT_MAX {
            problems.push(Problem::new(
                path,
                Some(n),
                format!("more than {COUNT_MAX} probes"),
            ));
            break;
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The probes of a machine's or an unpacked bundle's directory
/// (`dir/conf/probes`), none when there are none. `label` names the
/// bundle in errors. Errors: the member does not parse (65).
pub fn of_dir(dir: &Path, label: &str) -> Result<Vec<Probe>> {
    crate::declared::of_dir(dir, MEMBER, label, parse)
}

impl Probe {
    /// Ask the service at `addr` once, waiting at most `timeout`.
    pub fn run(&self, addr: Ipv4Addr, timeout: Duration) -> Outcome {
        let to = SocketAddr::from((addr, self.port));
        let result = match &self.kind {
            Kind::Tcp { banner } => tcp(to, banner.as_ref(), timeout),
            Kind::Ntp => ntp(to, timeout),
            Kind::Dns { name, qtype } => dns(to, name, *qtype, timeout),
            Kind::Http { path } => http(to, addr, path, timeout),
        };
        let (up, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        Outcome {
            probe: self.text.clone(),
            up,
            detail,
        }
    }
}

fn connect(to: SocketAddr, timeout: Duration) -> std::result::Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&to, timeout).map_err(|e| format!("{to}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    Ok(s)
}

/// Read the first line (without its end), at most LINE_MAX bytes.
fn first_line(s: &mut TcpStream, deadline: Instant) -> std::result::Result<String, String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 256];
    while !buf.contains(&b'\n') && buf.len() < LINE_MAX {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("no line within the time allowed".into());
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match s.read(&mut byte) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&byte[..n]),
            Err(e) => return Err(format!("reading: {e}")),
        }
    }
    let line = buf.split(|&c| c == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line)
        .trim_end_matches('\r')
        .to_string();
    if line.is_empty() {
        return Err("the connection closed without a line".into());
    }
    Ok(line)
}

fn tcp(
    to: SocketAddr,
    banner: Option<&regex_lite::Regex>,
    timeout: Duration,
) -> std::result::Result<String, String> {
    let deadline = Instant::now() + timeout;
    let mut s = connect(to, timeout)?;
    let Some(re) = banner else {
        return Ok("connected".into());
    };
    let line = first_line(&mut s, deadline)?;
    if re.is_match(&line) {
        Ok(line)
    } else {
        Err(format!("banner \"{line}\" does not match"))
    }
}

fn http(
    to: SocketAddr,
    host: Ipv4Addr,
    path: &str,
    timeout: Duration,
) -> std::result::Result<String, String> {
    let deadline = Instant::now() + timeout;
    let mut s = connect(to, timeout)?;
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: mkve-probe\r\nConnection: close\r\n\r\n"
    );
    s.write_all(request.as_bytes())
        .map_err(|e| format!("sending: {e}"))?;
    let line = first_line(&mut s, deadline)?;
    let mut w = line.split(' ');
    match (w.next(), w.next()) {
        (Some(v), Some(code))
            if v.starts_with("HTTP/")
                && code.len() == 3
                && code.bytes().all(|c| c.is_ascii_digit()) =>
        {
            Ok(line)
        }
        _ => Err(format!("\"{line}\" is not an HTTP status line")),
    }
}

/// Send `request` over UDP until an answer `accept` takes comes, resending
/// every second until `timeout`.
fn udp_exchange(
    to: SocketAddr,
    request: &[u8],
    timeout: Duration,
    accept: impl Fn(&[u8]) -> Option<std::result::Result<String, String>>,
) -> std::result::Result<String, String> {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| e.to_string())?;
    sock.connect(to).map_err(|e| format!("{to}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    loop {
        sock.send(request).map_err(|e| format!("{to}: {e}"))?;
        let resend = Instant::now() + Duration::from_secs(1);
        loop {
            let until = resend.min(deadline);
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            match sock.recv(&mut buf) {
                Ok(n) => {
                    if let Some(r) = accept(&buf[..n]) {
                        return r;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                // ICMP port unreachable: nothing listens (yet).
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    std::thread::sleep(until.saturating_duration_since(Instant::now()));
                }
                Err(e) => return Err(format!("{to}: {e}")),
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("{to}: no answer"));
        }
    }
}

/// An NTP client request (mode 3, version 4) whose transmit timestamp the
/// server must echo as the originate timestamp (RFC 5905, 8).
fn ntp(to: SocketAddr, timeout: Duration) -> std::result::Result<String, String> {
    let mut req = [0u8; 48];
    req[0] = 0x23; // LI 0, VN 4, mode 3
    let nonce: [u8; 8] = rand_bytes();
    req[40..48].copy_from_slice(&nonce);
    udp_exchange(to, &req, timeout, |a| {
        if a.len() < 48 || a[0] & 0x07 != 4 || a[24..32] != nonce {
            return None;
        }
        let stratum = a[1];
        Some(if stratum == 0 {
            Err("the server answered with stratum 0 (kiss-o'-death: not serving)".into())
        } else {
            Ok(format!("stratum {stratum}"))
        })
    })
}

/// A recursive query for `name`/`qtype`, class IN (RFC 1035, 4.1).
fn dns(
    to: SocketAddr,
    name: &str,
    qtype: u16,
    timeout: Duration,
) -> std::result::Result<String, String> {
    let id = u16::from_be_bytes([rand_bytes::<2>()[0], rand_bytes::<2>()[1]]);
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    udp_exchange(to, &q, timeout, |a| {
        if a.len() < 12 || a[0..2] != id.to_be_bytes() || a[2] & 0x80 == 0 {
            return None;
        }
        let answers = u16::from_be_bytes([a[6], a[7]]);
        Some(match a[3] & 0x0f {
            0 => Ok(format!("NOERROR, {answers} answer(s)")),
            3 => Ok("NXDOMAIN".into()),
            2 => Err("SERVFAIL".into()),
            5 => Err("REFUSED".into()),
            r => Err(format!("rcode {r}")),
        })
    })
}

/// Bytes that differ between runs, to match answers to requests (not a
/// secret: the clock and the process are enough).
fn rand_bytes<const N: usize>() -> [u8; N] {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let mut out = [0u8; N];
    let mut v = h.finish();
    for (i, b) in out.iter_mut().enumerate() {
        if i % 8 == 0 && i > 0 {
            h.write_u64(v);
            v = h.finish();
        }
        *b = (v >> ((i % 8) * 8)) as u8;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> std::result::Result<Vec<Probe>, Vec<String>> {
        parse(text.as_bytes(), Path::new("t/probes"))
            .map_err(|ps| ps.iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn probes_parse() {
        let ps = p("# c\ntcp 25 banner \"^220 \"\nudp 123 ntp\ndns 53 localhost A\nhttp 3128\nhttp 80 /x\ntcp 88\n").unwrap();
        assert_eq!(ps.len(), 6);
        assert_eq!(ps[0].text, "tcp 25 banner \"^220 \"");
        assert!(matches!(ps[2].kind, Kind::Dns { qtype: 1, .. }));
        assert!(matches!(&ps[4].kind, Kind::Http { path } if path == "/x"));
    }

    #[test]
    fn bad_probes_name_their_line() {
        for (text, want) in [
            ("tcp\n", "t/probes:1: tcp: no port"),
            ("tcp 0\n", "t/probes:1: \"0\" is not a port"),
            ("tcp 70000\n", "t/probes:1: \"70000\" is not a port"),
            ("\ntcp 25 banner \"(\"\n", "t/probes:2: banner \"(\""),
            ("tcp 25 banner\n", "t/probes:1: expected tcp PORT"),
            ("udp 53 dns\n", "t/probes:1: expected udp PORT ntp"),
            ("dns 53 a..b A\n", "t/probes:1: \"a..b\" is not a DNS name"),
            (
                "dns 53 a B0GUS\n",
                "t/probes:1: \"B0GUS\" is not a DNS record type",
            ),
            ("http 80 x\n", "t/probes:1: expected http PORT [PATH]"),
            ("icmp 1\n", "t/probes:1: \"icmp\" is not a probe kind"),
            ("icmp\n", "t/probes:1: \"icmp\" is not a probe kind"),
            ("tcp +25\n", "t/probes:1: \"+25\" is not a port"),
            ("tcp 025\n", "t/probes:1: \"025\" is not a port"),
            ("tcp 25 banner \"x\n", "t/probes:1: missing closing quote"),
            (
                "tcp 1 banner \"\x0c\"\n",
                "t/probes:1: control character U+000C",
            ),
            (
                "tcp 1 banner \"\x1b[31m\"\n",
                "t/probes:1: control character U+001B",
            ),
        ] {
            let errs = p(text).unwrap_err();
            assert!(errs[0].starts_with(want), "{text:?}: {errs:?}");
        }
    }

    #[test]
    fn tcp_and_http_probes_against_local_servers() {
        use std::net::TcpListener;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for (i, s) in l.incoming().take(3).enumerate() {
                let mut s = s.unwrap();
                let reply: &[u8] = match i {
                    0 => b"220 mail ESMTP\r\n",
                    1 => b"500 go away\r\n",
                    _ => {
                        let mut buf = [0u8; 512];
                        let _ = s.read(&mut buf);
                        b"HTTP/1.1 403 Forbidden\r\n\r\n"
                    }
                };
                s.write_all(reply).unwrap();
            }
        });
        let probes = p(&format!(
            "tcp {port} banner \"^220 \"\ntcp {port} banner \"^220 \"\nhttp {port}\n"
        ))
        .unwrap();
        let t = Duration::from_secs(5);
        let lo = Ipv4Addr::LOCALHOST;
        let o: Vec<Outcome> = probes.iter().map(|p| p.run(lo, t)).collect();
        server.join().unwrap();
        assert!(o[0].up && o[0].detail == "220 mail ESMTP", "{o:?}");
        assert!(!o[1].up && o[1].detail.contains("does not match"), "{o:?}");
        assert!(o[2].up && o[2].detail.starts_with("HTTP/1.1 403"), "{o:?}");
        // Nothing listens any more.
        let down = probes[0].run(lo, t);
        assert!(!down.up && down.detail.contains("refused"), "{down:?}");
    }

    #[test]
    fn ntp_and_dns_probes_against_local_servers() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = s.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            // NTP: echo the transmit timestamp as originate, stratum 3.
            let (n, from) = s.recv_from(&mut buf).unwrap();
            assert_eq!(n, 48);
            let mut a = [0u8; 48];
            a[0] = 0x24;
            a[1] = 3;
            a[24..32].copy_from_slice(&buf[40..48]);
            s.send_to(&a, from).unwrap();
            // DNS: a stale answer (wrong ID) first, then REFUSED.
            let (n, from) = s.recv_from(&mut buf).unwrap();
            let mut a = buf[..n].to_vec();
            a[2] |= 0x80;
            a[0] ^= 0xff;
            s.send_to(&a, from).unwrap();
            a[0] ^= 0xff;
            a[3] = (a[3] & 0xf0) | 5;
            s.send_to(&a, from).unwrap();
        });
        let t = Duration::from_secs(5);
        let lo = Ipv4Addr::LOCALHOST;
        let probes = p(&format!("udp {port} ntp\ndns {port} mkve.test A\n")).unwrap();
        let ntp = probes[0].run(lo, t);
        assert!(ntp.up && ntp.detail == "stratum 3", "{ntp:?}");
        let dns = probes[1].run(lo, t);
        assert!(!dns.up && dns.detail == "REFUSED", "{dns:?}");
        server.join().unwrap();
    }
}
