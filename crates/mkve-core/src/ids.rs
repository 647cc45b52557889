//! Machine IDs: unique on the node across all its hypervisors, from 100
//! up, read from the mkve records in libvirt's domains (libvirt is the one
//! source of truth). Allocation runs under an `flock` on
//! `$MKVE_LOCKDIR/ids.lock`, held until the new domain is defined, so two
//! creates never get the same ID and a killed one leaves nothing stuck.
//!
//! Each machine also has a lock of its own, `machine-ID.lock`, held by
//! every operation on it from start to end: a create from the moment it
//! takes the ID until the machine is whole, a delete until the last of it
//! is gone. An ID whose lock is held, or that still has a DHCP entry or
//! files on the node, is not free: it is given out again only once its
//! delete has finished.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::hypervisor::Hypervisor;
use crate::hypervisor::FIRST_ID;
use crate::libvirt::{domain, Connection};
use crate::lock::{Lock, Mode};
use crate::net::NetConfig;
use crate::nodes::IdRange;

/// A machine's ID: a whole number from [`FIRST_ID`] (100) up, unique on
/// the node across all its hypervisors. How high it may go depends on the
/// network (`NetConfig::address_of`), the hypervisor's own first ID on
/// the hypervisor (`Hypervisor::first_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct MachineId(u32);

