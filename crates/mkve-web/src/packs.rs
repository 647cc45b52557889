//! Pack and adopt from the web (mkve-web(8), Pack and adopt): a machine
//! packed into a bundle (`vm::pack`, the call `mkve-vm pack` makes) as
//! `DIR/packs/ID.bun`, its last one, handed back as a download (a new
//! pack of the machine replaces it; an operator keeps bundles elsewhere,
//! or publishes them with `mkve-bundle --publish`); a libvirt domain
//! adopted (`vm::adopt`). Both are logged as their command lines.

use mkve_core::bundle::Signing;
use mkve_core::publish::{self, PublishOptions, Published};
use mkve_core::vm::{self, AdoptOptions, Adopted, PackMachineOptions};
use mkve_core::{Error, Result};

use crate::state::Shared;

/// The command line a pack is logged as.
pub fn pack_words(target: &str, unsigned: bool) -> String {
    let mut w = String::from("pack");
    if unsigned {
        w.push_str(" --force-no-sign");
    }
    w.push_str(&format!(" -o - {target}"));
    w
}

/// The command line an adopt is logged as.
pub fn adopt_words(domain: &str, o: &AdoptOptions) -> String {
    let mut w = String::from("adopt");
    if let Some(id) = o.id {
        w.push_str(&format!(" --id {id}"));
    }
    w.push_str(&format!(" {domain}"));
    w
}

/// `NAME-VERSION-packed-ID.bun`, from what only a safe file name holds.
fn file_name(template: &str, version: &str, id: &str) -> String {
    let part = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!(
        "{}-{}-packed-{}.bun",
        part(template),
        part(version),
        part(id)
    )
}

/// Where machine `id`'s last bundle packed here is.
fn last_path(app: &Shared, id: u32) -> std::path::PathBuf {
    app.config.dir.join("packs").join(format!("{id}.bun"))
}

/// Pack machine `target` (stopped) with the default scrub, signed by the
/// node's GnuPG key unless `unsigned`, into `DIR/packs/ID.bun` (the one
/// before replaced): the download's file name and the file, opened.
/// Errors: as `vm::pack`.
pub async fn pack(
    app: &Shared,
    user: &str,
    target: &str,
    unsigned: bool,
) -> Result<(String, std::fs::File)> {
    let (a, t) = (app.clone(), target.to_string());
    app.act(user, pack_words(target, unsigned), move || {
        let (name, path) = pack_here(&a, &t, unsigned)?;
        let f = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        Ok((name, f))
    })
    .await
}

/// Pack machine `target` as [`pack`] does, signed, then publish it into
/// `--publish-dir` under its download's name, as `mkve-bundle --publish`
/// does: verified against the keyring while copied in, `SHA256SUMS` and
/// its signature rewritten under the directory's lock. Errors: no
/// `--publish-dir` (2); as `vm::pack`; as `publish::publish`.
pub async fn publish(app: &Shared, user: &str, target: &str) -> Result<Published> {
    let Some(dir) = app.config.publish_dir.clone() else {
        return Err(Error::Usage(
            "this mkve-web publishes nowhere: start it with --publish-dir DIR".into(),
        ));
    };
    let (a, t) = (app.clone(), target.to_string());
    let words = format!(
        "{} && mkve-bundle --publish {}",
        pack_words(target, false),
        dir.display()
    );
    app.act(user, words, move || {
        let (name, path) = pack_here(&a, &t, false)?;
        // Published under its download's name: a link to the last pack in
        // a scratch directory of its own, gone when dropped.
        let parent = path.parent().unwrap_or(std::path::Path::new("."));
        let scratch = mkve_core::scratch::Scratch::new_in(parent, ".publish.")?;
        let named = scratch.path().join(&name);
        std::fs::hard_link(&path, &named).map_err(|e| Error::create(&named, e))?;
        let keyring = a.config.keyring();
        let published = publish::publish(&PublishOptions {
            dir: &dir,
            bundles: std::slice::from_ref(&named),
            keyring: &keyring,
            allow_unsigned: false,
            sign_key: None,
            gnupg_home: None,
            valid_for: None,
            report: &mkve_core::report::Silent,
        })?;
        published
            .into_iter()
            .next()
            .ok_or_else(|| Error::Other("publish: nothing published".into()))
    })
    .await
}

/// Pack machine `target` into `DIR/packs/ID.bun`: its download's name and
/// the path.
fn pack_here(a: &Shared, t: &str, unsigned: bool) -> Result<(String, std::path::PathBuf)> {
    let (_, _, m) = vm::find(&a.config.uris, t)?;
    let path = last_path(a, m.id.get());
    if let Some(dir) = path.parent() {
        crate::files::private_dir(dir)?;
    }
    let o = PackMachineOptions {
        scrub: None,
        allow_secrets: false,
        template_version: None,
        snapshot: None,
        signing: if unsigned {
            Signing::Unsigned
        } else {
            Signing::Key(None)
        },
    };
    let meta = vm::pack(
        &a.config.uris,
        &m.id.to_string(),
        &path,
        &o,
        &mkve_core::report::Silent,
    )?;
    Ok((
        file_name(
            &meta.template.name,
            &meta.template.version,
            &m.id.to_string(),
        ),
        path,
    ))
}

/// Machine `id`'s last bundle packed here, opened, and its download's
/// name. Errors: none was (404).
pub fn open_last(app: &Shared, id: &str) -> Result<(String, std::fs::File)> {
    let none = || Error::NotFound(format!("no bundle of machine {id} was packed here"));
    let n: u32 = id.parse().map_err(|_| none())?;
    let path = last_path(app, n);
    let f = std::fs::File::open(&path).map_err(|_| none())?;
    Ok((format!("machine-{n}-packed.bun"), f))
}

/// Adopt the domain `domain` (`vm::adopt`).
pub async fn adopt(app: &Shared, user: &str, domain: &str, o: AdoptOptions) -> Result<Adopted> {
    let (a, d) = (app.clone(), domain.to_string());
    app.act(user, adopt_words(domain, &o), move || {
        vm::adopt(&a.config.uris, &d, &o, &mkve_core::report::Silent)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_names() {
        assert_eq!(pack_words("7", false), "pack -o - 7");
        assert_eq!(pack_words("7", true), "pack --force-no-sign -o - 7");
        let o = AdoptOptions {
            id: Some(mkve_core::ids::MachineId::new(130).unwrap()),
            ..Default::default()
        };
        assert_eq!(adopt_words("legacy", &o), "adopt --id 130 legacy");
        assert_eq!(
            file_name("ntp-server", "1.0", "101"),
            "ntp-server-1.0-packed-101.bun"
        );
        assert_eq!(file_name("a/b", "1 2", "x"), "a_b-1_2-packed-x.bun");
    }
}
