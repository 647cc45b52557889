//! Domain XML for each hypervisor, and the mkve record every domain
//! carries in its `<metadata>`: ID, address, template, version and the
//! bundle's digest. libvirt is the one source of truth about machines:
//! mkve keeps no database of its own.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::esc;
use crate::hypervisor::Hypervisor;

/// The namespace of mkve's `<metadata>` element.
pub const NS: &str = "urn:mkve:vm:1";

/// What a machine runs from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// qemu, kvm, xen: a disk image holding the root, and the kernel and
    /// initrd copied out of the root's /boot for direct kernel boot; on a
    /// base, the seed disk (raw ext4, read-only, the second disk) named to
    /// the guest by `mkve.seed=/dev/vdb` (xen: xvdb) on its command line.
    Disk {
        image: PathBuf,
        format: String,
        kernel: PathBuf,
        initrd: Option<PathBuf>,
        seed: Option<PathBuf>,
    },
    /// lxc: the root as a directory.
    Dir(PathBuf),
    /// openvz: a template cache of this name (vzctl's OSTEMPLATE).
    OpenvzTemplate(String),
}

/// mkve's record of a machine, as kept in the domain's metadata.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Record {
    pub id: u32,
    pub address: Ipv4Addr,
    pub template: String,
    pub version: String,
    pub bundle: String,
    /// The fingerprint of the key whose good signature on the bundle was
    /// checked against the keyring when the machine was made; `None`: a
    /// bundle accepted unsigned (`--allow-unsigned`), or a machine made
    /// before mkve recorded it.
    pub signed_by: Option<String>,
    /// Where the bundle was taken from at create: its absolute path or
    /// its URL (`None`: stdin, or a machine made before mkve kept it).
    /// A restore fetches the bundle from there (vm/backup.rs).
    pub source: Option<String>,
    /// A domain mkve did not make, taken under its care (`mkve-vm adopt`):
    /// its disks are its own, and a delete keeps them unless asked.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub adopted: bool,
}

#[derive(Debug, Clone)]
pub struct DomainSpec {
    pub record: Record,
    pub name: String,
    pub hypervisor: Hypervisor,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub cpu_shares: Option<u32>,
    pub blkio_weight: Option<u32>,
    pub vnc: bool,
    pub mac: String,
    pub network: String,
    pub bridge: String,
    pub storage: Storage,
}

/// A machine's interface on the libvirt network `network` with the MAC
/// `mac` (virtio for qemu and kvm), as a line of `<devices>`.
pub fn network_interface(hv: Hypervisor, network: &str, mac: &str) -> String {
    format!(
        "    <interface type='network'>\n      <source network='{}'/>\n      <mac address='{}'/>\n{}    </interface>\n",
        esc(network),
        esc(mac),
        if matches!(hv, Hypervisor::Qemu | Hypervisor::Kvm) { "      <model type='virtio'/>\n" } else { "" }
    )
}

pub fn metadata_xml(r: &Record) -> String {
    let signed = match &r.signed_by {
        Some(f) => format!("\n      <mkve:signature fingerprint='{}'/>", esc(f)),
        None => String::new(),
    };
    let source = match &r.source {
        Some(s) => format!("\n      <mkve:source>{}</mkve:source>", esc(s)),
        None => String::new(),
    };
    let adopted = if r.adopted {
        "\n      <mkve:adopted/>"
    } else {
        ""
    };
    format!(
        "<mkve:vm xmlns:mkve='{NS}'>\n      <mkve:id>{}</mkve:id>\n      <mkve:address>{}</mkve:address>\n      \
         <mkve:template name='{}' version='{}'/>\n      <mkve:bundle sha256='{}'/>{signed}{source}{adopted}\n    </mkve:vm>",
        r.id,
        r.address,
        esc(&r.template),
        esc(&r.version),
        esc(&r.bundle)
    )
}

/// The record in a domain's XML; `None` for domains mkve did not make.
pub fn record_of(domain_xml: &str) -> Option<Record> {
    let doc = roxmltree::Document::parse(domain_xml).ok()?;
    let vm = doc
        .descendants()
        .find(|n| n.tag_name().name() == "vm" && n.tag_name().namespace() == Some(NS))?;
    let child = |name: &str| vm.children().find(|n| n.tag_name().name() == name);
    let template = child("template")?;
    Some(Record {
        id: child("id")?.text()?.trim().parse().ok()?,
        address: child("address")?.text()?.trim().parse().ok()?,
        template: template.attribute("name")?.to_string(),
        version: template.attribute("version")?.to_string(),
        bundle: child("bundle")?.attribute("sha256")?.to_string(),
        signed_by: child("signature")
            .and_then(|s| s.attribute("fingerprint"))
            .map(str::to_string),
        source: child("source").and_then(|s| s.text()).map(str::to_string),
        adopted: child("adopted").is_some(),
    })
}

