//! The libvirt network `mkve-network` (mkve-net(1)): its XML, its life
//! cycle, and its DHCP host entries, one per machine, mapping the MAC that
//! mkve derives from a machine's ID to the address of that ID.

use serde::Serialize;
use virt::network::Network;
use virt::sys;

use super::{esc, failed, Connection};
use crate::error::{Error, Result};
use crate::exec::Report;
use crate::hypervisor::FIRST_ID;
use crate::net::{mac_of, NetConfig};

/// The network's XML. Isolated: no `<forward>`, so machines reach the host
/// and each other, nothing beyond. DHCP hands out only the fixed host
/// entries' addresses in practice; the range covers the IDs.
pub fn xml(c: &NetConfig) -> String {
    let first = c.address_of(FIRST_ID).unwrap_or(c.host);
    let last = c.address_of(c.last_id()).unwrap_or(first);
    format!(
        "<network>\n  <name>{}</name>\n  <bridge name='{}' stp='off' delay='0'/>\n  \
         <ip address='{}' prefix='{}'>\n    <dhcp>\n      <range start='{first}' end='{last}'/>\n    </dhcp>\n  </ip>\n</network>\n",
        esc(&c.name),
        esc(&c.bridge),
        c.host,
        c.prefix
    )
}

/// The DHCP host entry of machine `id`, named `name`: libvirt's dnsmasq
/// then answers for that name on the network, so machines find each
/// other by name.
pub fn host_xml(c: &NetConfig, id: u32, name: &str) -> Result<String> {
    Ok(format!(
        "<host mac='{}' name='{}' ip='{}'/>",
        mac_of(id),
        esc(name),
        c.address_of(id)?
    ))
}

/// A DHCP host entry of the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    /// The ID mkve gave it, from its MAC; `None` for an entry mkve did
    /// not make.
    pub id: Option<u32>,
    pub mac: String,
    pub name: String,
    pub ip: String,
}

