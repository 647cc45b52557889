//! Detached OpenPGP signatures of a bundle's meta.json, through gpgme;
//! and the encryption of a backup's secret parameters to a key the
//! operator names (`encrypt_to`, `decrypt`).
//!
//! Signing uses GnuPG's own home (`GNUPGHOME` honoured) and its default key
//! or the one asked for. Verification never uses the caller's keys: the
//! keyring file given is imported into a throw-away home, and a signature is
//! valid only when GnuPG calls it good *and* its key's full fingerprint is
//! one of that keyring's — the same rule as gpgv(1).
//!
//! gpgme talks to the gpg it runs through pipes that are not close-on-exec
//! while it makes them: a process another thread spawns meanwhile inherits
//! them, and gpgme waits for their end until that process is gone. A
//! long-lived process started while another thread may be in here must
//! close its descriptors above 2 (as mkve-testkit's clean-up shell does).

use std::collections::HashMap;
use std::path::Path;

use gpgme::{Context, Protocol};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::exec::Cmd;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum SigStatus {
    /// Good, by a key of the keyring: its primary key's fingerprint.
    Valid { fingerprint: String },
    /// Made by a key that is not in the keyring (key ID or fingerprint).
    UnknownKey { fingerprint: String },
    /// Does not match the data, or the key is expired or revoked.
    Bad {
        fingerprint: Option<String>,
        reason: String,
    },
    /// The bundle has no signature.
    None,
}

impl SigStatus {
    pub fn is_valid(&self) -> bool {
        matches!(self, SigStatus::Valid { .. })
    }

    pub fn describe(&self) -> String {
        match self {
            SigStatus::Valid { fingerprint } => format!("good signature by {fingerprint}"),
            SigStatus::UnknownKey { fingerprint } => {
                format!("signed by {fingerprint}, a key not in the keyring")
            }
            SigStatus::Bad { reason, .. } => format!("bad signature: {reason}"),
            SigStatus::None => "not signed".into(),
        }
    }
}

fn gpg_context() -> Result<Context> {
    Context::from_protocol(Protocol::OpenPgp).map_err(|e| Error::Unavailable {
        what: "gpg".into(),
        why: format!("GnuPG cannot be used through gpgme: {e}"),
    })
}

/// A gpgme context on GnuPG's home, or on `home` when given.
fn context_in(home: Option<&Path>) -> Result<Context> {
    let mut ctx = gpg_context()?;
    if let Some(h) = home {
        let h = h
            .to_str()
            .ok_or_else(|| Error::Usage(format!("{}: GnuPG home is not UTF-8", h.display())))?;
        ctx.set_engine_home_dir(h).map_err(|e| Error::Unavailable {
            what: "gpg".into(),
            why: e.to_string(),
        })?;
    }
    Ok(ctx)
}

/// Encrypt `data` to `recipient` (a key ID, fingerprint or user ID in
/// GnuPG's keyring; `home` overrides `GNUPGHOME`), in OpenPGP's binary
/// form (what `gpg --encrypt` writes); return it and the recipient key's
/// primary fingerprint. The key is used whatever GnuPG's trust in it (the
/// operator named it). Errors: no such key that can encrypt (2); GnuPG
/// fails (69).
pub fn encrypt_to(data: &[u8], recipient: &str, home: Option<&Path>) -> Result<(Vec<u8>, String)> {
    let mut ctx = context_in(home)?;
    let key = ctx
        .find_keys([recipient])
        .map_err(|e| Error::Unavailable {
            what: "gpg".into(),
            why: format!("cannot list keys: {e}"),
        })?
        .filter_map(|r| r.ok())
        .find(|k| k.can_encrypt() && !k.is_revoked() && !k.is_expired())
        .ok_or_else(|| {
            Error::Usage(format!(
                "no key \"{recipient}\" that can encrypt in GnuPG's keyring"
            ))
        })?;
    let fpr = key.fingerprint().unwrap_or_default().to_string();
    let mut out = Vec::new();
    ctx.encrypt_with_flags(
        Some(&key),
        data,
        &mut out,
        gpgme::EncryptFlags::ALWAYS_TRUST,
    )
    .map_err(|e| Error::Unavailable {
        what: format!("encryption to {recipient}"),
        why: format!("GnuPG could not encrypt: {e}"),
    })?;
    Ok((out, fpr))
}

