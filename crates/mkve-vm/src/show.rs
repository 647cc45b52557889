//! How mkve-vm prints what it found: aligned columns for people, JSON with
//! stable keys (documented in mkve-vm(1)) with --json.

use mkve_cli::{outln, print_json};
use mkve_core::doctor::Capability;
use mkve_core::ids::MachineId;
use mkve_core::vm::{Info, Machine};
use mkve_core::Result;

/// A new machine's ID, the result of `create`.
pub fn id(id: MachineId) -> Result<()> {
    outln!("{id}")
}

pub fn list(machines: &[Machine], as_json: bool) -> Result<()> {
    if as_json {
        return print_json(&machines);
    }
    outln!(
        "{:<5} {:<24} {:<6} {:<9} {:<15} {:<20} VERSION",
        "ID",
        "NAME",
        "HV",
        "STATE",
        "ADDRESS",
        "TEMPLATE"
    )?;
    for m in machines {
        outln!(
            "{:<5} {:<24} {:<6} {:<9} {:<15} {:<20} {}",
            m.id,
            m.name,
            m.hypervisor,
            m.state,
            m.address,
            m.template,
            m.version
        )?;
    }
    Ok(())
}

pub fn info(i: &Info, as_json: bool) -> Result<()> {
    if as_json {
        return print_json(i);
    }
    let m = &i.machine;
    outln!(
        "id         {}\nname       {}\nhypervisor {}\nstate      {}",
        m.id,
        m.name,
        m.hypervisor,
        m.state
    )?;
    outln!(
        "address    {}\ntemplate   {} {}\nautostart  {}",
        m.address,
        m.template,
        m.version,
        i.autostart
    )?;
    outln!("bundle     {}\nuri        {}", i.bundle, i.uri)?;
    // One line a probe: up or down, the probe as declared, what answered.
    for (n, o) in i.probes.iter().enumerate() {
        let head = if n == 0 { "probes" } else { "" };
        let state = if o.up { "up" } else { "down" };
        outln!("{head:<10} {state:<4} {}: {}", o.probe, o.detail)?;
    }
    Ok(())
}

pub fn doctor(caps: &[Capability], as_json: bool) -> Result<()> {
    if as_json {
        return print_json(&caps);
    }
    for c in caps {
        let state = if c.usable { "yes" } else { "no" };
        outln!(
            "{:<7} {:<4} {}",
            c.hypervisor,
            state,
            c.why.as_deref().unwrap_or("")
        )?;
    }
    Ok(())
}
