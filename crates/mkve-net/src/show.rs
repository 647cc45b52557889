//! How mkve-net prints the network's state and addresses.

use mkve_cli::{outln, print_json};
use mkve_core::ids::MachineId;
use mkve_core::libvirt::network::Status;
use mkve_core::Result;

/// The network's state and entries; `machines` are the IDs that have a
/// domain, so an mkve entry without one is marked an orphan.
pub fn status(s: &Status, machines: &std::collections::BTreeSet<u32>, json: bool) -> Result<()> {
    if json {
        return print_json(s);
    }
    let state = match (s.defined, s.active) {
        (false, _) => "undefined",
        (true, true) => "active",
        (true, false) => "inactive",
    };
    let yn = |b: bool| if b { "yes" } else { "no" };
    outln!(
        "name       {}\nstate      {state}\nautostart  {}",
        s.name,
        yn(s.autostart)
    )?;
    outln!(
        "bridge     {}\naddress    {}\nmachines   {}",
        s.bridge,
        s.address,
        s.hosts.len()
    )?;
    for h in &s.hosts {
        let what = match h.id {
            None => "not mkve's",
            Some(id) if machines.contains(&id) => "",
            Some(_) => "orphan: mkve-vm delete ID removes it",
        };
        outln!(
            "  {:<6} {:<17} {:<15} {:<20} {what}",
            h.id.map_or("-".into(), |i| i.to_string()),
            h.mac,
            h.ip,
            h.name
        )?;
    }
    Ok(())
}

pub fn ip(id: MachineId, address: std::net::Ipv4Addr, json: bool) -> Result<()> {
    if json {
        return outln!(
            "{}",
            serde_json::json!({ "id": id, "address": address.to_string() })
        );
    }
    outln!("{address}")
}

/// What ganeti-connect did (or, dry, would do): the commands.
pub fn ganeti(c: &mkve_core::ganeti_net::Connect, dry_run: bool, as_json: bool) -> Result<()> {
    if as_json {
        return print_json(c);
    }
    for cmd in &c.commands {
        let line = cmd.join(" ");
        if dry_run {
            outln!("{line}")?;
        } else {
            outln!("ran: {line}")?;
        }
    }
    Ok(())
}
