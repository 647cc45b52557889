//! Running hooks and shell commands inside a root (chroot; root privileges).
//!
//! Each hook is copied into a staging directory `/.mkve-hooks` at the top
//! of the root (never below a directory that could be a symlink), with the
//! template's `conf/<hv>/` beside it, and run there with a clean
//! environment. The staging directory is removed afterwards, whether the
//! hooks succeeded or not. The environment hooks see is documented in
//! mkve-template(5).
//!
//! Each hook and command runs in mount and PID namespaces of its own
//! (util-linux unshare(1), as bubblewrap's `--unshare-pid` does), with
//! /proc of its own mounted in the root: what it mounts disappears with it,
//! and when it ends the kernel kills whatever it left running (a daemon, a
//! `sleep &`), which is named on stderr. A hook killed with mkve takes its
//! namespace with it. While they run, services cannot start: a deny-all
//! `/usr/sbin/policy-rc.d` and a do-nothing `start-stop-daemon` stand in
//! the root, as mmdebstrap does during its own run, and are taken out
//! again before the root is packed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::exec::{Cmd, Report};
use crate::template::Hook;

/// Where hooks and conf/ are staged, relative to the root.
pub const STAGE: &str = ".mkve-hooks";

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs as PID 1 of the hook's namespaces, inside the root: runs the hook
/// as its child, then names every process still there (the kernel kills
/// them when this ends) and exits with the hook's status.
const INIT: &str = r#""$@"
status=$?
for d in /proc/[0-9]*; do
    [ "${d#/proc/}" = 1 ] && continue
    { read -r comm < "$d/comm"; } 2>&- || continue
    echo "mkve-left-running: ${d#/proc/} $comm" >&2
done
exit $status"#;

/// The line INIT prints for each process it leaves to be killed.
const LEFT: &str = "mkve-left-running: ";

/// What stops services from starting in a root while hooks run:
/// policy-rc.d(8) saying no to every action, and start-stop-daemon doing
/// nothing (the real one kept beside it as `.REAL`), as mmdebstrap does.
const POLICY_RC_D: &str = "usr/sbin/policy-rc.d";
const SSD: &str = "/sbin/start-stop-daemon";
const DENY_ALL: &str = "#!/bin/sh\n# mkve: no services start while hooks run\nexit 101\n";
const FAKE_SSD: &str =
    "#!/bin/sh\necho \"Warning: Fake start-stop-daemon called, doing nothing\" >&2\nexit 0\n";

/// A root prepared for running hooks in; the staging directory goes away
/// when this is dropped.
pub struct Chroot<'r> {
    report: &'r dyn Report,
    root: PathBuf,
    stage: PathBuf,
    env: Vec<(String, String)>,
    /// What `new` put in the root, taken out again when dropped.
    made_dirs: Vec<PathBuf>,
    made_policy: bool,
    moved_ssd: Option<PathBuf>,
}

