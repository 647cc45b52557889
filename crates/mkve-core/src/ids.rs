//! Machine IDs: unique on the node across all its hypervisors, from 100
//! up, read from the mkve records in libvirt's domains (libvirt is the one
//! source of truth). Allocation runs under an `flock` on
//! `$MKVE_LOCKDIR/ids.lock`, held until the new domain is defined, so two
//! creates never get the same ID and a killed one leaves nothing stuck.

use std::collections::BTreeSet;

use virt::connect::Connect;

use crate::error::{Error, Result};
use crate::libvirt::{domain, failed};
use crate::lock::{Lock, Mode};
use crate::net::{NetConfig, FIRST_ID};
use crate::template::Hypervisor;

/// The lock every ID allocation holds until its domain is defined.
pub fn lock() -> Result<Lock> {
    Lock::acquire("ids.lock", Mode::Exclusive)
}

/// The lowest ID an `hv` machine may have. vzctl(8) reserves container IDs
/// up to 100 for the system, so OpenVZ containers start at 101; the others
/// at 100.
pub fn first_for(hv: Hypervisor) -> u32 {
    if hv == Hypervisor::Openvz {
        FIRST_ID + 1
    } else {
        FIRST_ID
    }
}

/// The smallest ID not in `used` that fits the network.
pub fn next_free(used: &BTreeSet<u32>, net: &NetConfig, hv: Hypervisor) -> Result<u32> {
    (first_for(hv)..=net.last_id())
        .find(|id| !used.contains(id) && net.address_of(*id).is_ok())
        .ok_or_else(|| Error::Unavailable {
            what: "machine IDs".into(),
            why: format!(
                "all IDs from {} to {} are taken",
                first_for(hv),
                net.last_id()
            ),
        })
}

/// The IDs of every mkve domain on `conn`, running or not.
pub fn used_on(conn: &Connect) -> Result<BTreeSet<u32>> {
    let domains = conn
        .list_all_domains(0)
        .map_err(|e| failed("listing domains", e))?;
    let mut used = BTreeSet::new();
    for d in domains {
        if let Ok(xml) = d.xml_desc(0) {
            if let Some(r) = domain::record_of(&xml) {
                used.insert(r.id);
            }
        }
    }
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_free_id_from_100_openvz_from_101() {
        let net = NetConfig::default();
        let used: BTreeSet<u32> = [100, 101, 103].into();
        assert_eq!(next_free(&used, &net, Hypervisor::Lxc).unwrap(), 102);
        assert_eq!(
            next_free(&BTreeSet::new(), &net, Hypervisor::Qemu).unwrap(),
            100
        );
        assert_eq!(
            next_free(&BTreeSet::new(), &net, Hypervisor::Openvz).unwrap(),
            101
        );
        let full: BTreeSet<u32> = (100..=254).collect();
        let e = next_free(&full, &net, Hypervisor::Lxc).unwrap_err();
        assert_eq!(
            e.to_string(),
            "machine IDs: all IDs from 100 to 254 are taken"
        );
        assert_eq!(e.exit_code(), 69);
    }

    #[test]
    fn ids_in_use_come_from_the_domains_records() {
        let conn = crate::libvirt::connect("test:///default").unwrap();
        for (id, name) in [(100, "a"), (104, "b")] {
            let xml = format!(
                "<domain type='test'><name>{name}</name><memory>65536</memory><os><type>hvm</type></os>\
                 <metadata>{}</metadata></domain>",
                domain::metadata_xml(&domain::Record {
                    id,
                    address: NetConfig::default().address_of(id).unwrap(),
                    template: "t".into(),
                    version: "1".into(),
                    bundle: "00".repeat(32),
                })
            );
            conn.define_domain_xml(&xml).unwrap();
        }
        // The test driver's own domain "test" has no record and is not counted.
        let used = used_on(&conn).unwrap();
        assert_eq!(used, [100, 104].into());
        assert_eq!(
            next_free(&used, &NetConfig::default(), Hypervisor::Lxc).unwrap(),
            101
        );
    }
}
