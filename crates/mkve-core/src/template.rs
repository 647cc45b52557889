//! The template tree (mkve-template(5)) → a validated `Template`.
//!
//! Loading checks everything a build needs for the hypervisors asked for and
//! reports every problem at once, one line each, naming the file and line.
//! It reads only; running hooks is `hooks.rs`, packing is `pack.rs`.

use std::collections::BTreeMap;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Problem, Result};
use crate::hypervisor::Hypervisor;
use crate::listfile;

/// A hook found for a template: its name as listed and the file that runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub name: String,
    pub path: PathBuf,
}

/// What a template says for one hypervisor.
#[derive(Debug, Clone)]
pub struct Profile {
    pub hypervisor: Hypervisor,
    pub version: String,
    pub packages: Vec<String>,
    /// The line of `packages-lists/<hv>` each package is on.
    pub package_lines: Vec<usize>,
    pub hooks: Vec<Hook>,
    /// `conf/<hv>/`, when the template has it.
    pub conf: Option<PathBuf>,
    /// `conf/openvz/config` (vps.conf(5)), parsed.
    pub vps_config: Option<Vec<(String, String)>>,
}

#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    pub dir: PathBuf,
    /// In the order of the `hypervisors` file.
    pub hypervisors: Vec<Hypervisor>,
    pub profiles: BTreeMap<Hypervisor, Profile>,
    /// `params`: what the operator gives at create (mkve-template(5)).
    pub params: Vec<crate::params::Param>,
    /// `probes`: how to tell that the service is up.
    pub probes: Vec<crate::probe::Probe>,
    /// `state`: the absolute paths that hold the service's data.
    pub state: Vec<PathBuf>,
}

/// The template-level files a bundle carries as `conf/NAME` for every
/// hypervisor: `params`, `probes` and `state`.
pub const SHARED_CONF: [&str; 3] = ["params", "probes", "state"];

/// Packages whose root must make a per-machine secret at each machine's
/// first boot, and the shipped hook that does (mkve-template(5)): what
/// `--check` warns about when a profile installs one without its hook.
pub const PER_MACHINE_HOOKS: &[(&str, &str)] = &[("openssh-server", "05-ssh-hostkeys-per-machine")];

impl Template {
    /// What `mkve-bundle --check` warns about, each naming the file and
    /// line: a profile that installs a package of [`PER_MACHINE_HOOKS`]
    /// without listing its hook (every machine of the bundle would share
    /// that secret; the build refuses the root that holds it).
    pub fn warnings(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        for (hv, p) in &self.profiles {
            for (i, pkg) in p.packages.iter().enumerate() {
                let name = pkg.split(['=', ':', '/']).next().unwrap_or(pkg);
                for (wants, hook) in PER_MACHINE_HOOKS {
                    if name == *wants && !p.hooks.iter().any(|h| h.name == *hook) {
                        out.push(Problem::new(
                            self.dir.join("packages-lists").join(hv.as_str()),
                            p.package_lines.get(i).copied(),
                            format!(
                                "installs {wants} but hooks-lists/{hv} lists no {hook}: every machine of the bundle would share its keys (the build refuses a root that holds them)"
                            ),
                        ));
                    }
                }
            }
        }
        out
    }

    /// Find a template given on the command line: a path (anything with a
    /// `/`, or an existing directory), else a name under
    /// `$MKVE_DATADIR/templates`.
    pub fn locate(arg: &str) -> Result<PathBuf> {
        let as_path = Path::new(arg);
        if arg.contains('/') || as_path.is_dir() {
            return Ok(as_path.to_path_buf());
        }
        let shipped = crate::paths::templates_dir().join(arg);
        if shipped.is_dir() {
            return Ok(shipped);
        }
        Err(Error::template(
            as_path,
            None,
            format!(
                "no such template (no directory {arg}, and none in {})",
                crate::paths::templates_dir().display()
            ),
        ))
    }