/// Decrypt `data` (OpenPGP, binary or armoured) with a secret key of
/// GnuPG's keyring (`home` overrides `GNUPGHOME`). Errors (69): no secret
/// key for it here, or GnuPG fails, with GnuPG's reason.
pub fn decrypt(data: &[u8], home: Option<&Path>) -> Result<Vec<u8>> {
    let mut ctx = context_in(home)?;
    let mut out = Vec::new();
    ctx.decrypt(data, &mut out).map_err(|e| Error::Unavailable {
        what: "the encrypted secret parameters".into(),
        why: format!("GnuPG could not decrypt them: {e} (is the secret key they were encrypted to in GnuPG's keyring?)"),
    })?;
    Ok(out)
}

/// Sign `data`; return the ASCII-armoured detached signature and the
/// signing key's fingerprint. `home` overrides `GNUPGHOME`.
pub fn sign_detached(
    data: &[u8],
    key: Option<&str>,
    home: Option<&Path>,
) -> Result<(Vec<u8>, String)> {
    sign(data, key, home, true, &[])
}

/// [`sign_detached`], the signature in OpenPGP's binary form (what
/// `gpg --detach-sign` writes): the form of `SHA256SUMS.gpg`, which
/// systemd-importd reads (machinectl(1) `pull-tar`).
pub fn sign_detached_binary(
    data: &[u8],
    key: Option<&str>,
    home: Option<&Path>,
) -> Result<(Vec<u8>, String)> {
    sign(data, key, home, false, &[])
}

/// [`sign_detached_binary`], the signature carrying `notations` (name,
/// value): signed, human-readable, not critical (stamp.rs).
pub fn sign_detached_binary_noted(
    data: &[u8],
    key: Option<&str>,
    home: Option<&Path>,
    notations: &[(&str, String)],
) -> Result<(Vec<u8>, String)> {
    sign(data, key, home, false, notations)
}

fn sign(
    data: &[u8],
    key: Option<&str>,
    home: Option<&Path>,
    armor: bool,
    notations: &[(&str, String)],
) -> Result<(Vec<u8>, String)> {
    let mut ctx = context_in(home)?;
    ctx.set_armor(armor);
    for (name, value) in notations {
        ctx.add_signature_notation(
            *name,
            value.as_str(),
            gpgme::SignatureNotationFlags::HUMAN_READABLE,
        )
        .map_err(|e| {
            Error::signature(
                Path::new("(signing)"),
                format!("cannot add the notation {name}: {e}"),
            )
        })?;
    }
    let what = Path::new("(signing)");
    if let Some(k) = key {
        let found = ctx
            .find_secret_keys([k])
            .map_err(|e| Error::signature(what, format!("cannot list secret keys: {e}")))?
            .filter_map(|r| r.ok())
            .find(|key| key.can_sign());
        let Some(found) = found else {
            return Err(Error::signature(
                what,
                format!("no secret key \"{k}\" that can sign in GnuPG's keyring"),
            ));
        };
        ctx.add_signer(&found)
            .map_err(|e| Error::signature(what, format!("cannot sign with \"{k}\": {e}")))?;
    }
    let mut sig = Vec::new();
    let result = ctx.sign_detached(data, &mut sig).map_err(|e| {
        let hint = if key.is_none() {
            " (give --sign-key, or --force-no-sign for an unsigned bundle)"
        } else {
            ""
        };
        Error::signature(what, format!("GnuPG could not sign: {e}{hint}"))
    })?;
    let fpr = result
        .new_signatures()
        .next()
        .and_then(|s| s.fingerprint().ok().map(str::to_string))
        .ok_or_else(|| Error::signature(what, "GnuPG made no signature"))?;
    Ok((sig, fpr))
}

