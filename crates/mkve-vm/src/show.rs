//! How mkve-vm prints what it found: aligned columns for people, JSON with
//! stable keys (documented in mkve-vm(1)) with --json.

use mkve_cli::{outln, print_json};
use mkve_core::doctor::Capability;
use mkve_core::exec::Report;
use mkve_core::ids::MachineId;
use mkve_core::vm::{
    self, BaseInfo, BaseKind, Machine, MachineInfo, NodeMachine, SiteAudit, SiteList,
};
use mkve_core::{Error, Result};

/// A new machine's ID, the result of `create`.
pub fn id(id: MachineId) -> Result<()> {
    outln!("{id}")
}

/// `list`'s columns, header or one machine (`list` and `list --all-nodes`
/// print the same ones).
const HEADER: [&str; 7] = [
    "ID", "NAME", "HV", "STATE", "ADDRESS", "TEMPLATE", "VERSION",
];

fn columns(c: [String; 7]) -> String {
    format!(
        "{:<5} {:<24} {:<6} {:<9} {:<15} {:<20} {}",
        c[0], c[1], c[2], c[3], c[4], c[5], c[6]
    )
}

fn row(m: &Machine) -> String {
    columns([
        m.id.to_string(),
        m.name.clone(),
        m.hypervisor.to_string(),
        m.state.to_string(),
        m.address.to_string(),
        m.template.clone(),
        m.version.clone(),
    ])
}

fn header() -> String {
    columns(HEADER.map(String::from))
}

pub fn list(machines: &[Machine], as_json: bool) -> Result<()> {
    if as_json {
        return print_json(&machines);
    }
    outln!("{}", header())?;
    for m in machines {
        outln!("{}", row(m))?;
    }
    Ok(())
}

/// `list --all-nodes`: a NODE column first; each node or URI that did not
/// answer told on stderr (and under `unreachable` in JSON).
pub fn site(all: &SiteList, as_json: bool, report: &dyn Report) -> Result<()> {
    for u in &all.unreachable {
        report.warning(&format!(
            "node {} does not answer at {}: {}",
            u.node, u.uri, u.error
        ));
    }
    if as_json {
        return print_json(all);
    }
    outln!("{:<8} {}", "NODE", header())?;
    for NodeMachine { node, machine } in &all.machines {
        outln!("{:<8} {}", node, row(machine))?;
    }
    Ok(())
}

pub fn info(i: &MachineInfo, as_json: bool) -> Result<()> {
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
    let signature = match &i.signed_by {
        Some(f) => format!("good, key {f}"),
        None => "not verified".into(),
    };
    outln!(
        "bundle     {}\nsignature  {signature}\nuri        {}",
        i.bundle,
        i.uri
    )?;
    if let Some(u) = &i.upgrade {
        outln!(
            "upgrade    from {} to {}, not committed (upgrade --commit or --rollback)",
            u.from_version,
            u.to_version
        )?;
    }
    // One line a probe: up or down, the probe as declared, what answered.
    for (n, o) in i.probes.iter().enumerate() {
        let head = if n == 0 { "probes" } else { "" };
        let state = if o.up { "up" } else { "down" };
        outln!("{head:<10} {state:<4} {}: {}", o.probe, o.detail)?;
    }
    Ok(())
}

/// `bases`: one line a base; with --verify, exit 65 when one differs.
pub fn bases(bases: &[BaseInfo], as_json: bool) -> Result<()> {
    if as_json {
        print_json(&bases)?;
    } else {
        let verified = bases.iter().any(|b| b.verified.is_some());
        outln!(
            "{:<12} {:<4} {:<20} {:<10} {:>9} {}MACHINES",
            "BASE",
            "KIND",
            "TEMPLATE",
            "VERSION",
            "SIZE",
            if verified { "VERIFIED  " } else { "" }
        )?;
        for b in bases {
            let kind = match b.kind {
                Some(BaseKind::Disk) => "disk",
                Some(BaseKind::Root) => "root",
                None => "-",
            };
            let template = if b.missing {
                "MISSING"
            } else {
                b.template.as_str()
            };
            outln!(
                "{:<12} {:<4} {:<20} {:<10} {:>8}M {}{}",
                vm::short_digest(&b.digest),
                kind,
                template,
                b.version,
                b.bytes.div_ceil(1 << 20),
                b.verified
                    .as_deref()
                    .map(|v| format!("{v:<9} "))
                    .unwrap_or_default(),
                if b.machines.is_empty() {
                    "-".to_string()
                } else {
                    b.machines.join(",")
                }
            )?;
        }
    }
    let changed: Vec<&BaseInfo> = bases
        .iter()
        .filter(|b| b.verified.as_deref().is_some_and(|v| v != "ok"))
        .collect();
    match changed.first() {
        None => Ok(()),
        Some(b) if b.missing => Err(Error::InvalidBundle(mkve_core::error::Problem::new(
            vm::bases_dir().join(&b.digest),
            None,
            format!(
                "base {} is missing: removed while machines {} stand on it; restore it, or delete them",
                vm::short_digest(&b.digest),
                b.machines.join(", ")
            ),
        ))),
        Some(b) => Err(Error::InvalidBundle(mkve_core::error::Problem::new(
            vm::bases_dir().join(&b.digest),
            None,
            format!(
                "base of {} {} {}; its machines cannot be trusted: delete them, or mkve-vm detach and check them",
                b.template,
                b.version,
                b.verified.as_deref().unwrap_or_default().to_lowercase()
            ),
        ))),
    }
}

