//! `mkve-vm adopt`: a libvirt domain mkve did not make, taken under its
//! care (mkve-vm(1), ADOPT). What it owns: finding the domain, the
//! refusals (mkve's already, running, a name that reads as a taken ID,
//! a type mkve does not run), the ID (the one its name says when free,
//! `--id`, else the next free one) and mkve's record written into the
//! domain's metadata, marked adopted. The domain keeps its name, its
//! disks and its interfaces: nothing of its storage is read or written.
//! Listing, start, stop and delete then treat it as any machine
//! (`manage.rs`); a delete keeps its disks unless asked
//! (`--remove-storage`).

use super::layout::vms_dir;
use super::machine::Uris;
use super::taken::{taken_ids, used_elsewhere};
use crate::error::{Error, Result};
use crate::exec::Report;
use crate::hypervisor::Hypervisor;
use crate::ids::{self, MachineId};
use crate::libvirt::{self, domain, Connection, Dom};
use crate::nodes::Nodes;

/// How a domain is adopted.
#[derive(Debug, Clone, Default)]
pub struct AdoptOptions {
    /// The ID to give it [default: its name's, when it reads as one and
    /// it is free; else the next free one].
    pub id: Option<MachineId>,
    /// Look for the domain on this hypervisor's URI only, and refuse one
    /// of another type.
    pub hypervisor: Option<Hypervisor>,
    /// Say what would change, change nothing.
    pub dry_run: bool,
    /// Move its first interface onto the mkve network (made one when it
    /// has none), with the ID's MAC, and give it a DHCP entry there.
    pub network: bool,
}

/// What an adopt did (or, with `dry_run`, would do).
#[derive(Debug, Clone)]
pub struct Adopted {
    pub id: MachineId,
    pub name: String,
    /// One line for each change, as `--dry-run` prints them.
    pub changes: Vec<String>,
}

/// The ID a domain's name says: all digits (an OpenVZ-style name), or
/// TEMPLATE-ID as create names machines.
pub fn id_of_name(name: &str) -> Option<u32> {
    let digits = name.rsplit('-').next()?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 9 {
        return None;
    }
    digits.parse().ok()
}

/// `xml` with mkve's record `metadata` in its `<metadata>` (made when it
/// has none). Errors: the XML has no end of domain.
fn with_record(xml: &str, metadata: &str) -> Result<String> {
    if let Some(i) = xml.find("</metadata>") {
        return Ok(format!("{}  {metadata}\n  {}", &xml[..i], &xml[i..]));
    }
    if let Some(i) = xml.find("<metadata/>") {
        return Ok(format!(
            "{}<metadata>\n    {metadata}\n  </metadata>{}",
            &xml[..i],
            &xml[i + "<metadata/>".len()..]
        ));
    }
    let i = xml
        .rfind("</domain>")
        .ok_or_else(|| Error::Other("the domain's XML has no </domain>".into()))?;
    Ok(format!(
        "{}  <metadata>\n    {metadata}\n  </metadata>\n{}",
        &xml[..i],
        &xml[i..]
    ))
}

/// `xml` with its first `<interface>` replaced by `iface` (added at the
/// end of `<devices>` when it has none); and the one replaced, if any.
fn with_interface(xml: &str, iface: &str) -> Result<(String, Option<String>)> {
    if let Some(start) = xml.find("<interface") {
        let rest = &xml[start..];
        let open_end = rest
            .find('>')
            .ok_or_else(|| Error::Other("the domain's XML has an unclosed <interface".into()))?;
        let len = if rest[..open_end].ends_with('/') {
            open_end + 1
        } else {
            rest.find("</interface>")
                .map(|i| i + "</interface>".len())
                .ok_or_else(|| Error::Other("the domain's XML has no </interface>".into()))?
        };
        // The line it is on goes whole: `iface` brings its own.
        let line_start = xml[..start].rfind('\n').map_or(start, |i| i + 1);
        let line_start = if xml[line_start..start].trim().is_empty() {
            line_start
        } else {
            start
        };
        let mut end = start + len;
        if xml[end..].starts_with('\n') {
            end += 1;
        }
        let old = xml[start..start + len].to_string();
        return Ok((
            format!("{}{iface}{}", &xml[..line_start], &xml[end..]),
            Some(old),
        ));
    }
    let i = xml
        .find("</devices>")
        .ok_or_else(|| Error::Other("the domain's XML has no </devices>".into()))?;
    let line_start = xml[..i].rfind('\n').map_or(i, |n| n + 1);
    let at = if xml[line_start..i].trim().is_empty() {
        line_start
    } else {
        i
    };
    Ok((format!("{}{iface}{}", &xml[..at], &xml[at..]), None))
}

/// The domain named `name` on `uris` (on `hv`'s URI when given), with its
/// connection. Errors (2): none there.
fn find_domain(uris: &Uris, name: &str, hv: Option<Hypervisor>) -> Result<(Connection, Dom)> {
    let list: Vec<String> = match hv {
        Some(h) if !uris.explicit => vec![crate::nodes::Connections::resolve(None)?.create(h)],
        _ => uris.list.clone(),
    };
    for uri in &list {
        let conn = match libvirt::connect(uri) {
            Ok(c) => c,
            Err(e) if uris.explicit => return Err(e),
            Err(_) => continue,
        };
        if let Some(d) = conn.domain(name) {
            return Ok((conn, d));
        }
    }
    Err(Error::NotFound(format!(
        "no domain {name} on {}",
        list.join(", ")
    )))
}

