//! What hooks may not do to the build or the host: leave processes
//! running, leave mounts, start services; and a hook whose interpreter the
//! root lacks is refused by name. Each hook runs in a template made here,
//! built from the busybox root (chroot: root).

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mkve_testkit::*;

/// A template for lxc whose one hook is `script`.
fn template_with_hook(dir: &Path, script: &str) -> PathBuf {
    let t = dir.join("tpl");
    for d in ["hooks", "hooks-lists", "version", "packages-lists"] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    std::fs::write(t.join("hypervisors"), "lxc\n").unwrap();
    std::fs::write(t.join("version/lxc"), "template_version=1\n").unwrap();
    std::fs::write(t.join("packages-lists/lxc"), "chrony\n").unwrap();
    std::fs::write(t.join("hooks-lists/lxc"), "10-hook\n").unwrap();
    let hook = t.join("hooks/10-hook");
    std::fs::write(&hook, script).unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    t
}

/// mkve-bundle building `template` for lxc from the busybox root to `out`.
fn build_cmd(env: &Env, template: &Path, out: &Path) -> std::process::Command {
    let mut c = env.cmd();
    c.args(["-H", "lxc", "--force-no-sign", "--rootfs"])
        .arg(busybox_root())
        .arg("-o")
        .arg(out)
        .arg(template);
    c
}

/// Build the template with the hook `script`; the run, the output path.
fn build_with_hook(env: &Env, script: &str) -> (Run, PathBuf) {
    let t = template_with_hook(env.home.path(), script);
    let out = env.home.path().join("out.bun");
    (run(&mut build_cmd(env, &t, &out)), out)
}

fn new_env() -> Env {
    Env::new(env!("CARGO_BIN_EXE_mkve-bundle"))
}

