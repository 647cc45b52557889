//! The hypervisors mkve builds for and runs on (the seed's lower-case
//! words), and every fact that depends on which one it is: where its
//! machines live in libvirt, its driver and domain types, its first ID,
//! whether it boots a disk image, and what the node needs to run it.
//!
//! Outside this file a `match` on the hypervisor stands only where
//! behaviour truly differs (the domain XML in `libvirt/domain.rs`, the
//! per-hypervisor steps of a create); every yes/no question about a
//! hypervisor is a method here.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The first ID mkve gives out (OpenVZ's convention, kept on every node);
/// [`Hypervisor::first_id`] says where each hypervisor's machines start.
pub const FIRST_ID: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hypervisor {
    Openvz,
    Qemu,
    Kvm,
    Lxc,
    Xen,
}

impl Hypervisor {
    /// Every hypervisor, in the order the seed lists them.
    pub const ALL: [Hypervisor; 5] = [
        Hypervisor::Openvz,
        Hypervisor::Qemu,
        Hypervisor::Kvm,
        Hypervisor::Lxc,
        Hypervisor::Xen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Hypervisor::Openvz => "openvz",
            Hypervisor::Qemu => "qemu",
            Hypervisor::Kvm => "kvm",
            Hypervisor::Lxc => "lxc",
            Hypervisor::Xen => "xen",
        }
    }

    /// The name as people write it in prose: `OpenVZ machines`.
    pub fn title(self) -> &'static str {
        match self {
            Hypervisor::Openvz => "OpenVZ",
            Hypervisor::Qemu => "QEMU",
            Hypervisor::Kvm => "KVM",
            Hypervisor::Lxc => "LXC",
            Hypervisor::Xen => "Xen",
        }
    }

    /// The names, for help texts and shell completion.
    pub fn names() -> [&'static str; 5] {
        Self::ALL.map(Hypervisor::as_str)
    }

    /// The libvirt URI this hypervisor's machines live on by default.
    pub fn default_uri(self) -> &'static str {
        match self {
            Hypervisor::Qemu | Hypervisor::Kvm => "qemu:///system",
            Hypervisor::Lxc => "lxc:///",
            Hypervisor::Openvz => "openvz:///system",
            Hypervisor::Xen => "xen:///system",
        }
    }

    /// libvirt's name for the driver behind [`Self::default_uri`], as
    /// virConnectGetType reports it.
    pub fn driver(self) -> &'static str {
        match self {
            Hypervisor::Qemu | Hypervisor::Kvm => "QEMU",
            Hypervisor::Lxc => "LXC",
            Hypervisor::Openvz => "OpenVZ",
            Hypervisor::Xen => "Xen",
        }
    }

    /// The `type` attribute of this hypervisor's `<domain>` (libvirt's
    /// formatdomain: qemu is TCG, kvm is QEMU with KVM acceleration).
    pub fn domain_type(self) -> &'static str {
        self.as_str()
    }

    /// The hypervisor of a domain whose `<domain type=…>` is `ty`.
    pub fn from_domain_type(ty: &str) -> Option<Hypervisor> {
        Self::ALL.into_iter().find(|h| h.domain_type() == ty)
    }

    /// The lowest ID a machine of this hypervisor may have. vzctl(8)
    /// reserves container IDs up to 100 for the system, so OpenVZ
    /// containers start at 101; the others at [`FIRST_ID`].
    pub fn first_id(self) -> u32 {
        match self {
            Hypervisor::Openvz => FIRST_ID + 1,
            _ => FIRST_ID,
        }
    }

    /// Whether machines boot a disk image made from the root (with the
    /// root's kernel and initrd, direct kernel boot) rather than run the
    /// root directory as a container.
    pub fn boots_disk_image(self) -> bool {
        matches!(self, Hypervisor::Qemu | Hypervisor::Kvm | Hypervisor::Xen)
    }

    /// Whether machine names are chosen by the operator: vzctl names
    /// OpenVZ containers by their ID.
    pub fn takes_names(self) -> bool {
        self != Hypervisor::Openvz
    }

    /// What this node lacks to run this hypervisor's machines, told
    /// before libvirt is asked anything: vzctl for OpenVZ (the original
    /// probed OpenVZ without looking for it, and failed), a Xen dom0
    /// (`/proc/xen`) for Xen. `None` when nothing is known to be missing;
    /// libvirt's driver and, for KVM, /dev/kvm are checked by `doctor`.
    pub fn node_lacks(self) -> Option<String> {
        match self {
            Hypervisor::Openvz if !crate::exec::on_path("vzctl") => {
                Some("vzctl is not installed on this node".into())
            }
            Hypervisor::Xen if !Path::new("/proc/xen").exists() => {
                Some("no Xen: /proc/xen is missing (not a Xen dom0)".into())
            }
            _ => None,
        }
    }

    /// The default URIs to look for machines on: one per libvirt driver,
    /// and only the drivers this node can have (no OpenVZ without vzctl).
    pub fn searched_uris() -> Vec<&'static str> {
        let mut v: Vec<&'static str> = Vec::new();
        for h in [Hypervisor::Lxc, Hypervisor::Qemu, Hypervisor::Openvz] {
            if h == Hypervisor::Openvz && h.node_lacks().is_some() {
                continue;
            }
            if !v.contains(&h.default_uri()) {
                v.push(h.default_uri());
            }
        }
        v
    }
}

impl fmt::Display for Hypervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Hypervisor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|h| h.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown hypervisor \"{s}\" (known: {})",
                    Self::names().join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for h in Hypervisor::ALL {
            assert_eq!(h.as_str().parse::<Hypervisor>().unwrap(), h);
            assert_eq!(Hypervisor::from_domain_type(h.domain_type()), Some(h));
        }
        assert_eq!(
            "vmware".parse::<Hypervisor>().unwrap_err(),
            "unknown hypervisor \"vmware\" (known: openvz, qemu, kvm, lxc, xen)"
        );
        assert_eq!(Hypervisor::from_domain_type("test"), None);
    }

    #[test]
    fn facts() {
        let disk: Vec<_> = Hypervisor::ALL
            .into_iter()
            .filter(|h| h.boots_disk_image())
            .collect();
        assert_eq!(disk, [Hypervisor::Qemu, Hypervisor::Kvm, Hypervisor::Xen]);
        assert_eq!(Hypervisor::Openvz.first_id(), 101);
        assert_eq!(Hypervisor::Lxc.first_id(), 100);
        assert_eq!(Hypervisor::Kvm.default_uri(), "qemu:///system");
        assert_eq!(Hypervisor::Kvm.driver(), "QEMU");
        let uris = Hypervisor::searched_uris();
        assert_eq!(&uris[..2], ["lxc:///", "qemu:///system"]);
    }
}