/// A GnuPG home that exists only while it is alive.
struct ThrowawayHome {
    dir: tempfile::TempDir,
}

impl ThrowawayHome {
    fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("mkve-gpg.")
            .tempdir()
            .map_err(|e| Error::create(std::env::temp_dir(), e))?;
        Ok(ThrowawayHome { dir })
    }
}

impl Drop for ThrowawayHome {
    fn drop(&mut self) {
        // An agent may have been started for this home; it must not outlive
        // it. Its socket is in the home, or under /run/user/UID/gnupg when
        // that exists: stop it, then remove that socket directory.
        for args in [&["--kill", "all"][..], &["--remove-socketdir"]] {
            let _ = Cmd::new("gpgconf")
                .arg("--homedir")
                .arg(self.dir.path())
                .args(args)
                .output();
        }
    }
}

/// A verified signature, with what it says beside who made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub status: SigStatus,
    /// When it was made, in seconds since 1970 (the signer's clock);
    /// `None` when there is no signature to tell.
    pub created: Option<u64>,
    /// Its notations (name, value), in the order given, of every
    /// signature it holds.
    pub notations: Vec<(String, String)>,
}

/// Verify a detached signature of `data` against the keys in `keyring`
/// (binary or armoured, as `gpg --export` writes it). With no keyring every
/// signature is by an unknown key, which still tells who signed.
pub fn verify_detached(data: &[u8], sig: &[u8], keyring: Option<&Path>) -> Result<SigStatus> {
    Ok(verify_detached_full(data, sig, keyring)?.status)
}

/// [`verify_detached`], and when the signature was made and its
/// notations (stamp.rs). With several signatures, the creation time is
/// the first one's.
pub fn verify_detached_full(data: &[u8], sig: &[u8], keyring: Option<&Path>) -> Result<Verified> {
    let keys = match keyring {
        None => None,
        Some(k) => Some((
            k,
            std::fs::read(k).map_err(|e| {
                let default = crate::paths::default_keyring();
                let hint = if e.kind() == std::io::ErrorKind::NotFound && k == default {
                    " (the default keyring: give --keyring FILE)"
                } else {
                    ""
                };
                Error::signature(k, format!("cannot read keyring: {e}{hint}"))
            })?,
        )),
    };
    let home = ThrowawayHome::new()?;
    let mut ctx = gpg_context()?;
    let home_str = home
        .dir
        .path()
        .to_str()
        .ok_or_else(|| Error::Other("temporary directory is not UTF-8".into()))?;
    ctx.set_engine_home_dir(home_str)
        .map_err(|e| Error::Unavailable {
            what: "gpg".into(),
            why: e.to_string(),
        })?;
    if let Some((keyring, keys)) = &keys {
        let imported = ctx
            .import(keys)
            .map_err(|e| Error::signature(keyring, format!("cannot import keyring: {e}")))?;
        if imported.considered() == 0 || imported.imported() + imported.unchanged() == 0 {
            return Err(Error::signature(keyring, "holds no OpenPGP public key"));
        }
    }
    let keyring = keyring.unwrap_or(Path::new("(no keyring)"));
    // Every fingerprint of the keyring (subkeys too) → its primary key's.
    let mut trusted: HashMap<String, String> = HashMap::new();
    // And when each one expires, to say so.
    let mut expires: HashMap<String, std::time::SystemTime> = HashMap::new();
    let listed = ctx
        .keys()
        .map_err(|e| Error::signature(keyring, e.to_string()))?;
    for key in listed.filter_map(|k| k.ok()) {
        let Ok(primary) = key.fingerprint() else {
            continue;
        };
        let primary = primary.to_string();
        for sub in key.subkeys() {
            if let Ok(f) = sub.fingerprint() {
                trusted.insert(f.to_string(), primary.clone());
                if let Some(t) = sub.expiration_time() {
                    expires.insert(f.to_string(), t);
                }
            }
        }
    }
    let result = match ctx.verify_detached(sig, data) {
        Ok(r) => r,
        Err(e) => {
            return Ok(Verified {
                status: SigStatus::Bad {
                    fingerprint: None,
                    reason: format!("unreadable signature: {e}"),
                },
                created: None,
                notations: Vec::new(),
            })
        }
    };
    let mut created = None;
    let mut notations = Vec::new();
    let mut status = SigStatus::Bad {
        fingerprint: None,
        reason: "no signature found".into(),
    };
    for (i, s) in result.signatures().enumerate() {
        if i == 0 {
            created = s
                .creation_time()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs());
        }
        for n in s.notations() {
            if let (Ok(name), Ok(value)) = (n.name(), n.value()) {
                notations.push((name.to_string(), value.to_string()));
            }
        }
        let fpr = s.fingerprint().ok().map(str::to_string);
        let this = match s.status() {
            Ok(()) => match fpr.as_deref().and_then(|f| trusted.get(f)) {
                Some(primary) => SigStatus::Valid {
                    fingerprint: primary.clone(),
                },
                None => SigStatus::UnknownKey {
                    fingerprint: fpr.unwrap_or_default(),
                },
            },
            Err(e) if e.code() == gpgme::Error::NO_PUBKEY.code() => SigStatus::UnknownKey {
                fingerprint: fpr.unwrap_or_default(),
            },
            Err(e) => SigStatus::Bad {
                reason: refusal(&e, fpr.as_deref(), &expires),
                fingerprint: fpr,
            },
        };
        // Every signature must be valid: the first that is not decides.
        if i == 0 || status.is_valid() {
            status = this;
        }
    }
    Ok(Verified {
        status,
        created,
        notations,
    })
}

