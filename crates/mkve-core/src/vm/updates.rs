//! Whether a newer bundle of a machine's template waits in the published
//! directory (`mkve-bundle --publish`) the machine's bundle was taken from:
//! mkve-web's "update available" and the upgrade its button makes
//! (upgrade.rs, with the same checks as `mkve-vm upgrade`).
//!
//! The directory is the one of the machine's recorded source (its
//! bundle's absolute path, or its URL), when a `SHA256SUMS` is there. Each
//! bundle it lists is read up to its `meta.json` only (a URL's through
//! [`crate::fetch::read`], which checks the list's signature first); the
//! newest of the machine's template and hypervisor whose version is above
//! the machine's (as dpkg compares versions) is the update. Nothing is
//! trusted from this but the choice: the upgrade verifies the bundle whole
//! before it changes anything.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bundle::{self, Check, ReadOptions};
use crate::error::{Error, Result};
use crate::exec::Report;
use crate::fetch::Url;
use crate::sums::{self, Sums};

use super::{Machine, Uris};
use crate::libvirt::domain;

/// A newer bundle for a machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Update {
    /// Its template version.
    pub version: String,
    /// Where it is: a path, or a URL.
    pub bundle: String,
}

/// `a` against `b`, template versions, as dpkg compares versions
/// (`debversion.rs`); a version dpkg would not take compares as
/// nothing newer (`Equal`).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    crate::debversion::compare(a, b).unwrap_or(Ordering::Equal)
}

/// Where the bundles beside `source` are listed: its directory, or the
/// URL of its directory; `None` when `source` is neither.
enum Dir {
    Local(PathBuf),
    Remote(Url),
}

fn dir_of(source: &str) -> Option<Dir> {
    if let Some(u) = Url::of_arg(Path::new(source)) {
        return u.ok().map(Dir::Remote);
    }
    let p = Path::new(source);
    p.is_absolute()
        .then(|| p.parent().map(|d| Dir::Local(d.to_path_buf())))
        .flatten()
}

/// [`update_of`] the machine `target` (an ID, name or UUID) on `uris`.
/// Errors: no such machine (2); as [`update_of`].
pub fn update_for(
    uris: &Uris,
    target: &str,
    keyring: &Path,
    report: &dyn Report,
) -> Result<Option<Update>> {
    let (_, d, m) = super::find(uris, target)?;
    let record = domain::record_of(&d.xml()?)
        .ok_or_else(|| Error::Other(format!("machine {}: no mkve record", m.id)))?;
    update_of(&m, record.source.as_deref(), keyring, report)
}

/// The newest bundle of machine `m`'s template and hypervisor, newer than
/// the one it stands on, in the published directory of `source` (where
/// its bundle was taken from); `None` when there is none, or no such
/// directory (made from stdin, or from a bundle that was not published).
/// `keyring` checks a remote list's signature. Errors: the directory's
/// list cannot be read (65, 69 for the network); a bundle it lists that
/// does not read is passed by, told as a warning.
pub fn update_of(
    m: &Machine,
    source: Option<&str>,
    keyring: &Path,
    report: &dyn Report,
) -> Result<Option<Update>> {
    let Some(dir) = source.and_then(dir_of) else {
        return Ok(None);
    };
    let (listed, label) = match &dir {
        Dir::Local(d) => {
            let list = d.join(sums::FILE);
            match std::fs::read(&list) {
                Ok(bytes) => (bytes, list),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::io(&list, e)),
            }
        }
        Dir::Remote(u) => {
            let at = u.beside(sums::FILE);
            (
                crate::fetch::get_file(&at, sums::MAX_BYTES)?,
                PathBuf::from(at),
            )
        }
    };
    let list = Sums::parse(&listed, &label)?;
    let mut best: Option<Update> = None;
    for (name, _) in list.iter() {
        let (meta, at) = match meta_of(&dir, name, keyring, report) {
            Ok(r) => r,
            Err(e) => {
                report.warning(&format!("{name}: passed by: {e}"));
                continue;
            }
        };
        let fits = meta.template.name == m.template
            && meta.hypervisor.to_string() == m.hypervisor.to_string()
            && compare_versions(&meta.template.version, &m.version) == Ordering::Greater;
        let better = best.as_ref().is_none_or(|b| {
            compare_versions(&meta.template.version, &b.version) == Ordering::Greater
        });
        if fits && better {
            best = Some(Update {
                version: meta.template.version,
                bundle: at,
            });
        }
    }
    Ok(best)
}

/// The `meta.json` of bundle `name` in `dir`, and where the bundle is.
fn meta_of(
    dir: &Dir,
    name: &str,
    keyring: &Path,
    report: &dyn Report,
) -> Result<(bundle::Meta, String)> {
    let opts = ReadOptions {
        keyring: Some(keyring),
        ..ReadOptions::lenient(Check::Meta)
    };
    match dir {
        Dir::Local(d) => {
            let p = d.join(name);
            let f = std::fs::File::open(&p).map_err(|e| Error::io(&p, e))?;
            let r = bundle::read(std::io::BufReader::new(f), &p, &opts)?;
            Ok((r.meta, p.to_string_lossy().into_owned()))
        }
        Dir::Remote(u) => {
            let at = Url::parse(&u.beside(name))?;
            let r = crate::fetch::read(&at, &opts, None, report)?;
            Ok((r.meta, at.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_part_by_part_numbers_as_numbers() {
        use Ordering::*;
        for (a, b, o) in [
            ("2.0", "1.0", Greater),
            ("10.0", "9.9", Greater),
            ("2.0", "2.0", Equal),
            ("2.0.1", "2.0", Greater),
            ("2.0", "2.0.1", Less),
            ("1.0-2", "1.0-10", Less),
            ("1.0b", "1.0a", Greater),
            ("1", "1.0", Less),
        ] {
            assert_eq!(compare_versions(a, b), o, "{a} against {b}");
        }
    }

    #[test]
    fn only_an_absolute_path_or_a_url_has_a_directory() {
        assert!(
            matches!(dir_of("/srv/pub/ntp.bun"), Some(Dir::Local(d)) if d == Path::new("/srv/pub"))
        );
        assert!(matches!(
            dir_of("http://127.0.0.1:8080/pub/ntp.bun"),
            Some(Dir::Remote(_))
        ));
        assert!(dir_of("ntp.bun").is_none());
        assert!(dir_of("-").is_none());
    }
}
