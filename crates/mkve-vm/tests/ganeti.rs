//! Ganeti's OS definition mkve without Ganeti (mkve-vm(1), GANETI): a
//! signed qemu bundle published, synced to this node alone, then the
//! actions run as Ganeti's node daemon runs them (a clean environment of
//! its variables): verify's refusals in params.rs's words, create writing
//! the root (name, address, parameters, secret 0600) onto a disk file,
//! export and import streaming it, rename writing the new name. The whole
//! cluster is tests/ganeti.sh's.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use mkve_core::hypervisor::Hypervisor;
use mkve_core::image::{Access, Image};
use mkve_testkit::*;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_mkve-vm");

/// The fixture with-params made a qemu template, in `work`.
fn qemu_template(work: &Path) -> PathBuf {
    let t = work.join("template");
    let src = good("with-params");
    std::fs::create_dir_all(t.join("packages-lists")).unwrap();
    std::fs::create_dir_all(t.join("version")).unwrap();
    std::fs::write(t.join("hypervisors"), "qemu\n").unwrap();
    for f in ["params", "probes"] {
        std::fs::copy(src.join(f), t.join(f)).unwrap();
    }
    std::fs::copy(
        src.join("packages-lists/lxc"),
        t.join("packages-lists/qemu"),
    )
    .unwrap();
    std::fs::copy(src.join("version/lxc"), t.join("version/qemu")).unwrap();
    t
}

/// A signed qemu bundle of a small root with a kernel and initrd in
/// /boot, published in `work/pub` with an lxc one beside it.
fn publish(work: &Path) -> PathBuf {
    let root = work.join("root");
    std::fs::create_dir_all(root.join("etc/systemd/network")).unwrap();
    std::fs::create_dir_all(root.join("boot")).unwrap();
    std::fs::write(root.join("etc/hostname"), "template\n").unwrap();
    std::fs::write(root.join("etc/hosts"), "127.0.0.1\tlocalhost\n").unwrap();
    std::fs::write(root.join("boot/vmlinuz-6.1.0-1"), "a kernel").unwrap();
    std::fs::write(root.join("boot/initrd.img-6.1.0-1"), "an initrd").unwrap();
    let tdir = qemu_template(work);
    let mut made = Vec::new();
    for (h, tdir) in [
        (Hypervisor::Qemu, tdir),
        (Hypervisor::Lxc, good("with-params")),
    ] {
        let name = if h == Hypervisor::Qemu {
            "svc.bun"
        } else {
            "ctr.bun"
        };
        let bun = work.join(name);
        common::signed_bundle(&tdir, h, root.clone(), &bun);
        made.push(bun);
    }
    let dir = work.join("pub");
    common::publish(&dir, &made);
    dir
}

/// mkve-vm as Ganeti runs the OS scripts: only `vars` (and PATH), with
/// this test's directories.
fn ganeti_os(work: &Path, action: &str, vars: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("MKVE_CONFDIR", work.join("etc"))
        .env("MKVE_STATEDIR", work.join("state"))
        .env("MKVE_LOCKDIR", work.join("lock"))
        .args(["__ganeti-os", action]);
    for (k, v) in vars {
        c.env(k, v);
    }
    c
}

/// The file `file` of the ext4 file system on `disk`, read as mkve reads
/// a disk (mkve_core::image), as text.
fn disk_file(disk: &Path, file: &str) -> String {
    let image = Image::open(disk, Access::ReadOnly, &mkve_core::exec::Silent).unwrap();
    String::from_utf8_lossy(&image.read(Path::new(file)).unwrap()).into_owned()
}