    /// Load and validate the template in `dir` for `only` one hypervisor,
    /// or for every hypervisor it lists.
    pub fn load(dir: &Path, hooks_dir: &Path, only: Option<Hypervisor>) -> Result<Template> {
        let mut problems = Vec::new();
        if !dir.is_dir() {
            let why = if dir.exists() {
                "not a directory"
            } else {
                "no such template directory"
            };
            return Err(Error::template(dir, None, why));
        }
        let name = template_name(dir);
        if let Err(why) = check_name(&name) {
            problems.push(Problem::new(dir, None, why));
        }
        let hv_file = dir.join("hypervisors");
        let mut listed: Vec<(Hypervisor, usize)> = Vec::new();
        match listfile::read(&hv_file) {
            Err(p) => problems.push(p),
            Ok(None) => problems.push(Problem::new(
                &hv_file,
                None,
                "missing (it lists the hypervisors the template supports)",
            )),
            Ok(Some(lines)) => {
                for (n, word) in lines {
                    match word.parse::<Hypervisor>() {
                        Err(e) => problems.push(Problem::new(&hv_file, Some(n), e)),
                        Ok(h) => match listed.iter().find(|(l, _)| *l == h) {
                            Some((_, first)) => problems.push(Problem::new(
                                &hv_file,
                                Some(n),
                                format!("\"{h}\" is listed twice (first on line {first})"),
                            )),
                            None => listed.push((h, n)),
                        },
                    }
                }
                if listed.is_empty() && problems.is_empty() {
                    problems.push(Problem::new(&hv_file, None, "lists no hypervisor"));
                }
            }
        }
        let selected: Vec<(Hypervisor, usize)> = match only {
            None => listed.clone(),
            Some(h) => match listed.iter().find(|(l, _)| *l == h) {
                Some(&found) => vec![found],
                None => {
                    if problems.is_empty() {
                        let names: Vec<&str> = listed.iter().map(|(l, _)| l.as_str()).collect();
                        problems.push(Problem::new(
                            &hv_file,
                            None,
                            format!("does not list {h} (it lists: {})", names.join(", ")),
                        ));
                    }
                    vec![]
                }
            },
        };
        let mut profiles = BTreeMap::new();
        for (h, line) in selected {
            let why = format!("{h} is listed in {}:{line}", hv_file.display());
            if let Some(p) = load_profile(dir, hooks_dir, h, &why, &mut problems) {
                profiles.insert(h, p);
            }
        }
        let read = |file: &str, problems: &mut Vec<Problem>| {
            let path = dir.join(file);
            // A regular file, as conf/ holds: a link would read the build
            // host's files (and show their lines in errors).
            if let Ok(md) = std::fs::symlink_metadata(&path) {
                if !md.is_file() {
                    problems.push(Problem::new(
                        &path,
                        None,
                        "not a regular file (a symbolic link or a directory is refused)",
                    ));
                    return None;
                }
            }
            match std::fs::read(&path) {
                Ok(text) => Some((path, text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    problems.push(Problem::new(&path, None, e.to_string()));
                    None
                }
            }
        };
        let params = match read("params", &mut problems) {
            Some((path, text)) => crate::params::parse(&text, &path).unwrap_or_else(|p| {
                problems.extend(p);
                Vec::new()
            }),
            None => Vec::new(),
        };
        let probes = match read("probes", &mut problems) {
            Some((path, text)) => crate::probe::parse(&text, &path).unwrap_or_else(|p| {
                problems.extend(p);
                Vec::new()
            }),
            None => Vec::new(),
        };
        let state = match read("state", &mut problems) {
            Some((path, text)) => crate::state::parse(&text, &path).unwrap_or_else(|p| {
                problems.extend(p);
                Vec::new()
            }),
            None => Vec::new(),
        };
        for p in profiles.values() {
            for file in SHARED_CONF {
                if let Some(c) = p.conf.as_deref().map(|c| c.join(file)) {
                    if c.exists() {
                        problems.push(Problem::new(
                            &c,
                            None,
                            format!(
                                "{file} is declared once for every hypervisor, in the template's own {file} file"
                            ),
                        ));
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(Error::InvalidTemplate(problems));
        }
        Ok(Template {
            name,
            dir: dir.to_path_buf(),
            hypervisors: listed.into_iter().map(|(h, _)| h).collect(),
            profiles,
            params,
            probes,
            state,
        })
    }

    pub fn profile(&self, h: Hypervisor) -> Result<&Profile> {
        self.profiles.get(&h).ok_or_else(|| {
            Error::template(
                self.dir.join("hypervisors"),
                None,
                format!("does not list {h}"),
            )
        })
    }
}

fn template_name(dir: &Path) -> String {
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "template".into())
}

fn load_profile(
    dir: &Path,
    hooks_dir: &Path,
    h: Hypervisor,
    why: &str,
    problems: &mut Vec<Problem>,
) -> Option<Profile> {
    let before = problems.len();
    let version = load_version(&dir.join("version").join(h.as_str()), why, problems);

    let pkg_file = dir.join("packages-lists").join(h.as_str());
    let mut packages = Vec::new();
    let mut package_lines = Vec::new();
    match listfile::read(&pkg_file) {
        Err(p) => problems.push(p),
        Ok(None) => {
            let old = dir.join("packages").join(h.as_str());
            let hint = if old.is_file() {
                format!(
                    "; the old layout's {} is now packages-lists/{h}",
                    old.display()
                )
            } else {
                String::new()
            };
            problems.push(Problem::new(
                &pkg_file,
                None,
                format!("missing ({why}{hint})"),
            ));
        }
        Ok(Some(lines)) => {
            for (n, line) in lines {
                if line.split_whitespace().count() > 1 {
                    problems.push(Problem::new(
                        &pkg_file,
                        Some(n),
                        format!("one package per line, found \"{line}\""),
                    ));
                } else if !is_package_name(&line) {
                    problems.push(Problem::new(
                        &pkg_file,
                        Some(n),
                        format!("\"{line}\" is not a package name"),
                    ));
                } else {
                    packages.push(line);
                    package_lines.push(n);
                }
            }
        }
    }

    let hooks = load_hooks(dir, hooks_dir, h, problems);

    let conf_dir = dir.join("conf").join(h.as_str());
    let mut conf = None;
    let mut vps_config = None;
    if let Ok(meta) = std::fs::symlink_metadata(&conf_dir) {
        if !meta.is_dir() {
            problems.push(Problem::new(&conf_dir, None, "not a directory"));
        } else {
            check_conf_tree(&conf_dir, problems);
            conf = Some(conf_dir.clone());
            let config = conf_dir.join("config");
            if h == Hypervisor::Openvz && config.is_file() {
                vps_config = crate::openvz::parse_vps_conf(&config, problems);
            }
        }
    }

    if problems.len() > before {
        return None;
    }
    Some(Profile {
        hypervisor: h,
        version: version?,
        packages,
        package_lines,
        hooks,
        conf,
        vps_config,
    })
}

fn load_version(path: &Path, why: &str, problems: &mut Vec<Problem>) -> Option<String> {
    let lines = match listfile::read(path) {
        Err(p) => {
            problems.push(p);
            return None;
        }
        Ok(None) => {
            problems.push(Problem::new(path, None, format!("missing ({why})")));
            return None;
        }
        Ok(Some(lines)) => lines,
    };
    let mut version: Option<(String, usize)> = None;
    for (n, line) in lines {
        let Some((key, value)) = line.split_once('=') else {
            problems.push(Problem::new(
                path,
                Some(n),
                format!("expected template_version=VERSION, found \"{line}\""),
            ));
            continue;
        };
        if key.trim() != "template_version" {
            problems.push(Problem::new(
                path,
                Some(n),
                format!(
                    "unknown key \"{}\" (expected template_version=VERSION)",
                    key.trim()
                ),
            ));
            continue;
        }
        let value = unquote(value.trim());
        if value.is_empty() {
            problems.push(Problem::new(path, Some(n), "template_version is empty"));
        } else if let Err(why) = check_version(value) {
            problems.push(Problem::new(path, Some(n), why));
        } else if let Some((_, first)) = &version {
            problems.push(Problem::new(
                path,
                Some(n),
                format!("template_version is set twice (first on line {first})"),
            ));
        } else {
            version = Some((value.to_string(), n));
        }
    }
    if version.is_none() && !problems.iter().any(|p| p.path == path) {
        problems.push(Problem::new(path, None, "no template_version=VERSION line"));
    }
    version.map(|(v, _)| v)
}

/// Whether the kernel can run the file `path` as a hook: an ELF binary,
/// or a script whose first line is a `#!` line that does not end in a
/// carriage return (DOS line endings make the kernel look for `sh\r`).
/// That the interpreter is in the root is told when the hook runs.
fn runnable(path: &Path) -> std::result::Result<(), String> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(4096).read_to_end(&mut head))
        .map_err(|e| e.to_string())?;
    if head.starts_with(b"\x7fELF") {
        return Ok(());
    }
    let first = head.split(|b| *b == b'\n').next().unwrap_or_default();
    if !first.starts_with(b"#!") {
        return Err(
            "no #! line, and not a program: the kernel cannot run it (start it with #!/bin/sh)"
                .into(),
        );
    }
    if first.ends_with(b"\r") {
        return Err("the #! line ends with a carriage return (DOS line endings): convert the file, e.g. with dos2unix".into());
    }
    Ok(())
}

fn load_hooks(
    dir: &Path,
    hooks_dir: &Path,
    h: Hypervisor,
    problems: &mut Vec<Problem>,
) -> Vec<Hook> {
    let list = dir.join("hooks-lists").join(h.as_str());
    let lines = match listfile::read(&list) {
        Err(p) => {
            problems.push(p);
            return vec![];
        }
        Ok(None) => return vec![],
        Ok(Some(lines)) => lines,
    };
    let own = dir.join("hooks");
    let mut hooks: Vec<Hook> = Vec::new();
    let mut listed: Vec<(String, usize)> = Vec::new();
    for (n, name) in lines {
        if let Some((_, first)) = listed.iter().find(|(l, _)| *l == name) {
            problems.push(Problem::new(
                &list,
                Some(n),
                format!("hook \"{name}\" is listed twice (first on line {first})"),
            ));
            continue;
        }
        listed.push((name.clone(), n));
        if name.contains('/') || name == "." || name == ".." || name.split_whitespace().count() > 1
        {
            problems.push(Problem::new(
                &list,
                Some(n),
                format!("hook name \"{name}\" must be a plain file name"),
            ));
            continue;
        }
        let found = [own.join(&name), hooks_dir.join(&name)]
            .into_iter()
            .find(|p| p.exists());
        let Some(path) = found else {
            problems.push(Problem::new(
                &list,
                Some(n),
                format!(
                    "hook \"{name}\" not found in {} or {}",
                    own.display(),
                    hooks_dir.display()
                ),
            ));
            continue;
        };
        match std::fs::metadata(&path) {
            Ok(m) if !m.is_file() => problems.push(Problem::new(
                &list,
                Some(n),
                format!("hook \"{name}\" ({}) is not a file", path.display()),
            )),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => problems.push(Problem::new(
                &list,
                Some(n),
                format!(
                    "hook \"{name}\" ({}) is not executable (chmod +x it)",
                    path.display()
                ),
            )),
            Ok(_) => match runnable(&path) {
                Ok(()) => hooks.push(Hook { name, path }),
                Err(why) => problems.push(Problem::new(&path, Some(1), why)),
            },
            Err(e) => problems.push(Problem::new(
                &list,
                Some(n),
                format!("hook \"{name}\" ({}): {e}", path.display()),
            )),
        }
    }
    hooks
}

/// conf/<hv>/ is packed as it is: regular files and directories only.
fn check_conf_tree(conf_dir: &Path, problems: &mut Vec<Problem>) {
    for entry in walkdir::WalkDir::new(conf_dir)
        .min_depth(1)
        .sort_by_file_name()
    {
        match entry {
            Err(e) => problems.push(Problem::new(conf_dir, None, e.to_string())),
            Ok(e) if e.file_type().is_file() || e.file_type().is_dir() => {}
            Ok(e) => problems.push(Problem::new(
                e.path(),
                None,
                "not a regular file or directory (conf/ holds files and directories only)",
            )),
        }
    }
}

/// A package and the list file and line that asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRequest {
    pub name: String,
    pub file: PathBuf,
    pub line: usize,
}

