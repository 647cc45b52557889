//! What a machine is to the other modules of `vm/`: its listing
//! (`Machine`, `MachineInfo`), its state and domain type, and the URIs machines
//! are looked for on (`Uris`, `uris`).

use serde::Serialize;

use crate::hypervisor::Hypervisor;
use crate::ids::MachineId;

/// What a machine runs under: one of mkve's hypervisors, or libvirt's test
/// driver (`test:///default`, whose domains are of a type of their own),
/// which fast tests use. Printed as the domain type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainType {
    Hypervisor(Hypervisor),
    Test,
    /// An orphan's: mkve's leftovers with no domain (printed `-`).
    None,
}

impl DomainType {
    /// From `<domain type=…>`; `None` for a type mkve never makes.
    pub fn parse(ty: &str) -> Option<DomainType> {
        match ty {
            "test" => Some(DomainType::Test),
            t => Hypervisor::from_domain_type(t).map(DomainType::Hypervisor),
        }
    }

    pub fn hypervisor(self) -> Option<Hypervisor> {
        match self {
            DomainType::Hypervisor(h) => Some(h),
            DomainType::Test | DomainType::None => None,
        }
    }
}

impl std::fmt::Display for DomainType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DomainType::Hypervisor(h) => h.fmt(f),
            DomainType::Test => f.pad("test"),
            DomainType::None => f.pad("-"),
        }
    }
}

impl Serialize for DomainType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Whether a machine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MachineState {
    #[serde(rename = "running")]
    Running,
    #[serde(rename = "shut off")]
    ShutOff,
    /// No domain, but a DHCP entry or files mkve made for this ID (a
    /// machine undefined by another tool, a create killed midway):
    /// `delete ID` removes them.
    #[serde(rename = "orphan")]
    Orphan,
}

impl std::fmt::Display for MachineState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            MachineState::Running => "running",
            MachineState::ShutOff => "shut off",
            MachineState::Orphan => "orphan",
        })
    }
}

/// One machine as `list` shows it (keys documented in mkve-vm(1)).
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub id: MachineId,
    pub name: String,
    pub hypervisor: DomainType,
    pub state: MachineState,
    pub address: String,
    pub template: String,
    pub version: String,
    #[serde(skip)]
    pub uri: String,
    /// The sha256 of its bundle's root (its record's `bundle`); empty for
    /// an orphan.
    #[serde(skip)]
    pub bundle: String,
}

/// A machine, with its autostart flag and the bundle's digest.
#[derive(Debug, Clone, Serialize)]
pub struct MachineInfo {
    #[serde(flatten)]
    pub machine: Machine,
    pub autostart: bool,
    pub bundle: String,
    /// The fingerprint of the key whose good signature on the bundle was
    /// checked when the machine was made; `null`: not verified (taken
    /// unsigned, or made before mkve recorded it).
    pub signed_by: Option<String>,
    /// Where its bundle was taken from at create: a path or a URL; `null`
    /// for stdin (or a machine made before mkve kept it).
    pub source: Option<String>,
    pub uri: String,
    /// Each probe of its template, run when `info` was asked.
    pub probes: Vec<crate::probe::Outcome>,
    /// An upgrade held for a commit or a rollback (upgrade.rs).
    pub upgrade: Option<Pending>,
}

/// An upgrade of a machine held for a commit or a rollback, as `info`
/// shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pending {
    pub from_version: String,
    pub to_version: String,
    /// When it was made, in seconds since the epoch.
    pub made: u64,
}

pub use crate::nodes::Uris;

/// The URIs to look for machines on, as the one resolver decides them
/// (`nodes::Connections::machines`): the one given (or
/// `LIBVIRT_DEFAULT_URI`); else this node's in mkve.conf (mkve-vm(1),
/// NODES), each of which must answer; else every hypervisor's default
/// that mkve uses on this node. Errors (65): mkve.conf is unsound.
pub fn uris(given: Option<&str>) -> crate::Result<Uris> {
    Ok(crate::nodes::Connections::resolve(given)?.machines())
}

/// The paths where the machine's service keeps its data, as its bundle
/// declared them (kept in `$MKVE_STATEDIR/vms/ID/conf/state`, see
/// state.rs); none for a machine whose bundle declared none or whose files
/// mkve does not keep (OpenVZ). Errors: the file does not parse (65).
pub fn state_of(m: &Machine) -> crate::Result<Vec<std::path::PathBuf>> {
    crate::state::of_dir(
        &super::layout::machine_dir(m.id),
        &format!("machine {}", m.id),
    )
}

/// The hypervisor of `m` when mkve keeps and reads its files (lxc, qemu,
/// kvm): what backups, packs and upgrades take. Errors (2): another,
/// "machine ID runs under T: " and `refusal`.
pub(super) fn kept_hypervisor(
    m: &Machine,
    refusal: &str,
) -> crate::Result<crate::hypervisor::Hypervisor> {
    use crate::hypervisor::Hypervisor;
    match m.hypervisor {
        DomainType::Hypervisor(h @ (Hypervisor::Lxc | Hypervisor::Qemu | Hypervisor::Kvm)) => Ok(h),
        t => Err(crate::Error::Usage(format!(
            "machine {} runs under {t}: {refusal}",
            m.id
        ))),
    }
}