/// The paths of a bundle's root.
fn root_listing(bundle: &Path) -> Vec<String> {
    let bytes = std::fs::read(bundle).unwrap();
    let rootfs = members(&bytes)
        .into_iter()
        .find(|(n, _)| n == "rootfs.tar.zst")
        .unwrap()
        .1;
    let tar = zstd::decode_all(&rootfs[..]).unwrap();
    let mut a = tar::Archive::new(&tar[..]);
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root"]
fn processes_a_hook_leaves_are_killed_and_named() {
    let env = new_env();
    let start = Instant::now();
    let (r, out) = build_with_hook(
        &env,
        "#!/bin/sh\nsleep 313 &\nsleep 317 </dev/null >/dev/null 2>&1 &\necho started\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(out.is_file());
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "the build does not wait for the hook's children"
    );
    // Named by PID and command (busybox may still be starting them: its
    // applets run as "exe" until they exec).
    assert!(
        r.stderr
            .contains("hook \"10-hook\" left processes running; they were killed: "),
        "{}",
        r.stderr
    );
    let ps = std::process::Command::new("pgrep")
        .args(["-f", "^sleep 31[37]$"])
        .output()
        .unwrap();
    assert!(ps.stdout.is_empty(), "nothing is left running: {ps:?}");
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root"]
fn a_mount_a_failing_hook_leaves_is_gone_and_the_host_untouched() {
    let env = new_env();
    // A directory of the host's, and a hook that mounts a tmpfs on the
    // root's /mnt, writes there, then fails.
    let host = env.make_dir("host-data");
    std::fs::write(host.join("precious"), "keep me").unwrap();
    let (r, out) = build_with_hook(
        &env,
        "#!/bin/sh\nmkdir -p /mnt/t\nmount -t tmpfs none /mnt/t\necho x > /mnt/t/file\nexit 1\n",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(!out.exists(), "no bundle");
    assert!(host.join("precious").exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains("/mnt/t "),
        "the hook's tmpfs did not outlive it"
    );
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name().to_string_lossy().starts_with("mkve-bundle.")
                && e.path().join("root/mnt/t").exists()
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "the work root is removed: {leftovers:?}"
    );
}

/// Issue 20, item 0: a directory of the host bind-mounted from outside
/// onto the work root's `mnt/` (the same file system: the same device
/// number) while a hook runs, and the hook then fails: the build's
/// clean-up empties nothing of it, names the mount point it left, and
/// removes the rest.
#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root, bind mounts"]
fn a_bind_mount_made_into_the_work_root_while_a_hook_runs_is_not_emptied() {
    use nix::mount::{mount, umount, MsFlags};
    let env = new_env();
    let host = env.make_dir("host-data");
    std::fs::create_dir(host.join("sub")).unwrap();
    std::fs::write(host.join("precious"), "keep me").unwrap();
    std::fs::write(host.join("sub/also"), "keep me too").unwrap();
    let tmp = env.make_dir("tmp");
    let t = template_with_hook(
        env.home.path(),
        "#!/bin/sh
: >/started
while [ ! -e /go ]; do sleep 0.1; done
exit 1
",
    );
    let out = env.home.path().join("out.bun");
    let mut c = build_cmd(&env, &t, &out);
    let child = c
        .env("TMPDIR", &tmp)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let root = loop {
        let found = std::fs::read_dir(&tmp).unwrap().flatten().find_map(|e| {
            let r = e.path().join("root");
            r.join("started").exists().then_some(r)
        });
        if let Some(r) = found {
            break r;
        }
        assert!(Instant::now() < deadline, "the hook never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mnt = root.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    mount(
        Some(&host),
        &mnt,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    std::fs::write(root.join("go"), "").unwrap();
    let r = child.wait_with_output().unwrap();
    let kept = host.join("precious").exists() && host.join("sub/also").exists();
    let _ = umount(&mnt);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{stderr}");
    assert!(
        kept,
        "nothing of the bind-mounted directory is removed: {stderr}"
    );
    assert!(!out.exists(), "no bundle");
    assert!(
        stderr.contains(&format!("{} is a mount point", mnt.display())),
        "the mount point left is named: {stderr}"
    );
    assert!(
        !root.join("bin").exists(),
        "the rest of the work root is removed"
    );
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root"]
fn services_cannot_start_while_hooks_run_and_the_guards_are_not_packed() {
    let env = new_env();
    let (r, out) = build_with_hook(
        &env,
        "#!/bin/sh\nset -e\ntest -x /usr/sbin/policy-rc.d\n\
         /usr/sbin/policy-rc.d && exit 9 || test $? = 101\n\
         test -d /proc/self\necho ok\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let listing = root_listing(&out);
    assert!(
        !listing.iter().any(|p| p.contains("policy-rc.d")),
        "policy-rc.d is taken out before packing"
    );
    assert!(
        !listing
            .iter()
            .any(|p| p.contains("/proc/") && p.len() > "./proc/".len() + 1),
        "nothing of /proc is packed"
    );
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root"]
fn a_hook_whose_interpreter_the_root_lacks_is_named() {
    let env = new_env();
    for interp in ["/usr/bin/python3", "/usr/bin/perl -w"] {
        let (r, _) = build_with_hook(&env, &format!("#!{interp}\nprint(1)\n"));
        assert_eq!(r.code, 65, "{}", r.stderr);
        let name = interp.split(' ').next().unwrap();
        assert!(
            r.stderr.contains(&format!(
                "10-hook:1: the interpreter {name} is not in the root"
            )),
            "{}",
            r.stderr
        );
    }
}

#[test]
#[ignore = "needs root: hooks run by chroot in a busybox root"]
fn a_build_killed_during_a_hook_leaves_nothing_running_and_its_work_root_is_swept() {
    let env = new_env();
    let tmp = env.make_dir("tmp");
    let t = template_with_hook(env.home.path(), "#!/bin/sh\nsleep 302\n");
    let mut child = build_cmd(&env, &t, &env.home.path().join("killed.bun"))
        .env("TMPDIR", &tmp)
        .spawn()
        .unwrap();
    let sleeping = || {
        let o = std::process::Command::new("pgrep")
            .args(["-f", "^sleep 302$"])
            .output()
            .unwrap();
        !o.stdout.is_empty()
    };
    let start = Instant::now();
    while !sleeping() {
        assert!(start.elapsed() < Duration::from_secs(60), "the hook ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed = Instant::now();
    while sleeping() {
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "the hook dies with the build"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = |tmp: &Path| {
        std::fs::read_dir(tmp)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("mkve-bundle."))
            .count()
    };
    assert_eq!(left(&tmp), 1, "the killed build's work root is there");
    assert!(!env.home.path().join("killed.bun").exists());
    // Once it is old enough to be sure no run is about to lock it, the
    // next build sweeps it.
    std::thread::sleep(mkve_core::scratch::SWEEP_AGE + Duration::from_secs(1));
    let t2 = template_with_hook(&env.home.path().join("2"), "#!/bin/sh\ntrue\n");
    let r = run(build_cmd(&env, &t2, &env.home.path().join("next.bun")).env("TMPDIR", &tmp));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(left(&tmp), 0, "swept, and the new one removed");
}
