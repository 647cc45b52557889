//! mkve-vm driving a Ganeti cluster through its remote API (RAPI,
//! `/2/...`), when mkve.conf says `engine=ganeti` (or `--engine ganeti`):
//! create, list, info, start, stop, delete, migrate. Every change is a
//! Ganeti job; the call waits for it, and a job's failure becomes mkve's
//! error with the exit status of its kind.
//!
//! Owns: the engine's keys of mkve.conf, the RAPI client (ureq; basic
//! authentication from a file only root reads), the request each command
//! makes. Not owned: the OS definition's side (ganeti.rs), mkve.conf's
//! lines (mkveconf.rs).
//!
//! The connection's certificate is checked against the system's store, as
//! every fetch is (so a cluster whose RAPI certificate is the operator's,
//! `gnt-cluster renew-crypto --rapi-certificate`, is reached anywhere);
//! Ganeti's own self-signed certificate names no host a checker accepts,
//! so on the loopback only (`https://127.0.0.1`, `::1`, `localhost`: the
//! connection never leaves this host) it is not checked.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use crate::error::{Error, Problem, Result};
use crate::exec::Report;

/// Where RAPI listens on a cluster's master by default.
const DEFAULT_RAPI: &str = "https://127.0.0.1:5080";

/// The cluster, as mkve.conf names it.
pub struct Engine {
    base: String,
    auth: String,
    /// The Ganeti network instances' first NIC is on (the mkve prefix).
    pub network: String,
    /// The disk template of new instances; `None`: the cluster's default.
    pub disk_template: Option<String>,
    agent: ureq::Agent,
}

/// The engine mkve.conf (or `--engine`, which wins) chooses: `None` for
/// libvirt. Errors (65, file and line): an unknown engine, credentials
/// others can read or that do not read.
pub fn configured(engine: Option<&str>) -> Result<Option<Engine>> {
    let path = crate::paths::confdir().join("mkve.conf");
    let lines = crate::mkveconf::lines(&path)?.unwrap_or_default();
    let get = |k: &str| lines.iter().find(|l| l.key == k);
    let (which, line) = match (engine, get("engine")) {
        (Some(e), _) => (e.to_string(), None),
        (None, Some(l)) => (l.value.clone(), Some(l.n)),
        (None, None) => return Ok(None),
    };
    match which.as_str() {
        "libvirt" => return Ok(None),
        "ganeti" => {}
        other => {
            let msg = format!("\"{other}\" is not an engine (libvirt, ganeti)");
            return Err(match line {
                Some(n) => Error::InvalidConfig(Problem::new(&path, Some(n), msg)),
                None => Error::Usage(format!("--engine: {msg}")),
            });
        }
    }
    let base = get("ganeti_rapi")
        .map(|l| l.value.trim_end_matches('/').to_string())
        .unwrap_or_else(|| DEFAULT_RAPI.into());
    if !base.starts_with("https://") {
        let n = get("ganeti_rapi").map(|l| l.n);
        return Err(Error::InvalidConfig(Problem::new(
            &path,
            n,
            format!("ganeti_rapi: \"{base}\" is not an https:// URL (RAPI speaks HTTPS only)"),
        )));
    }
    let creds = get("ganeti_rapi_credentials")
        .map(|l| PathBuf::from(&l.value))
        .unwrap_or_else(|| crate::paths::confdir().join("ganeti-rapi"));
    let (user, pass) = credentials(&creds)?;
    Ok(Some(Engine {
        auth: format!("Basic {}", base64(format!("{user}:{pass}").as_bytes())),
        // A loopback RAPI's certificate is Ganeti's own, self-signed.
        agent: crate::fetch::agent(Duration::from_secs(60), on_loopback(&base)),
        base,
        network: get("ganeti_network")
            .map(|l| l.value.clone())
            .unwrap_or_else(|| "mkve".into()),
        disk_template: get("ganeti_disk_template").map(|l| l.value.clone()),
    }))
}

