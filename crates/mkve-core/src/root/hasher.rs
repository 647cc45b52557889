//! ALT roots with hasher(7): `hsh --initroot-only` makes the base chroot
//! in a work directory, `hsh-install` adds the packages, and the chroot is
//! then moved to the target. hasher runs as an ordinary user in the
//! `hasher` group (it refuses root) and needs hasher-priv set up; none of
//! that exists on Debian, so this backend's command lines are unit-tested
//! here and the backend itself has not been run (see mkve-cache(1)).

use std::path::{Path, PathBuf};

use super::spec::{package_set, Backend, ResolvedSpec, RootSpec};
use crate::error::{Error, IoContext, Result};
use crate::exec::{Cmd, Report};

#[derive(Debug, Default)]
pub struct Hasher {
    /// hasher's work directory; default `$MKVE_CACHEDIR/hasher`.
    pub workdir: Option<PathBuf>,
}

impl Hasher {
    fn workdir(&self) -> PathBuf {
        self.workdir
            .clone()
            .unwrap_or_else(|| crate::paths::cachedir().join("hasher"))
    }

    /// The programs run to make the root, in order.
    pub fn commands(
        r: &ResolvedSpec,
        workdir: &Path,
        apt_config: Option<&Path>,
    ) -> Vec<Vec<String>> {
        let w = workdir.to_string_lossy().into_owned();
        let mut init = vec!["hsh".to_string(), "--initroot-only".into()];
        init.push(format!("--target={}", r.arch));
        if let Some(c) = apt_config {
            init.push(format!("--apt-config={}", c.display()));
        }
        init.push(w.clone());
        let mut install = vec!["hsh-install".to_string(), w.clone()];
        install.extend(r.packages.iter().cloned());
        vec![init, install]
    }
}

impl Backend for Hasher {
    fn name(&self) -> &'static str {
        "hasher"
    }

    fn resolve(&self, spec: &RootSpec) -> Result<ResolvedSpec> {
        let arch = match &spec.arch {
            Some(a) => a.clone(),
            // The kernel's machine, as `uname -m` prints it.
            None => nix::sys::utsname::uname()
                .map_err(|e| Error::Other(format!("uname: {e}")))?
                .machine()
                .to_string_lossy()
                .trim()
                .to_string(),
        };
        Ok(ResolvedSpec {
            backend: self.name().into(),
            recipe: 1,
            // hasher takes the repository from apt's configuration.
            suite: spec.suite.clone().unwrap_or_else(|| "system".into()),
            mirrors: spec.mirrors.clone(),
            arch,
            variant: spec.variant.clone().unwrap_or_else(|| "initroot".into()),
            packages: package_set(spec.packages.iter().cloned()),
        })
    }

    fn unknown_packages(&self, _: &ResolvedSpec) -> Vec<String> {
        vec![]
    }

    /// hasher keeps downloaded packages in its own work directory, which
    /// persists between builds, so `_debs` is not used.
    fn build(
        &self,
        r: &ResolvedSpec,
        target: &Path,
        _debs: &Path,
        report: &dyn Report,
    ) -> Result<()> {
        if nix::unistd::geteuid().is_root() {
            return Err(Error::Unavailable {
                what: "hasher".into(),
                why: "hasher refuses to run as root".into(),
            });
        }
        let workdir = self.workdir();
        std::fs::create_dir_all(&workdir).map_err(|e| Error::create(&workdir, e))?;
        let apt_config = if r.mirrors.is_empty() {
            None
        } else {
            let sources = workdir.join("sources.list");
            std::fs::write(&sources, r.mirrors.join("\n") + "\n")
                .map_err(|e| Error::create(&sources, e))?;
            let conf = workdir.join("apt.conf");
            // SourceParts: only these sources, none of the host's sources.list.d.
            let text = format!(
                "Dir::Etc::SourceList \"{}\";\nDir::Etc::SourceParts \"/var/empty\";\n",
                sources.display()
            );
            std::fs::write(&conf, text).map_err(|e| Error::create(&conf, e))?;
            Some(conf)
        };
        for argv in Self::commands(r, &workdir, apt_config.as_deref()) {
            report.progress(&format!("running {}", argv[0]));
            Cmd::new(&argv[0])
                .args(&argv[1..])
                .report(report)
                .run_checked()?;
        }
        let chroot = workdir.join("chroot");
        std::fs::rename(&chroot, target).at(&chroot)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        let r = Hasher::default()
            .resolve(&RootSpec {
                arch: Some("x86_64".into()),
                packages: vec!["vsftpd".into(), "chrony".into()],
                ..Default::default()
            })
            .unwrap();
        let c = Hasher::commands(&r, Path::new("/w"), Some(Path::new("/w/apt.conf")));
        assert_eq!(
            c[0],
            [
                "hsh",
                "--initroot-only",
                "--target=x86_64",
                "--apt-config=/w/apt.conf",
                "/w"
            ]
        );
        assert_eq!(c[1], ["hsh-install", "/w", "chrony", "vsftpd"]);
    }
}
