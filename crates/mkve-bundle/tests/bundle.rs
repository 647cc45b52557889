//! Making, inspecting, verifying and unpacking bundles with the real
//! binary: hooks run in a copy of a busybox root (chroot, as root), GnuPG
//! keys are made in throw-away homes, and every tamper case is refused.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mkve_testkit::*;

fn new_env() -> Env {
    Env::new(env!("CARGO_BIN_EXE_mkve-bundle"))
}

use sha2::Digest;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Build the ntp-server template for lxc from the busybox root; `extra`
/// adds arguments. Returns the run and the output path.
fn build(env: &Env, name: &str, extra: &[&str]) -> (Run, PathBuf) {
    env.build_from_busybox(
        env.cmd().args(["-H", "lxc"]).args(extra),
        "ntp-server",
        name,
    )
}

/// `--info`, `--verify` and `--extract` of the bundle `bad` each refuse
/// it (65) with `why` in their words, and extract nothing: their runs.
fn refused_by_every_reader(env: &Env, bad: &Path, why: &str) -> Vec<Run> {
    let mut runs = Vec::new();
    for args in [&["--info"][..], &["--verify"], &["--extract"]] {
        let dest = env.home.path().join("x");
        let r = run(new_env()
            .cmd()
            .args(args)
            .arg(bad)
            .args(["--allow-unsigned", "-C"])
            .arg(&dest));
        assert_eq!(r.code, 65, "{args:?} {why}: {}", r.stderr);
        assert!(r.stderr.contains(why), "{args:?}: {}", r.stderr);
        assert!(!dest.exists(), "{args:?} left {}", dest.display());
        runs.push(r);
    }
    runs
}

/// One unsigned lxc bundle shared by the tests that only read it.
fn unsigned_bundle() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| {
        let env = new_env();
        let (r, out) = build(&env, "lxc.bun", &["--force-no-sign"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        std::fs::read(out).unwrap()
    })
}

/// One bundle signed by the test key.
fn signed_bundle() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| {
        let env = new_env();
        let out = env.ntp_bundle("qemu", "signed.bun", true);
        std::fs::read(out).unwrap()
    })
}

fn write_bundle(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    temp_file("b.bun", bytes)
}

fn info(bundle: &Path, extra: &[&str]) -> serde_json::Value {
    bundle_info(&new_env(), bundle, extra)
}

/// `mkve-bundle --verify BUNDLE --keyring KEYRING EXTRA…`
fn verify(bundle: &Path, keyring: &Path, extra: &[&str]) -> Run {
    run(new_env()
        .cmd()
        .arg("--verify")
        .arg(bundle)
        .arg("--keyring")
        .arg(keyring)
        .args(extra))
}

