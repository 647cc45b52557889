//! OpenVZ machines. libvirt's OpenVZ driver runs `vzctl create ID --name ID
//! --ostemplate T`, so a machine's root goes to vzctl's template cache as
//! `mkve-ID.tar.gz` for the create and is removed after it; the domain's
//! name is its numeric ID (vzctl's CTID, which vzctl(8) wants above 100).
//! The bundle's `conf/config` (vps.conf(5)) is then merged into vzctl's
//! `/etc/vz/conf/ID.conf`: its values win except for the ones vzctl owns
//! (where the container lives, its name). The driver forgets domain
//! metadata when libvirtd restarts, so mkve's record is also kept in the
//! container's own `DESCRIPTION`, where `vzctl set --description` keeps it.
//!
//! Nothing here runs vzctl or looks at OpenVZ unless vzctl is installed
//! (the original probed OpenVZ machines without looking, and failed).

use std::path::{Path, PathBuf};

use crate::error::{Problem, Result};
#[cfg(feature = "libvirt")]
use crate::{
    error::{Error, IoContext},
    libvirt::domain::Record,
};

/// vps.conf variables vzctl sets for the container itself, which a
/// bundle's defaults must not change.
pub const VZCTL_OWNS: &[&str] = &["VE_ROOT", "VE_PRIVATE", "NAME", "VEID", "UUID"];

/// Where vzctl keeps its files on this node.
#[derive(Debug, Clone)]
pub struct Node {
    /// Per-container configuration files (`ID.conf`).
    pub conf_dir: PathBuf,
    /// The OS template cache vzctl creates containers from.
    pub cache_dir: PathBuf,
}

impl Node {
    /// vzctl's directories, as /etc/vz/vz.conf sets them (`TEMPLATE`,
    /// default /vz/template) under `etc` (normally /etc/vz).
    pub fn at(etc: &Path) -> Node {
        let template = std::fs::read_to_string(etc.join("vz.conf"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .filter_map(|l| l.trim().strip_prefix("TEMPLATE="))
                    .next_back()
                    .map(|v| PathBuf::from(v.trim_matches('"')))
            })
            .unwrap_or_else(|| PathBuf::from("/vz/template"));
        Node {
            conf_dir: etc.join("conf"),
            cache_dir: template.join("cache"),
        }
    }

    pub fn system() -> Node {
        Node::at(Path::new("/etc/vz"))
    }

    pub fn conf_of(&self, id: u32) -> PathBuf {
        self.conf_dir.join(format!("{id}.conf"))
    }

    /// Where machine `id`'s root waits in the template cache for its
    /// create (`vzctl create --ostemplate mkve-ID`).
    pub fn cache_path(&self, id: u32) -> PathBuf {
        self.cache_dir.join(format!("{}.tar.gz", template_name(id)))
    }
}

/// Pack an unpacked bundle's root into vzctl's template cache as
/// `cached` (a gzip tar, what vzctl reads).
pub fn cache_root(rootfs: &Path, cached: &Path) -> Result<()> {
    let (out, _) = crate::pack::pack_dir_compressed(
        rootfs,
        crate::files::Output::create(cached)?,
        crate::pack::Compression::Gzip,
        &crate::pack::PackOptions::default(),
    )?;
    out.commit()
}

/// After the define: merge the bundle's vps.conf defaults (`conf_config`,
/// its `conf/config`, if there is one) and mkve's record into vzctl's
/// configuration of container `id`, replaced atomically.
#[cfg(feature = "libvirt")]
pub fn configure(node: &Node, id: u32, conf_config: &Path, record: &Record) -> Result<()> {
    let conf = node.conf_of(id);
    let base = std::fs::read_to_string(&conf).at(&conf)?;
    let defaults = if conf_config.exists() {
        let mut problems = Vec::new();
        match parse_vps_conf(conf_config, &mut problems) {
            Some(d) => d,
            None => {
                return Err(problems.into_iter().next().map_or_else(
                    || Error::bundle(conf_config, "invalid"),
                    Error::InvalidBundle,
                ))
            }
        }
    } else {
        Vec::new()
    };
    let merged = merge(&base, &defaults, record);
    let mut out = crate::files::Output::create(&conf)?;
    std::io::Write::write_all(&mut out, merged.as_bytes()).at(&conf)?;
    out.commit()
}

/// vps.conf(5): `NAME="value"` lines, blank lines and `#` comments.
pub fn parse_vps_conf(path: &Path, problems: &mut Vec<Problem>) -> Option<Vec<(String, String)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            problems.push(Problem::new(path, None, e.to_string()));
            return None;
        }
    };
    let before = problems.len();
    let mut vars = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line.split_once('=').and_then(|(k, v)| {
            let name_ok = !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                && !k.starts_with(|c: char| c.is_ascii_digit());
            let value = if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
                Some(&v[1..v.len() - 1]).filter(|inner| !inner.contains('"'))
            } else {
                Some(v).filter(|v| !v.contains(|c: char| c.is_whitespace() || c == '"'))
            };
            (name_ok)
                .then_some(())
                .and(value)
                .map(|v| (k.to_string(), v.to_string()))
        });
        match parsed {
            Some(kv) => vars.push(kv),
            None => problems.push(Problem::new(
                path,
                Some(i + 1),
                format!("expected NAME=\"value\", found \"{line}\""),
            )),
        }
    }
    (problems.len() == before).then_some(vars)
}

/// The OS template name a machine's root is cached under for its create.
pub fn template_name(id: u32) -> String {
    format!("mkve-{id}")
}

