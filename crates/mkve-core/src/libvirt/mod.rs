//! Everything mkve does through libvirt, with the `virt` crate: the XML it
//! generates, the operations on networks, and the operations on domains
//! through [`Connection`] and [`Dom`]. No virsh: libvirt's own API, so
//! remote URIs work as they do in virsh. Outside this module only
//! `console.rs` touches `virt` (the stream a console is copied through).

pub mod domain;
pub mod network;

use virt::connect::Connect;
use virt::domain::Domain;

use crate::error::{Error, Result};

/// Open a connection; a daemon that does not answer is `Unavailable`.
pub fn connect(uri: &str) -> Result<Connection> {
    // Errors come back as values; libvirt's default handler would print
    // each one on stderr as well.
    virt::error::clear_error_callback();
    Connect::open(Some(uri))
        .map(|c| Connection {
            conn: c,
            uri: uri.to_string(),
        })
        .map_err(|e| Error::Unavailable {
            what: format!("libvirt ({uri})"),
            why: format!("{} (is libvirtd running?)", e.message()),
        })
}

/// The connections of the node: `conn`, then every URI of this node that
/// answers (mkve.conf's for this node, else each hypervisor's default:
/// `Connections::node`), each once. Errors (65): mkve.conf is unsound.
pub fn node_connections(conn: &Connection) -> Result<Vec<Connection>> {
    let mut all = vec![conn.clone()];
    for uri in crate::nodes::Connections::resolve(None)?.node() {
        if uri != conn.uri() {
            if let Ok(c) = connect(&uri) {
                all.push(c);
            }
        }
    }
    Ok(all)
}

/// An open connection to one libvirt driver (a URI).
#[derive(Clone)]
pub struct Connection {
    conn: Connect,
    uri: String,
}

impl Connection {
    pub fn uri(&self) -> &str {
        &self.uri
    }

    pub(crate) fn raw(&self) -> &Connect {
        &self.conn
    }

    /// The driver's name as virConnectGetType reports it (`QEMU`, `LXC`…).
    pub fn driver(&self) -> Result<String> {
        self.conn
            .driver_type()
            .map_err(|e| failed(format!("libvirt ({})", self.uri), e))
    }

    /// Every domain, running or not.
    pub fn domains(&self) -> Result<Vec<Dom>> {
        let all = self
            .conn
            .list_all_domains(0)
            .map_err(|e| failed("listing domains", e))?;
        Ok(all.into_iter().map(|d| Dom { dom: d }).collect())
    }

    /// The domain named `name`, if there is one.
    pub fn domain(&self, name: &str) -> Option<Dom> {
        self.conn
            .lookup_domain_by_name(name)
            .ok()
            .map(|d| Dom { dom: d })
    }

    /// Define (persistently) the domain `xml`; `what` names it in errors.
    pub fn define(&self, xml: &str, what: &str) -> Result<Dom> {
        self.conn
            .define_domain_xml(xml)
            .map(|d| Dom { dom: d })
            .map_err(|e| failed(format!("defining {what}"), e))
    }
}

/// A libvirt domain. Each call names `what` (`machine 101`) in its error.
pub struct Dom {
    dom: Domain,
}

/// libvirt's "not valid in the domain's state now" (VIR_ERR_OPERATION_INVALID):
/// a shutdown or destroy of a domain that is not running, or one the
/// driver cannot ask yet.
fn invalid_now(e: &virt::error::Error) -> bool {
    e.code()
        .is_known_and(|c| matches!(c, virt::error::ErrorNumber::OperationInvalid))
}

impl Dom {
    pub fn name(&self) -> Result<String> {
        self.dom.name().map_err(|e| failed("domain name", e))
    }

    /// libvirt's UUID of the domain: two domains defined one after the
    /// other under the same name and ID still differ here.
    pub fn uuid(&self) -> Result<String> {
        self.dom.uuid_string().map_err(|e| failed("domain UUID", e))
    }

