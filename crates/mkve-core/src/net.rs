//! The mkve network as configured: its libvirt name, bridge, host address
//! and prefix (`$MKVE_CONFDIR/mkve.conf`, defaults `mkve-network`,
//! `mkvebr0`, 192.0.2.1/24), and the rule that gives a machine its address
//! and MAC from its ID. Talking to libvirt is `libvirt/`.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::error::{Error, Problem, Result};
use crate::hypervisor::FIRST_ID;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    pub name: String,
    pub bridge: String,
    /// The host's address on the network (the bridge's).
    pub host: Ipv4Addr,
    pub prefix: u8,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            name: "mkve-network".into(),
            bridge: "mkvebr0".into(),
            host: Ipv4Addr::new(192, 0, 2, 1),
            prefix: 24,
        }
    }
}

impl NetConfig {
    /// Read `network_name=`, `network_bridge=` and `network_address=A.B.C.D/N`
    /// from mkve.conf at `path` (its lines as `mkveconf::lines` reads them:
    /// the node keys are nodes.rs's); the defaults when it does not exist.
    /// Commands read the file through `nodes::load`, which checks all of it.
    pub fn from_file(path: &Path) -> Result<NetConfig> {
        let mut c = NetConfig::default();
        let Some(lines) = crate::mkveconf::lines(path)? else {
            return Ok(c);
        };
        let bad = |n: usize, msg: String| Error::InvalidConfig(Problem::new(path, Some(n), msg));
        for crate::mkveconf::Line { n, key, value } in lines {
            let v = value.as_str();
            match key.as_str() {
                "network_name" | "network_bridge" if !is_name(v) => {
                    return Err(bad(n, format!("\"{v}\" is not a name (letters, digits, . _ -; at most 15 for a bridge)")));
                }
                "network_name" => c.name = v.to_string(),
                "network_bridge" if v.len() > 15 => {
                    return Err(bad(n, format!("bridge name \"{v}\" is longer than 15")))
                }
                "network_bridge" => c.bridge = v.to_string(),
                "network_address" => {
                    let parsed = v
                        .split_once('/')
                        .and_then(|(a, p)| Some((a.parse().ok()?, p.parse::<u8>().ok()?)));
                    match parsed {
                        Some((a, p)) if (8..=30).contains(&p) => (c.host, c.prefix) = (a, p),
                        _ => {
                            return Err(bad(
                                n,
                                format!(
                                    "\"{v}\" is not an address like 192.0.2.1/24 (prefix 8 to 30)"
                                ),
                            ))
                        }
                    }
                }
                _ => {}
            }
        }
        c.check()
            .map_err(|m| Error::InvalidConfig(Problem::new(path, None, m)))?;
        Ok(c)
    }

    fn check(&self) -> std::result::Result<(), String> {
        let offset = u32::from(self.host) & !self.mask();
        if offset == 0 || offset == self.size() - 1 {
            return Err(format!(
                "{}/{}: the host address cannot be the network or broadcast address",
                self.host, self.prefix
            ));
        }
        if self.size() - 2 < FIRST_ID {
            return Err(format!(
                "{}/{}: too small for IDs from {FIRST_ID} up",
                self.host, self.prefix
            ));
        }
        Ok(())
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }

    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }

    pub fn network_address(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.host) & self.mask())
    }

    /// The largest ID that has an address.
    pub fn last_id(&self) -> u32 {
        self.size() - 2
    }

    /// The machine with ID `id` has the address network + `id`: on the
    /// default /24, 192.0.2.ID exactly; a larger subnet carries IDs past
    /// 254 on to further host numbers.
    pub fn address_of(&self, id: u32) -> Result<Ipv4Addr> {
        let host_offset = u32::from(self.host) & !self.mask();
        if id < FIRST_ID || id > self.last_id() || id == host_offset {
            return Err(Error::Usage(format!(
                "ID {id} does not fit the mkve network {}/{} (IDs {FIRST_ID} to {})",
                self.network_address(),
                self.prefix,
                self.last_id()
            )));
        }
        Ok(Ipv4Addr::from(u32::from(self.network_address()) + id))
    }
}