impl Profile {
    /// What a root for this profile installs: the template's packages, then
    /// the hypervisor's own set (`$MKVE_DATADIR/hypervisors/<hv>/packages`).
    pub fn wanted_packages(&self, template_dir: &Path) -> Result<Vec<PackageRequest>> {
        let own = template_dir
            .join("packages-lists")
            .join(self.hypervisor.as_str());
        let mut out: Vec<PackageRequest> = self
            .packages
            .iter()
            .zip(&self.package_lines)
            .map(|(p, l)| PackageRequest {
                name: p.clone(),
                file: own.clone(),
                line: *l,
            })
            .collect();
        let set = crate::paths::datadir()
            .join("hypervisors")
            .join(self.hypervisor.as_str())
            .join("packages");
        match listfile::read(&set) {
            Err(p) => return Err(Error::InvalidTemplate(vec![p])),
            Ok(None) => {
                return Err(Error::Unavailable {
                    what: set.display().to_string(),
                    why: format!(
                        "missing: the {} package set is not installed",
                        self.hypervisor
                    ),
                })
            }
            Ok(Some(lines)) => {
                for (n, name) in lines {
                    if !is_package_name(&name) {
                        return Err(Error::template(
                            &set,
                            Some(n),
                            format!("\"{name}\" is not a package name"),
                        ));
                    }
                    out.push(PackageRequest {
                        name,
                        file: set.clone(),
                        line: n,
                    });
                }
            }
        }
        Ok(out)
    }
}