/// `snapshots`: one line a snapshot, oldest first.
pub fn snapshots(all: &[vm::SnapshotInfo], as_json: bool) -> Result<()> {
    if as_json {
        return print_json(&all);
    }
    outln!("{:<24} {:<20} {:<8} {:>9}", "NAME", "MADE", "STATE", "SIZE")?;
    for s in all {
        outln!(
            "{:<24} {:<20} {:<8} {:>8}M",
            s.record.name,
            mkve_core::date::rfc3339(s.record.made),
            if s.record.running {
                "running"
            } else {
                "shut off"
            },
            s.bytes.div_ceil(1 << 20)
        )?;
    }
    Ok(())
}

/// `bases --prune`: the digests removed.
pub fn pruned(digests: &[String], as_json: bool) -> Result<()> {
    if as_json {
        return print_json(&digests);
    }
    for d in digests {
        outln!("removed {d}")?;
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

/// `audit`: one line a vulnerability of a machine, and one for each
/// machine with no SBOM (`(no SBOM)`, why on stderr); nodes that did not
/// answer told on stderr. Exit 1 when something is open; else 69 when a
/// node did not answer (its machines are not known to be clean).
pub fn audit(a: &SiteAudit, as_json: bool, report: &dyn Report) -> Result<()> {
    for u in &a.unreachable {
        report.warning(&format!(
            "node {} did not answer ({}): its machines are not audited: {}",
            u.node, u.uri, u.error
        ));
    }
    for n in &a.no_sbom {
        report.warning(&format!(
            "machine {} ({}) on node {}: no SBOM: {}",
            n.machine.id, n.machine.name, n.machine.node, n.why
        ));
    }
    if as_json {
        print_json(a)?;
    } else {
        let mut rows = vec![[
            "NODE",
            "ID",
            "NAME",
            "BUNDLE",
            "CVE",
            "PACKAGE",
            "INSTALLED",
            "FIXED",
        ]
        .map(String::from)];
        let bundle = |m: &vm::MachineRef| format!("{}-{}", m.template, m.version);
        for f in &a.findings {
            let (m, f) = (&f.machine, &f.finding);
            rows.push([
                m.node.clone(),
                m.id.to_string(),
                m.name.clone(),
                bundle(m),
                f.cve.clone(),
                f.package.clone(),
                f.installed.clone(),
                f.fixed.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        for n in &a.no_sbom {
            let m = &n.machine;
            rows.push([
                m.node.clone(),
                m.id.to_string(),
                m.name.clone(),
                bundle(m),
                "(no SBOM)".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        if rows.len() > 1 {
            mkve_cli::print_table(&rows)?;
        }
    }
    if !a.findings.is_empty() {
        let n = a.findings.len();
        let mut machines: Vec<(&str, u32)> = a
            .findings
            .iter()
            .map(|f| (f.machine.node.as_str(), f.machine.id))
            .collect();
        machines.dedup();
        let m = machines.len();
        return Err(Error::Other(format!(
            "{n} open vulnerabilit{} in {m} machine{} (a CVE in a package of its bundle)",
            if n == 1 { "y" } else { "ies" },
            if m == 1 { "" } else { "s" }
        )));
    }
    if let Some(u) = a.unreachable.first() {
        return Err(Error::Unavailable {
            what: format!("node {}", u.node),
            why: "did not answer: nothing is open on the nodes that answered, but its machines are not audited".into(),
        });
    }
    Ok(())
}

/// What `upgrade` did: one line, and each conflict gone on with under
/// `--force`.
pub fn upgraded(s: &vm::UpgradeSummary) -> Result<()> {
    for c in &s.conflicts {
        outln!(
            "kept the machine's {} ({} in the new bundle)",
            c.path.display(),
            c.new_base
        )?;
    }
    outln!(
        "machine {} upgraded from {} to {} ({} ms down); mkve-vm upgrade --commit {} keeps it, --rollback goes back",
        s.machine,
        s.from_version,
        s.to_version,
        s.downtime_ms,
        s.machine
    )
}

/// A rollout's report: a line a machine (ID, name, version now, result);
/// exit 69 when one failed (the rollout stopped there).
pub fn rollout(all: &[vm::RolloutEntry], as_json: bool) -> Result<()> {
    if as_json {
        print_json(&all)?;
    } else {
        let nodes = all.iter().any(|e| e.node.is_some());
        if nodes {
            outln!(
                "{:<5} {:<24} {:<8} {:<12} RESULT",
                "ID",
                "NAME",
                "NODE",
                "VERSION"
            )?;
        } else {
            outln!("{:<5} {:<24} {:<12} RESULT", "ID", "NAME", "VERSION")?;
        }
        for e in all {
            let result = match &e.outcome {
                vm::RolloutOutcome::Upgraded => "upgraded (upgrade --commit keeps it)".to_string(),
                vm::RolloutOutcome::Already => "on the new bundle already".to_string(),
                vm::RolloutOutcome::Untouched => "not tried: the rollout stopped".to_string(),
                vm::RolloutOutcome::Failed(why) => format!("failed, rolled back: {why}"),
            };
            if nodes {
                let node = e.node.as_deref().unwrap_or("(here)");
                outln!(
                    "{:<5} {:<24} {:<8} {:<12} {result}",
                    e.machine,
                    e.name,
                    node,
                    e.version
                )?;
            } else {
                outln!("{:<5} {:<24} {:<12} {result}", e.machine, e.name, e.version)?;
            }
        }
    }
    match all
        .iter()
        .find(|e| matches!(e.outcome, vm::RolloutOutcome::Failed(_)))
    {
        Some(e) => Err(Error::Unavailable {
            what: "the rollout".into(),
            why: format!(
                "machine {} ({}) failed and was rolled back; the rollout stopped there (run it again to go on)",
                e.machine, e.name
            ),
        }),
        None => Ok(()),
    }
}

/// The variants a sync left, and the nodes it brought them to.
pub fn synced(s: &vm::ganeti::Synced, as_json: bool) -> Result<()> {
    if as_json {
        return print_json(s);
    }
    variants(&s.variants, false)?;
    for n in &s.nodes {
        outln!("synced to node {n}")?;
    }
    Ok(())
}

/// The variants of the OS definition mkve on this node.
pub fn variants(all: &[vm::ganeti::Variant], as_json: bool) -> Result<()> {
    if as_json {
        return print_json(&all);
    }
    let w = all.iter().map(|v| v.name.len()).max().unwrap_or(0).max(7);
    outln!(
        "{:<w$}  {:<10}  {:<20}  KERNEL",
        "VARIANT",
        "HV",
        "TEMPLATE"
    )?;
    for v in all {
        outln!(
            "{:<w$}  {:<10}  {:<20}  {}",
            v.name,
            v.hypervisor,
            format!("{} {}", v.template, v.version),
            v.kernel.display()
        )?;
    }
    Ok(())
}

/// A Ganeti cluster's instances, as `list` shows machines.
pub fn instances(all: &[vm::ganeti_rapi::Instance], as_json: bool) -> Result<()> {
    if as_json {
        return print_json(&all);
    }
    let w = all.iter().map(|i| i.name.len()).max().unwrap_or(0).max(4);
    let n = all.iter().map(|i| i.node.len()).max().unwrap_or(0).max(4);
    outln!(
        "{:<w$}  {:<n$}  {:<11}  {:<5}  {:<15}  VARIANT",
        "NAME",
        "NODE",
        "STATE",
        "ID",
        "ADDRESS"
    )?;
    for i in all {
        outln!(
            "{:<w$}  {:<n$}  {:<11}  {:<5}  {:<15}  {}",
            i.name,
            i.node,
            i.state,
            i.id.map(|d| d.to_string()).unwrap_or_else(|| "-".into()),
            i.address.as_deref().unwrap_or("-"),
            i.variant.as_deref().unwrap_or(&i.os)
        )?;
    }
    Ok(())
}

/// One instance.
pub fn instance(i: &vm::ganeti_rapi::Instance, as_json: bool) -> Result<()> {
    if as_json {
        return print_json(i);
    }
    outln!("name       {}", i.name)?;
    outln!("node       {}", i.node)?;
    outln!("state      {}", i.state)?;
    outln!("os         {}", i.os)?;
    outln!("address    {}", i.address.as_deref().unwrap_or("-"))?;
    outln!(
        "id         {}",
        i.id.map(|d| d.to_string()).unwrap_or_else(|| "-".into())
    )?;
    outln!(
        "memory     {}",
        i.memory_mib
            .map(|m| format!("{m} MiB"))
            .unwrap_or_else(|| "-".into())
    )?;
    outln!(
        "vcpus      {}",
        i.vcpus.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
    )
}