impl<'r> Chroot<'r> {
    /// Prepare `root`; `env` is added to the hooks' environment and `conf`,
    /// when given, is copied to `/.mkve-hooks/conf` (`$MKVE_CONF`).
    pub fn new(
        root: &Path,
        env: &[(&str, &str)],
        conf: Option<&Path>,
        report: &'r dyn Report,
    ) -> Result<Chroot<'r>> {
        if !nix::unistd::geteuid().is_root() {
            return Err(Error::Unavailable {
                what: "chroot".into(),
                why: "running hooks inside a root needs root privileges".into(),
            });
        }
        let stage = root.join(STAGE);
        std::fs::create_dir(&stage).map_err(|e| {
            let why = if e.kind() == std::io::ErrorKind::AlreadyExists {
                format!(
                    "{} already exists in the root (left by an earlier run?): remove it",
                    STAGE
                )
            } else {
                e.to_string()
            };
            Error::Io {
                path: root.to_path_buf(),
                source: std::io::Error::other(why),
            }
        })?;
        let mut c = Chroot {
            report,
            root: root.to_path_buf(),
            stage,
            env: Vec::new(),
            made_dirs: Vec::new(),
            made_policy: false,
            moved_ssd: None,
        };
        c.guard()?;
        std::fs::create_dir(c.stage.join("hooks")).at(&c.stage)?;
        c.env = [
            ("PATH", PATH),
            ("HOME", "/root"),
            ("LC_ALL", "C.UTF-8"),
            ("DEBIAN_FRONTEND", "noninteractive"),
            ("MKVE_ROOT", "/"),
        ]
        .iter()
        .chain(env)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if let Some(conf) = conf {
            let how = crate::files::CopyTree {
                modes_only: true,
                ..Default::default()
            };
            crate::files::copy_tree(conf, &c.stage.join("conf"), how)
                .report(report)
                .run_checked()?;
            c.env.push(("MKVE_CONF".into(), format!("/{STAGE}/conf")));
        }
        Ok(c)
    }

    /// Put /proc (a mount point), the deny-all policy-rc.d and the fake
    /// start-stop-daemon in place; `Drop` takes out what this put in.
    fn guard(&mut self) -> Result<()> {
        for dir in ["proc", "usr", "usr/sbin"] {
            let d = self.root.join(dir);
            if std::fs::symlink_metadata(&d).is_err() {
                std::fs::create_dir(&d).at(&d)?;
                self.made_dirs.push(d);
            }
        }
        let policy = resolve_in_root(&self.root, Path::new("/").join(POLICY_RC_D).as_path())?;
        if std::fs::symlink_metadata(&policy).is_err() {
            write_executable(&policy, DENY_ALL)?;
            self.made_policy = true;
        }
        let ssd = resolve_in_root(&self.root, Path::new(SSD))?;
        let real = ssd.with_extension("REAL");
        let is_file = std::fs::symlink_metadata(&ssd).is_ok_and(|m| m.is_file());
        if is_file && std::fs::symlink_metadata(&real).is_err() {
            std::fs::rename(&ssd, &real).at(&ssd)?;
            self.moved_ssd = Some(ssd.clone());
            write_executable(&ssd, FAKE_SSD)?;
        }
        Ok(())
    }

    /// A program run as PID 1's child in namespaces of its own, inside the
    /// root (see the module's comment); append its arguments.
    fn chroot(&self) -> Cmd<'r> {
        let mut cmd = Cmd::new("unshare")
            .args(["--mount", "--propagation", "private", "--pid", "--fork"])
            .arg("--kill-child")
            .arg(format!("--mount-proc={}", self.root.join("proc").display()))
            .arg("--")
            .arg("chroot")
            .arg(&self.root)
            .args(["/bin/sh", "-c", INIT, "mkve-init"])
            .kill_with_parent()
            .env_clear()
            .report(self.report);
        for (k, v) in &self.env {
            cmd = cmd.env(k, v);
        }
        cmd
    }

    /// Run the hooks in order; the first that fails stops the rest.
    pub fn run_hooks(&self, hooks: &[Hook]) -> Result<()> {
        for hook in hooks {
            self.report.note(&format!("running hook {}", hook.name));
            let staged = self.stage.join("hooks").join(&hook.name);
            std::fs::copy(&hook.path, &staged).at(&hook.path)?;
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755))
                .at(&staged)?;
            self.check_interpreter(hook)?;
            let cmd = self
                .chroot()
                .arg(format!("/{STAGE}/hooks/{}", hook.name))
                .what(format!("hook \"{}\" ({})", hook.name, hook.path.display()));
            self.run(&cmd, &format!("hook \"{}\"", hook.name))?;
        }
        Ok(())
    }

    /// Run a shell command given by the user with `sh -c` inside the root.
    pub fn run_command(&self, command: &str) -> Result<()> {
        self.report.note(&format!("running command {command}"));
        let cmd = self
            .chroot()
            .args(["/bin/sh", "-c", command])
            .what(format!("command \"{command}\""));
        self.run(&cmd, &format!("command \"{command}\""))
    }

    /// Run `cmd`; tell what it left running (killed when it ended).
    fn run(&self, cmd: &Cmd, what: &str) -> Result<()> {
        let mut left = Vec::new();
        let finished = cmd.run_lines(|line| {
            if let Some(p) = line.strip_prefix(LEFT) {
                left.push(p.to_string());
            }
        })?;
        if !left.is_empty() {
            self.report.warning(&format!(
                "{what} left processes running; they were killed: {}",
                left.join(", ")
            ));
        }
        finished.check(cmd)
    }

    /// A hook whose `#!` names an interpreter the root lacks is refused
    /// with that name, before chroot would fail with a bare "No such file
    /// or directory".
    fn check_interpreter(&self, hook: &Hook) -> Result<()> {
        let Some(interpreter) = interpreter(&hook.path)? else {
            return Ok(());
        };
        let inside = resolve_in_root(&self.root, Path::new(&interpreter))?;
        if std::fs::metadata(&inside).is_ok_and(|m| m.is_file()) {
            return Ok(());
        }
        Err(Error::template(
            &hook.path,
            Some(1),
            format!(
                "the interpreter {interpreter} is not in the root: install it (packages-lists) or change the #! line"
            ),
        ))
    }
}

