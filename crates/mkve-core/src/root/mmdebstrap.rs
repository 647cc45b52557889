//! Debian roots with mmdebstrap(1). Defaults are the host's own: its
//! release (`VERSION_CODENAME`), its apt sources for that release, and its
//! architecture, so a machine that reaches a Debian mirror builds with no
//! options at all. Downloaded .debs are kept between builds with
//! mmdebstrap's `sync-in`/`sync-out` hooks.

use std::path::{Path, PathBuf};

use super::spec::{package_set, Backend, ResolvedSpec, RootSpec};
use crate::error::{Error, Result};
use crate::exec::{Cmd, Report};

pub struct Mmdebstrap;

const DEFAULT_VARIANT: &str = "minbase";
const UNSAFE_IO: &str = "etc/dpkg/dpkg.cfg.d/mkve-unsafe-io";
/// 2: dpkg runs with force-unsafe-io, removed before the layer is kept.
/// 3: apt's lists are copied out before mmdebstrap removes them, and
/// reduced to the layer's archive index (`index.rs`).
const RECIPE: u32 = 3;
/// Where apt's lists are copied, beside the root being built, until the
/// index is made from them.
const LISTS: &str = "apt-lists";

impl Backend for Mmdebstrap {
    fn name(&self) -> &'static str {
        "mmdebstrap"
    }

    fn resolve(&self, spec: &RootSpec) -> Result<ResolvedSpec> {
        let suite = match &spec.suite {
            Some(s) => s.clone(),
            None => host_codename().ok_or_else(|| {
                Error::Usage(
                    "cannot tell this host's Debian release from /etc/os-release: give --suite"
                        .into(),
                )
            })?,
        };
        let mirrors = if spec.mirrors.is_empty() {
            host_sources(&suite)
        } else {
            spec.mirrors.clone()
        };
        let arch = match &spec.arch {
            Some(a) => a.clone(),
            None => {
                let out = Cmd::new("dpkg")
                    .arg("--print-architecture")
                    .output_checked()?;
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            }
        };
        Ok(ResolvedSpec {
            backend: self.name().into(),
            recipe: RECIPE,
            suite,
            mirrors,
            arch,
            variant: spec
                .variant
                .clone()
                .unwrap_or_else(|| DEFAULT_VARIANT.into()),
            packages: package_set(spec.packages.iter().cloned()),
        })
    }

    fn unknown_packages(&self, r: &ResolvedSpec) -> Vec<String> {
        // The host's apt lists answer at once, but only for the host's own
        // release and sources, and only when they have been fetched.
        let host_arch = Cmd::new("dpkg")
            .arg("--print-architecture")
            .output_checked()
            .ok();
        let same_arch =
            host_arch.is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == r.arch);
        if r.packages.is_empty()
            || !same_arch
            || host_codename().as_deref() != Some(r.suite.as_str())
            || r.mirrors != host_sources(&r.suite)
        {
            return vec![];
        }
        let names: Vec<&str> = r.packages.iter().map(|p| bare_name(p)).collect();
        let Ok(out) = Cmd::new("apt-cache")
            .arg("policy")
            .arg("base-files")
            .args(&names)
            .output()
        else {
            return vec![];
        };
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let missing = unknown_in_policy(&text, &names);
        if missing.iter().any(|m| m == "base-files") {
            return vec![]; // no lists fetched: nothing can be told
        }
        missing
    }

    fn build(
        &self,
        r: &ResolvedSpec,
        target: &Path,
        debs: &Path,
        report: &dyn Report,
    ) -> Result<()> {
        std::fs::create_dir_all(debs).map_err(|e| Error::create(debs, e))?;
        let files = tempfile::Builder::new()
            .prefix("mkve-sources.")
            .tempdir()
            .map_err(|e| Error::create("/tmp", e))?;
        let lists = target.with_file_name(LISTS);
        std::fs::create_dir_all(&lists).map_err(|e| Error::create(&lists, e))?;
        let args = build_args(r, target, debs, files.path())?;
        let cmd = Cmd::new("mmdebstrap")
            .args(&args)
            .what("mmdebstrap")
            .report(report);
        report.progress(&format!(
            "building a {} root for {} with {} packages",
            r.suite,
            r.arch,
            r.packages.len()
        ));
        let finished = cmd.run_lines(|line| {
            if let Some(phase) = phase_of(line) {
                report.progress(&phase);
            }
        })?;
        let checked = match finished.check(&cmd) {
            // apt's complaints name the packages the suite does not have.
            Err(Error::Process(p)) => {
                let missing = unknown_in_apt_errors(&p.output_text());
                if missing.is_empty() {
                    Err(Error::Process(p))
                } else {
                    Err(Error::UnknownPackages {
                        suite: r.suite.clone(),
                        names: missing,
                    })
                }
            }
            other => other,
        };
        checked?;
        super::index::write_beside(target, &lists)?;
        crate::scratch::remove_tree(&lists).map_err(|e| Error::io(&lists, e))
    }
}

