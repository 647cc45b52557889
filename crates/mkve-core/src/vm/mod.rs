//! Machines made from bundles (mkve-vm(1)). A machine is a libvirt domain
//! carrying mkve's record in its metadata, plus `$MKVE_STATEDIR/vms/ID/`
//! holding its root or disk, plus its DHCP entry in the mkve network.
//!
//! - `create.rs`: bundle → machine (verify, unpack, define, undo on failure)
//! - `disk.rs`: the disk image qemu, kvm and xen boot
//! - `base.rs`: bases, what the machines of one bundle share; `seed.rs`:
//!   what differs per machine on a base; `overlay.rs`: an lxc machine's
//!   overlay mount on its base
//! - `staging.rs`: where creates unpack, and the sweep of killed ones
//! - `manage.rs`: finding machines and their lifecycle (start, stop, delete…)
//! - `site.rs`: machines across the nodes mkve.conf lists; `remote.rs`:
//!   another node's mkve-vm over ssh (commands, creates); `migrate.rs`:
//!   a machine moving to another node
//! - `audit.rs`: which machines a vulnerability reaches (each one's
//!   bundle's SBOM, kept in its directory, against a feed)
//! - `wait.rs`: the template's probes, run against the machine (`info`,
//!   `wait`)
//! - `spec.rs`: what a machine may be (names, resources), checked by every
//!   way in before anything is made
//!
//! OpenVZ's own steps are in `openvz.rs`, every libvirt call in `libvirt/`.

mod audit;
mod base;
mod create;
mod disk;
mod manage;
mod migrate;
mod overlay;
mod remote;
mod seed;
mod site;
mod spec;
mod staging;
mod wait;

use serde::Serialize;

pub use audit::{
    audit_machine, audit_node, audit_nodes, machine_packages, node_sboms, this_node_name,
    MachineFinding, MachineRef, MachineSbom, NoSbom, NodeSboms, SiteAudit,
};
pub use base::{
    bases_dir, list as bases, prune as prune_bases, short as short_digest, BaseInfo,
    Kind as BaseKind,
};
pub use create::{create, print_xml, CreateOptions};
pub use disk::DiskFormat;
pub use manage::{
    autostart, console, delete, detach, find, info, infos, list, open_console, reboot, start, stop,
};
pub use migrate::{arrived, finish_move, interrupted_moves, migrate, receive, MigrateOptions};
pub use overlay::prepare_from_hook as prepare_lxc_root;
pub use remote::{create_from_stream, create_on, forward};
pub use site::{list_nodes, NodeMachine, SiteList, Unreachable};
pub use spec::{BlkioWeight, CpuShares, DiskSize, MachineName, Memory, Vcpus};
pub use wait::{probe_once, probes_of, wait};

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
}

/// A machine, with its autostart flag and the bundle's digest.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    #[serde(flatten)]
    pub machine: Machine,
    pub autostart: bool,
    pub bundle: String,
    /// The fingerprint of the key whose good signature on the bundle was
    /// checked when the machine was made; `null`: not verified (taken
    /// unsigned, or made before mkve recorded it).
    pub signed_by: Option<String>,
    pub uri: String,
    /// Each probe of its template, run when `info` was asked.
    pub probes: Vec<crate::probe::Outcome>,
}

/// Where to look for machines.
#[derive(Debug, Clone)]
pub struct Uris {
    pub list: Vec<String>,
    /// Given by the user: a connection that fails is an error. Defaults
    /// that do not answer (a hypervisor this node lacks) are skipped.
    pub explicit: bool,
}

/// The URIs to look for machines on: the one given (or
/// `LIBVIRT_DEFAULT_URI`); else this node's in mkve.conf (mkve-vm(1),
/// NODES), each of which must answer; else every hypervisor's default
/// that mkve uses on this node. Errors (65): mkve.conf is unsound
/// (`nodes::load`: a file one command refuses, every command refuses).
pub fn uris(given: Option<&str>) -> crate::Result<Uris> {
    let env = std::env::var("LIBVIRT_DEFAULT_URI")
        .ok()
        .filter(|u| !u.is_empty());
    if let Some(u) = given.map(str::to_string).or(env) {
        return Ok(Uris {
            list: vec![u],
            explicit: true,
        });
    }
    if let Some(list) = crate::nodes::Nodes::load()?.local_uris() {
        return Ok(Uris {
            list,
            explicit: true,
        });
    }
    Ok(Uris {
        list: Hypervisor::searched_uris()
            .into_iter()
            .map(str::to_string)
            .collect(),
        explicit: false,
    })
}