/// vzctl's configuration `base` with the bundle's `defaults` applied (in
/// place where `base` sets the same variable, appended otherwise), except
/// the variables vzctl owns, and mkve's record as `DESCRIPTION`.
#[cfg(feature = "libvirt")]
pub fn merge(base: &str, defaults: &[(String, String)], record: &Record) -> String {
    let mut vars: Vec<(String, String)> = defaults
        .iter()
        .filter(|(k, _)| !VZCTL_OWNS.contains(&k.as_str()) && k != "DESCRIPTION")
        .cloned()
        .collect();
    vars.push(("DESCRIPTION".into(), describe(record)));
    let mut out = String::with_capacity(base.len() + 256);
    for line in base.lines() {
        let key = line.trim().split_once('=').map(|(k, _)| k.to_string());
        match key.and_then(|k| vars.iter().position(|(n, _)| *n == k)) {
            Some(i) => {
                let (k, v) = vars.remove(i);
                out.push_str(&format!("{k}=\"{v}\"\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for (k, v) in vars {
        out.push_str(&format!("{k}=\"{v}\"\n"));
    }
    out
}

/// mkve's record as one vps.conf value (no quotes, no spaces in values).
#[cfg(feature = "libvirt")]
pub fn describe(r: &Record) -> String {
    let signed = match &r.signed_by {
        Some(f) => format!(" signed={f}"),
        None => String::new(),
    };
    format!(
        "mkve:vm:1 id={} address={} template={} version={} bundle={}{signed}",
        r.id, r.address, r.template, r.version, r.bundle
    )
}

/// The record in a container's configuration, if mkve made it.
#[cfg(feature = "libvirt")]
pub fn record_from_conf(conf: &str) -> Option<Record> {
    let value = conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("DESCRIPTION="))
        .next_back()?
        .trim_matches('"');
    let rest = value.strip_prefix("mkve:vm:1 ")?;
    let field = |name: &str| {
        rest.split(' ')
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    Some(Record {
        id: field("id")?.parse().ok()?,
        address: field("address")?.parse().ok()?,
        template: field("template")?,
        version: field("version")?,
        bundle: field("bundle")?,
        signed_by: field("signed"),
        source: None,
        adopted: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write;

    #[test]
    fn vps_conf_accepts_quoted_and_bare_values() {
        let d = crate::testing::tree(&[(
            "config",
            "# c\nOSTEMPLATE=\"pptp-server\"\nDEVNODES=\"/dev/ppp:rw \"\nONBOOT=yes\nbad line\n",
        )]);
        let f = d.path().join("config");
        let mut problems = vec![];
        assert_eq!(parse_vps_conf(&f, &mut problems), None);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, Some(5));
        write(
            &f,
            "OSTEMPLATE=\"pptp-server\"\nDEVNODES=\"/dev/ppp:rw \"\nONBOOT=yes\n",
        );
        let mut problems = vec![];
        let vars = parse_vps_conf(&f, &mut problems).unwrap();
        assert_eq!(vars[1], ("DEVNODES".into(), "/dev/ppp:rw ".into()));
        assert_eq!(vars[2], ("ONBOOT".into(), "yes".into()));
    }

    fn record() -> Record {
        crate::libvirt::domain::testing::record(101, "192.0.2.101".parse().unwrap())
    }

    #[test]
    fn bundle_defaults_win_except_where_vzctl_owns_the_variable() {
        let base = "# made by vzctl\nONBOOT=\"no\"\nVE_ROOT=\"/vz/root/$VEID\"\nVE_PRIVATE=\"/vz/private/$VEID\"\nOSTEMPLATE=\"mkve-101\"\n";
        let defaults = vec![
            ("OSTEMPLATE".to_string(), "pptp-server".to_string()),
            ("DEVNODES".to_string(), "/dev/ppp:rw ".to_string()),
            ("VE_ROOT".to_string(), "/elsewhere".to_string()),
            ("ONBOOT".to_string(), "yes".to_string()),
        ];
        let merged = merge(base, &defaults, &record());
        assert_eq!(
            merged,
            format!(
                "# made by vzctl\nONBOOT=\"yes\"\nVE_ROOT=\"/vz/root/$VEID\"\nVE_PRIVATE=\"/vz/private/$VEID\"\n\
                 OSTEMPLATE=\"pptp-server\"\nDEVNODES=\"/dev/ppp:rw \"\nDESCRIPTION=\"{}\"\n",
                describe(&record())
            )
        );
        assert_eq!(record_from_conf(&merged), Some(record()));
        // Merging again replaces the record rather than adding a second one.
        let again = merge(&merged, &defaults, &record());
        assert_eq!(again.matches("DESCRIPTION=").count(), 1);
    }

    #[test]
    fn containers_mkve_did_not_make_have_no_record() {
        assert_eq!(record_from_conf("DESCRIPTION=\"a web server\"\n"), None);
        assert_eq!(record_from_conf("ONBOOT=\"yes\"\n"), None);
    }

    #[test]
    fn the_template_cache_follows_vz_conf() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            Node::at(d.path()).cache_dir,
            PathBuf::from("/vz/template/cache")
        );
        std::fs::write(d.path().join("vz.conf"), "TEMPLATE=\"/srv/vz/tpl\"\n").unwrap();
        let n = Node::at(d.path());
        assert_eq!(n.cache_dir, PathBuf::from("/srv/vz/tpl/cache"));
        assert_eq!(n.conf_of(101), d.path().join("conf/101.conf"));
    }
}
