//! How mkve-vm prints what it found: aligned columns for people, JSON with
//! stable keys (documented in mkve-vm(1)) with --json.

use mkve_core::vm::{Capability, Info, Machine};
use mkve_core::{Error, Result};

fn json(v: &impl serde::Serialize) -> Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| Error::Other(e.to_string()))?
    );
    Ok(())
}

pub fn list(machines: &[Machine], as_json: bool) -> Result<()> {
    if as_json {
        return json(&machines);
    }
    println!(
        "{:<5} {:<24} {:<6} {:<9} {:<15} TEMPLATE",
        "ID", "NAME", "HV", "STATE", "ADDRESS"
    );
    for m in machines {
        println!(
            "{:<5} {:<24} {:<6} {:<9} {:<15} {} {}",
            m.id, m.name, m.hypervisor, m.state, m.address, m.template, m.version
        );
    }
    Ok(())
}

pub fn info(i: &Info, as_json: bool) -> Result<()> {
    if as_json {
        return json(i);
    }
    let m = &i.machine;
    println!(
        "id         {}\nname       {}\nhypervisor {}\nstate      {}",
        m.id, m.name, m.hypervisor, m.state
    );
    println!(
        "address    {}\ntemplate   {} {}\nautostart  {}",
        m.address, m.template, m.version, i.autostart
    );
    println!("bundle     {}\nuri        {}", i.bundle, i.uri);
    Ok(())
}

pub fn doctor(caps: &[Capability], as_json: bool) -> Result<()> {
    if as_json {
        return json(&caps);
    }
    for c in caps {
        let state = if c.usable { "yes" } else { "no" };
        println!(
            "{:<7} {:<4} {}",
            c.hypervisor,
            state,
            c.why.as_deref().unwrap_or("")
        );
    }
    Ok(())
}
