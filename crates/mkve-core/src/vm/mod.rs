//! Machines made from bundles (mkve-vm(1)). A machine is a libvirt domain
//! carrying mkve's record in its metadata, plus `$MKVE_STATEDIR/vms/ID/`
//! holding its root or disk, plus its DHCP entry in the mkve network.
//!
//! Imports go one way, down this list (no circle):
//!
//! - `remote.rs`: another node's mkve-vm over ssh (commands, creates);
//!   `migrate.rs`: a machine moving to another node, its source side;
//!   `receive.rs`: its target side and the messages of its protocol;
//!   `site.rs`: machines across the nodes mkve.conf lists
//! - `create.rs`: bundle → machine (verify, unpack, define, undo on failure)
//! - `manage.rs`: a machine's lifecycle (start, stop, delete, detach…);
//!   `wait.rs`: the template's probes, run against the machine (`info`,
//!   `wait`)
//! - `moves.rs`: a move's mark and the resolution of a killed move, which
//!   every command that locks a machine runs first
//! - `lookup.rs`: finding machines (by ID, name, UUID) and orphans;
//!   `taken.rs`: which IDs are taken, here and on the other nodes
//! - `staging.rs`: where creates unpack, the sweep of killed ones, and the
//!   removal of what is left of a machine
//! - `base.rs`: bases, what the machines of one bundle share; `seed.rs`:
//!   what differs per machine on a base; `overlay.rs`: an lxc machine's
//!   overlay mount on its base; `disk.rs`: the disk image qemu, kvm and
//!   xen boot
//! - `audit.rs`: which machines a vulnerability reaches (each one's
//!   bundle's SBOM, kept in its directory, against a feed)
//! - `spec.rs`: what a machine may be (names, resources), checked by every
//!   way in before anything is made; `machine.rs`: what a machine is to
//!   the others (`Machine`, `MachineInfo`, `Uris`); `layout.rs`: every path
//!   under `$MKVE_STATEDIR`
//!
//! `ganeti.rs` is beside them all: bundles as a Ganeti OS definition
//! (its variants synced to every node, the OS scripts' actions), and
//! `ganeti_rapi.rs`, mkve-vm driving the cluster through RAPI.
//!
//! OpenVZ's own steps are in `openvz.rs`, every libvirt call in `libvirt/`.

mod adopt;
mod audit;
mod backup;
mod base;
mod create;
mod disk;
pub mod ganeti;
pub mod ganeti_rapi;
mod layout;
mod lookup;
mod machine;
mod manage;
mod migrate;
mod moves;
mod overlay;
mod pack;
mod plan;
mod qemu_img;
mod receive;
mod remote;
mod seed;
mod site;
mod snapshot;
mod snapshot_store;
mod spec;
mod staging;
mod taken;
mod updates;
mod upgrade;
mod upgrade_undo;
mod wait;

pub use adopt::{adopt, id_of_name, AdoptOptions, Adopted};
pub use audit::{
    audit_machine, audit_node, audit_nodes, machine_packages, node_sboms, this_node_name,
    MachineFinding, MachineRef, MachineSbom, NoSbom, NodeSboms, SiteAudit,
};
pub use backup::{
    backup, kept as backups_kept, manifest_of, prune as prune_backups, restore, BackupOptions,
    BackupSummary, Keep, Manifest as BackupManifest, RestoreOptions,
};
pub use base::{
    list as bases, prune as prune_bases, short as short_digest, BaseInfo, Kind as BaseKind,
};
pub use create::{create, domain_xml, CreateOptions};
pub use disk::DiskFormat;
pub use layout::{bases_dir, StateDir};
pub use lookup::{find, list};
pub use machine::{state_of, uris, DomainType, Machine, MachineInfo, MachineState, Pending, Uris};
pub use manage::{
    autostart, console, delete, delete_with, detach, info, infos, open_console, reboot, start, stop,
};
pub use migrate::{migrate, MigrateOptions};
pub use moves::{arrived, finish_move, interrupted_moves};
pub use overlay::prepare_from_hook as prepare_lxc_root;
pub use pack::{pack, parse_scrub, PackOptions as PackMachineOptions, ScrubOp, SCRUB};
pub use receive::receive;
pub use remote::{create_from_stream, create_on, forward, restore_from_stream, restore_on};
pub use site::{list_nodes, NodeMachine, SiteList, Unreachable};
pub use snapshot::{delete as delete_snapshot, revert, snapshot, snapshots, SnapshotInfo};
pub use snapshot_store::{check_name as check_snapshot_name, Record as SnapshotRecord};
pub use spec::{BlkioWeight, CpuShares, DiskSize, MachineName, Memory, Vcpus};
pub use updates::{compare_versions, update_for, update_of, Update};
pub use upgrade::{
    commit as commit_upgrade, rollback as rollback_upgrade, rollout, upgrade, upgrade_from_stream,
    Conflict, Outcome as RolloutOutcome, RolloutEntry, RolloutOptions, UpgradeOptions,
    UpgradeSummary,
};
pub use wait::{probe_once, probes_of, wait};
