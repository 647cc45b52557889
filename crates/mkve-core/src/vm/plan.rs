//! What a create makes, decided before anything is made (mkve-vm(1),
//! BASES): pure functions of the bundle's hypervisor, the create's options
//! and what the node and the bundle's root hold, unit-tested without root;
//! `create.rs` does what they decide.

use super::base::Kind;
use super::disk::DiskFormat;
use crate::error::{Error, Result};
use crate::hypervisor::Hypervisor;

/// Where a machine's root stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placement {
    /// Its own root or disk (`--no-base`, OpenVZ, or a root a disk base
    /// cannot serve).
    Private,
    /// On a base of this kind that the node has.
    OnBase(Kind),
    /// On a base of this kind that this create makes from the bundle's root.
    MakeBase(Kind),
}

/// The kind of base a bundle's machines of `hv` stand on, asked once the
/// bundle's signature holds: `None` (a private root) with `--no-base`, for
/// OpenVZ, or for a bundle without a root member.
pub(super) fn base_kind(hv: Hypervisor, no_base: bool, has_root: bool) -> Option<Kind> {
    Kind::of(hv).filter(|_| !no_base && has_root)
}

/// The placement on a base of `kind`, `present` or not on the node.
pub(super) fn placement(kind: Option<Kind>, present: bool) -> Placement {
    match (kind, present) {
        (None, _) => Placement::Private,
        (Some(k), true) => Placement::OnBase(k),
        (Some(k), false) => Placement::MakeBase(k),
    }
}

/// What a create makes, once the bundle's root is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Plan {
    pub placement: Placement,
    /// The format of the machine's disk (qcow2 on a base).
    pub disk_format: DiskFormat,
    /// The machine boots a disk image of its own, made from the root with
    /// the root's kernel and initrd.
    pub private_disk: bool,
    /// A disk base was wanted but the root has no seed program (hook
    /// 06-mkve-seed): the machine gets a private disk, and the operator
    /// is told.
    pub no_seed_program: bool,
}

/// Settle `placement` for a machine of `hv` whose root has the seed program
/// (`seed_program`) or not, with the `--disk-format` given. Errors (2):
/// `--disk-format raw` for a machine on a base (a qcow2 overlay of it).
pub(super) fn settle(
    hv: Hypervisor,
    placement: Placement,
    seed_program: bool,
    disk_format: Option<DiskFormat>,
) -> Result<Plan> {
    let no_seed_program = placement == Placement::MakeBase(Kind::Disk) && !seed_program;
    let placement = if no_seed_program {
        Placement::Private
    } else {
        placement
    };
    let on_base = placement != Placement::Private;
    if on_base && disk_format == Some(DiskFormat::Raw) {
        return Err(Error::Usage(
            "--disk-format raw: a machine on a base is a qcow2 overlay of it; add --no-base for a private raw disk".into(),
        ));
    }
    Ok(Plan {
        placement,
        disk_format: if on_base {
            DiskFormat::Qcow2
        } else {
            disk_format.unwrap_or_default()
        },
        private_disk: hv.boots_disk_image() && !on_base,
        no_seed_program,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Hypervisor::{Kvm, Lxc, Openvz, Qemu, Xen};

    #[test]
    fn the_base_kind_follows_the_hypervisor_and_the_options() {
        assert_eq!(base_kind(Lxc, false, true), Some(Kind::Root));
        for hv in [Qemu, Kvm, Xen] {
            assert_eq!(base_kind(hv, false, true), Some(Kind::Disk), "{hv}");
            assert_eq!(base_kind(hv, true, true), None, "{hv}: --no-base");
            assert_eq!(base_kind(hv, false, false), None, "{hv}: no root member");
        }
        assert_eq!(
            base_kind(Openvz, false, true),
            None,
            "vzctl keeps its roots"
        );
        assert_eq!(placement(None, true), Placement::Private);
        assert_eq!(
            placement(Some(Kind::Root), true),
            Placement::OnBase(Kind::Root)
        );
        assert_eq!(
            placement(Some(Kind::Disk), false),
            Placement::MakeBase(Kind::Disk)
        );
    }

    #[test]
    fn a_machine_on_a_base_has_a_qcow2_overlay_and_a_private_one_its_format() {
        for p in [
            Placement::OnBase(Kind::Disk),
            Placement::MakeBase(Kind::Disk),
        ] {
            let plan = settle(Qemu, p, true, None).unwrap();
            assert_eq!(
                (plan.placement, plan.disk_format, plan.private_disk),
                (p, DiskFormat::Qcow2, false)
            );
            assert_eq!(
                settle(Qemu, p, true, Some(DiskFormat::Qcow2))
                    .unwrap()
                    .disk_format,
                DiskFormat::Qcow2
            );
            let e = settle(Qemu, p, true, Some(DiskFormat::Raw)).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
            assert!(e.to_string().contains("--no-base"), "{e}");
        }
        let private = settle(Kvm, Placement::Private, true, Some(DiskFormat::Raw)).unwrap();
        assert_eq!(
            (private.disk_format, private.private_disk),
            (DiskFormat::Raw, true)
        );
        assert_eq!(
            settle(Xen, Placement::Private, false, None)
                .unwrap()
                .disk_format,
            DiskFormat::default()
        );
    }

    #[test]
    fn a_root_without_the_seed_program_makes_no_disk_base() {
        let plan = settle(Qemu, Placement::MakeBase(Kind::Disk), false, None).unwrap();
        assert_eq!(plan.placement, Placement::Private);
        assert!(plan.no_seed_program && plan.private_disk);
        // Then raw is the operator's choice again.
        let raw = settle(
            Qemu,
            Placement::MakeBase(Kind::Disk),
            false,
            Some(DiskFormat::Raw),
        )
        .unwrap();
        assert_eq!(raw.disk_format, DiskFormat::Raw);
        // A base the node has was made from a root that had it; an lxc
        // base needs none (the seed is the upper layer).
        for p in [
            Placement::OnBase(Kind::Disk),
            Placement::MakeBase(Kind::Root),
        ] {
            let hv = if p == Placement::MakeBase(Kind::Root) {
                Lxc
            } else {
                Qemu
            };
            let plan = settle(hv, p, false, None).unwrap();
            assert_eq!(plan.placement, p);
            assert!(!plan.no_seed_program);
        }
    }

    #[test]
    fn containers_boot_no_disk_of_their_own() {
        for p in [
            Placement::Private,
            Placement::OnBase(Kind::Root),
            Placement::MakeBase(Kind::Root),
        ] {
            assert!(!settle(Lxc, p, false, None).unwrap().private_disk, "{p:?}");
        }
        assert!(
            !settle(Openvz, Placement::Private, false, None)
                .unwrap()
                .private_disk
        );
    }
}
