//! `mkve-vm doctor`: which hypervisors this node can run now, and why not
//! the others. It only asks; it changes nothing.

use serde::Serialize;

use crate::hypervisor::Hypervisor;
use crate::libvirt;

/// Whether this node can run one hypervisor's machines now, and if not,
/// why.
#[derive(Debug, Clone, Serialize)]
pub struct Capability {
    pub hypervisor: Hypervisor,
    pub uri: String,
    pub usable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// Check every hypervisor: what it needs of the node
/// (`Hypervisor::node_lacks`, looked at before libvirt is asked), its
/// libvirt driver answering at its URI (`given` for all, else each one's
/// default), and for KVM a /dev/kvm that runs a one-instruction guest
/// (`kvm_probe`, normally `kvm::answers`).
pub fn doctor(
    connections: &crate::nodes::Connections,
    kvm_probe: impl Fn() -> std::result::Result<(), String>,
) -> Vec<Capability> {
    Hypervisor::ALL
        .into_iter()
        .map(|h| {
            let uri = connections.doctor(h);
            let why = why_not(h, &uri, &kvm_probe);
            Capability {
                hypervisor: h,
                uri,
                usable: why.is_none(),
                why,
            }
        })
        .collect()
}

fn why_not(
    h: Hypervisor,
    uri: &str,
    kvm_probe: &impl Fn() -> std::result::Result<(), String>,
) -> Option<String> {
    if let Some(why) = h.node_lacks() {
        return Some(why);
    }
    let conn = match libvirt::connect(uri) {
        Ok(c) => c,
        Err(e) => return Some(e.to_string()),
    };
    match conn.driver() {
        Ok(t) if t.eq_ignore_ascii_case(h.driver()) => {}
        Ok(t) => {
            return Some(format!(
                "the libvirt driver at {uri} is {t}, not {}",
                h.driver()
            ))
        }
        Err(e) => return Some(e.to_string()),
    }
    if h == Hypervisor::Kvm {
        return kvm_probe().err();
    }
    None
}