/// `mkve-bundle --extract BUNDLE -C DEST EXTRA…`
fn extract(bundle: &Path, dest: &Path, extra: &[&str]) -> Run {
    run(new_env()
        .cmd()
        .arg("--extract")
        .arg(bundle)
        .arg("-C")
        .arg(dest)
        .args(extra))
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn hooks_run_in_order_in_a_copy_with_conf_and_the_bundle_unpacks() {
    let (_d, b) = write_bundle(unsigned_bundle());
    let names = member_names(unsigned_bundle());
    assert_eq!(
        names.join(" "),
        "meta.json sbom.spdx.json provenance.intoto.json rootfs.tar.zst conf/limits conf/sub/file"
    );

    let v = info(&b, &[]);
    assert_eq!(v["format"], 3);
    assert!(v["unpacked_size"].as_u64().unwrap() > 10240, "{v}");
    assert_eq!(
        v["template"],
        serde_json::json!({"name": "ntp-server", "version": "1.2"})
    );
    assert_eq!(v["hypervisor"], "lxc");
    assert_eq!(v["hooks"], serde_json::json!(["01-own", "02-record"]));
    assert_eq!(
        v["created"], "2023-11-14T22:13:20Z",
        "from SOURCE_DATE_EPOCH"
    );
    assert_eq!(v["packages"]["requested"], serde_json::json!(["chrony"]));
    assert_eq!(
        v["packages"]["installed"][1],
        serde_json::json!({"name": "chrony", "version": "4.3-2+deb12u1"})
    );
    assert_eq!(v["signature"], serde_json::json!({"status": "none"}));
    assert_eq!(v["members"]["conf/limits"], sha256(b"memory=256M\n"));

    let dest = b.with_file_name("unpacked");
    let r = extract(&b, &dest, &["--allow-unsigned"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let root = dest.join("rootfs");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/hook-log")).unwrap(),
        "01-own\n02-record lxc ntp-server 1.2\n",
        "the template's own 01-own ran, not the shared one, then 02-record"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/limits-from-conf")).unwrap(),
        "memory=256M\n"
    );
    assert!(
        !root.join(".mkve-hooks").exists(),
        "the staging directory is gone"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("conf/sub/file")).unwrap(),
        "nested\n"
    );
    assert_eq!(
        dir_names(&dest),
        [
            "conf",
            "meta.json",
            "provenance.intoto.json",
            "rootfs",
            "sbom.spdx.json"
        ],
        "what the bundle holds, and nothing of the staging (its lock file)"
    );
    assert!(std::fs::symlink_metadata(root.join("bin/sh"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(
        !busybox_root().join("etc/hook-log").exists(),
        "the given root is left as it was"
    );
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn writing_is_deterministic_whatever_the_root_source() {
    let env = new_env();
    let first = unsigned_bundle();
    let (r, again) = build(&env, "again.bun", &["--force-no-sign"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(std::fs::read(&again).unwrap() == first, "two builds differ");

    // The same root as a tar.zst on stdin gives the same bundle.
    let tarball = env.home.path().join("root.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(busybox_root())
        .args(["--zstd", "-cf"])
        .arg(&tarball)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let r = run_ok(
        env.cmd()
            .args([
                "-H",
                "lxc",
                "--force-no-sign",
                "--rootfs",
                "-",
                "-o",
                "-",
                "--hooks",
            ])
            .arg(hooks_dir())
            .arg(good("ntp-server"))
            .stdin(std::fs::File::open(&tarball).unwrap()),
    );
    assert!(
        r.raw_stdout == first,
        "a tar.zst root on stdin, written to stdout, differs from a directory root"
    );
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn signed_bundles_verify_against_the_right_keyring_only() {
    let (_d, b) = write_bundle(signed_bundle());
    let key = signer();
    let r = verify(&b, &key.keyring, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!(
            "{}: good signature by {}, 3 members verified\n",
            b.display(),
            key.fingerprint
        )
    );

    let v = info(&b, &["--keyring", key.keyring.to_str().unwrap()]);
    assert_eq!(
        v["signature"],
        serde_json::json!({"status": "valid", "fingerprint": key.fingerprint})
    );

    verify(&b, &stranger().keyring, &[]).assert_stderr(65, "a key not in the keyring");
    let v = info(&b, &["--keyring", stranger().keyring.to_str().unwrap()]);
    assert_eq!(v["signature"]["status"], "unknown-key");

    // The default keyring is $MKVE_CONFDIR/trusted.gpg.
    let env = new_env();
    std::fs::create_dir_all(env.home.path().join("etc")).unwrap();
    std::fs::copy(&key.keyring, env.home.path().join("etc/trusted.gpg")).unwrap();
    run_ok(env.cmd().arg("--verify").arg(&b));
    let r = run(new_env().cmd().arg("--verify").arg(&b));
    r.assert_stderr(65, "trusted.gpg: cannot read keyring");
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn unsigned_bundles_need_allow_unsigned() {
    let (_d, b) = write_bundle(unsigned_bundle());
    let r = verify(&b, &signer().keyring, &[]);
    assert_eq!(r.code, 65);
    assert_eq!(
        r.stderr,
        format!(
            "mkve-bundle: {}: not signed (--allow-unsigned accepts it)\n",
            b.display()
        )
    );
    let r = run_ok(
        new_env()
            .cmd()
            .arg("--verify")
            .arg("-")
            .arg("--allow-unsigned")
            .stdin(std::fs::File::open(&b).unwrap()),
    );
    assert_eq!(r.stdout, "(stdin): not signed, 5 members verified\n");
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn signing_without_a_key_fails_and_leaves_no_output() {
    let env = new_env();
    let (r, out) = build(&env, "nokey.bun", &[]);
    r.assert_stderr(65, "--force-no-sign");
    assert!(!out.exists());
    let left = dir_names(env.home.path());
    assert!(
        left.iter().all(|n| !n.to_string_lossy().contains("nokey")),
        "{left:?}"
    );
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn a_failing_hook_stops_the_build_and_leaves_no_output() {
    let env = new_env();
    let (r, _) =
        env.build_from_busybox(env.cmd().arg("--force-no-sign"), "failing-hook", "fail.bun");
    assert_eq!(r.code, 1);
    let hook = good("failing-hook").join("hooks/03-fail");
    assert_eq!(
        r.stderr,
        format!(
            "mkve-bundle: hook \"03-fail\" ({}) failed with exit status 3\n  about to fail\n",
            hook.display()
        )
    );
    assert_eq!(
        dir_names(env.home.path()),
        ["share"],
        "nothing but the data directory the test made"
    );
}

// ---- tampering --------------------------------------------------------------

fn refused(bytes: &[u8], extra: &[&str]) -> String {
    let (d, b) = write_bundle(bytes);
    let keyring = ["--keyring", signer().keyring.to_str().unwrap()];
    let r = extract(&b, &d.path().join("out"), &[&keyring[..], extra].concat());
    assert_eq!(r.code, 65, "{}", r.stderr);
    assert_eq!(
        dir_names(d.path()),
        ["b.bun"],
        "a refused bundle leaves nothing beside it"
    );
    let r2 = verify(&b, &signer().keyring, extra);
    assert_eq!(r2.code, 65, "--verify too: {}", r2.stderr);
    r.stderr
}

fn edit_meta(bundle: &[u8], f: impl FnOnce(&mut serde_json::Value)) -> Vec<(String, Vec<u8>)> {
    let mut m = members(bundle);
    let mut meta: serde_json::Value = serde_json::from_slice(&m[0].1).unwrap();
    f(&mut meta);
    m[0].1 = serde_json::to_vec(&meta).unwrap();
    m
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn a_changed_payload_byte_is_refused() {
    let mut m = members(unsigned_bundle());
    let rootfs = m.iter_mut().find(|(n, _)| n == "rootfs.tar.zst").unwrap();
    let mid = rootfs.1.len() / 2;
    rootfs.1[mid] ^= 0x40;
    let err = refused(&assemble(&m), &["--allow-unsigned"]);
    assert!(err.contains("rootfs.tar.zst"), "{err}");

    let mut m = members(unsigned_bundle());
    m[4].1.push(b'!'); // conf/limits
    let err = refused(&assemble(&m), &["--allow-unsigned"]);
    assert!(
        err.contains("member \"conf/limits\": sha256 ") && err.contains("does not match meta.json"),
        "{err}"
    );
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn a_changed_signed_meta_is_refused() {
    let m = edit_meta(signed_bundle(), |v| v["hypervisor"] = "lxc".into());
    let err = refused(&assemble(&m), &[]);
    assert!(err.contains("bad signature"), "{err}");
    // Dropping the signature does not help either.
    let mut m = members(signed_bundle());
    m.remove(1);
    let err = refused(&assemble(&m), &[]);
    assert!(err.contains("not signed"), "{err}");
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn members_must_be_exactly_those_listed() {
    let mut m = members(unsigned_bundle());
    m.push(("conf/extra".into(), b"x".to_vec()));
    assert!(refused(&assemble(&m), &["--allow-unsigned"])
        .contains("member \"conf/extra\" is not listed in meta.json"));

    let mut m = members(unsigned_bundle());
    m.pop();
    assert!(refused(&assemble(&m), &["--allow-unsigned"])
        .contains("member \"conf/sub/file\" listed in meta.json is missing"));

    let mut m = members(unsigned_bundle());
    let dup = m[4].clone();
    m.push(dup);
    assert!(refused(&assemble(&m), &["--allow-unsigned"])
        .contains("member \"conf/limits\" appears twice"));

    let mut m = members(unsigned_bundle());
    m.swap(0, 1);
    assert!(refused(&assemble(&m), &["--allow-unsigned"])
        .contains("first member is \"sbom.spdx.json\", not meta.json"));

    let m = edit_meta(unsigned_bundle(), |v| {
        v["members"]["../escape"] = sha256(b"x").into();
    });
    let mut m = m;
    m.push(("../escape".into(), b"x".to_vec()));
    assert!(refused(&assemble(&m), &["--allow-unsigned"]).contains("member \"../escape\""));
}

/// A bundle whose rootfs is `inner` (a tar), with digests that match: only
/// the unpacker's own checks stand between it and the file system.
fn with_rootfs(inner: Vec<u8>) -> Vec<u8> {
    let zst = zstd::encode_all(&inner[..], 3).unwrap();
    let mut m = edit_meta(unsigned_bundle(), |v| {
        // Format 2: a root and no SBOM.
        v["format"] = 2.into();
        v["members"] = serde_json::json!({"rootfs.tar.zst": sha256(&zst)});
        v["unpacked_size"] = inner.len().into();
    });
    m.truncate(1);
    m.push(("rootfs.tar.zst".into(), zst));
    assemble(&m)
}

fn inner_tar(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    b.into_inner().unwrap()
}

fn header(kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    h.set_size(0);
    h
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn a_rootfs_that_reaches_outside_is_refused() {
    let dotdot = inner_tar(|b| {
        let mut h = header(tar::EntryType::Regular);
        h.set_size(1);
        h.as_old_mut().name[..9].copy_from_slice(b"../escape");
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
    });
    assert!(refused(&with_rootfs(dotdot), &["--allow-unsigned"])
        .contains("\"../escape\": absolute path or \"..\" refused"));

    let via_symlink = inner_tar(|b| {
        b.append_link(&mut header(tar::EntryType::Symlink), "etc", "/tmp")
            .unwrap();
        let mut h = header(tar::EntryType::Regular);
        h.set_size(1);
        b.append_data(&mut h, "etc/escape", &b"x"[..]).unwrap();
    });
    assert!(refused(&with_rootfs(via_symlink), &["--allow-unsigned"])
        .contains("its parent etc is a symbolic link or special file"));

    let hard = inner_tar(|b| {
        b.append_link(&mut header(tar::EntryType::Link), "shadow", "/etc/shadow")
            .unwrap();
    });
    assert!(refused(&with_rootfs(hard), &["--allow-unsigned"])
        .contains("hard link to /etc/shadow points outside"));

    let climbing = inner_tar(|b| {
        b.append_link(&mut header(tar::EntryType::Symlink), "a/b", "../../../etc")
            .unwrap();
    });
    assert!(refused(&with_rootfs(climbing), &["--allow-unsigned"]).contains("points outside"));

    let disk = inner_tar(|b| {
        let mut h = header(tar::EntryType::Block);
        h.set_device_major(8).unwrap();
        h.set_device_minor(0).unwrap();
        b.append_data(&mut h, "root/sda", std::io::empty()).unwrap();
    });
    assert!(
        refused(&with_rootfs(disk), &["--allow-unsigned"]).contains("device node (b 8:0) refused")
    );
}

/// tests/harness/read-bundle is a second reader written from mkve-bundle(5)
/// alone (Python's tarfile, hashlib, json, and gpgv): it must accept what
/// mkve-bundle writes, signed and not, and refuse what mkve refuses.
#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn a_reader_written_from_the_man_page_reads_our_bundles() {
    let reader = top().join("tests/harness/read-bundle");
    let read = |bytes: &[u8], keyring: Option<&Path>| {
        let (_d, p) = write_bundle(bytes);
        let mut c = std::process::Command::new(&reader);
        if let Some(k) = keyring {
            c.arg("--keyring").arg(k);
        }
        run(c.arg(&p))
    };
    let r = read(unsigned_bundle(), None);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "ok 5 members\n"),
        "{}",
        r.stderr
    );
    let r = read(signed_bundle(), Some(&signer().keyring));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = read(signed_bundle(), Some(&stranger().keyring));
    assert_eq!(r.code, 65, "a stranger's keyring: {}", r.stderr);
    let m = edit_meta(signed_bundle(), |v| v["hypervisor"] = "lxc".into());
    let r = read(&assemble(&m), Some(&signer().keyring));
    assert!(
        r.code == 65 && r.stderr.contains("bad signature"),
        "{}",
        r.stderr
    );
    let mut m = members(unsigned_bundle());
    let rootfs = m.iter_mut().find(|(n, _)| n == "rootfs.tar.zst").unwrap();
    rootfs.1[10] ^= 1;
    let r = read(&assemble(&m), None);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            65,
            "refused: member rootfs.tar.zst does not match its digest\n"
        )
    );
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn a_closed_stdout_ends_quietly_with_status_0() {
    let (_d, path) = write_bundle(unsigned_bundle());
    let r = run_with_closed_stdout(new_env().cmd().arg("--info").arg(&path));
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    let r = run_with_closed_stdout(
        new_env()
            .cmd()
            .args(["--allow-unsigned", "--verify"])
            .arg(&path),
    );
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    // A bundle is data, not results: one cut off on its way is a failure.
    let env = new_env();
    let r = run_with_closed_stdout(
        env.cmd()
            .args(busybox_build_args())
            .args(["-H", "lxc", "--force-no-sign", "-o", "-"])
            .arg(good("ntp-server")),
    );
    r.assert_stderr(73, "(stdout): cannot create: Broken pipe");
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn nothing_but_zeros_may_follow_the_end_of_the_archive() {
    let extra_tar = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "rootfs.tar.zst", &b"extra"[..])
            .unwrap();
        b.into_inner().unwrap()
    };
    for (which, bundle, args) in [
        ("unsigned", unsigned_bundle(), &["--allow-unsigned"][..]),
        ("signed", signed_bundle(), &[][..]),
    ] {
        for (tail, what) in [(extra_tar.clone(), "a tar"), (vec![0, 0, 7], "one byte")] {
            let mut bytes = bundle.to_vec();
            bytes.extend_from_slice(&tail);
            let msg = refused(&bytes, args);
            assert!(
                msg.contains("data after the end of the archive"),
                "{which} + {what}: {msg}"
            );
        }
        // Padding with zeros to a record, as tar pads, is fine; a block
        // of zeros more is not.
        let mut padded = bundle.to_vec();
        padded.resize(padded.len().div_ceil(10240) * 10240, 0);
        let (_d, b) = write_bundle(&padded);
        let r = run(new_env()
            .cmd()
            .arg("--verify")
            .arg(&b)
            .arg("--keyring")
            .arg(&signer().keyring)
            .args(args));
        assert_eq!(r.code, 0, "{which} padded: {}", r.stderr);
        padded.resize(padded.len() + 512, 0);
        let msg = refused(&padded, args);
        assert!(
            msg.contains("more zeros after the end of the archive"),
            "{which} + a block: {msg}"
        );
    }
}

/// Format 2 declares what the root decompresses to, and readers hold it to
/// that; format 1 (no declaration) is still read.
#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn a_root_must_decompress_to_the_size_meta_json_declares() {
    let size = info(&write_bundle(unsigned_bundle()).1, &[])["unpacked_size"]
        .as_u64()
        .unwrap();
    let reader = top().join("tests/harness/read-bundle");
    for (declared, says) in [
        (
            size - 1,
            format!("decompresses to more than {} bytes", size - 1),
        ),
        (
            size + 512,
            format!(
                "decompresses to {size} bytes, but meta.json declares {}",
                size + 512
            ),
        ),
    ] {
        let m = edit_meta(unsigned_bundle(), |v| v["unpacked_size"] = declared.into());
        let bytes = assemble(&m);
        let msg = refused(&bytes, &["--allow-unsigned"]);
        assert!(msg.contains(&says), "{msg}");
        let (_d, p) = write_bundle(&bytes);
        let r = run(std::process::Command::new(&reader).arg(&p));
        assert_eq!(r.code, 65, "the second reader refuses it too: {}", r.stderr);
    }
    let m = edit_meta(unsigned_bundle(), |v| {
        v.as_object_mut().unwrap().remove("unpacked_size");
    });
    assert!(refused(&assemble(&m), &["--allow-unsigned"])
        .contains("format 3 declares no \"unpacked_size\""));
    // Format 1: no size, read as before.
    let m = edit_meta(unsigned_bundle(), |v| {
        v.as_object_mut().unwrap().remove("unpacked_size");
        v["format"] = 1.into();
    });
    let (_d, p) = write_bundle(&assemble(&m));
    let r = run(new_env()
        .cmd()
        .args(["--allow-unsigned", "--verify"])
        .arg(&p));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(std::process::Command::new(&reader).arg(&p));
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// A root with a large sparse file makes a small bundle, and unpacking it
/// takes as little disk as the data holds.
#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root with a device node"]
fn a_sparse_file_unpacks_sparse() {
    let env = new_env();
    let root = env.home.path().join("root");
    std::fs::create_dir_all(root.join("var/log")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/hostname"), "x\n").unwrap();
    let f = std::fs::File::create(root.join("var/log/lastlog")).unwrap();
    f.set_len(1 << 30).unwrap();
    drop(f);
    let out = env.home.path().join("sparse.bun");
    let r = run(env
        .cmd()
        .args(["-H", "lxc", "--force-no-sign", "--rootfs"])
        .arg(&root)
        .arg("-o")
        .arg(&out)
        .arg(good("two-containers")));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let len = std::fs::metadata(&out).unwrap().len();
    assert!(len < 1 << 20, "a 1 GiB hole packs small: {len} bytes");
    let dest = env.home.path().join("x");
    let r = run(env
        .cmd()
        .args(["--allow-unsigned", "--extract"])
        .arg(&out)
        .arg("-C")
        .arg(&dest));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let m = std::fs::metadata(dest.join("rootfs/var/log/lastlog")).unwrap();
    assert_eq!(m.len(), 1 << 30);
    use std::os::unix::fs::MetadataExt;
    assert!(
        m.blocks() * 512 < 1 << 20,
        "{} bytes on disk",
        m.blocks() * 512
    );
}

/// A bundle of the with-params fixture from a plain directory (no hooks,
/// no root needed).
fn with_params_bundle(env: &Env) -> PathBuf {
    let root = env.make_dir("plain-root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/os-release"), "ID=test\n").unwrap();
    let out = env.home.path().join("with-params.bun");
    let r = run(env
        .cmd()
        .args("--no-config -q -H lxc --force-no-sign --rootfs".split(' '))
        .arg(&root)
        .arg("-o")
        .arg(&out)
        .arg(good("with-params")));
    assert_eq!(r.code, 0, "{}", r.stderr);
    out
}

#[test]
fn params_probes_and_state_travel_as_conf_members_and_info_shows_them() {
    let env = new_env();
    let b = with_params_bundle(&env);
    let names = member_names(&std::fs::read(&b).unwrap());
    assert_eq!(
        names.join(" "),
        "meta.json sbom.spdx.json provenance.intoto.json rootfs.tar.zst conf/params conf/probes conf/state"
    );
    let v = info(&b, &[]);
    assert_eq!(
        v["params"][0],
        serde_json::json!({"name": "admin_password", "required": true, "secret": true,
            "default": null, "description": "password of the user admin"})
    );
    assert_eq!(v["params"][1]["default"], "192.0.2.1");
    assert_eq!(
        v["probes"],
        serde_json::json!([
            "tcp 25 banner \"^220 \"",
            "udp 123 ntp",
            "dns 53 localhost A"
        ])
    );
    assert_eq!(
        v["state"],
        serde_json::json!(["/var/mail", "/var/lib/dovecot"])
    );
    // Under the signature: each declaration is a member meta.json lists
    // with its digest.
    let meta: serde_json::Value =
        serde_json::from_slice(&members(&std::fs::read(&b).unwrap())[0].1).unwrap();
    let digest =
        sha2::Sha256::digest(b"# where the service keeps its data\n/var/mail\n/var/lib/dovecot\n");
    let hexed: String = digest.iter().map(|x| format!("{x:02x}")).collect();
    assert_eq!(meta["members"]["conf/state"], hexed.as_str());
    // A changed declaration is a changed member: refused, like any payload.
    let mut m = members(&std::fs::read(&b).unwrap());
    m[4].1 = b"admin_password - - no longer required\n".to_vec();
    let (_d, bad) = write_bundle(&assemble(&m));
    let r = run(new_env().cmd().arg("--info").arg(&bad));
    r.assert_stderr(65, "member \"conf/params\": sha256");
    // A declaration that does not parse, listed with its right digest, is
    // refused by every reader, --verify and --extract too.
    for (member, text, why) in [
        (
            4,
            "Bad - - x\n",
            "conf/params:1: \"Bad\" is not a parameter name",
        ),
        // One secret for every machine, carried by a bundle made by hand.
        (
            4,
            "fwd - x y\nadmin_password secret changeme z\n",
            "conf/params:2: admin_password: a secret parameter has no default",
        ),
        (5, "tcp 0\n", "conf/probes:1: \"0\" is not a port"),
        (6, "/run/x\n", "conf/state:1: /run/x is under /run"),
        (
            6,
            "/var/mail\n/var/mail\n",
            "conf/state:2: /var/mail is declared twice",
        ),
    ] {
        let mut m = members(&std::fs::read(&b).unwrap());
        m[member].1 = text.as_bytes().to_vec();
        let digest = sha2::Sha256::digest(text.as_bytes());
        let hexed: String = digest.iter().map(|x| format!("{x:02x}")).collect();
        let mut meta: serde_json::Value = serde_json::from_slice(&m[0].1).unwrap();
        meta["members"][&m[member].0] = hexed.into();
        m[0].1 = serde_json::to_vec(&meta).unwrap();
        let (_d, bad) = write_bundle(&assemble(&m));
        refused_by_every_reader(&env, &bad, why);
    }
}

#[test]
fn bad_params_probes_and_state_lines_are_named_with_file_and_line() {
    let env = new_env();
    let t = env.make_dir("t");
    for e in walkdir::WalkDir::new(good("with-params")).min_depth(1) {
        let e = e.unwrap();
        let to = t.join(e.path().strip_prefix(good("with-params")).unwrap());
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&to).unwrap();
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
    std::fs::write(
        t.join("params"),
        "ok - - fine\nBad - - x\npw required,secret x y\n",
    )
    .unwrap();
    std::fs::write(t.join("probes"), "tcp 25\nicmp 1\n").unwrap();
    std::fs::write(t.join("state"), "/srv\n# c\n/srv/ftp/\n/\n").unwrap();
    let r = run(env.cmd().args(["--no-config", "--check"]).arg(&t));
    assert_eq!(r.code, 65, "{}", r.stderr);
    let p = t.display();
    assert_eq!(
        r.stderr,
        format!(
            "mkve-bundle: {p}/params:2: \"Bad\" is not a parameter name ([a-z][a-z0-9_]*, at most 64 bytes)\n\
             mkve-bundle: {p}/params:3: pw: a required parameter has no default\n\
             mkve-bundle: {p}/probes:2: \"icmp\" is not a probe kind (tcp, udp, dns, http)\n\
             mkve-bundle: {p}/state:3: \"/srv/ftp/\" is not written plainly (write it as /srv/ftp)\n\
             mkve-bundle: {p}/state:4: / is the whole root, not the service's state: name its directories\n"
        )
    );
    std::fs::remove_file(t.join("state")).unwrap();
    // A link in their place is refused, not followed.
    std::fs::remove_file(t.join("params")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", t.join("params")).unwrap();
    std::fs::write(t.join("probes"), "tcp 25\n").unwrap();
    let r = run(env.cmd().args(["--no-config", "--check"]).arg(&t));
    assert_eq!(
        (r.code, r.stderr),
        (
            65,
            format!("mkve-bundle: {p}/params: not a regular file (a symbolic link or a directory is refused)\n")
        )
    );
}

/// Issue 20, item 7: what would make every machine of a bundle the same is
/// refused at build (65), naming the file: a machine ID, D-Bus's copy of
/// one, an SSH host key. An empty or `uninitialized` machine ID (first
/// boot makes it) and a link to it are fine.
#[test]
fn a_root_holding_a_machine_identity_is_refused() {
    let env = new_env();
    let t = env.make_dir("tpl");
    for d in ["version", "packages-lists"] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    std::fs::write(t.join("hypervisors"), "lxc\n").unwrap();
    std::fs::write(t.join("version/lxc"), "template_version=1\n").unwrap();
    std::fs::write(t.join("packages-lists/lxc"), "chrony\n").unwrap();
    let build = |root: &Path| {
        let out = env.home.path().join("out.bun");
        let r = run(env
            .cmd()
            .args(["-H", "lxc", "--force-no-sign", "--rootfs"])
            .arg(root)
            .arg("-o")
            .arg(&out)
            .arg(&t));
        let made = out.exists();
        let _ = std::fs::remove_file(&out);
        (r, made)
    };
    let cases: [(&str, &[u8], Option<&str>); 6] = [
        (
            "etc/machine-id",
            b"4c4c4544004a3010804cb3c04f4d3532\n",
            Some("etc/machine-id: a machine ID"),
        ),
        (
            "var/lib/dbus/machine-id",
            b"0123456789abcdef0123456789abcdef\n",
            Some("var/lib/dbus/machine-id: a machine ID"),
        ),
        (
            "etc/ssh/ssh_host_ed25519_key",
            b"-----BEGIN OPENSSH PRIVATE KEY-----\n",
            Some("etc/ssh/ssh_host_ed25519_key: an SSH host key"),
        ),
        (
            "etc/ssh/ssh_host_rsa_key.pub",
            b"ssh-rsa AAAA\n",
            Some("etc/ssh/ssh_host_rsa_key.pub: an SSH host key"),
        ),
        ("etc/machine-id", b"", None),
        ("etc/machine-id", b"uninitialized\n", None),
    ];
    for (i, (rel, content, refused)) in cases.into_iter().enumerate() {
        let root = env.make_dir(&format!("root{i}"));
        std::fs::create_dir_all(root.join("etc/ssh")).unwrap();
        std::fs::write(root.join("etc/hostname"), "x\n").unwrap();
        std::fs::write(root.join("etc/ssh/sshd_config"), "# sshd\n").unwrap();
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        let (r, made) = build(&root);
        match refused {
            Some(why) => {
                assert_eq!(r.code, 65, "{rel}: {}", r.stderr);
                assert!(
                    r.stderr
                        .starts_with(&format!("mkve-bundle: {}/{why}", root.display()))
                        && r.stderr.contains("would be shared by every machine")
                        && r.stderr.lines().count() == 1,
                    "{rel}: {}",
                    r.stderr
                );
                assert!(!made, "{rel}: no bundle");
            }
            None => assert_eq!(r.code, 0, "{rel} {content:?}: {}", r.stderr),
        }
    }
    // D-Bus's machine ID as a link to systemd's is not one of its own.
    let root = env.make_dir("root-link");
    std::fs::create_dir_all(root.join("var/lib/dbus")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/machine-id"), "").unwrap();
    std::os::unix::fs::symlink("/etc/machine-id", root.join("var/lib/dbus/machine-id")).unwrap();
    let (r, made) = build(&root);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(made);
}

/// Issue 20, item 5: a meta.json whose fields break mkve-template(5)'s own
/// rules is refused by every reader at read (65), before anything is made,
/// the value shown escaped: a control character in the template's name,
/// in its version, in a hook's name, a package name that is not one, an
/// installed version that is not one, a date that is not RFC 3339.
#[test]
fn meta_fields_are_held_to_the_template_rules_at_read() {
    let env = new_env();
    let b = with_params_bundle(&env);
    type Edit = fn(&mut serde_json::Value);
    let cases: [(Edit, &str); 7] = [
        (
            |m| m["template"]["name"] = "ntp\u{1b}]0;owned\u{7}".into(),
            "template name \"ntp\\u{1b}]0;owned\\u{7}\"",
        ),
        (
            |m| m["template"]["name"] = "../../etc".into(),
            "template name \"../../etc\"",
        ),
        (
            |m| m["template"]["version"] = "1.0 beta".into(),
            "template_version \"1.0 beta\"",
        ),
        (
            |m| m["hooks"] = serde_json::json!(["01-root\u{0}x"]),
            "\"01-root\\0x\" is not a hook name",
        ),
        (
            |m| m["packages"]["requested"] = serde_json::json!(["chrony;reboot"]),
            "\"chrony;reboot\" is not a package name",
        ),
        (
            |m| {
                m["packages"]["installed"] =
                    serde_json::json!([{"name": "chrony", "version": "4.3\u{1b}[2J"}])
            },
            "installed package \"chrony\" \"4.3\\u{1b}[2J\"",
        ),
        (
            |m| m["created"] = "yesterday".into(),
            "created \"yesterday\" is not an RFC 3339",
        ),
    ];
    for (edit, why) in cases {
        let mut m = members(&std::fs::read(&b).unwrap());
        let mut meta: serde_json::Value = serde_json::from_slice(&m[0].1).unwrap();
        edit(&mut meta);
        m[0].1 = serde_json::to_vec_pretty(&meta).unwrap();
        let (_d, bad) = write_bundle(&assemble(&m));
        for r in refused_by_every_reader(&env, &bad, why) {
            assert!(
                !r.stderr.contains('\u{1b}') && r.stderr.lines().count() == 1,
                "{}",
                r.stderr
            );
        }
    }
}

/// The template's own name (its directory's) follows the same rule.
#[test]
fn a_template_whose_name_breaks_the_rule_is_refused() {
    let env = new_env();
    for name in ["ntp\u{1b}[2Jserver", "ntp server", "-ntp", &"n".repeat(53)] {
        let t = env.home.path().join(name);
        std::fs::create_dir_all(t.join("version")).unwrap();
        std::fs::create_dir_all(t.join("packages-lists")).unwrap();
        std::fs::write(t.join("hypervisors"), "lxc\n").unwrap();
        std::fs::write(t.join("version/lxc"), "template_version=1\n").unwrap();
        std::fs::write(t.join("packages-lists/lxc"), "chrony\n").unwrap();
        let r = run(env.cmd().args(["--no-config", "--check"]).arg(&t));
        assert_eq!(r.code, 65, "{name:?}: {}", r.stderr);
        assert!(r.stderr.contains("template name \""), "{}", r.stderr);
        assert!(!r.stderr.contains('\u{1b}'), "{}", r.stderr);
    }
}