/// A file a domain's XML names: a disk image, or a kernel or initrd it
/// boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainFile {
    pub path: PathBuf,
    /// A disk the guest writes (its image changes while it runs).
    pub writable: bool,
    /// A disk's format (`<driver type=…>`: raw, qcow2); empty otherwise.
    pub format: String,
}

/// Every file a domain's XML names: `<kernel>`, `<initrd>`, and each
/// file-backed `<disk>`'s source (writable unless `<readonly/>`). What a
/// machine takes with it when it moves to another node.
pub fn files_of(domain_xml: &str) -> std::result::Result<Vec<DomainFile>, String> {
    let doc = roxmltree::Document::parse(domain_xml).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for n in doc.descendants() {
        if (n.has_tag_name("kernel") || n.has_tag_name("initrd"))
            && n.parent().is_some_and(|p| p.has_tag_name("os"))
        {
            if let Some(t) = n.text().map(str::trim).filter(|t| !t.is_empty()) {
                out.push(DomainFile {
                    path: t.into(),
                    writable: false,
                    format: String::new(),
                });
            }
        }
        if n.has_tag_name("disk") && n.attribute("type") == Some("file") {
            let child = |name: &str| n.children().find(|c| c.has_tag_name(name));
            let Some(file) = child("source").and_then(|s| s.attribute("file")) else {
                continue;
            };
            out.push(DomainFile {
                path: file.into(),
                writable: child("readonly").is_none(),
                format: child("driver")
                    .and_then(|d| d.attribute("type"))
                    .unwrap_or("raw")
                    .to_string(),
            });
        }
    }
    Ok(out)
}

