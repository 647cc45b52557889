//! Running hooks and shell commands inside a root (chroot; root privileges).
//!
//! Each hook is copied into a staging directory `/.mkve-hooks` at the top
//! of the root (never below a directory that could be a symlink), with the
//! template's `conf/<hv>/` beside it, and run there with a clean
//! environment. The staging directory is removed afterwards, whether the
//! hooks succeeded or not. The environment hooks see is documented in
//! mkve-template(5).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::exec::{note, Cmd};
use crate::template::Hook;

/// Where hooks and conf/ are staged, relative to the root.
pub const STAGE: &str = ".mkve-hooks";

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A root prepared for running hooks in; the staging directory goes away
/// when this is dropped.
pub struct Chroot {
    root: PathBuf,
    stage: PathBuf,
    env: Vec<(String, String)>,
}

impl Chroot {
    /// Prepare `root`; `env` is added to the hooks' environment and `conf`,
    /// when given, is copied to `/.mkve-hooks/conf` (`$MKVE_CONF`).
    pub fn new(root: &Path, env: &[(&str, &str)], conf: Option<&Path>) -> Result<Chroot> {
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
            root: root.to_path_buf(),
            stage,
            env: Vec::new(),
        };
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
            Cmd::new("cp")
                .args(["-R", "--preserve=mode"])
                .arg(conf)
                .arg(c.stage.join("conf"))
                .run()?;
            c.env.push(("MKVE_CONF".into(), format!("/{STAGE}/conf")));
        }
        Ok(c)
    }

    fn chroot(&self) -> Cmd {
        let mut cmd = Cmd::new("chroot").arg(&self.root).env_clear();
        for (k, v) in &self.env {
            cmd = cmd.env(k, v);
        }
        cmd
    }

    /// Run the hooks in order; the first that fails stops the rest.
    pub fn run_hooks(&self, hooks: &[Hook]) -> Result<()> {
        for hook in hooks {
            note(format!("running hook {}", hook.name));
            let staged = self.stage.join("hooks").join(&hook.name);
            std::fs::copy(&hook.path, &staged).at(&hook.path)?;
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755))
                .at(&staged)?;
            self.chroot()
                .arg(format!("/{STAGE}/hooks/{}", hook.name))
                .what(format!("hook \"{}\" ({})", hook.name, hook.path.display()))
                .run()?;
        }
        Ok(())
    }

    /// Run a shell command given by the user with `sh -c` inside the root.
    pub fn run_command(&self, command: &str) -> Result<()> {
        note(format!("running command {command}"));
        self.chroot()
            .args(["/bin/sh", "-c", command])
            .what(format!("command \"{command}\""))
            .run()
    }
}

impl Drop for Chroot {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.stage) {
            eprintln!("warning: {}: cannot remove: {e}", self.stage.display());
        }
    }
}