/// The interpreter a script's `#!` line names, if it has one.
pub fn interpreter(script: &Path) -> Result<Option<String>> {
    use std::io::BufRead;
    let f = std::fs::File::open(script).at(script)?;
    let mut first = Vec::new();
    std::io::BufReader::new(std::io::Read::take(f, 4096))
        .read_until(b'\n', &mut first)
        .at(script)?;
    let Some(rest) = first.strip_prefix(b"#!") else {
        return Ok(None);
    };
    let line = String::from_utf8_lossy(rest);
    Ok(line.split_whitespace().next().map(str::to_string))
}

/// Write a small script, mode 0755.
fn write_executable(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::create(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).at(path)
}

impl Drop for Chroot<'_> {
    fn drop(&mut self) {
        if let Some(ssd) = self.moved_ssd.take() {
            let real = ssd.with_extension("REAL");
            if let Err(e) = std::fs::rename(&real, &ssd) {
                self.report
                    .warning(&format!("{}: cannot put it back: {e}", real.display()));
            }
        }
        if self.made_policy {
            if let Ok(p) = resolve_in_root(&self.root, &Path::new("/").join(POLICY_RC_D)) {
                let _ = std::fs::remove_file(p);
            }
        }
        for d in self.made_dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        if let Err(e) = crate::scratch::remove_tree(&self.stage) {
            self.report
                .warning(&format!("{}: cannot remove: {e}", self.stage.display()));
        }
    }
}

/// What mkve-cache does to a root, in the order given on its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Copy a host file or directory to a path inside the root.
    Copy { src: PathBuf, dest: PathBuf },
    /// Run a host executable inside the root.
    Hook(PathBuf),
    /// Run a shell command inside the root.
    Command(String),
}

/// Run `steps` in `root`, in order; `env` is added to hooks' environment.
pub fn run_steps(
    root: &Path,
    steps: &[Step],
    env: &[(&str, &str)],
    report: &dyn Report,
) -> Result<()> {
    if steps.is_empty() {
        return Ok(());
    }
    let chroot = Chroot::new(root, env, None, report)?;
    for step in steps {
        match step {
            Step::Copy { src, dest } => copy_in(root, src, dest, report)?,
            Step::Command(c) => chroot.run_command(c)?,
            Step::Hook(path) => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                chroot.run_hooks(&[Hook {
                    name,
                    path: path.clone(),
                }])?;
            }
        }
    }
    Ok(())
}