/// The MAC of the machine with ID `id`: QEMU's prefix 52:54:00, then 6d
/// ("m"), then the ID in two bytes.
pub fn mac_of(id: u32) -> String {
    format!("52:54:00:6d:{:02x}:{:02x}", (id >> 8) & 0xff, id & 0xff)
}

/// The ID whose MAC `mac` is (see `mac_of`), if it is one of mkve's.
pub fn id_of_mac(mac: &str) -> Option<u32> {
    let rest = mac.to_ascii_lowercase();
    let rest = rest.strip_prefix("52:54:00:6d:")?;
    let (hi, lo) = rest.split_once(':')?;
    if hi.len() != 2 || lo.len() != 2 {
        return None;
    }
    let id = (u32::from_str_radix(hi, 16).ok()? << 8) | u32::from_str_radix(lo, 16).ok()?;
    (id >= FIRST_ID).then_some(id)
}

impl NetConfig {
    /// The ID whose address `ip` is (see `address_of`), if any.
    pub fn id_of_address(&self, ip: Ipv4Addr) -> Option<u32> {
        if u32::from(ip) & self.mask() != u32::from(self.network_address()) {
            return None;
        }
        let id = u32::from(ip) - u32::from(self.network_address());
        self.address_of(id).ok().map(|_| id)
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_network_gives_192_0_2_id() {
        let c = NetConfig::default();
        assert_eq!(c.address_of(100).unwrap(), Ipv4Addr::new(192, 0, 2, 100));
        assert_eq!(c.address_of(254).unwrap(), Ipv4Addr::new(192, 0, 2, 254));
        let e = c.address_of(255).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ID 255 does not fit the mkve network 192.0.2.0/24 (IDs 100 to 254)"
        );
        assert!(c.address_of(99).is_err());
        assert_eq!(mac_of(100), "52:54:00:6d:00:64");
        assert_eq!(mac_of(300), "52:54:00:6d:01:2c");
    }

    #[test]
    fn a_larger_subnet_carries_ids_on() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("mkve.conf");
        std::fs::write(
            &f,
            "# node\nnetwork_address=198.51.100.1/23\nnetwork_bridge=br-mkve\n",
        )
        .unwrap();
        let c = NetConfig::from_file(&f).unwrap();
        assert_eq!(c.network_address(), Ipv4Addr::new(198, 51, 100, 0));
        assert_eq!(c.address_of(300).unwrap(), Ipv4Addr::new(198, 51, 101, 44));
        assert_eq!(c.last_id(), 510);
        assert_eq!(c.bridge, "br-mkve");
        assert_eq!(c.name, "mkve-network");
    }

    #[test]
    fn bad_lines_name_the_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("mkve.conf");
        for (text, want) in [
            (
                "network_address=192.0.2.1\n",
                ":1: \"192.0.2.1\" is not an address like 192.0.2.1/24 (prefix 8 to 30)",
            ),
            (
                "\nnetwork_bridge=a-very-long-bridge-name\n",
                ":2: bridge name \"a-very-long-bridge-name\" is longer than 15",
            ),
            ("network_name=my net\n", ":1: \"my net\" is not a name"),
            (
                "network_address=192.0.2.0/24\n",
                ": 192.0.2.0/24: the host address cannot be the network or broadcast address",
            ),
            (
                "network_address=192.0.2.1/26\n",
                ": 192.0.2.1/26: too small for IDs from 100 up",
            ),
            ("junk\n", ":1: expected KEY=VALUE, found \"junk\""),
        ] {
            std::fs::write(&f, text).unwrap();
            let e = NetConfig::from_file(&f).unwrap_err();
            assert!(
                e.to_string().starts_with(&format!("{}{want}", f.display())),
                "{e}"
            );
            assert_eq!(e.exit_code(), 65);
        }
    }
}