/// The command line; apt source texts become files in `files`.
fn build_args(r: &ResolvedSpec, target: &Path, debs: &Path, files: &Path) -> Result<Vec<String>> {
    let debs = debs
        .to_str()
        .ok_or_else(|| Error::Usage(format!("{}: path is not UTF-8", debs.display())))?;
    let quoted = shell_words::quote(debs);
    let mut a = vec![
        format!("--variant={}", r.variant),
        format!("--architectures={}", r.arch),
        "--skip=essential/unlink".into(),
        // dpkg's fsync per file buys nothing in a directory that is thrown
        // away on failure; the finished layer is synced once instead (see
        // cache.rs). A hook, so the option does not stay in the root.
        format!("--setup-hook=mkdir -p \"$1/etc/dpkg/dpkg.cfg.d\" && echo force-unsafe-io > \"$1/{UNSAFE_IO}\""),
        format!("--customize-hook=rm -f \"$1/{UNSAFE_IO}\""),
        "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives".into(),
        format!("--setup-hook=sync-in {quoted} /var/cache/apt/archives/"),
        format!("--customize-hook=sync-out /var/cache/apt/archives {quoted}"),
        // Before mmdebstrap deletes them: the archive index's source.
        format!(
            "--customize-hook=sync-out /var/lib/apt/lists {}",
            shell_words::quote(&target.with_file_name(LISTS).to_string_lossy())
        ),
    ];
    if !r.packages.is_empty() {
        a.push(format!("--include={}", r.packages.join(",")));
    }
    a.push(r.suite.clone());
    a.push(target.to_string_lossy().into_owned());
    for (i, m) in r.mirrors.iter().enumerate() {
        if m.contains('\n') {
            // The text of an apt sources file (one-line or deb822 style).
            let ext = if m.contains("URIs:") {
                "sources"
            } else {
                "list"
            };
            let f = files.join(format!("{i}.{ext}"));
            std::fs::write(&f, m).map_err(|e| Error::create(&f, e))?;
            a.push(f.to_string_lossy().into_owned());
        } else {
            a.push(m.clone());
        }
    }
    Ok(a)
}

/// apt's `pkg=version`, `pkg:arch` and `pkg/suite` name the package `pkg`.
fn bare_name(p: &str) -> &str {
    p.split(['=', ':', '/']).next().unwrap_or(p)
}

/// Names that `apt-cache policy` knows nothing of (it prints no stanza
/// for them) or has no candidate for.
fn unknown_in_policy(text: &str, asked: &[&str]) -> Vec<String> {
    let mut candidate: std::collections::HashMap<&str, bool> = std::collections::HashMap::new();
    let mut current: Option<&str> = None;
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            let name = line.trim_end_matches(':');
            candidate.insert(name, true);
            current = Some(name);
        } else if line.trim() == "Candidate: (none)" {
            if let Some(c) = current {
                candidate.insert(c, false);
            }
        }
    }
    let mut out: Vec<String> = asked
        .iter()
        .filter(|a| candidate.get(*a) != Some(&true))
        .map(|a| a.to_string())
        .collect();
    out.dedup();
    out
}

/// Packages apt complained about in a failed run.
fn unknown_in_apt_errors(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let name = if let Some(r) = line.split("Unable to locate package ").nth(1) {
            Some(r.trim())
        } else if let Some(r) = line
            .split("Package '")
            .nth(1)
            .filter(|r| r.contains("' has no installation candidate"))
        {
            r.split('\'').next()
        } else {
            None
        };
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            if !out.iter().any(|o| o == n) {
                out.push(n.to_string());
            }
        }
    }
    out
}