pub fn xml(s: &DomainSpec) -> String {
    let mut x = String::new();
    let ty = s.hypervisor.domain_type();
    x.push_str(&format!(
        "<domain type='{ty}'>\n  <name>{}</name>\n",
        esc(&s.name)
    ));
    x.push_str(&format!(
        "  <metadata>\n    {}\n  </metadata>\n",
        metadata_xml(&s.record)
    ));
    x.push_str(&format!(
        "  <memory unit='MiB'>{}</memory>\n  <vcpu>{}</vcpu>\n",
        s.memory_mib, s.vcpus
    ));
    if let Some(shares) = s.cpu_shares {
        x.push_str(&format!(
            "  <cputune>\n    <shares>{shares}</shares>\n  </cputune>\n"
        ));
    }
    if let Some(w) = s.blkio_weight {
        x.push_str(&format!(
            "  <blkiotune>\n    <weight>{w}</weight>\n  </blkiotune>\n"
        ));
    }
    let mac = format!("<mac address='{}'/>", esc(&s.mac));
    let network_if = network_interface(s.hypervisor, &s.network, &s.mac);
    // The storage decides the shape; a spec whose storage does not fit
    // its hypervisor (never made by create) gives XML libvirt refuses.
    match &s.storage {
        Storage::Disk {
            image,
            format,
            kernel,
            initrd,
            seed,
        } => {
            let xen = s.hypervisor == Hypervisor::Xen;
            let (os_type, dev, seed_dev, bus, console) = if xen {
                (
                    "<type arch='x86_64' machine='xenpv'>linux</type>",
                    "xvda",
                    "xvdb",
                    "xen",
                    "hvc0",
                )
            } else {
                (
                    "<type arch='x86_64'>hvm</type>",
                    "vda",
                    "vdb",
                    "virtio",
                    "ttyS0",
                )
            };
            x.push_str(&format!(
                "  <os>\n    {os_type}\n    <kernel>{}</kernel>\n",
                esc(&kernel.to_string_lossy())
            ));
            if let Some(i) = initrd {
                x.push_str(&format!(
                    "    <initrd>{}</initrd>\n",
                    esc(&i.to_string_lossy())
                ));
            }
            // quiet: the kernel's messages below warnings stay off the
            // serial console, which under TCG costs boot time (Debian's
            // installed default too; bench/qemu-boot.sh has the figures).
            let seeded = match seed {
                Some(_) => format!(" mkve.seed=/dev/{seed_dev}"),
                None => String::new(),
            };
            x.push_str(&format!(
                "    <cmdline>root=/dev/{dev} rw console={console} quiet{seeded}</cmdline>\n  </os>\n"
            ));
            if !xen {
                // ACPI: without it the guest never sees the power button, and
                // `mkve-vm stop` (virDomainShutdown) waits for nothing.
                x.push_str("  <features>\n    <acpi/>\n    <apic/>\n  </features>\n");
            }
            x.push_str("  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n  <devices>\n");
            let driver = if xen {
                format!("<driver name='qemu' type='{}'/>", esc(format))
            } else {
                format!(
                    "<driver name='qemu' type='{}' cache='none' io='native'/>",
                    esc(format)
                )
            };
            x.push_str(&format!(
                "    <disk type='file' device='disk'>\n      {driver}\n      <source file='{}'/>\n      <target dev='{dev}' bus='{bus}'/>\n    </disk>\n",
                esc(&image.to_string_lossy())
            ));
            if let Some(sd) = seed {
                x.push_str(&format!(
                    "    <disk type='file' device='disk'>\n      <driver name='qemu' type='raw'/>\n      <source file='{}'/>\n      <target dev='{seed_dev}' bus='{bus}'/>\n      <readonly/>\n    </disk>\n",
                    esc(&sd.to_string_lossy())
                ));
            }
            x.push_str(&network_if);
            if xen {
                x.push_str("    <console type='pty'>\n      <target type='xen' port='0'/>\n    </console>\n");
            } else {
                x.push_str("    <serial type='pty'>\n      <target port='0'/>\n    </serial>\n    <console type='pty'>\n      <target type='serial' port='0'/>\n    </console>\n");
            }
            if s.vnc {
                x.push_str("    <graphics type='vnc' autoport='yes' listen='127.0.0.1'/>\n");
            }
        }
        Storage::Dir(root) => {
            x.push_str(&container_os(
                "type='mount' accessmode='passthrough'",
                &format!("dir='{}'", esc(&root.to_string_lossy())),
            ));
            x.push_str(&network_if);
            x.push_str("    <console type='pty'/>\n");
        }
        Storage::OpenvzTemplate(name) => {
            x.push_str(&container_os(
                "type='template'",
                &format!("name='{}'", esc(name)),
            ));
            // OpenVZ's driver attaches veth devices to a bridge, not to a
            // libvirt network.
            x.push_str(&format!("    <interface type='bridge'>\n      <source bridge='{}'/>\n      {mac}\n    </interface>\n", esc(&s.bridge)));
        }
    }
    x.push_str("  </devices>\n</domain>\n");
    x
}

/// A container's (lxc, openvz) `<os>` and root: it boots its own init from
/// `<filesystem FILESYSTEM><source SOURCE/>` mounted at /. `<devices>` is
/// left open for the interface and console.
fn container_os(filesystem: &str, source: &str) -> String {
    format!(
        "  <os>\n    <type>exe</type>\n    <init>/sbin/init</init>\n  </os>\n  <devices>\n    <filesystem {filesystem}>\n      <source {source}/>\n      <target dir='/'/>\n    </filesystem>\n"
    )
}