/// Copy `src` from the host to `dest` inside `root`, as `cp -a SRC DEST`
/// would inside a chroot: into `dest` when it is a directory. Symbolic
/// links in the root are followed as the root sees them, never to the host.
pub fn copy_in(root: &Path, src: &Path, dest: &Path, report: &dyn Report) -> Result<()> {
    if !dest.is_absolute() {
        return Err(Error::Usage(format!(
            "--copy {}:{}: the destination must be an absolute path",
            src.display(),
            dest.display()
        )));
    }
    std::fs::symlink_metadata(src).at(src)?;
    let mut target = resolve_in_root(root, dest)?;
    if target.is_dir() {
        let base = src
            .file_name()
            .ok_or_else(|| Error::Usage(format!("{}: no file name to copy", src.display())))?;
        let inside = dest.join(base);
        target = resolve_in_root(root, &inside)?;
    }
    report.note(&format!("copying {} to {}", src.display(), dest.display()));
    let how = crate::files::CopyTree {
        replace: true,
        ..Default::default()
    };
    crate::files::copy_tree(src, &target, how)
        .what(format!("copy of {}", src.display()))
        .report(report)
        .run_checked()
}

/// The host path of `path` (absolute, as seen inside `root`), following
/// the root's symbolic links the way the kernel would after chroot: an
/// absolute target starts again at the root, and `..` stops at the root.
/// Components that do not exist yet are kept as they are.
pub fn resolve_in_root(root: &Path, path: &Path) -> Result<PathBuf> {
    use std::path::Component;
    let mut todo: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut done: Vec<std::ffi::OsString> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            done.pop();
            continue;
        }
        let here: PathBuf = root.join(done.iter().collect::<PathBuf>()).join(&c);
        match std::fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(Error::Io {
                        path: here,
                        source: std::io::Error::other("too many levels of symbolic links"),
                    });
                }
                let target = std::fs::read_link(&here).at(&here)?;
                if target.is_absolute() {
                    done.clear();
                }
                for t in target.components().rev() {
                    match t {
                        Component::Normal(n) => todo.push(n.to_owned()),
                        Component::ParentDir => todo.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => done.push(c),
        }
    }
    Ok(root.join(done.iter().collect::<PathBuf>()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn paths_resolve_inside_the_root_only() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("usr/lib")).unwrap();
        symlink("usr/lib", r.join("lib")).unwrap();
        symlink("/etc", r.join("usr/lib/host-etc")).unwrap();
        symlink("../../../../..", r.join("usr/lib/up")).unwrap();
        for (path, inside) in [
            ("/lib/x", "usr/lib/x"),
            ("/lib/host-etc/passwd", "etc/passwd"),
            ("/lib/up/tmp", "tmp"),
            ("/../../x", "x"),
        ] {
            assert_eq!(
                resolve_in_root(r, Path::new(path)).unwrap(),
                r.join(inside),
                "{path}"
            );
        }
        symlink("loop", r.join("loop")).unwrap();
        assert!(resolve_in_root(r, Path::new("/loop/x")).is_err());
    }

    #[test]
    fn copy_in_lands_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("root");
        std::fs::create_dir_all(r.join("etc")).unwrap();
        symlink("/etc", r.join("conf")).unwrap();
        let src = d.path().join("motd");
        std::fs::write(&src, "hello\n").unwrap();
        copy_in(&r, &src, Path::new("/conf"), &crate::report::Silent).unwrap();
        assert_eq!(
            std::fs::read_to_string(r.join("etc/motd")).unwrap(),
            "hello\n"
        );
        copy_in(&r, &src, Path::new("/etc/issue"), &crate::report::Silent).unwrap();
        assert_eq!(
            std::fs::read_to_string(r.join("etc/issue")).unwrap(),
            "hello\n"
        );
        assert!(
            copy_in(&r, &src, Path::new("etc/x"), &crate::report::Silent).is_err(),
            "a relative destination is refused"
        );
    }
}