impl MachineId {
    /// `id` if it is one mkve may give out.
    pub fn new(id: u32) -> std::result::Result<MachineId, String> {
        if id < FIRST_ID {
            return Err(format!("{id} is not a machine ID: IDs start at {FIRST_ID}"));
        }
        Ok(MachineId(id))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for MachineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for MachineId {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let n: u32 = s
            .parse()
            .map_err(|_| format!("\"{s}\" is not a machine ID (a number from {FIRST_ID})"))?;
        MachineId::new(n)
    }
}

/// The lock every ID allocation holds until its domain is defined.
pub fn lock() -> Result<Lock> {
    Lock::acquire("ids.lock", Mode::Exclusive)
}

/// The lock of machine `id`, waited for.
pub fn machine_lock(id: u32) -> Result<Lock> {
    Lock::acquire(&format!("machine-{id}.lock"), Mode::Exclusive)
}

/// Under the IDs lock: the smallest ID not in `used` that fits the
/// network and `range` (this node's, when mkve.conf lists nodes) and
/// whose machine lock is free now, with that lock held.
pub fn allocate(
    used: &BTreeSet<u32>,
    net: &NetConfig,
    hv: Hypervisor,
    range: Option<IdRange>,
) -> Result<(u32, Lock)> {
    let mut busy = used.clone();
    loop {
        let id = next_free(&busy, net, hv, range)?;
        match Lock::try_acquire(&format!("machine-{id}.lock"), Mode::Exclusive)? {
            Some(lock) => return Ok((id, lock)),
            None => {
                busy.insert(id); // an operation on it has not finished
            }
        }
    }
}

/// Under the IDs lock: the ID `id` asked for, with its machine lock, or
/// why it cannot be had (2): below the hypervisor's first, outside the
/// network or this node's `range`, taken.
pub fn claim(
    id: u32,
    used: &BTreeSet<u32>,
    net: &NetConfig,
    hv: Hypervisor,
    range: Option<IdRange>,
) -> Result<Lock> {
    if id < hv.first_id() {
        return Err(Error::Usage(format!(
            "ID {id} is below {}, the first for {hv}",
            hv.first_id()
        )));
    }
    net.address_of(id)?;
    check_range(id, range)?;
    let busy = || Error::Usage(format!("ID {id} is taken"));
    if used.contains(&id) {
        return Err(busy());
    }
    Lock::try_acquire(&format!("machine-{id}.lock"), Mode::Exclusive)?.ok_or_else(busy)
}

/// Refuse (2) an ID outside this node's `range`: another node gives it
/// out.
pub fn check_range(id: u32, range: Option<IdRange>) -> Result<()> {
    match range {
        Some(r) if !r.contains(id) => Err(Error::Usage(format!(
            "ID {id} is outside this node's range {r} (mkve.conf): another node gives it out"
        ))),
        _ => Ok(()),
    }
}

/// The smallest ID not in `used` that fits the network and `range` (this
/// node's, when mkve.conf lists nodes). Errors (69): none is free.
pub fn next_free(
    used: &BTreeSet<u32>,
    net: &NetConfig,
    hv: Hypervisor,
    range: Option<IdRange>,
) -> Result<u32> {
    let (first, last) = match range {
        Some(r) => (r.first.max(hv.first_id()), r.last.min(net.last_id())),
        None => (hv.first_id(), net.last_id()),
    };
    (first..=last)
        .find(|id| !used.contains(id) && net.address_of(*id).is_ok())
        .ok_or_else(|| Error::Unavailable {
            what: "machine IDs".into(),
            why: match range {
                Some(r) => format!("all IDs of this node's range {r} are taken (mkve.conf)"),
                None => format!("all IDs from {first} to {last} are taken"),
            },
        })
}

/// The IDs of the mkve domains on the node: on `conn`, and on every
/// hypervisor's default URI that answers.
pub fn used_on_node(conn: &Connection) -> Result<BTreeSet<u32>> {
    let mut used = used_on(conn)?;
    for c in crate::libvirt::node_connections(conn)?.iter().skip(1) {
        used.extend(used_on(c).unwrap_or_default());
    }
    Ok(used)
}

/// The IDs of every mkve domain on `conn`, running or not.
pub fn used_on(conn: &Connection) -> Result<BTreeSet<u32>> {
    let mut used = BTreeSet::new();
    for d in conn.domains()? {
        if let Ok(xml) = d.xml() {
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
        assert_eq!(next_free(&used, &net, Hypervisor::Lxc, None).unwrap(), 102);
        assert_eq!(
            next_free(&BTreeSet::new(), &net, Hypervisor::Qemu, None).unwrap(),
            100
        );
        assert_eq!(
            next_free(&BTreeSet::new(), &net, Hypervisor::Openvz, None).unwrap(),
            101
        );
        let full: BTreeSet<u32> = (100..=254).collect();
        let e = next_free(&full, &net, Hypervisor::Lxc, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "machine IDs: all IDs from 100 to 254 are taken"
        );
        assert_eq!(e.exit_code(), 69);
    }

    /// Each node gives out IDs from its own range and passes by those in
    /// use on any node (a machine that moved keeps its ID), so two nodes
    /// never give out the same ID, even when machines have moved between
    /// them.
    #[test]
    fn a_node_allocates_from_its_range_passing_by_ids_used_anywhere() {
        let net = NetConfig::default();
        let n1 = Some(IdRange {
            first: 100,
            last: 149,
        });
        let n2 = Some(IdRange {
            first: 150,
            last: 199,
        });
        // Machines on n1: 100, 101 and 150 (moved there from n2); on n2:
        // 151, and 102 (moved there from n1).
        let on_n1: BTreeSet<u32> = [100, 101, 150].into();
        let on_n2: BTreeSet<u32> = [151, 102].into();
        let all: BTreeSet<u32> = on_n1.union(&on_n2).copied().collect();
        assert_eq!(next_free(&all, &net, Hypervisor::Lxc, n1).unwrap(), 103);
        assert_eq!(next_free(&all, &net, Hypervisor::Lxc, n2).unwrap(), 152);
        // With only local knowledge n1 would hand out 102 a second time:
        // what --local-ids risks, and why a silent node stops a create.
        assert_eq!(next_free(&on_n1, &net, Hypervisor::Lxc, n1).unwrap(), 102);
        // OpenVZ starts at 101 inside a range that starts lower.
        assert_eq!(
            next_free(&BTreeSet::new(), &net, Hypervisor::Openvz, n1).unwrap(),
            101
        );
        // A full range fails clearly, though the network has room.
        let full: BTreeSet<u32> = (150..=199).collect();
        let e = next_free(&full, &net, Hypervisor::Lxc, n2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "machine IDs: all IDs of this node's range 150-199 are taken (mkve.conf)"
        );
        assert_eq!(e.exit_code(), 69);
        // An ID asked for outside the range is another node's to give.
        let e = check_range(160, n1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ID 160 is outside this node's range 100-149 (mkve.conf): another node gives it out"
        );
        assert_eq!(e.exit_code(), 2);
        assert!(check_range(120, n1).is_ok() && check_range(160, None).is_ok());
    }

    #[test]
    fn ids_parse_from_100() {
        assert_eq!("100".parse::<MachineId>().unwrap().get(), 100);
        assert_eq!(
            "99".parse::<MachineId>().unwrap_err(),
            "99 is not a machine ID: IDs start at 100"
        );
        assert!("web".parse::<MachineId>().is_err());
        assert!("-1".parse::<MachineId>().is_err());
    }

    #[test]
    fn ids_in_use_come_from_the_domains_records() {
        let conn = crate::libvirt::connect("test:///default").unwrap();
        for (id, name) in [(100, "a"), (104, "b")] {
            let address = NetConfig::default().address_of(id).unwrap();
            domain::testing::define(&conn, name, id, address);
        }
        // The test driver's own domain "test" has no record and is not counted.
        let used = used_on(&conn).unwrap();
        assert_eq!(used, [100, 104].into());
        assert_eq!(
            next_free(&used, &NetConfig::default(), Hypervisor::Lxc, None).unwrap(),
            101
        );
    }
}