impl Host {
    /// The IDs this entry keeps from being given out: the one its MAC is
    /// mkve's for, and the one whose address it holds.
    pub fn blocks(&self, c: &NetConfig) -> Vec<u32> {
        let by_ip = self.ip.parse().ok().and_then(|ip| c.id_of_address(ip));
        let mut v: Vec<u32> = self.id.into_iter().chain(by_ip).collect();
        v.dedup();
        v
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub name: String,
    pub defined: bool,
    pub active: bool,
    pub autostart: bool,
    pub bridge: String,
    pub address: String,
    pub hosts: Vec<Host>,
}

fn lookup(conn: &Connection, c: &NetConfig) -> Option<Network> {
    conn.raw().lookup_network_by_name(&c.name).ok()
}

fn require(conn: &Connection, c: &NetConfig) -> Result<Network> {
    lookup(conn, c).ok_or_else(|| {
        Error::Usage(format!(
            "network {} is not defined (mkve-net create makes it)",
            c.name
        ))
    })
}

/// Define, start and mark for autostart; what exists already is kept, so
/// `create` can be run again. An existing network whose bridge or address
/// differs from the configuration is refused.
pub fn create(conn: &Connection, c: &NetConfig, report: &dyn Report) -> Result<()> {
    let net = match lookup(conn, c) {
        Some(n) => {
            let s = status(conn, c)?;
            let want = format!("{}/{}", c.host, c.prefix);
            if s.bridge != c.bridge || s.address != want {
                return Err(Error::InvalidConfig(crate::error::Problem::new(
                    crate::paths::confdir().join("mkve.conf"),
                    None,
                    format!(
                        "network {} exists with bridge {} and address {}, not {} and {want}: mkve-net delete it first",
                        c.name, s.bridge, s.address, c.bridge
                    ),
                )));
            }
            n
        }
        None => {
            let x = xml(c);
            report.note(&format!("defining network {}:\n{x}", c.name));
            conn.raw()
                .define_network_xml(&x)
                .map_err(|e| failed(format!("defining network {}", c.name), e))?
        }
    };
    if !net.is_active().map_err(|e| failed(&c.name, e))? {
        net.create()
            .map_err(|e| failed(format!("starting network {}", c.name), e))?;
    }
    net.set_autostart(true)
        .map_err(|e| failed(format!("autostart of network {}", c.name), e))?;
    Ok(())
}

/// Stop and undefine. Refused while machines have entries in it, unless
/// `force`.
pub fn delete(conn: &Connection, c: &NetConfig, force: bool) -> Result<()> {
    let net = require(conn, c)?;
    let s = status(conn, c)?;
    if !s.hosts.is_empty() && !force {
        let ids: Vec<String> = s
            .hosts
            .iter()
            .map(|h| h.id.map_or(h.name.clone(), |i| i.to_string()))
            .collect();
        return Err(Error::Usage(format!(
            "network {} still has machines ({}): delete them first, or use --force",
            c.name,
            ids.join(", ")
        )));
    }
    if s.active {
        net.destroy()
            .map_err(|e| failed(format!("stopping network {}", c.name), e))?;
    }
    net.undefine()
        .map_err(|e| failed(format!("undefining network {}", c.name), e))
}

pub fn start(conn: &Connection, c: &NetConfig) -> Result<()> {
    let net = require(conn, c)?;
    if !net.is_active().map_err(|e| failed(&c.name, e))? {
        net.create()
            .map_err(|e| failed(format!("starting network {}", c.name), e))?;
    }
    Ok(())
}

pub fn stop(conn: &Connection, c: &NetConfig) -> Result<()> {
    let net = require(conn, c)?;
    if net.is_active().map_err(|e| failed(&c.name, e))? {
        net.destroy()
            .map_err(|e| failed(format!("stopping network {}", c.name), e))?;
    }
    Ok(())
}

pub fn status(conn: &Connection, c: &NetConfig) -> Result<Status> {
    let Some(net) = lookup(conn, c) else {
        return Ok(Status {
            name: c.name.clone(),
            defined: false,
            active: false,
            autostart: false,
            bridge: c.bridge.clone(),
            address: format!("{}/{}", c.host, c.prefix),
            hosts: vec![],
        });
    };
    let active = net.is_active().map_err(|e| failed(&c.name, e))?;
    let autostart = net.autostart().map_err(|e| failed(&c.name, e))?;
    // Live and persistent definitions agree: every update changes both.
    let text = net.xml_desc(0).map_err(|e| failed(&c.name, e))?;
    let (bridge, address, hosts) =
        parse(&text).map_err(|e| Error::Other(format!("network {}: {e}", c.name)))?;
    Ok(Status {
        name: c.name.clone(),
        defined: true,
        active,
        autostart,
        bridge,
        address,
        hosts,
    })
}

/// Bridge, address/prefix and DHCP hosts of a network's XML.
fn parse(text: &str) -> std::result::Result<(String, String, Vec<Host>), String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| e.to_string())?;
    let root = doc.root_element();
    let bridge = root
        .children()
        .find(|n| n.has_tag_name("bridge"))
        .and_then(|b| b.attribute("name"))
        .unwrap_or("");
    let ip = root.children().find(|n| n.has_tag_name("ip"));
    let address = ip
        .map(|i| {
            format!(
                "{}/{}",
                i.attribute("address").unwrap_or(""),
                i.attribute("prefix").unwrap_or("")
            )
        })
        .unwrap_or_default();
    let hosts = ip
        .into_iter()
        .flat_map(|i| i.descendants().filter(|n| n.has_tag_name("host")))
        .map(|h| {
            let name = h.attribute("name").unwrap_or("").to_string();
            let mac = h.attribute("mac").unwrap_or("").to_string();
            Host {
                id: crate::net::id_of_mac(&mac),
                mac,
                ip: h.attribute("ip").unwrap_or("").to_string(),
                name,
            }
        })
        .collect();
    Ok((bridge.to_string(), address, hosts))
}

fn update(
    conn: &Connection,
    c: &NetConfig,
    cmd: sys::virNetworkUpdateCommand,
    host: &str,
    report: &dyn Report,
) -> Result<()> {
    let net = require(conn, c)?;
    let mut flags = sys::VIR_NETWORK_UPDATE_AFFECT_CONFIG;
    if net.is_active().map_err(|e| failed(&c.name, e))? {
        flags |= sys::VIR_NETWORK_UPDATE_AFFECT_LIVE;
    }
    report.note(&format!(
        "{} DHCP entry {host}",
        if cmd == sys::VIR_NETWORK_UPDATE_COMMAND_DELETE {
            "removing"
        } else {
            "adding"
        }
    ));
    net.update(cmd, sys::VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, host, flags)
        .map_err(|e| failed(format!("DHCP entry {host} in {}", c.name), e))
}

