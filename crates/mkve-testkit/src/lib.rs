//! Helpers shared by the tools' integration tests and core's unit tests:
//! fixture paths, a clean environment for each run of a binary, a run's
//! checks (exit status and stderr, JSON on stdout), a tiny busybox root and
//! bundles built from it, a throw-away GnuPG key, a package-layer cache
//! shared by every test binary of a run (with a way to see whether
//! mmdebstrap ran), bundle rewriting for the tamper tests, and the helper
//! programs the tests run (tar, gpg, virt-xml-validate).

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The repository's top directory.
pub fn top() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn fixtures() -> PathBuf {
    top().join("tests/fixtures")
}

pub fn hooks_dir() -> PathBuf {
    fixtures().join("hooks")
}

pub fn good(name: &str) -> PathBuf {
    fixtures().join("templates/good").join(name)
}

/// Every input the fuzzers kept for `target` (`fuzz/corpus/TARGET/`) and
/// every one that crashed it (`fuzz/crashes/TARGET/`), sorted, each given
/// to `run` (the target function); its file is named on stderr first, so
/// a panic says which input it was. Panics when there is no input.
pub fn replay_fuzz_inputs(target: &str, run: impl Fn(&[u8])) {
    let fuzz = top().join("fuzz");
    let mut files: Vec<PathBuf> = ["corpus", "crashes"]
        .iter()
        .filter_map(|kind| std::fs::read_dir(fuzz.join(kind).join(target)).ok())
        .flat_map(|rd| rd.map(|e| e.unwrap().path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no input for {target} in fuzz/corpus");
    for f in files {
        let data = std::fs::read(&f).unwrap();
        // A panic names the target's check; this names the input.
        eprintln!("{}", f.display());
        run(&data);
    }
}

/// A directory that lives as long as the test process: outputs shared
/// between tests of one run. When the process ends, the GnuPG agents of the
/// homes `key` made in it are stopped and it is removed (see
/// `clean_up_at_exit`).
pub fn shared_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("mkve-tests.")
            .tempdir()
            .unwrap()
            .keep();
        clean_up_at_exit(&dir);
        dir
    })
}

/// Stop the agents of the GnuPG homes under `dir` (`gnupg-*`, as `key`
/// names them) and remove `dir` when this process ends, however it ends: a
/// failed test, ^C or a kill included. Statics are never dropped, and libtest ends with
/// `exit`, so a shell started here does it: it waits for the end of a pipe
/// that only this process holds (close-on-exec, so no child inherits it),
/// which the kernel closes when the process is gone.
fn clean_up_at_exit(dir: &Path) {
    let script = r#"trap '' INT TERM HUP
cat >/dev/null
for home in "$1"/gnupg-*/; do
    [ -d "$home" ] || continue
    gpgconf --homedir "$home" --kill all
    gpgconf --homedir "$home" --remove-socketdir
done
rm -rf --one-file-system "$1"
"#;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg("mkve-tests-clean-up")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // This shell outlives every test: it must hold no descriptor but its
    // own three. Another thread may have made pipes that are not
    // close-on-exec at the moment of the fork (gpgme does, for the gpg it
    // runs); kept here, they would never reach their end of file and that
    // thread would wait forever (it hung a CI run).
    // SAFETY: close_range is a system call, async-signal-safe; nothing else
    // runs between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            Ok(())
        });
    }
    let child = cmd.spawn().expect("sh runs");
    // Never waited for (it outlives us), and its stdin never written to nor
    // closed by us: the write end lives until the process exits.
    std::mem::forget(child);
}