/// Whether `name` is Xen's control domain: libvirt's libxl driver lists
/// dom0 (domain ID 0) among the domains as `Domain-0` (libvirt's
/// `libxlDriverConfig`, found running `mkve-vm -c xen:///` in a Xen node,
/// tests/nested.sh). It is the node, which adopt must not take for a
/// stopped-or-running guest.
fn is_control_domain(hv: Hypervisor, name: &str) -> bool {
    hv == Hypervisor::Xen && name == "Domain-0"
}

/// Adopt the domain `name` (on `uris`): give it an ID and mkve's record,
/// or with `dry_run` say what would change. Errors (2): no such domain,
/// mkve's already, Xen's dom0, a type mkve does not run or not `--hypervisor`, an
/// ID taken or outside the network or this node's range (the one its
/// name reads as included); (69) it runs, no ID is free.
pub fn adopt(uris: &Uris, name: &str, o: &AdoptOptions, report: &dyn Report) -> Result<Adopted> {
    let (conn, d) = find_domain(uris, name, o.hypervisor)?;
    let xml = d.inactive_xml()?;
    let old_xml = xml.clone();
    let what = format!("domain {name}");
    if let Some(r) = domain::record_of(&xml) {
        return Err(Error::Usage(format!(
            "{what} is mkve's machine {} already",
            r.id
        )));
    }
    let ty = roxmltree::Document::parse(&xml)
        .ok()
        .and_then(|doc| doc.root_element().attribute("type").map(str::to_string))
        .unwrap_or_default();
    let hv = Hypervisor::from_domain_type(&ty)
        .ok_or_else(|| Error::Usage(format!("{what} is of type {ty}, which mkve does not run")))?;
    if let Some(h) = o.hypervisor.filter(|h| *h != hv) {
        return Err(Error::Usage(format!("{what} is a {hv} domain, not {h}")));
    }
    if is_control_domain(hv, name) {
        return Err(Error::Usage(format!(
            "{what} is Xen's control domain (dom0), the node itself: it is never a machine"
        )));
    }
    if d.is_active()? {
        return Err(Error::Unavailable {
            what,
            why: "running: stop it first (virsh shutdown); adopt changes a stopped domain's definition only".into(),
        });
    }
    let nodes = Nodes::load()?;
    let range = nodes.local_range()?;
    let net = crate::nodes::network()?;
    let elsewhere = used_elsewhere(&nodes, &net, false, report)?;
    let (id, _lock) = {
        let _ids_lock = ids::lock()?;
        let mut used = taken_ids(&conn, &net, &vms_dir())?;
        used.extend(&elsewhere);
        match (o.id.map(MachineId::get), id_of_name(name)) {
            (Some(id), _) => (id, ids::claim(id, &used, &net, hv, range)?),
            (None, Some(id)) if id >= hv.first_id() && net.address_of(id).is_ok() => {
                let lock = ids::claim(id, &used, &net, hv, range).map_err(|e| {
                    Error::Usage(format!(
                        "{what}'s name reads as ID {id}, which it cannot have ({e}): give it another with --id"
                    ))
                })?;
                (id, lock)
            }
            (None, _) => ids::allocate(&used, &net, hv, range)?,
        }
    };
    let id = MachineId::new(id).map_err(Error::Other)?;
    let record = domain::Record {
        id: id.get(),
        address: net.address_of(id.get())?,
        template: "adopted".into(),
        version: "-".into(),
        bundle: String::new(),
        signed_by: None,
        source: None,
        adopted: true,
    };
    let mut changes = vec![
        format!(
            "{what} ({hv}) becomes machine {id}, address {} on {}",
            record.address, net.name
        ),
        format!("{what}: mkve's record written into its metadata (marked adopted)"),
    ];
    let mut xml = xml;
    if o.network {
        let mac = crate::net::mac_of(id.get());
        let iface = domain::network_interface(hv, &net.name, &mac);
        let (new, old) = with_interface(&xml, &iface)?;
        xml = new;
        changes.push(match old {
            Some(_) => format!(
                "{what}: its first interface moved onto network {} with MAC {mac}",
                net.name
            ),
            None => format!(
                "{what}: an interface on network {} with MAC {mac} added",
                net.name
            ),
        });
        changes.push(format!(
            "{}: a DHCP entry for machine {id} ({name}): {} {mac}",
            net.name, record.address
        ));
        changes.push(format!("{what}: its name and disks are left as they are"));
    } else {
        changes.push(format!(
            "{what}: its name, disks and interfaces are left as they are (no DHCP entry: --network moves its interface onto {})",
            net.name
        ));
    }
    if o.dry_run {
        return Ok(Adopted {
            id,
            name: name.to_string(),
            changes,
        });
    }
    let new = with_record(&xml, &domain::metadata_xml(&record))?;
    report.note(&format!("defining {name} again:\n{new}"));
    let what_m = format!("machine {id} ({name})");
    if o.network && !crate::libvirt::network::status(&conn, &net)?.defined {
        return Err(Error::Unavailable {
            what: format!("network {}", net.name),
            why: format!("not defined on {}: run mkve-net create", conn.uri()),
        });
    }
    conn.define(&new, &what_m)?;
    if o.network {
        if let Err(e) = crate::libvirt::network::add_host(&conn, &net, id.get(), name, report) {
            // The domain as it was: an adopt does all or nothing.
            let _ = conn.define(&old_xml, &what_m);
            return Err(e);
        }
    }
    Ok(Adopted {
        id,
        name: name.to_string(),
        changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xen_s_dom0_is_the_node_not_a_machine() {
        assert!(is_control_domain(Hypervisor::Xen, "Domain-0"));
        assert!(!is_control_domain(Hypervisor::Xen, "web-101"));
        assert!(!is_control_domain(Hypervisor::Kvm, "Domain-0"));
    }

    #[test]
    fn a_name_says_an_id_when_it_ends_in_one() {
        assert_eq!(id_of_name("101"), Some(101));
        assert_eq!(id_of_name("web-142"), Some(142));
        assert_eq!(id_of_name("ntp-server-7"), Some(7));
        assert_eq!(id_of_name("web"), None);
        assert_eq!(id_of_name("web-"), None);
        assert_eq!(id_of_name("web-1a"), None);
        assert_eq!(id_of_name("x-99999999999"), None);
    }

    #[test]
    fn the_first_interface_is_replaced_or_one_added() {
        let i =
            "    <interface type='network'>\n      <source network='mkve'/>\n    </interface>\n";
        let x = "<domain>\n  <devices>\n    <disk/>\n    <interface type='bridge'>\n      <source bridge='br0'/>\n    </interface>\n    <interface type='user'/>\n  </devices>\n</domain>\n";
        let (got, old) = with_interface(x, i).unwrap();
        assert_eq!(
            got,
            "<domain>\n  <devices>\n    <disk/>\n    <interface type='network'>\n      <source network='mkve'/>\n    </interface>\n    <interface type='user'/>\n  </devices>\n</domain>\n"
        );
        assert!(old.unwrap().contains("br0"));
        let (got, old) = with_interface(
            "<domain><devices><interface type='user'/></devices></domain>",
            i,
        )
        .unwrap();
        assert!(old.is_some() && !got.contains("'user'"), "{got}");
        assert!(roxmltree::Document::parse(&got).is_ok(), "{got}");
        let (got, old) = with_interface(
            "<domain>\n  <devices>\n    <disk/>\n  </devices>\n</domain>\n",
            i,
        )
        .unwrap();
        assert!(old.is_none());
        assert_eq!(
            got,
            format!("<domain>\n  <devices>\n    <disk/>\n{i}  </devices>\n</domain>\n")
        );
        assert!(with_interface("<domain/>", i).is_err());
    }

    #[test]
    fn the_record_goes_into_the_metadata() {
        let r = "<mkve:vm xmlns:mkve='urn:mkve:vm:1'/>";
        let plain = "<domain type='lxc'>\n  <name>old</name>\n</domain>\n";
        let got = with_record(plain, r).unwrap();
        assert!(got.contains("<metadata>\n    <mkve:vm"), "{got}");
        assert!(got.ends_with("</metadata>\n</domain>\n"), "{got}");
        let other = "<domain><metadata>\n    <x:y xmlns:x='urn:x'/>\n  </metadata></domain>";
        let got = with_record(other, r).unwrap();
        assert!(got.contains("<x:y xmlns:x='urn:x'/>"), "{got}");
        assert_eq!(got.matches("<metadata>").count(), 1, "{got}");
        assert!(roxmltree::Document::parse(&got).is_ok(), "{got}");
        let empty = "<domain><metadata/></domain>";
        let got = with_record(empty, r).unwrap();
        assert!(roxmltree::Document::parse(&got).is_ok(), "{got}");
        assert!(with_record("<nodomain/>", r).is_err());
    }

    /// On libvirt's test driver (in this process): a domain of a type
    /// mkve does not run is refused, and one not there is told.
    #[test]
    fn a_domain_of_another_type_or_none_is_refused() {
        let uri = "test:///default";
        let conn = libvirt::connect(uri).unwrap();
        conn.define(
            "<domain type='test'><name>legacy-143</name><memory>65536</memory><os><type>hvm</type></os></domain>",
            "legacy",
        )
        .unwrap();
        let uris = Uris {
            list: vec![uri.into()],
            explicit: true,
        };
        let e = adopt(
            &uris,
            "legacy-143",
            &AdoptOptions::default(),
            &crate::exec::Silent,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "domain legacy-143 is of type test, which mkve does not run"
        );
        assert_eq!(e.exit_code(), 2);
        let e = adopt(
            &uris,
            "nosuch",
            &AdoptOptions::default(),
            &crate::exec::Silent,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "no domain nosuch on test:///default");
    }
}