/// Records and domains as the crate's tests make them.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Machine `id` at `address`, of ntp-server 1.0 from the bundle
    /// `ab…` (64 hex digits) signed by a made-up fingerprint.
    pub fn record(id: u32, address: Ipv4Addr) -> Record {
        Record {
            id,
            address,
            template: "ntp-server".into(),
            version: "1.0".into(),
            bundle: "ab".repeat(32),
            signed_by: Some("0123456789ABCDEF0123456789ABCDEF01234567".into()),
            source: None,
            adopted: false,
        }
    }

    /// Define on `conn` (the test driver, test:///default) a domain named
    /// `name` carrying [`record`]`(id, address)` in its metadata.
    pub fn define(
        conn: &crate::libvirt::Connection,
        name: &str,
        id: u32,
        address: Ipv4Addr,
    ) -> crate::libvirt::Dom {
        let xml = format!(
            "<domain type='test'><name>{name}</name><memory>65536</memory>\
             <os><type>hvm</type></os><metadata>{}</metadata></domain>",
            metadata_xml(&record(id, address))
        );
        conn.define(&xml, name).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(h: Hypervisor) -> DomainSpec {
        let storage = match h {
            Hypervisor::Lxc => Storage::Dir("/var/lib/mkve/vms/101/root".into()),
            Hypervisor::Openvz => Storage::OpenvzTemplate("mkve-101".into()),
            _ => Storage::Disk {
                image: "/var/lib/mkve/vms/101/disk.img".into(),
                format: "raw".into(),
                kernel: "/var/lib/mkve/vms/101/vmlinuz".into(),
                initrd: Some("/var/lib/mkve/vms/101/initrd.img".into()),
                seed: None,
            },
        };
        DomainSpec {
            record: testing::record(101, Ipv4Addr::new(192, 0, 2, 101)),
            name: "ntp-101".into(),
            hypervisor: h,
            memory_mib: 512,
            vcpus: 1,
            cpu_shares: Some(512),
            blkio_weight: Some(300),
            vnc: true,
            mac: crate::net::mac_of(101),
            network: "mkve-network".into(),
            bridge: "mkvebr0".into(),
            storage,
        }
    }

    #[test]
    fn every_hypervisor_gets_xml_that_libvirt_accepts() {
        for h in Hypervisor::ALL {
            let text = xml(&spec(h));
            mkve_testkit::assert_valid_libvirt_xml("domain", &text);
            assert_eq!(
                record_of(&text),
                Some(spec(h).record),
                "{h}: the record reads back"
            );
        }
        // A bundle taken unsigned (or a machine made before mkve recorded
        // signatures): no signature element, none read back.
        let mut unsigned = spec(Hypervisor::Lxc);
        unsigned.record.signed_by = None;
        let text = xml(&unsigned);
        assert!(!text.contains("signature"), "{text}");
        assert_eq!(record_of(&text).unwrap().signed_by, None);
        assert!(xml(&spec(Hypervisor::Qemu))
            .contains("<mkve:signature fingerprint='0123456789ABCDEF0123456789ABCDEF01234567'/>"));
        assert!(xml(&spec(Hypervisor::Qemu)).contains("<domain type='qemu'>"));
        assert!(xml(&spec(Hypervisor::Kvm)).contains("<domain type='kvm'>"));
        assert!(xml(&spec(Hypervisor::Xen)).contains("machine='xenpv'"));
        // A qemu or kvm guest hears the power button (mkve-vm stop).
        for h in [Hypervisor::Qemu, Hypervisor::Kvm] {
            assert!(xml(&spec(h)).contains("<features>\n    <acpi/>"), "{h}");
        }
    }

    #[test]
    fn the_files_a_machine_takes_with_it() {
        let mut s = spec(Hypervisor::Qemu);
        s.storage = Storage::Disk {
            image: "/s/vms/101/disk.qcow2".into(),
            format: "qcow2".into(),
            kernel: "/s/vms/101/vmlinuz".into(),
            initrd: Some("/s/vms/101/initrd.img".into()),
            seed: Some("/s/vms/101/seed.img".into()),
        };
        let files = files_of(&xml(&s)).unwrap();
        let f = |p: &str, w: bool, fmt: &str| DomainFile {
            path: p.into(),
            writable: w,
            format: fmt.into(),
        };
        assert_eq!(
            files,
            [
                f("/s/vms/101/vmlinuz", false, ""),
                f("/s/vms/101/initrd.img", false, ""),
                f("/s/vms/101/disk.qcow2", true, "qcow2"),
                f("/s/vms/101/seed.img", false, "raw"),
            ]
        );
        assert_eq!(files_of(&xml(&spec(Hypervisor::Lxc))).unwrap(), []);
        assert!(files_of("<domain").is_err());
    }

    #[test]
    fn domains_without_a_record_are_not_mkve_s() {
        assert_eq!(
            record_of("<domain type='kvm'><name>other</name></domain>"),
            None
        );
        assert_eq!(record_of("not xml"), None);
    }

    #[test]
    fn the_test_driver_defines_the_qemu_domain_and_keeps_the_record() {
        let conn = super::super::connect("test:///default").unwrap();
        let mut s = spec(Hypervisor::Qemu);
        s.hypervisor = Hypervisor::Qemu;
        // The test driver knows only its own domain type.
        let text = xml(&s).replace("<domain type='qemu'>", "<domain type='test'>");
        let dom = conn.define(&text, "test").unwrap();
        let back = dom.xml().unwrap();
        assert_eq!(record_of(&back), Some(s.record));
        dom.undefine("test").unwrap();
    }
}