    /// The domain's XML as libvirt keeps it (virDomainGetXMLDesc).
    pub fn xml(&self) -> Result<String> {
        self.dom.xml_desc(0).map_err(|e| failed("domain XML", e))
    }

    /// The XML the domain is defined with (not its running state's), as
    /// another node defines it (virDomainGetXMLDesc, XML_INACTIVE).
    pub fn inactive_xml(&self) -> Result<String> {
        self.dom
            .xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE)
            .map_err(|e| failed("domain XML", e))
    }

    /// The XML a running domain migrates with (XML_MIGRATABLE): what a
    /// changed destination XML must keep the guest's view of.
    pub fn migratable_xml(&self) -> Result<String> {
        self.dom
            .xml_desc(virt::sys::VIR_DOMAIN_XML_MIGRATABLE)
            .map_err(|e| failed("domain XML", e))
    }

    /// Move the running domain live to the libvirt at `dest` (the source's
    /// libvirtd talks to it itself: peer to peer), its memory and writable
    /// disks streamed to `migrate_uri` (`tcp://HOST`; `None`: the host
    /// the destination names), defined there with `dest_xml` and undefined
    /// here once it runs there (virDomainMigrateToURI2 with PEER2PEER,
    /// LIVE, PERSIST_DEST, UNDEFINE_SOURCE, NON_SHARED_DISK: disks are
    /// copied into images of the same size made at the destination
    /// beforehand; read-only disks are not copied).
    pub fn migrate_live(
        &self,
        dest: &str,
        migrate_uri: Option<&str>,
        dest_xml: &str,
        what: &str,
    ) -> Result<()> {
        use virt::sys;
        let flags = sys::VIR_MIGRATE_PEER2PEER
            | sys::VIR_MIGRATE_LIVE
            | sys::VIR_MIGRATE_PERSIST_DEST
            | sys::VIR_MIGRATE_UNDEFINE_SOURCE
            | sys::VIR_MIGRATE_NON_SHARED_DISK;
        self.dom
            .migrate_to_uri2(Some(dest), migrate_uri, Some(dest_xml), flags, None, 0)
            .map_err(|e| failed(format!("migrating {what} to {dest}"), e))
    }

    pub fn is_active(&self) -> Result<bool> {
        self.dom.is_active().map_err(|e| failed("domain state", e))
    }

    /// Start the defined domain (virDomainCreate).
    pub fn start(&self, what: &str) -> Result<()> {
        self.dom
            .create()
            .map(drop)
            .map_err(|e| failed(format!("starting {what}"), e))
    }

    /// Ask the guest to shut down (ACPI, or init for containers).
    pub fn shutdown(&self, what: &str) -> Result<()> {
        self.dom
            .shutdown()
            .map(drop)
            .map_err(|e| failed(format!("stopping {what}"), e))
    }

    /// Ask the guest to shut down: `Ok(true)` asked (or it stopped
    /// meanwhile: libvirt then says "domain is not running"), `Ok(false)`
    /// the driver cannot ask it yet while it runs (libvirt's lxc driver
    /// until its controller told it the container's init process: "Init
    /// process ID is not yet known"), `why` then being libvirt's words.
    /// Both refusals are VIR_ERR_OPERATION_INVALID, told apart by whether
    /// the domain still runs. Errors: any other refusal.
    pub fn shutdown_if_ready(&self, what: &str, why: &mut String) -> Result<bool> {
        match self.dom.shutdown() {
            Ok(_) => Ok(true),
            Err(e) if invalid_now(&e) => {
                if self.dom.is_active().unwrap_or(false) {
                    *why = e.message().to_string();
                    Ok(false)
                } else {
                    Ok(true)
                }
            }
            Err(e) => Err(failed(format!("stopping {what}"), e)),
        }
    }

    /// Stop at once (pull the plug). A domain that stopped on its own
    /// meanwhile ("domain is not running") is stopped as asked. Errors:
    /// libvirt's.
    pub fn destroy(&self, what: &str) -> Result<()> {
        match self.dom.destroy() {
            Ok(()) => Ok(()),
            Err(e) if invalid_now(&e) && !self.dom.is_active().unwrap_or(true) => Ok(()),
            Err(e) => Err(failed(format!("stopping {what}"), e)),
        }
    }

    pub fn undefine(&self, what: &str) -> Result<()> {
        self.dom
            .undefine()
            .map_err(|e| failed(format!("undefining {what}"), e))
    }

    pub fn reboot(&self, what: &str) -> Result<()> {
        self.dom
            .reboot(0)
            .map_err(|e| failed(format!("rebooting {what}"), e))
    }

    /// Whether the domain is paused (suspended: an lxc container's
    /// processes frozen in their cgroup, a qemu guest's CPUs stopped).
    pub fn is_paused(&self) -> Result<bool> {
        self.dom
            .state()
            .map(|(state, _)| state.is_known_and(|s| s == virt::domain::DomainState::Paused))
            .map_err(|e| failed("domain state", e))
    }

    /// Pause the running domain (virDomainSuspend): lxc freezes the
    /// container's processes, qemu stops the guest's CPUs.
    pub fn suspend(&self, what: &str) -> Result<()> {
        self.dom
            .suspend()
            .map_err(|e| failed(format!("freezing {what}"), e))
    }

    /// Let the paused domain run again (virDomainResume).
    pub fn resume(&self, what: &str) -> Result<()> {
        self.dom
            .resume()
            .map_err(|e| failed(format!("thawing {what}"), e))
    }

    /// A disk-only external snapshot of the domain, running or not
    /// (virDomainSnapshotCreateXML with DISK_ONLY, ATOMIC and
    /// NO_METADATA: libvirt makes the new overlays `xml` names and points
    /// the domain at them; mkve keeps its own record of the snapshot).
    /// `quiesce`: the guest agent freezes the guest's file systems first.
    pub fn disk_snapshot(&self, xml: &str, quiesce: bool, what: &str) -> Result<()> {
        let mut flags = virt::sys::VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY
            | virt::sys::VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC
            | virt::sys::VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA;
        if quiesce {
            flags |= virt::sys::VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE;
        }
        self.dom
            .create_snapshot_xml(xml, flags)
            .map(drop)
            .map_err(|e| failed(format!("snapshotting {what}"), e))
    }

    /// Destroy and undefine a domain a failed operation made, ignoring
    /// errors (the operation's own error is the one worth telling).
    pub fn discard(&self) {
        let _ = self.dom.destroy();
        let _ = self.dom.undefine();
    }

    pub fn autostart(&self) -> Result<bool> {
        self.dom.autostart().map_err(|e| failed("autostart", e))
    }

    pub fn set_autostart(&self, on: bool, what: &str) -> Result<()> {
        self.dom
            .set_autostart(on)
            .map(drop)
            .map_err(|e| failed(format!("autostart of {what}"), e))
    }

    /// Open the domain's first console on a new stream of `conn` (see
    /// console.rs). `safe` asks the driver to refuse a console that cannot
    /// be used safely (only the qemu driver knows the flag); `force` takes
    /// the console from a client attached to it. `what` names the machine
    /// in errors.
    pub fn open_console(
        &self,
        conn: &Connection,
        safe: bool,
        force: bool,
        what: &str,
    ) -> Result<crate::console::Console> {
        let stream = virt::stream::Stream::new(&conn.conn, 0).map_err(|e| failed("console", e))?;
        let mut flags = 0;
        if safe {
            flags |= virt::sys::VIR_DOMAIN_CONSOLE_SAFE;
        }
        if force {
            flags |= virt::sys::VIR_DOMAIN_CONSOLE_FORCE;
        }
        self.dom
            .open_console(None, &stream, flags)
            .map_err(|e| failed(format!("console of {what}"), e))?;
        Ok(crate::console::Console::new(stream, what))
    }
}

/// A libvirt failure while doing `what`.
pub(crate) fn failed(what: impl std::fmt::Display, e: virt::error::Error) -> Error {
    Error::Other(format!("{what}: {}", e.message()))
}

/// Escape text for an XML attribute or element.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}
