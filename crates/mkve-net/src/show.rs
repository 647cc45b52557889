//! How mkve-net prints the network's state and addresses.

use mkve_cli::{outln, print_json};
use mkve_core::ids::MachineId;
use mkve_core::libvirt::network::Status;
use mkve_core::Result;

pub fn status(s: &Status, json: bool) -> Result<()> {
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
        outln!(
            "  {:<6} {:<17} {}",
            h.id.map_or("-".into(), |i| i.to_string()),
            h.mac,
            h.ip
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