/// Why a signature by a known key is refused, in words: when an expired
/// key expired, that a revoked key was revoked; GnuPG's words otherwise.
fn refusal(
    e: &gpgme::Error,
    fpr: Option<&str>,
    expires: &HashMap<String, std::time::SystemTime>,
) -> String {
    let key = fpr.unwrap_or("(unknown)");
    if e.code() == gpgme::Error::KEY_EXPIRED.code() {
        let when = fpr
            .and_then(|f| expires.get(f))
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| format!(" on {}", crate::date::rfc3339(d.as_secs())))
            .unwrap_or_default();
        return format!("the key {key} expired{when}; an expired key's signatures are refused");
    }
    if e.code() == gpgme::Error::CERT_REVOKED.code() {
        return format!("the key {key} has been revoked");
    }
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkve_testkit::key;

    #[test]
    fn encrypt_to_a_named_key_then_decrypt_with_its_secret_key() {
        let holder = key("crypt-test");
        let stranger = key("crypt-test-other");
        // The testkit's keys sign only: give one an encryption subkey.
        mkve_testkit::output_of(
            std::process::Command::new("gpg")
                .arg("--homedir")
                .arg(&holder.home)
                .args(["--batch", "--quiet", "--passphrase", "", "--quick-add-key"])
                .arg(&holder.fingerprint)
                .args(["cv25519", "encr", "never"]),
        );
        let (sealed, fpr) = encrypt_to(
            b"{\"pw\":\"s3cret\"}",
            &holder.fingerprint,
            Some(&holder.home),
        )
        .unwrap();
        assert_eq!(fpr, holder.fingerprint);
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(
            decrypt(&sealed, Some(&holder.home)).unwrap(),
            b"{\"pw\":\"s3cret\"}"
        );
        // Another home has no secret key for it (69); a key that cannot
        // encrypt is refused by name (2).
        assert_eq!(
            decrypt(&sealed, Some(&stranger.home))
                .unwrap_err()
                .exit_code(),
            69
        );
        let e = encrypt_to(b"x", &stranger.fingerprint, Some(&stranger.home)).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("that can encrypt"), "{e}");
    }

    #[test]
    fn sign_then_verify_against_the_right_and_the_wrong_keyring() {
        let signer = key("sign-test");
        let other = key("sign-test-other");
        let (fpr, good, wrong) = (signer.fingerprint.clone(), &signer.keyring, &other.keyring);
        let home = &signer.home;

        let (sig, signer) = sign_detached(b"meta", None, Some(home)).unwrap();
        assert_eq!(signer, fpr);
        assert!(sig.starts_with(b"-----BEGIN PGP SIGNATURE-----"));
        assert_eq!(
            verify_detached(b"meta", &sig, Some(good)).unwrap(),
            SigStatus::Valid {
                fingerprint: fpr.clone()
            }
        );
        assert!(matches!(
            verify_detached(b"meta", &sig, Some(wrong)).unwrap(),
            SigStatus::UnknownKey { .. }
        ));
        assert!(matches!(
            verify_detached(b"meta", &sig, None).unwrap(),
            SigStatus::UnknownKey { .. }
        ));
        assert!(matches!(
            verify_detached(b"metA", &sig, Some(good)).unwrap(),
            SigStatus::Bad { .. }
        ));
        assert!(matches!(
            verify_detached(b"meta", b"garbage", Some(good)).unwrap(),
            SigStatus::Bad { .. }
        ));

        // The binary form: an OpenPGP packet (a new- or old-format
        // signature packet tag), verified the same.
        let (bin, _) = sign_detached_binary(b"meta", None, Some(home)).unwrap();
        assert!(matches!(bin[0], 0x88..=0x8b | 0xc2), "{:x}", bin[0]);
        assert!(!bin.starts_with(b"-----"));
        assert!(verify_detached(b"meta", &bin, Some(good))
            .unwrap()
            .is_valid());
        assert!(!verify_detached(b"metA", &bin, Some(good))
            .unwrap()
            .is_valid());

        let (_, by_name) =
            sign_detached(b"meta", Some("sign-test@example.invalid"), Some(home)).unwrap();
        assert_eq!(by_name, fpr);
        let err = sign_detached(b"meta", Some("nobody@example.invalid"), Some(home)).unwrap_err();
        assert!(
            err.to_string()
                .contains("no secret key \"nobody@example.invalid\""),
            "{err}"
        );
    }

    /// A throw-away GnuPG home whose key was made and signed `data` in
    /// the past (gpg --faked-system-time); `revoke` also revokes the key.
    /// Returns (home, keyring file, signature, fingerprint).
    /// The keyring, signature of b"meta" and fingerprint of an old key
    /// kept in tests/fixtures/keys (remade by its `make`).
    fn old_signature(name: &str) -> (std::path::PathBuf, Vec<u8>, String) {
        let dir = mkve_testkit::fixtures().join("keys");
        let sig = std::fs::read(dir.join(format!("{name}.asc"))).unwrap();
        let fpr = std::fs::read_to_string(dir.join(format!("{name}.fpr"))).unwrap();
        (dir.join(format!("{name}.gpg")), sig, fpr.trim().to_string())
    }

    #[test]
    fn an_expired_key_is_refused_saying_when_it_expired() {
        let (keyring, sig, fpr) = old_signature("expired");
        match verify_detached(b"meta", &sig, Some(&keyring)).unwrap() {
            SigStatus::Bad {
                fingerprint,
                reason,
            } => {
                assert_eq!(fingerprint.as_deref(), Some(fpr.as_str()));
                assert!(
                    reason.starts_with(&format!("the key {fpr} expired on 2020-12-31"))
                        || reason.starts_with(&format!("the key {fpr} expired on 2021-01-0")),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_revoked_key_is_refused_saying_so() {
        let (keyring, sig, fpr) = old_signature("revoked");
        match verify_detached(b"meta", &sig, Some(&keyring)).unwrap() {
            SigStatus::Bad { reason, .. } => {
                assert_eq!(reason, format!("the key {fpr} has been revoked"));
            }
            other => panic!("{other:?}"),
        }
    }
}
