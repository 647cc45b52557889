//! The mkve network as a Ganeti network (mkve-net ganeti-connect): the
//! prefix of mkve.conf becomes a Ganeti network whose pool hands out the
//! instances' addresses, its addresses below the first ID (100) reserved so
//! an instance's address is always an ID, connected in bridged mode to the
//! mkve bridge in a node group. Run on the cluster's master, through
//! gnt-network; idempotent.
//!
//! Owns the commands and the reserved list; not the network's keys
//! (net.rs) nor the bridge (mkve-net create, libvirt/network.rs).

use std::net::Ipv4Addr;
use std::path::Path;

use crate::error::Result;
use crate::exec::{Cmd, Report};
use crate::hypervisor::FIRST_ID;
use crate::net::NetConfig;

/// What ganeti-connect did, or would do.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Connect {
    /// The gnt-network commands, each as its words.
    pub commands: Vec<Vec<String>>,
    /// The addresses reserved in the pool.
    pub reserved: Vec<Ipv4Addr>,
}

/// The addresses Ganeti reserves itself (the nodes' primary addresses and
/// the master's), from its ssconf files in `ssconf`; a second reservation
/// of one is refused by gnt-network.
fn ganeti_reserves(ssconf: &Path) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    if let Ok(t) = std::fs::read_to_string(ssconf.join("ssconf_node_primary_ips")) {
        out.extend(
            t.lines()
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<Ipv4Addr>().ok()),
        );
    }
    if let Ok(t) = std::fs::read_to_string(ssconf.join("ssconf_master_ip")) {
        out.extend(t.trim().parse::<Ipv4Addr>().ok());
    }
    out
}

/// The addresses below the first ID that the pool must not give out: all
/// of network + 1 .. network + 99 but the host's (the gateway, which
/// Ganeti reserves with the network) and those in `already`.
pub fn reserved(cfg: &NetConfig, already: &[Ipv4Addr]) -> Vec<Ipv4Addr> {
    let net = u32::from(cfg.network_address());
    (1..FIRST_ID)
        .map(|i| Ipv4Addr::from(net + i))
        .filter(|a| *a != cfg.host && !already.contains(a))
        .filter(|a| i64::from(u32::from(*a)) - i64::from(net) <= i64::from(cfg.last_id()))
        .collect()
}

/// The commands that make `cfg`'s prefix the Ganeti network `name`,
/// connected to `group` on the bridge; `exists`: the network is there
/// already (only the connection is made).
pub fn plan(cfg: &NetConfig, name: &str, group: &str, exists: bool, ssconf: &Path) -> Connect {
    let reserved = reserved(cfg, &ganeti_reserves(ssconf));
    let mut commands = Vec::new();
    if !exists {
        let mut add = vec![
            "gnt-network".to_string(),
            "add".into(),
            "--network".into(),
            format!("{}/{}", cfg.network_address(), cfg.prefix),
            "--gateway".into(),
            cfg.host.to_string(),
        ];
        if !reserved.is_empty() {
            add.push("--add-reserved-ips".into());
            add.push(
                reserved
                    .iter()
                    .map(Ipv4Addr::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        add.push(name.into());
        commands.push(add);
    }
    commands.push(vec![
        "gnt-network".into(),
        "connect".into(),
        "--nic-parameters".into(),
        format!("mode=bridged,link={}", cfg.bridge),
        name.into(),
        group.into(),
    ]);
    Connect { commands, reserved }
}

/// Make the network `name` of `cfg`'s prefix and connect it to `group`
/// (or, with `dry_run`, say how). A connection already made is left as it
/// is.
pub fn connect(
    cfg: &NetConfig,
    name: &str,
    group: &str,
    dry_run: bool,
    report: &dyn Report,
) -> Result<Connect> {
    let exists = Cmd::new("gnt-network")
        .args(["list", "--no-headers", "-o", "name"])
        .report(report)
        .output_checked()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == name)
        })?;
    let p = plan(cfg, name, group, exists, Path::new("/var/lib/ganeti"));
    if dry_run {
        return Ok(p);
    }
    for c in &p.commands {
        let out = Cmd::new(&c[0]).args(&c[1..]).report(report).output()?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).into_owned();
            if c[1] == "connect" && text.contains("already connected") {
                report.note(&format!("network {name} is connected to {group} already"));
                continue;
            }
            return Err(crate::error::Error::Other(format!(
                "{}: {}",
                c.join(" "),
                crate::process_error::tail(text.as_bytes())
            )));
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_addresses_below_the_first_id_are_reserved_but_the_gateway_and_ganeti_s() {
        let cfg = NetConfig::default();
        let nodes = ["192.0.2.11".parse().unwrap(), "192.0.2.10".parse().unwrap()];
        let r = reserved(&cfg, &nodes);
        assert_eq!(r.len(), 99 - 3);
        assert_eq!(
            r.first().map(ToString::to_string).as_deref(),
            Some("192.0.2.2")
        );
        assert_eq!(
            r.last().map(ToString::to_string).as_deref(),
            Some("192.0.2.99")
        );
        assert!(!r.contains(&"192.0.2.11".parse().unwrap()));
        let p = plan(&cfg, "mkve", "default", false, Path::new("/nonexistent"));
        assert_eq!(
            p.commands[0][..6],
            [
                "gnt-network",
                "add",
                "--network",
                "192.0.2.0/24",
                "--gateway",
                "192.0.2.1"
            ]
        );
        assert_eq!(
            p.commands[1],
            [
                "gnt-network",
                "connect",
                "--nic-parameters",
                "mode=bridged,link=mkvebr0",
                "mkve",
                "default"
            ]
        );
        assert_eq!(
            plan(&cfg, "mkve", "default", true, Path::new("/nonexistent"))
                .commands
                .len(),
            1
        );
    }
}