/// The names of the templates under `$MKVE_DATADIR/templates` (those with
/// a `hypervisors` file), sorted.
pub fn shipped_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(crate::paths::templates_dir())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().join("hypervisors").is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The longest template name: a machine's default name is
/// `NAME-ID` (`MachineName`, at most 63 bytes), with room for a 10-digit ID.
pub const NAME_MAX: usize = 52;

/// mkve-template(5)'s rule for a template's name (its directory's name):
/// letters, digits, `-`, `_` and `.`, starting with a letter or a digit,
/// at most [`NAME_MAX`] bytes. Errors: why not, the name escaped.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let shown = name.escape_debug();
    if name.is_empty() || name.len() > NAME_MAX {
        return Err(format!(
            "template name \"{shown}\" must be 1 to {NAME_MAX} bytes long"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "template name \"{shown}\": letters, digits, - _ and . only, starting with a letter or a digit"
        ));
    }
    Ok(())
}

/// mkve-template(5)'s rule for `template_version`: letters, digits and
/// `.+~:_-`, not empty. Errors: why not, the value escaped.
pub fn check_version(value: &str) -> std::result::Result<(), String> {
    if value.is_empty() {
        return Err("template_version is empty".into());
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ".+~:_-".contains(c))
    {
        return Err(format!(
            "template_version \"{}\" has characters other than letters, digits and . + ~ : _ -",
            value.escape_debug()
        ));
    }
    Ok(())
}