/// mmdebstrap's own progress lines, shortened to phases.
fn phase_of(line: &str) -> Option<String> {
    let msg = line.strip_prefix("I: ")?;
    let phases = [
        ("running apt-get update", "resolving (apt-get update)"),
        ("downloading packages", "downloading"),
        ("extracting archives", "extracting"),
        (
            "installing essential packages",
            "installing the essential set",
        ),
        ("installing remaining packages", "installing"),
        ("cleaning package lists", "cleaning up"),
    ];
    phases
        .iter()
        .find(|(k, _)| msg.starts_with(k))
        .map(|(_, p)| p.to_string())
}

fn host_codename() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
}

/// The texts of the host's apt source files that name `suite`, in a fixed
/// order; empty when there are none (mmdebstrap then uses its own default).
fn host_sources(suite: &str) -> Vec<String> {
    let mut files: Vec<PathBuf> = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "list" || x == "sources"))
            .collect();
        more.sort();
        files.extend(more);
    }
    files
        .into_iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .filter(|t| {
            t.lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .any(|l| {
                    l.split_whitespace()
                        .any(|w| w == suite || w.starts_with(&format!("{suite}-")))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_keeps_debs_and_passes_source_files() {
        let r = ResolvedSpec {
            backend: "mmdebstrap".into(),
            recipe: RECIPE,
            suite: "bookworm".into(),
            mirrors: vec![
                "http://deb.debian.org/debian".into(),
                "Types: deb\nURIs: http://x/\nSuites: bookworm\n".into(),
            ],
            arch: "amd64".into(),
            variant: "minbase".into(),
            packages: vec!["chrony".into(), "linux-image-amd64".into()],
        };
        let files = tempfile::tempdir().unwrap();
        let a = build_args(
            &r,
            Path::new("/c/root"),
            Path::new("/c/debs dir"),
            files.path(),
        )
        .unwrap();
        assert_eq!(a[0], "--variant=minbase");
        assert_eq!(a[1], "--architectures=amd64");
        assert!(a[3].contains("force-unsafe-io"), "{}", a[3]);
        assert!(a[4].starts_with("--customize-hook=rm -f"), "{}", a[4]);
        assert_eq!(
            a[6],
            "--setup-hook=sync-in '/c/debs dir' /var/cache/apt/archives/"
        );
        assert_eq!(
            a[7],
            "--customize-hook=sync-out /var/cache/apt/archives '/c/debs dir'"
        );
        assert_eq!(
            a[8],
            "--customize-hook=sync-out /var/lib/apt/lists /c/apt-lists"
        );
        assert_eq!(a[9], "--include=chrony,linux-image-amd64");
        assert_eq!(
            &a[10..13],
            ["bookworm", "/c/root", "http://deb.debian.org/debian"]
        );
        assert!(a[13].ends_with("1.sources"));
        assert_eq!(std::fs::read_to_string(&a[13]).unwrap(), r.mirrors[1]);
    }

    #[test]
    fn apt_complaints_name_the_packages() {
        let text = "I: running apt-get update...\nE: Unable to locate package asterisk\n\
                    E: Package 'libfoo' has no installation candidate\nE: Unable to locate package asterisk\n";
        assert_eq!(unknown_in_apt_errors(text), ["asterisk", "libfoo"]);
        let policy = "base-files:\n  Installed: 12.4\n  Candidate: 12.4\nvirtual-pkg:\n  Installed: (none)\n  Candidate: (none)\n";
        assert_eq!(
            unknown_in_policy(policy, &["base-files", "virtual-pkg", "asterisk"]),
            ["virtual-pkg", "asterisk"]
        );
        assert_eq!(bare_name("libc6:amd64"), "libc6");
        assert_eq!(bare_name("apt=2.6.1"), "apt");
    }

    #[test]
    fn phases_come_from_mmdebstrap_lines() {
        assert_eq!(
            phase_of("I: downloading packages with apt...").as_deref(),
            Some("downloading")
        );
        assert_eq!(
            phase_of("I: installing remaining packages inside the chroot...").as_deref(),
            Some("installing")
        );
        assert_eq!(phase_of("Get:1 http://x"), None);
    }
}