/// Stop the GnuPG agent of `home`, if one runs (`gpgconf --kill` does not
/// start one), and remove the directory of its sockets where that is not
/// `home` itself (/run/user/UID/gnupg/d.*, when /run/user/UID exists).
fn kill_gpg_agent(home: &Path) {
    if home.is_dir() {
        for what in [&["--kill", "all"][..], &["--remove-socketdir"]] {
            let _ = Command::new("gpgconf")
                .arg("--homedir")
                .arg(home)
                .args(what)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs of one binary with their own HOME (no user config), data and
/// config directories, and GnuPG home. The data directory has the
/// repository's hypervisor package sets; the package-layer cache is the one
/// shared by the whole test run (see `layer_cache`).
pub struct Env {
    pub home: tempfile::TempDir,
    bin: PathBuf,
}

impl Env {
    pub fn new(bin: &str) -> Env {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join("share")).unwrap();
        symlink(
            top().join("hypervisors"),
            home.path().join("share/hypervisors"),
        )
        .unwrap();
        Env {
            home,
            bin: PathBuf::from(bin),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        let h = self.home.path();
        let cache = layer_cache();
        c.env_clear()
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    cache.wrappers.display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .env("HOME", h)
            .env("MKVE_DATADIR", h.join("share"))
            .env("MKVE_CONFDIR", h.join("etc"))
            .env("MKVE_CACHEDIR", &cache.dir)
            // What a fetch remembers of each directory, among the rest:
            // the test's own, whoever runs it.
            .env("MKVE_STATEDIR", h.join("state"))
            .env("XDG_CACHE_HOME", h.join("cache"))
            .env("MKVE_LOCKDIR", cache.dir.join("locks"))
            .env("MKVE_TEST_MMDEBSTRAP_LOG", h.join("mmdebstrap.log"))
            .env("GNUPGHOME", h.join("no-gnupg"))
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("TMPDIR", std::env::temp_dir())
            .stdin(Stdio::null());
        c
    }

    /// The same, with the repository's shipped templates, hooks and
    /// hypervisor sets as the data directory.
    pub fn shipped(&self) -> Command {
        let mut c = self.cmd();
        c.env("MKVE_DATADIR", top());
        c
    }

    /// A new directory `name` in the home.
    pub fn make_dir(&self, name: &str) -> PathBuf {
        let dir = self.home.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        dir
    }

    /// mkve-bundle, run by `c` (a command of this `Env`, with the options
    /// it has), building the fixture template `template` from the busybox
    /// root, with the fixture hooks, into `name` in the home: the run and
    /// the bundle's path.
    pub fn build_from_busybox(
        &self,
        c: &mut Command,
        template: &str,
        name: &str,
    ) -> (Run, PathBuf) {
        let out = self.home.path().join(name);
        let r = run(c
            .args(busybox_build_args())
            .arg("-o")
            .arg(&out)
            .arg(good(template)));
        (r, out)
    }

    /// The fixture template ntp-server built for hypervisor `hv` from the
    /// busybox root into `name` in the home: signed by [`signer`] when
    /// `signed`, else with `--force-no-sign`. Asserts the build succeeded;
    /// the bundle's path.
    pub fn ntp_bundle(&self, hv: &str, name: &str, signed: bool) -> PathBuf {
        let mut c = self.cmd();
        c.args(["-H", hv]);
        if signed {
            c.env("GNUPGHOME", &signer().home);
        } else {
            c.arg("--force-no-sign");
        }
        let (r, out) = self.build_from_busybox(&mut c, "ntp-server", name);
        assert_eq!(r.code, 0, "{}", r.stderr);
        out
    }

    /// `mkve-bundle --extract BUNDLE -C DEST --allow-unsigned` run by a
    /// command of this `Env`; asserts it succeeded.
    pub fn extract(&self, bundle: &Path, dest: &Path) {
        run_ok(
            self.cmd()
                .arg("--extract")
                .arg(bundle)
                .arg("-C")
                .arg(dest)
                .arg("--allow-unsigned"),
        );
    }

    pub fn write_config(&self, text: &str) -> PathBuf {
        let p = self.home.path().join(".mkve/bundle-config");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Env {
    /// GnuPG (through gpgme in the binary) may have made the home `cmd`
    /// names and started an agent there.
    fn drop(&mut self) {
        kill_gpg_agent(&self.home.path().join("no-gnupg"));
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub raw_stdout: Vec<u8>,
}

pub fn run(c: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = c.output().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        raw_stdout: stdout,
    }
}

impl Run {
    /// Fail unless the run exited with `code` and its stderr contains
    /// `part`; the message shows its stderr.
    #[track_caller]
    pub fn assert_stderr(&self, code: i32, part: &str) {
        assert_eq!(self.code, code, "{}", self.stderr);
        assert!(self.stderr.contains(part), "{}", self.stderr);
    }
}

/// Run `c`, which must succeed (exit 0; the message shows its stderr).
#[track_caller]
pub fn run_ok(c: &mut Command) -> Run {
    let r = run(c);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r
}

/// Run `c`, which must succeed, and read its stdout as JSON.
#[track_caller]
pub fn run_json(c: &mut Command) -> serde_json::Value {
    serde_json::from_str(&run_ok(c).stdout).unwrap()
}

/// `mkve-bundle --info BUNDLE EXTRA…` run by `env` (an `Env` of
/// mkve-bundle), as JSON.
#[track_caller]
pub fn bundle_info(env: &Env, bundle: &Path, extra: &[&str]) -> serde_json::Value {
    run_json(env.cmd().arg("--info").arg(bundle).args(extra))
}

/// mkve-bundle's options to build from the busybox root (no packages)
/// with the fixture hooks.
pub fn busybox_build_args() -> [String; 4] {
    [
        "--hooks".into(),
        hooks_dir().display().to_string(),
        "--rootfs".into(),
        busybox_root().display().to_string(),
    ]
}

/// The names in `dir`, sorted: what a run left there.
pub fn dir_names(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    names
}

/// A temporary directory holding the file `name` with `contents`, and
/// the file's path.
pub fn temp_file(name: &str, contents: impl AsRef<[u8]>) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(name);
    std::fs::write(&p, contents).unwrap();
    (d, p)
}

/// A temporary directory holding `name`, a symbolic link to `bin`: the
/// binary run under another name (mkve-cache as hsh-pack).
pub fn linked_as(bin: &str, name: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let link = d.path().join(name);
    symlink(bin, &link).unwrap();
    (d, link)
}

/// The stdout of `c`, a program the tests use (tar, gpg…), which must
/// succeed.
#[track_caller]
/// The first fingerprint in a `gpg --with-colons` listing (field 10 of
/// its first `fpr` record).
pub fn first_fingerprint(colons: &[u8]) -> String {
    String::from_utf8_lossy(colons)
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .unwrap()
        .to_string()
}

pub fn output_of(c: &mut Command) -> Vec<u8> {
    let out = output_within(c, std::time::Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Run `c` to its end as `output()` does, but kill it and fail the test
/// when it runs longer than `limit`: a stuck tool (a GnuPG agent that never
/// answers) fails the test, naming the command, instead of hanging the run.
#[track_caller]
pub fn output_within(c: &mut Command, limit: std::time::Duration) -> std::process::Output {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{c:?}: {e}"));
    // Read in threads that send what they read: a process the command
    // left behind (a daemon) may hold the pipes after it ends.
    let read = |r: Option<Box<dyn std::io::Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            let _ = tx.send(buf);
        });
        rx
    };
    let out = read(child.stdout.take().map(|r| Box::new(r) as _));
    let err = read(child.stderr.take().map(|r| Box::new(r) as _));
    let start = std::time::Instant::now();
    let late = || -> ! {
        panic!("{c:?} ran for over {} s: killed", limit.as_secs());
    };
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            late();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let collect = |rx: std::sync::mpsc::Receiver<Vec<u8>>| {
        rx.recv_timeout(limit.saturating_sub(start.elapsed()))
            .unwrap_or_else(|_| {
                panic!("{c:?} ended but something it started still holds its output")
            })
    };
    let (stdout, stderr) = (collect(out), collect(err));
    std::process::Output {
        status,
        stdout,
        stderr,
    }
}

/// Fail unless virt-xml-validate accepts `xml` as a libvirt `kind`
/// (`domain`, `network`).
#[track_caller]
pub fn assert_valid_libvirt_xml(kind: &str, xml: &str) {
    let (_d, f) = temp_file(&format!("{kind}.xml"), xml);
    let out = Command::new("virt-xml-validate")
        .arg(&f)
        .arg(kind)
        .output()
        .expect("virt-xml-validate (libvirt-clients) is installed by scripts/deps");
    assert!(
        out.status.success(),
        "{}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run `c` with its stdout a pipe whose reading end is already closed,
/// as in `c | head -0`: every write it makes fails with EPIPE.
pub fn run_with_closed_stdout(c: &mut Command) -> Run {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = c
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        raw_stdout: Vec::new(),
    }
}

/// A root with busybox as /bin/sh and a few applets, a dpkg database and
/// a device node, made once per test run.
pub fn busybox_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let r = shared_dir().join("busybox-root");
        for d in ["bin", "etc", "tmp", "root", "var/lib/dpkg", "dev"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        let busybox = ["/usr/bin/busybox", "/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        std::fs::copy(
            busybox.expect("busybox-static is installed"),
            r.join("bin/busybox"),
        )
        .unwrap();
        for applet in ["sh", "cat", "echo", "ls"] {
            symlink("busybox", r.join("bin").join(applet)).unwrap();
        }
        std::fs::write(r.join("etc/hostname"), "template\n").unwrap();
        std::fs::write(
            r.join("var/lib/dpkg/status"),
            "Package: chrony\nStatus: install ok installed\nVersion: 4.3-2+deb12u1\n\n\
             Package: busybox-static\nStatus: install ok installed\nVersion: 1:1.35.0-4\n",
        )
        .unwrap();
        let null = r.join("dev/null");
        let st = Command::new("mknod")
            .arg(&null)
            .args(["c", "1", "3"])
            .status()
            .unwrap();
        assert!(
            st.success(),
            "mknod needs root: these tests run as root, as CI does"
        );
        r
    })
}

/// A throw-away GnuPG home with an unprotected signing key, and that key
/// exported as a keyring file. Dropping it stops the home's agent; the
/// agents of keys that are never dropped (`signer`, `stranger`) are stopped
/// when the test process ends.
pub struct Key {
    pub home: PathBuf,
    pub keyring: PathBuf,
    pub fingerprint: String,
}

pub fn key(name: &str) -> Key {
    let home = shared_dir().join(format!("gnupg-{name}"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        output_of(
            Command::new("gpg")
                .arg("--homedir")
                .arg(&home)
                .args(["--batch", "--quiet"])
                .args(args),
        )
    };
    gpg(&[
        "--passphrase",
        "",
        "--quick-gen-key",
        &format!("{name} <{name}@example.invalid>"),
        "ed25519",
        "sign",
        "never",
    ]);
    let fingerprint = first_fingerprint(&gpg(&["--with-colons", "--list-secret-keys"]));
    let keyring = shared_dir().join(format!("{name}.gpg"));
    std::fs::write(&keyring, gpg(&["--export"])).unwrap();
    Key {
        home,
        keyring,
        fingerprint,
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        kill_gpg_agent(&self.home);
    }
}

pub fn signer() -> &'static Key {
    static K: OnceLock<Key> = OnceLock::new();
    K.get_or_init(|| key("signer"))
}

pub fn stranger() -> &'static Key {
    static K: OnceLock<Key> = OnceLock::new();
    K.get_or_init(|| key("stranger"))
}

/// The members of a bundle (outer tar) in order.
pub fn members(bundle: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut ar = tar::Archive::new(bundle);
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            (name, data)
        })
        .collect()
}