/// mkve-template(5)'s rule for a hook's name: a plain file name, no white
/// space or control character.
pub fn is_hook_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Debian and ALT package names, with apt's `:arch` and `=version` suffixes.
pub fn is_package_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-._:=~".contains(c))
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::write;

    #[test]
    fn hypervisor_names_round_trip() {
        for h in Hypervisor::ALL {
            assert_eq!(h.as_str().parse::<Hypervisor>().unwrap(), h);
        }
        assert!("QEMU"
            .parse::<Hypervisor>()
            .unwrap_err()
            .contains("unknown hypervisor \"QEMU\""));
    }

    #[test]
    fn package_names() {
        for ok in [
            "vsftpd",
            "libc6:amd64",
            "g++",
            "python3.11",
            "apt=2.6.1",
            "LibreOffice",
        ] {
            assert!(is_package_name(ok), "{ok}");
        }
        for bad in ["-x", "a;b", "a/b", "$x", "é"] {
            assert!(!is_package_name(bad), "{bad}");
        }
    }

    #[test]
    fn openssh_server_without_its_hook_is_warned_of() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("shell");
        let shared = d.path().join("shared-hooks");
        write(&t.join("hypervisors"), "lxc\nqemu\n");
        for h in ["lxc", "qemu"] {
            write(&t.join("version").join(h), "template_version=1.0\n");
            write(
                &t.join("packages-lists").join(h),
                "chrony\nopenssh-server\n",
            );
        }
        write(&t.join("hooks-lists/qemu"), "05-ssh-hostkeys-per-machine\n");
        let hook = shared.join("05-ssh-hostkeys-per-machine");
        write(&hook, "#!/bin/sh\n");
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        let tpl = Template::load(&t, &shared, None).unwrap();
        let w: Vec<String> = tpl.warnings().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            w,
            [format!(
                "{}:2: installs openssh-server but hooks-lists/lxc lists no 05-ssh-hostkeys-per-machine: every machine of the bundle would share its keys (the build refuses a root that holds them)",
                t.join("packages-lists/lxc").display()
            )]
        );
    }

    #[test]
    fn a_good_template_loads_with_hooks_found_in_order() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("ntp");
        let shared = d.path().join("shared-hooks");
        write(&t.join("hypervisors"), "lxc\nqemu\n");
        for h in ["lxc", "qemu"] {
            write(&t.join("version").join(h), "template_version=1.0\n");
            write(&t.join("packages-lists").join(h), "chrony\n");
        }
        write(&t.join("hooks-lists/lxc"), "01-own\n02-shared\n");
        for p in [
            t.join("hooks/01-own"),
            shared.join("02-shared"),
            shared.join("01-own"),
        ] {
            write(&p, "#!/bin/sh\n");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        write(&t.join("state"), "# chrony's drift\n/var/lib/chrony\n");
        let tpl = Template::load(&t, &shared, None).unwrap();
        assert_eq!(tpl.name, "ntp");
        assert_eq!(tpl.state, vec![PathBuf::from("/var/lib/chrony")]);
        assert_eq!(tpl.hypervisors, vec![Hypervisor::Lxc, Hypervisor::Qemu]);
        let lxc = tpl.profile(Hypervisor::Lxc).unwrap();
        assert_eq!(
            lxc.hooks[0].path,
            t.join("hooks/01-own"),
            "the template's own hook wins"
        );
        assert_eq!(lxc.hooks[1].path, shared.join("02-shared"));
        assert!(tpl.profile(Hypervisor::Qemu).unwrap().hooks.is_empty());
        // Declared once, at the top: not per hypervisor.
        write(&t.join("conf/lxc/state"), "/srv\n");
        let e = Template::load(&t, &shared, None).unwrap_err().to_string();
        assert!(
            e.contains("conf/lxc/state: state is declared once for every hypervisor"),
            "{e}"
        );
    }
}