/// Give machine `id`, named `name`, its fixed address.
pub fn add_host(
    conn: &Connection,
    c: &NetConfig,
    id: u32,
    name: &str,
    report: &dyn Report,
) -> Result<()> {
    let host = host_xml(c, id, name)?;
    update(
        conn,
        c,
        sys::VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
        &host,
        report,
    )
}

/// Take machine `id`'s entries out (those with its MAC); nothing to do
/// when there is none.
pub fn remove_host(conn: &Connection, c: &NetConfig, id: u32, report: &dyn Report) -> Result<()> {
    for h in status(conn, c)?.hosts.iter().filter(|h| h.id == Some(id)) {
        let host = format!(
            "<host mac='{}' name='{}' ip='{}'/>",
            esc(&h.mac),
            esc(&h.name),
            esc(&h.ip)
        );
        update(
            conn,
            c,
            sys::VIR_NETWORK_UPDATE_COMMAND_DELETE,
            &host,
            report,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Silent;

    #[test]
    fn the_generated_xml_is_valid_for_libvirt() {
        mkve_testkit::assert_valid_libvirt_xml("network", &xml(&NetConfig::default()));
        assert!(
            xml(&NetConfig::default()).contains("<range start='192.0.2.100' end='192.0.2.254'/>")
        );
    }

    /// The whole life cycle against libvirt's in-process test driver.
    #[test]
    fn life_cycle_on_the_test_driver() {
        let conn = super::super::connect("test:///default").unwrap();
        let c = NetConfig::default();
        assert!(!status(&conn, &c).unwrap().defined);
        create(&conn, &c, &Silent).unwrap();
        create(&conn, &c, &Silent).unwrap(); // again: nothing changes
        let s = status(&conn, &c).unwrap();
        assert!(s.defined && s.active && s.autostart);
        assert_eq!(
            (s.bridge.as_str(), s.address.as_str()),
            ("mkvebr0", "192.0.2.1/24")
        );

        add_host(&conn, &c, 100, "ntp-100", &Silent).unwrap();
        add_host(&conn, &c, 142, "web", &Silent).unwrap();
        let hosts = status(&conn, &c).unwrap().hosts;
        assert_eq!(hosts.len(), 2);
        assert_eq!(
            hosts[1],
            Host {
                id: Some(142),
                mac: "52:54:00:6d:00:8e".into(),
                name: "web".into(),
                ip: "192.0.2.142".into()
            }
        );
        assert_eq!(hosts[1].blocks(&c), [142]);
        // An entry another tool left: it holds the address of ID 150.
        let foreign = "<host mac='00:16:3e:00:00:01' name='other' ip='192.0.2.150'/>";
        update(
            &conn,
            &c,
            sys::VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
            foreign,
            &Silent,
        )
        .unwrap();
        let hosts = status(&conn, &c).unwrap().hosts;
        assert_eq!((hosts[2].id, hosts[2].blocks(&c)), (None, vec![150]));
        update(
            &conn,
            &c,
            sys::VIR_NETWORK_UPDATE_COMMAND_DELETE,
            foreign,
            &Silent,
        )
        .unwrap();
        let e = delete(&conn, &c, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "network mkve-network still has machines (100, 142): delete them first, or use --force"
        );

        remove_host(&conn, &c, 100, &Silent).unwrap();
        remove_host(&conn, &c, 100, &Silent).unwrap(); // gone already: fine
        remove_host(&conn, &c, 142, &Silent).unwrap();
        assert!(status(&conn, &c).unwrap().hosts.is_empty());
        stop(&conn, &c).unwrap();
        assert!(!status(&conn, &c).unwrap().active);
        start(&conn, &c).unwrap();
        delete(&conn, &c, false).unwrap();
        assert!(!status(&conn, &c).unwrap().defined);

        let other = NetConfig {
            bridge: "otherbr0".into(),
            ..NetConfig::default()
        };
        create(&conn, &other, &Silent).unwrap();
        let e = create(&conn, &c, &Silent).unwrap_err();
        assert!(e.to_string().contains("exists with bridge otherbr0"), "{e}");
    }
}