#[test]
fn a_synced_variant_becomes_a_disk_with_the_instance_s_data() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let dir = publish(w);
    std::fs::create_dir_all(w.join("etc")).unwrap();
    std::fs::copy(&signer().keyring, w.join("etc/trusted.gpg")).unwrap();
    let env = [
        ("MKVE_CONFDIR", w.join("etc")),
        ("MKVE_STATEDIR", w.join("state")),
        ("MKVE_LOCKDIR", w.join("lock")),
    ];

    // The sync: the qemu bundle a variant, the lxc one left out.
    let r = run(Command::new(BIN)
        .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
        .args(["ganeti", "sync", "--this-node-only", "--json"])
        .arg(&dir));
    r.assert_stderr(0, "ctr.bun: left out: is a bundle for lxc");
    let g = w.join("state/ganeti");
    assert_eq!(
        std::fs::read_to_string(g.join("variants.list")).unwrap(),
        "svc\n"
    );
    let params = std::fs::read_to_string(g.join("parameters.list")).unwrap();
    assert!(params.starts_with("mkve-root-password "), "{params}");
    assert!(
        params.contains("\nadmin_password password of the user admin (required, secret)\n"),
        "{params}"
    );
    let synced: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let kernel = PathBuf::from(synced["variants"][0]["kernel"].as_str().unwrap());
    assert_eq!(std::fs::read(&kernel).unwrap(), b"a kernel");

    // verify: a required parameter missing, an undeclared one, in
    // params.rs's words (2); then the good ones.
    let r = run(ganeti_os(w, "verify", &[("OS_VARIANT", "svc")]).arg("parameters"));
    r.assert_stderr(2, "mkve+svc needs a parameter: admin_password");
    let r = run(&mut ganeti_os(
        w,
        "verify",
        &[
            ("OS_VARIANT", "svc"),
            ("OSP_ADMIN_PASSWORD", "pw"),
            ("OSP_COLOUR", "red"),
        ],
    ));
    r.assert_stderr(2, "has no parameter colour");
    let r = run(&mut ganeti_os(
        w,
        "verify",
        &[("OS_VARIANT", "svc"), ("OSP_ADMIN_PASSWORD", "pw")],
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&mut ganeti_os(
        w,
        "verify",
        &[("OS_VARIANT", "nosuch"), ("OSP_ADMIN_PASSWORD", "pw")],
    ));
    r.assert_stderr(69, "mkve-vm ganeti sync");

    // create onto a disk file, as Ganeti's file template gives it.
    let disk = w.join("disk0");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(96 << 20)
        .unwrap();
    let disk_s = disk.to_str().unwrap();
    let create = [
        ("OS_VARIANT", "svc"),
        ("INSTANCE_NAME", "svc1.example.org"),
        ("DISK_COUNT", "1"),
        ("DISK_0_PATH", disk_s),
        ("NIC_COUNT", "1"),
        ("NIC_0_IP", "192.0.2.100"),
        ("NIC_0_MAC", "aa:00:00:12:34:56"),
        ("NIC_0_NETWORK_SUBNET", "192.0.2.0/24"),
        ("NIC_0_NETWORK_GATEWAY", "192.0.2.1"),
        ("OSP_ADMIN_PASSWORD", "s3cret"),
        ("OSP_MOTD", "hello"),
    ];
    let r = run(&mut ganeti_os(w, "create", &create));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("s3cret") && !r.stdout.contains("s3cret"));
    assert_eq!(disk_file(&disk, "/etc/hostname"), "svc1.example.org\n");
    assert!(disk_file(&disk, "/etc/mkve/network")
        .contains("address=192.0.2.100\nprefix=24\ngateway=192.0.2.1\nmac=aa:00:00:12:34:56\n"));
    assert!(
        disk_file(&disk, "/etc/systemd/network/40-mkve-ganeti.network")
            .contains("Address=192.0.2.100/24")
    );
    assert_eq!(
        disk_file(&disk, "/etc/mkve/params/admin_password"),
        "s3cret"
    );
    assert_eq!(disk_file(&disk, "/etc/mkve/params/motd"), "hello");
    let image = Image::open(&disk, Access::ReadOnly, &mkve_core::exec::Silent).unwrap();
    let secret = image.stat(Path::new("/etc/mkve/params/admin_password"));
    assert_eq!(secret.unwrap().unwrap().mode, 0o600);
    image.close().unwrap();
    // The staging directory went.
    assert!(dir_names(&w.join("state/ganeti/staging"))
        .iter()
        .all(|n| n.to_string_lossy().starts_with('.')));

    // A disk too small for the root: 73, naming it.
    let small = w.join("small");
    std::fs::File::create(&small)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let mut tiny = create.to_vec();
    tiny[3] = ("DISK_0_PATH", small.to_str().unwrap());
    let r = run(&mut ganeti_os(w, "create", &tiny));
    r.assert_stderr(73, "too small");

    // export, then import into another disk: the same bytes.
    let r = Command::new(BIN)
        .env_clear()
        .env("EXPORT_DISK_PATH", &disk)
        .args(["__ganeti-os", "export"])
        .output()
        .unwrap();
    assert!(r.status.success());
    assert_eq!(r.stdout, std::fs::read(&disk).unwrap());
    let copy = w.join("copy");
    std::fs::File::create(&copy)
        .unwrap()
        .set_len(96 << 20)
        .unwrap();
    let mut imp = Command::new(BIN)
        .env_clear()
        .env("IMPORT_DISK_PATH", &copy)
        .args(["__ganeti-os", "import"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(imp.stdin.as_mut().unwrap(), &r.stdout).unwrap();
    drop(imp.stdin.take());
    assert!(imp.wait().unwrap().success());
    assert_eq!(std::fs::read(&copy).unwrap(), r.stdout);

    // rename: the new name in the disk.
    let r = run(&mut ganeti_os(
        w,
        "rename",
        &[
            ("OS_VARIANT", "svc"),
            ("OLD_INSTANCE_NAME", "svc1.example.org"),
            ("INSTANCE_NAME", "svc9.example.org"),
            ("DISK_COUNT", "1"),
            ("DISK_0_PATH", disk_s),
        ],
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(disk_file(&disk, "/etc/hostname"), "svc9.example.org\n");
    assert!(disk_file(&disk, "/etc/hosts").contains("127.0.1.1\tsvc9.example.org\n"));

    // A bundle changed on the node after the sync: create refuses it.
    let bun = w.join("state/ganeti/bundles/svc.bun");
    let mut bytes = std::fs::read(&bun).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&bun, bytes).unwrap();
    let r = run(&mut ganeti_os(w, "create", &create));
    assert_eq!(r.code, 65, "{}", r.stderr);
}