/// The names of a bundle's members, in their order.
pub fn member_names(bundle: &[u8]) -> Vec<String> {
    members(bundle).into_iter().map(|m| m.0).collect()
}

/// An outer tar with these members, in this order.
pub fn assemble(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1);
        h.set_uid(0);
        h.set_gid(0);
        // Raw names, so tests can write what tar's own checks would refuse.
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The package-layer cache of a test run: kept under cargo's target
/// directory, so every test binary (and a later run on the same machine)
/// reuses the roots mmdebstrap made. `mmdebstrap` is found first in
/// `wrappers`, a script that appends its arguments to the log of the `Env`
/// that ran it and runs the real one, so a test can see whether a build
/// ran it.
pub struct LayerCache {
    pub dir: PathBuf,
    pub wrappers: PathBuf,
}

pub fn layer_cache() -> &'static LayerCache {
    static C: OnceLock<LayerCache> = OnceLock::new();
    C.get_or_init(|| {
        // target/<profile>/deps/<test binary> → target/tmp/mkve-layer-cache
        let exe = std::env::current_exe().unwrap();
        let target = exe.ancestors().nth(3).unwrap().to_path_buf();
        let dir = target.join("tmp/mkve-layer-cache");
        let wrappers = shared_dir().join("wrappers");
        std::fs::create_dir_all(&wrappers).unwrap();
        let real = ["/usr/bin/mmdebstrap", "/bin/mmdebstrap"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let real = real.expect("mmdebstrap is installed (scripts/deps)");
        let script = format!(
            "#!/bin/sh\necho \"$*\" >> \"$MKVE_TEST_MMDEBSTRAP_LOG\"\nexec {real} \"$@\"\n"
        );
        let w = wrappers.join("mmdebstrap");
        std::fs::write(&w, script).unwrap();
        std::fs::set_permissions(&w, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        LayerCache { dir, wrappers }
    })
}

impl Env {
    /// How many times the runs of this `Env` have run mmdebstrap.
    pub fn mmdebstrap_runs(&self) -> usize {
        let log = self.home.path().join("mmdebstrap.log");
        std::fs::read_to_string(log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }
}

/// The subcommands a binary's `--help` lists under "Commands:", without
/// `help`.
pub fn subcommands(bin: &str) -> Vec<String> {
    subcommands_of(bin, &[])
}

/// The subcommands `BIN ARGS... --help` lists (`mkve-vm ganeti`'s).
pub fn subcommands_of(bin: &str, args: &[&str]) -> Vec<String> {
    let o = Command::new(bin).args(args).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    text.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

/// The long options a binary's `--help` lists, for itself and each of its
/// subcommands (`BIN SUB --help`, and `BIN SUB SUB2 --help`); `--help` and `--version` left out.
pub fn help_options(bin: &str) -> std::collections::BTreeSet<String> {
    let mut helps = vec![vec!["--help".to_string()]];
    for s in subcommands(bin) {
        // And theirs, one level down (mkve-vm ganeti sync).
        for n in subcommands_of(bin, &[&s]) {
            helps.push(vec![s.clone(), n, "--help".to_string()]);
        }
        helps.push(vec![s, "--help".to_string()]);
    }
    let mut out = std::collections::BTreeSet::new();
    for args in helps {
        let o = Command::new(bin).args(&args).output().unwrap();
        assert!(o.status.success(), "{bin} {args:?}");
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            // Option lines: "  -c, --connect <URI>  ..." or "      --json  ...".
            let t = line.trim_start();
            if !t.starts_with('-') {
                continue;
            }
            let first = t.split("  ").next().unwrap_or("");
            for w in first.split([' ', ',', '=', '[', '<']) {
                if w.starts_with("--") && w.len() > 2 && w != "--help" && w != "--version" {
                    out.insert(w.to_string());
                }
            }
        }
    }
    out
}

/// The long options a man page names, as `\-\-name`; `--help` and
/// `--version` left out.
pub fn man_options(page: &Path) -> std::collections::BTreeSet<String> {
    let text = std::fs::read_to_string(page).unwrap();
    let mut out = std::collections::BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("\\-\\-") {
        rest = &rest[i + 4..];
        let name: String = rest
            .chars()
            .scan(false, |dash, c| {
                // A name is letters and digits joined by "\-".
                if c.is_ascii_lowercase() || c.is_ascii_digit() {
                    *dash = false;
                    Some(Some(c))
                } else if c == '\\' && !*dash {
                    *dash = true;
                    Some(None)
                } else if c == '-' && *dash {
                    *dash = false;
                    Some(Some('-'))
                } else {
                    None
                }
            })
            .flatten()
            .collect();
        let name = name.trim_end_matches('-');
        if !name.is_empty() && name != "help" && name != "version" {
            out.insert(format!("--{name}"));
        }
    }
    out
}

/// Fail, listing both ways, when a binary's options and its man page's
/// disagree. `foreign` names options the page mentions of other programs.
pub fn assert_man_matches_help(bin: &str, page: &str, foreign: &[&str]) {
    let help = help_options(bin);
    let mut man = man_options(&top().join("man").join(page));
    for f in foreign {
        assert!(
            man.remove(*f),
            "{page} no longer mentions {f}: drop it from the list"
        );
    }
    let undocumented: Vec<_> = help.difference(&man).collect();
    let stale: Vec<_> = man.difference(&help).collect();
    assert!(
        undocumented.is_empty() && stale.is_empty(),
        "{page}: options the binary has but the page lacks: {undocumented:?}; \
         options the page names but the binary lacks: {stale:?}"
    );
    let text = std::fs::read_to_string(top().join("man").join(page)).unwrap();
    for sub in subcommands(bin) {
        // Set in bold somewhere: ".B sub", ".BR start \", \" stop".
        let bold = text.lines().filter(|l| l.starts_with(".B")).any(|l| {
            l.split(|c: char| c.is_whitespace() || c == '"' || c == ',')
                .skip(1)
                .any(|w| w == sub)
        });
        assert!(bold, "{page} does not describe the subcommand {sub}");
    }
}

/// What the shell completion of `bin` offers for the last of `words` (the
/// first word being the command's name), as bash asks for it.
pub fn complete(bin: &str, words: &[&str], env: &[(&str, &Path)]) -> Vec<String> {
    let mut c = Command::new(bin);
    c.env("COMPLETE", "bash")
        .env("_CLAP_IFS", "\n")
        .env("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string())
        .env("_CLAP_COMPLETE_COMP_TYPE", "9")
        .env("_CLAP_COMPLETE_SPACE", "true")
        .arg("--")
        .args(words);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// `python3 -m http.server` serving a directory on 127.0.0.1, at a port
/// that was free, until dropped (or until the thread that started it
/// ends: it is killed then, so a test killed or panicking leaves none).
pub struct HttpServer {
    child: std::process::Child,
    pub port: u16,
}

/// The path of the HTTP request read from `s` up to the end of its head
/// (the blank line): `/x` of `GET /x HTTP/1.1`; `None` when the client
/// closed or failed before sending a whole head.
pub fn request_path(s: &mut impl std::io::Read) -> Option<String> {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&req);
    Some(text.split(' ').nth(1).unwrap_or("").to_string())
}

/// A port on 127.0.0.1 that was free a moment ago (nothing listens there).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl HttpServer {
    /// Serve `dir`; returns once the server accepts connections.
    pub fn serve(dir: &Path) -> HttpServer {
        // Another process may take the port between our look and python's
        // bind: then python ends, and another port is tried.
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = Command::new("python3");
            cmd.args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
                .arg(dir)
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: prctl and close_range are system calls,
            // async-signal-safe; nothing else runs between fork and exec.
            // The server dies with the thread that started it, and holds
            // no descriptor another thread made meanwhile (see
            // clean_up_at_exit).
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                    Ok(())
                });
            }
            let mut child = cmd.spawn().expect("python3 runs");
            if listening(&mut child, port) {
                return HttpServer { child, port };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("python3 -m http.server did not start on 127.0.0.1");
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

/// Whether `child` listens on `port` within 5 s (false once it ended).
fn listening(child: &mut std::process::Child, port: u16) -> bool {
    for _ in 0..100 {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fixture feed (tests/fixtures/debsecan/bookworm.txt) compressed as
/// debsecan reads it, as `bookworm` in a new directory: the directory
/// (debsecan's `--source`, as file://DIR/) and the feed file.
pub fn debsecan_feed() -> (tempfile::TempDir, PathBuf) {
    use std::io::Write;
    let text = std::fs::read(fixtures().join("debsecan/bookworm.txt")).unwrap();
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&text).unwrap();
    let d = tempfile::tempdir().unwrap();
    let feed = d.path().join("bookworm");
    std::fs::write(&feed, z.finish().unwrap()).unwrap();
    (d, feed)
}

/// What Debian's debsecan finds with the feed in `dir` (see
/// `debsecan_feed`) for the dpkg status file `status`: (CVE, binary
/// package) pairs.
pub fn debsecan_findings(
    dir: &Path,
    status: &Path,
) -> std::collections::BTreeSet<(String, String)> {
    let out = Command::new("debsecan")
        .args(["--suite", "bookworm", "--format", "summary", "--source"])
        .arg(format!("file://{}/", dir.display()))
        .arg("--status")
        .arg(status)
        .output()
        .expect("debsecan is installed (scripts/deps)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect()
}

/// The `fileName` of each file an SPDX 2.3 JSON document lists, in order.
pub fn spdx_file_names(doc: &serde_json::Value) -> Vec<&str> {
    let files = doc["files"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    files
        .iter()
        .filter_map(|f| f["fileName"].as_str())
        .collect()
}

/// The (CVE, package) pairs of `mkve-bundle --audit --json`'s output.
pub fn audit_pairs(json: &str) -> std::collections::BTreeSet<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["cve"].as_str().unwrap().to_string(),
                f["package"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The package [`install_test_rpm`] puts in a root's rpm database: its
/// name, `EPOCH:VERSION-RELEASE`, architecture, packager and one file.
pub const TEST_RPM: (&str, &str, &str, &str, &str) = (
    "mkve-sbom-test",
    "3:1.2-alt1",
    "noarch",
    "Test Person <t@example.invalid>",
    "/usr/share/mkve-sbom-test/f",
);

/// Put [`TEST_RPM`], a package rpmbuild makes, into the rpm database of
/// `root` (`var/lib/rpm`) with rpm itself (`--justdb`: no file of it is
/// written, no script runs), as on an ALT root. Needs rpm and rpmbuild
/// (scripts/deps installs them).
pub fn install_test_rpm(root: &Path) {
    let (name, _, arch, packager, file) = TEST_RPM;
    let work = tempfile::tempdir().unwrap();
    let spec = work.path().join("t.spec");
    let dir = Path::new(file).parent().unwrap().display().to_string();
    std::fs::write(
        &spec,
        format!(
            "Name: {name}\nVersion: 1.2\nRelease: alt1\nEpoch: 3\nSummary: t\nLicense: GPL\n\
             Packager: {packager}\nBuildArch: {arch}\n%description\nt\n\
             %install\nmkdir -p %{{buildroot}}{dir}\necho hi > %{{buildroot}}{file}\n\
             %files\n{file}\n"
        ),
    )
    .unwrap();
    let top = work.path().join("top");
    // Its scriptlets' files in the work directory too, not /var/tmp.
    let r = run(Command::new("rpmbuild")
        .arg("-bb")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("--define")
        .arg(format!("_tmppath {}", work.path().display()))
        .arg(&spec));
    assert_eq!(r.code, 0, "rpmbuild: {}", r.stderr);
    let rpm = top.join(format!("RPMS/{arch}/{name}-1.2-alt1.{arch}.rpm"));
    let r = run(Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args([
            "--dbpath",
            "/var/lib/rpm",
            "-i",
            "--justdb",
            "--nodeps",
            "--noscripts",
        ])
        .arg(&rpm));
    assert_eq!(r.code, 0, "rpm -i --justdb: {}", r.stderr);
}