/// `USER PASSWORD` on the file's first line, the file readable by its
/// owner only (RAPI's users file grants `write` to that user).
fn credentials(path: &Path) -> Result<(String, String)> {
    use std::os::unix::fs::MetadataExt;
    let bad = |msg: String| Error::InvalidConfig(Problem::new(path, Some(1), msg));
    let m = std::fs::metadata(path).map_err(|e| Error::Unavailable {
        what: path.display().to_string(),
        why: format!(
            "{e}: the RAPI user and password of the cluster go there, one line \"USER PASSWORD\", mode 600"
        ),
    })?;
    if m.mode() & 0o077 != 0 {
        return Err(Error::InvalidConfig(Problem::new(
            path,
            None,
            format!(
                "others can read it (mode {:o}): chmod 600 it",
                m.mode() & 0o777
            ),
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let line = text.lines().next().unwrap_or("");
    let mut w = line.split_whitespace();
    match (w.next(), w.next(), w.next()) {
        (Some(u), Some(p), None) => Ok((u.to_string(), p.to_string())),
        _ => Err(bad("expected \"USER PASSWORD\"".into())),
    }
}

/// Standard base64 (RFC 4648), for the basic authentication header.
fn base64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn on_loopback(url: &str) -> bool {
    let rest = url.strip_prefix("https://").unwrap_or(url);
    ["127.", "[::1]", "localhost:", "localhost/"]
        .iter()
        .any(|p| rest.starts_with(p))
        || rest == "localhost"
}

/// An instance, as mkve-vm shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Instance {
    pub name: String,
    pub node: String,
    /// Ganeti's word: running, ADMIN_down, ERROR_down…
    pub state: String,
    pub os: String,
    /// The bundle (the OS variant) for an instance of the OS mkve.
    pub variant: Option<String>,
    pub address: Option<String>,
    /// The address within the mkve prefix (mkve's rule: the address is the ID).
    pub id: Option<u32>,
    pub memory_mib: Option<u64>,
    pub vcpus: Option<u64>,
}

/// What `create` asks of the cluster.
pub struct CreateRequest {
    pub name: String,
    /// The OS variant: a bundle synced with `mkve-vm ganeti sync`.
    pub variant: String,
    pub params: Vec<(String, String)>,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub disk_mib: u64,
    /// The primary node; `None`: placed by hail.
    pub node: Option<String>,
    pub start: bool,
}

impl Engine {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One RAPI call; its JSON answer. Errors: the cluster unreachable
    /// (69), refused credentials (69), an unknown resource (2), any other
    /// error answer (1), all with RAPI's words.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let url = self.url(path);
        let resp = match (method, body) {
            ("GET", _) => self
                .agent
                .get(&url)
                .header("Authorization", &self.auth)
                .call(),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("Authorization", &self.auth)
                .call(),
            (m, b) => {
                let text = b.map(Value::to_string).unwrap_or_else(|| "{}".into());
                let req = if m == "POST" {
                    self.agent.post(&url)
                } else {
                    self.agent.put(&url)
                };
                req.header("Authorization", &self.auth)
                    .content_type("application/json")
                    .send(text.as_bytes())
            }
        };
        let mut resp = resp.map_err(|e| Error::Unavailable {
            what: format!("Ganeti's RAPI at {}", self.base),
            why: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let mut text = String::new();
        resp.body_mut()
            .as_reader()
            .take(16 << 20)
            .read_to_string(&mut text)
            .map_err(|e| Error::Unavailable {
                what: url.clone(),
                why: e.to_string(),
            })?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        match status {
            200..=299 => Ok(value),
            401 | 403 => Err(Error::Unavailable {
                what: format!("Ganeti's RAPI at {}", self.base),
                why: "refuses the user and password of ganeti_rapi_credentials (RAPI's users file grants it write?)".into(),
            }),
            _ => {
                let msg = value
                    .get("explain")
                    .or_else(|| value.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or(text.trim())
                    .to_string();
                if status == 404 {
                    // RAPI says "Not Found" alone: name what is not there.
                    let what = path
                        .strip_prefix("/2/instances/")
                        .map(|r| format!("no instance {}", r.split('/').next().unwrap_or(r)))
                        .unwrap_or_else(|| format!("{path}: {msg}"));
                    Err(Error::Usage(format!("Ganeti: the cluster has {what}")))
                } else {
                    Err(Error::Other(format!("Ganeti ({status}): {msg}")))
                }
            }
        }
    }

    /// Submit a job (the call answers its ID) and wait for its end.
    fn job(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        report: &dyn Report,
    ) -> Result<Value> {
        let id = self.call(method, path, body)?;
        let id = match &id {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => return Err(Error::Other(format!("Ganeti: not a job ID: {other}"))),
        };
        report.progress(&format!("Ganeti job {id}"));
        let started = Instant::now();
        loop {
            let j = self.call("GET", &format!("/2/jobs/{id}"), None)?;
            let status = j.get("status").and_then(Value::as_str).unwrap_or("");
            match status {
                "success" => return Ok(j),
                "error" | "canceled" => return Err(job_error(&id, &j)),
                _ if started.elapsed() > Duration::from_secs(3600) => {
                    return Err(Error::Other(format!(
                        "Ganeti job {id}: still {status} after an hour"
                    )))
                }
                _ => std::thread::sleep(Duration::from_millis(300)),
            }
        }
    }

    /// `create`: one `POST /2/instances`, the variant's kernel and initrd
    /// from this node's sync (the same paths on every node).
    pub fn create(&self, r: &CreateRequest, report: &dyn Report) -> Result<Instance> {
        let variant = super::ganeti::variants()?
            .into_iter()
            .find(|v| v.name == r.variant)
            .ok_or_else(|| Error::Unavailable {
                what: format!("variant {}", r.variant),
                why: "not on this node: bring the published directory to the cluster with mkve-vm ganeti sync".into(),
            })?;
        let lbl = format!("{}+{}", super::ganeti::OS_NAME, r.variant);
        // What create would refuse, refused here before a job is made.
        crate::params::resolve(&variant.params, &r.params, &lbl)?;
        let (mut plain, mut secret) = (BTreeMap::new(), BTreeMap::new());
        for (n, v) in &r.params {
            let is_secret = variant.params.iter().any(|p| &p.name == n && p.secret);
            if is_secret {
                secret.insert(n.clone(), v.clone());
            } else {
                plain.insert(n.clone(), v.clone());
            }
        }
        let mut body = json!({
            "__version__": 1,
            "mode": "create",
            "instance_name": r.name,
            "os_type": lbl,
            "osparams": plain,
            "osparams_secret": secret,
            "disks": [{"size": r.disk_mib}],
            "nics": [{"network": self.network, "ip": "pool"}],
            "beparams": {"memory": r.memory_mib, "vcpus": r.vcpus},
            "hvparams": {
                "kernel_path": variant.kernel,
                "initrd_path": variant.initrd,
                "root_path": "/dev/vda",
                // As mkve's libvirt machines boot (Ganeti's default is ro).
                "kernel_args": "rw quiet",
            },
            "name_check": false,
            "ip_check": false,
            "start": r.start,
        });
        if let Some(t) = &self.disk_template {
            body["disk_template"] = json!(t);
        }
        match &r.node {
            Some(n) => body["pnode"] = json!(n),
            None => body["iallocator"] = json!("hail"),
        }
        self.job("POST", "/2/instances", Some(&body), report)?;
        self.info(&r.name)
    }

    /// Every instance of the cluster.
    pub fn list(&self) -> Result<Vec<Instance>> {
        let subnet = self.subnet();
        let all = self.call("GET", "/2/instances?bulk=1", None)?;
        Ok(all
            .as_array()
            .map(|a| a.iter().map(|i| instance(i, subnet)).collect())
            .unwrap_or_default())
    }

    /// One instance. Errors: none of that name (2).
    pub fn info(&self, name: &str) -> Result<Instance> {
        let i = self.call("GET", &format!("/2/instances/{}", path_word(name)?), None)?;
        Ok(instance(&i, self.subnet()))
    }

    pub fn start(&self, name: &str, report: &dyn Report) -> Result<()> {
        let p = format!("/2/instances/{}/startup", path_word(name)?);
        self.job("PUT", &p, None, report).map(drop)
    }

    /// Shut down, waiting `timeout` for the guest (0: at once).
    pub fn stop(&self, name: &str, timeout: Duration, report: &dyn Report) -> Result<()> {
        let p = format!("/2/instances/{}/shutdown", path_word(name)?);
        let body = json!({"timeout": timeout.as_secs()});
        self.job("PUT", &p, Some(&body), report).map(drop)
    }

    pub fn delete(&self, name: &str, report: &dyn Report) -> Result<()> {
        let p = format!("/2/instances/{}", path_word(name)?);
        self.job("DELETE", &p, None, report).map(drop)
    }

    /// Live migration to `to` (`None`: where Ganeti chooses).
    pub fn migrate(&self, name: &str, to: Option<&str>, report: &dyn Report) -> Result<()> {
        let p = format!("/2/instances/{}/migrate", path_word(name)?);
        let mut body = json!({"mode": "live"});
        if let Some(t) = to {
            body["target_node"] = json!(t);
        }
        self.job("PUT", &p, Some(&body), report).map(drop)
    }

    /// Wait until every probe of each instance (its variant's, from this
    /// node's sync) answers at its address, asked from this node, or
    /// `timeout` passes (69, naming the probe and what it last got).
    pub fn wait(&self, names: &[String], timeout: Duration, report: &dyn Report) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for name in names {
            let i = self.info(name)?;
            let what = format!("instance {name}");
            let addr: std::net::Ipv4Addr = i
                .address
                .as_deref()
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| Error::Unavailable {
                    what: what.clone(),
                    why: "it has no address".into(),
                })?;
            let probes = match &i.variant {
                Some(v) => super::ganeti::probes_of(v)?,
                None => Vec::new(),
            };
            if probes.is_empty() {
                report.warning(&format!("{what}: its bundle declares no probes"));
                continue;
            }
            let mut silent: Vec<(usize, String)> = (0..probes.len())
                .map(|k| (k, "not asked yet".into()))
                .collect();
            loop {
                silent.retain_mut(|(k, last)| {
                    let o = probes[*k].run(addr, Duration::from_secs(3));
                    if o.up {
                        report.note(&format!("{what}: {}: {}", o.probe, o.detail));
                        false
                    } else {
                        *last = o.detail;
                        true
                    }
                });
                let Some((k, last)) = silent.first() else {
                    break;
                };
                if Instant::now() >= deadline {
                    return Err(Error::Unavailable {
                        what,
                        why: format!(
                            "probe \"{}\" at {addr} does not answer: {last}",
                            probes[*k].text
                        ),
                    });
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        Ok(())
    }

    /// The mkve network's prefix, when Ganeti has it.
    fn subnet(&self) -> Option<(u32, u32)> {
        let n = self
            .call(
                "GET",
                &format!("/2/networks/{}", path_word(&self.network).ok()?),
                None,
            )
            .ok()?;
        let (addr, len) = n.get("network")?.as_str()?.split_once('/')?;
        let addr: std::net::Ipv4Addr = addr.parse().ok()?;
        Some((u32::from(addr), len.parse().ok()?))
    }
}

/// An instance's name as one path segment of a RAPI URL.
fn path_word(name: &str) -> Result<&str> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._".contains(&c))
    {
        Ok(name)
    } else {
        Err(Error::Usage(format!(
            "\"{}\" is not an instance name (letters, digits, - . _)",
            crate::text::printable(name)
        )))
    }
}

fn instance(i: &Value, subnet: Option<(u32, u32)>) -> Instance {
    let s = |k: &str| i.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let os = s("os");
    let address = i
        .get("nic.ips")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .map(str::to_string);
    let id = match (&address, subnet) {
        (Some(a), Some((net, len))) if len < 32 => a
            .parse::<std::net::Ipv4Addr>()
            .ok()
            .map(u32::from)
            .filter(|ip| ip >> (32 - len) == net >> (32 - len))
            .map(|ip| ip - net),
        _ => None,
    };
    let be = |k: &str| {
        i.get("beparams")
            .and_then(|b| b.get(k))
            .and_then(Value::as_u64)
    };
    Instance {
        name: s("name"),
        node: s("pnode"),
        state: s("status"),
        variant: os
            .strip_prefix(&format!("{}+", super::ganeti::OS_NAME))
            .map(str::to_string),
        os,
        address,
        id,
        memory_mib: be("maxmem").or_else(|| be("memory")),
        vcpus: be("vcpus"),
    }
}

/// A failed job as mkve's error: Ganeti's words, and the exit status its
/// kind of error has (a request the cluster finds wrong: 2; a missing or
/// exhausted resource: 69; a bundle or parameter an OS script refused:
/// its own status when it says one, else 1).
fn job_error(id: &str, j: &Value) -> Error {
    let first = j
        .get("opresult")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|r| r.is_array()));
    let (class, msg, code) = match first.and_then(Value::as_array) {
        Some(r) => {
            let class = r.first().and_then(Value::as_str).unwrap_or("").to_string();
            let args = r.get(1);
            let msg = args
                .and_then(|a| a.get(0))
                .map(|m| {
                    m.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| m.to_string())
                })
                .unwrap_or_default();
            let code = args
                .and_then(|a| a.get(1))
                .and_then(Value::as_str)
                .map(str::to_string);
            (class, msg, code)
        }
        None => (String::new(), j.to_string(), None),
    };
    let text = format!(
        "Ganeti job {id} failed: {}{msg}",
        if class.is_empty() {
            String::new()
        } else {
            format!("{class}: ")
        }
    );
    match code.as_deref() {
        Some("wrong_input" | "unknown_entity" | "wrong_state") => Error::Usage(text),
        Some(
            "insufficient_resources"
            | "environment_error"
            | "resolver_error"
            | "temp_insufficient_resources",
        ) => Error::Unavailable {
            what: format!("Ganeti job {id}"),
            why: msg,
        },
        _ if msg.contains("exited with exit code 65") => {
            Error::InvalidBundle(Problem::new(format!("Ganeti job {id}"), None, msg))
        }
        _ => Error::Other(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_rfc_4648_says() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"user:pa ss"), "dXNlcjpwYSBzcw==");
    }

    #[test]
    fn only_the_loopback_goes_unchecked() {
        assert!(on_loopback("https://127.0.0.1:5080"));
        assert!(on_loopback("https://localhost:5080"));
        assert!(on_loopback("https://[::1]:5080"));
        assert!(!on_loopback("https://127example.org:5080"));
        assert!(!on_loopback("https://localhost.example.org:5080"));
        assert!(!on_loopback("https://cluster.example.org:5080"));
    }

    #[test]
    fn an_instance_s_id_is_its_address_in_the_prefix() {
        let v = json!({"name": "svc1", "pnode": "n1", "status": "running", "os": "mkve+svc",
            "nic.ips": ["10.99.0.100"], "beparams": {"maxmem": 128, "vcpus": 1}});
        let i = instance(
            &v,
            Some((u32::from(std::net::Ipv4Addr::new(10, 99, 0, 0)), 24)),
        );
        assert_eq!(i.id, Some(100));
        assert_eq!(i.variant.as_deref(), Some("svc"));
        assert_eq!(i.memory_mib, Some(128));
        let far = instance(
            &v,
            Some((u32::from(std::net::Ipv4Addr::new(10, 98, 0, 0)), 24)),
        );
        assert_eq!(far.id, None);
    }

    #[test]
    fn a_failed_job_keeps_ganeti_s_words_and_kind() {
        let j = json!({"status": "error", "opresult": [["OpPrereqError", ["Instance 'x' is unknown", "unknown_entity"]]]});
        let e = job_error("7", &j);
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("Instance 'x' is unknown"), "{e}");
        let j = json!({"status": "error", "opresult": [["OpExecError", ["OS validation script failed (exited with exit code 65), output: mkve-vm: variant svc: not the same on node n2"]]]});
        assert_eq!(job_error("8", &j).exit_code(), 65);
    }
}
