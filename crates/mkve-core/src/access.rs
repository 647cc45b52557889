//! What differs per machine, set in its root before its first boot: root's
//! password and SSH keys (`mkve-vm create --root-password-file F --ssh-key
//! F`), read and checked before anything is made; and its identity, its
//! host name and its resolver (`set_identity`). The changes are made in
//! the root as unpacked, through its own symbolic links resolved inside
//! it, so a root cannot make mkve write outside it.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Problem, Result};
use crate::hooks::resolve_in_root;

/// What to set in a new machine's root.
#[derive(Debug, Default, Clone)]
pub struct RootLogin {
    /// Root's password, as given (hashed with SHA-512 crypt when applied).
    password: Option<String>,
    /// OpenSSH public keys for root's authorized_keys, one per entry.
    keys: Vec<String>,
}

fn read_all(path: &Path) -> Result<String> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::io("(stdin)", e))?;
    } else {
        text = std::fs::read_to_string(path).at(path)?;
    }
    Ok(text)
}

fn invalid(path: &Path, line: Option<usize>, why: impl Into<String>) -> Error {
    Error::InvalidConfig(Problem::new(path, line, why))
}

/// Whether `line` looks like one OpenSSH public key: optional options,
/// then a key type, then base64.
fn is_public_key(line: &str) -> bool {
    let fields: Vec<&str> = line.split_whitespace().collect();
    fields.windows(2).any(|w| {
        let ty = w[0];
        (ty.starts_with("ssh-")
            || ty.starts_with("ecdsa-sha2-")
            || ty.starts_with("sk-ssh-")
            || ty.starts_with("sk-ecdsa-"))
            && w[1].starts_with("AAAA")
            && w[1]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
    })
}

impl RootLogin {
    /// Read and check the password file (its first line is the password)
    /// and the key file (OpenSSH public keys, one per line; blank lines
    /// and `#` comments skipped). `-` reads stdin.
    pub fn read(password_file: Option<&Path>, key_file: Option<&Path>) -> Result<RootLogin> {
        if password_file == Some(Path::new("-")) && key_file == Some(Path::new("-")) {
            return Err(Error::Usage(
                "--root-password-file and --ssh-key cannot both be read from stdin".into(),
            ));
        }
        let password = password_file
            .map(|p| read_all(p).map(|t| (p, t)))
            .transpose()?;
        let keys = key_file.map(|k| read_all(k).map(|t| (k, t))).transpose()?;
        RootLogin::from_texts(
            password.as_ref().map(|(p, t)| (*p, t.as_str())),
            keys.as_ref().map(|(k, t)| (*k, t.as_str())),
        )
    }

    /// The same checks on texts already read (a web form's fields): the
    /// password's first line, and the keys' lines; each text comes with
    /// the name errors give it (its file, or a form field). Errors (65,
    /// naming the name and line): an empty password, a private key, a line
    /// that is not a public key, no key at all.
    pub fn from_texts(
        password: Option<(&Path, &str)>,
        keys: Option<(&Path, &str)>,
    ) -> Result<RootLogin> {
        let mut access = RootLogin::default();
        if let Some((p, text)) = password {
            let first = text.lines().next().unwrap_or("");
            if first.is_empty() {
                return Err(invalid(p, Some(1), "the password is empty"));
            }
            access.password = Some(first.to_string());
        }
        if let Some((k, text)) = keys {
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                if line.starts_with("-----BEGIN") {
                    return Err(invalid(
                        k,
                        Some(n + 1),
                        "is a private key: give the public one (the .pub file)",
                    ));
                }
                if !is_public_key(line) {
                    return Err(invalid(
                        k,
                        Some(n + 1),
                        "not an OpenSSH public key (like \"ssh-ed25519 AAAA… comment\")",
                    ));
                }
                access.keys.push(line.to_string());
            }
            if access.keys.is_empty() {
                return Err(invalid(k, None, "holds no public key"));
            }
        }
        Ok(access)
    }

    pub fn is_empty(&self) -> bool {
        self.password.is_none() && self.keys.is_empty()
    }

    /// Root's password as given (a create on another node carries it
    /// there, inside ssh, to be set and hashed where the machine is made).
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The public keys, one line each.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// Set root's password in `root`'s /etc/shadow and add the keys to
    /// root's authorized_keys. `label` names the bundle in errors.
    pub fn apply(&self, root: &Path, label: &Path) -> Result<()> {
        if let Some(pw) = &self.password {
            let hash = sha_crypt::sha512_simple(pw, &sha_crypt::Sha512Params::default())
                .map_err(|e| Error::Other(format!("hashing the password: {e:?}")))?;
            let shadow = resolve_in_root(root, Path::new("/etc/shadow"))?;
            let text = std::fs::read_to_string(&shadow).map_err(|e| {
                Error::bundle(label, format!("cannot read the root's /etc/shadow: {e}"))
            })?;
            let days = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() / 86400)
                .unwrap_or(0);
            let new = set_shadow_password(&text, "root", &hash, days)
                .ok_or_else(|| Error::bundle(label, "its /etc/shadow has no entry for root"))?;
            replace_file(&shadow, new.as_bytes())?;
        }
        if !self.keys.is_empty() {
            let home = root_home(root);
            let ssh = resolve_in_root(root, &home.join(".ssh"))?;
            if !ssh.exists() {
                std::fs::create_dir_all(&ssh).map_err(|e| Error::create(&ssh, e))?;
                std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o700)).at(&ssh)?;
                std::os::unix::fs::chown(&ssh, Some(0), Some(0)).at(&ssh)?;
            }
            let file = resolve_in_root(root, &home.join(".ssh/authorized_keys"))?;
            let old = std::fs::read_to_string(&file).unwrap_or_default();
            let mut text = old.clone();
            for k in &self.keys {
                if !old.lines().any(|l| l.trim() == k) {
                    if !text.is_empty() && !text.ends_with('\n') {
                        text.push('\n');
                    }
                    text.push_str(k);
                    text.push('\n');
                }
            }
            if !file.exists() {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&file)
                    .map_err(|e| Error::create(&file, e))?;
                f.write_all(text.as_bytes()).at(&file)?;
                std::os::unix::fs::chown(&file, Some(0), Some(0)).at(&file)?;
            } else {
                replace_file(&file, text.as_bytes())?;
            }
        }
        Ok(())
    }
}

/// Root's home directory as the root's /etc/passwd says; /root if it
/// does not.
pub(crate) fn root_home(root: &Path) -> PathBuf {
    resolve_in_root(root, Path::new("/etc/passwd"))
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("root:"))
                .and_then(|l| l.split(':').nth(5))
                .filter(|h| h.starts_with('/'))
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("/root"))
}

/// `shadow` with `user`'s password hash and last-change day replaced;
/// `None` when `user` has no entry.
pub fn set_shadow_password(shadow: &str, user: &str, hash: &str, days: u64) -> Option<String> {
    let mut found = false;
    let mut out = String::with_capacity(shadow.len() + hash.len());
    for line in shadow.lines() {
        let mut fields: Vec<String> = line.split(':').map(str::to_string).collect();
        if fields.first().map(String::as_str) == Some(user) && fields.len() >= 3 {
            fields[1] = hash.to_string();
            fields[2] = days.to_string();
            found = true;
        }
        out.push_str(&fields.join(":"));
        out.push('\n');
    }
    found.then_some(out)
}

/// Give the machine in `root` its identity: `/etc/hostname` is `name`,
/// `/etc/hosts` maps 127.0.1.1 to it (as Debian's installer does), and
/// `/etc/resolv.conf` names `resolver`, the host's address on the mkve
/// network, where libvirt's dnsmasq answers for every machine by the name
/// in its DHCP entry. A build host's files a bundle still carries are
/// replaced; a resolv.conf that is a symbolic link is replaced by a file.
pub fn set_identity(root: &Path, name: &str, resolver: std::net::Ipv4Addr) -> Result<()> {
    let etc = resolve_in_root(root, Path::new("/etc"))?;
    std::fs::create_dir_all(&etc).map_err(|e| Error::create(&etc, e))?;
    write_root_file(&etc.join("hostname"), format!("{name}\n").as_bytes())?;
    let hosts = etc.join("hosts");
    let old = match std::fs::symlink_metadata(&hosts) {
        Ok(m) if m.is_file() => read_all(&hosts)?,
        _ => "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".into(),
    };
    write_root_file(&hosts, hosts_naming(&old, name).as_bytes())?;
    write_root_file(
        &etc.join("resolv.conf"),
        format!("# the mkve network's resolver (libvirt's dnsmasq)\nnameserver {resolver}\n")
            .as_bytes(),
    )
}

/// The hosts file `old` with 127.0.1.1 naming `name` (its other lines
/// kept), as Debian's installer writes it.
pub fn hosts_naming(old: &str, name: &str) -> String {
    let mut text: String = old
        .lines()
        .filter(|l| !l.trim_start().starts_with("127.0.1.1"))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(&format!("127.0.1.1\t{name}\n"));
    text
}

/// `path` (whose directory is inside a root) replaced by a regular file
/// holding `bytes`: with the old file's mode and owner when it was one,
/// else 0644 root:root; a symbolic link there is replaced, not followed.
fn write_root_file(path: &Path, bytes: &[u8]) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => replace_file(path, bytes),
        Ok(m) if m.is_dir() => Err(Error::create(path, std::io::Error::other("is a directory"))),
        _ => {
            let _ = std::fs::remove_file(path);
            std::fs::write(path, bytes).map_err(|e| Error::create(path, e))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).at(path)?;
            if nix::unistd::geteuid().is_root() {
                std::os::unix::fs::lchown(path, Some(0), Some(0)).at(path)?;
            }
            Ok(())
        }
    }
}

/// Write `bytes` to a new file beside `path`, with its mode and owner,
/// and rename it over `path`.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let meta = std::fs::metadata(path).at(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".mkve.")
        .tempfile_in(dir)
        .map_err(|e| Error::create(path, e))?;
    tmp.write_all(bytes).at(path)?;
    let f = tmp.as_file();
    f.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))
        .at(path)?;
    std::os::unix::fs::fchown(f, Some(meta.uid()), Some(meta.gid())).at(path)?;
    tmp.persist(path)
        .map_err(|e| Error::create(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJvEw8o3v0yX3o1Z0n2Wm1p6yqz9rC0a9bC0a9bC0a9b op@desk";

    fn root() -> tempfile::TempDir {
        let d = crate::testing::tree(&[
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
            (
                "etc/shadow",
                "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
            ),
        ]);
        std::fs::set_permissions(
            d.path().join("etc/shadow"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        d
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn the_password_is_hashed_into_shadow_and_checks() {
        let r = root();
        let pw = file("s3cret pass\nignored\n");
        let a = RootLogin::read(Some(pw.path()), None).unwrap();
        a.apply(r.path(), Path::new("x.bun")).unwrap();
        let shadow = std::fs::read_to_string(r.path().join("etc/shadow")).unwrap();
        let root_line = shadow.lines().next().unwrap();
        let hash = root_line.split(':').nth(1).unwrap();
        assert!(hash.starts_with("$6$"), "{hash}");
        sha_crypt::sha512_check("s3cret pass", hash).expect("the hash checks");
        assert!(sha_crypt::sha512_check("other", hash).is_err());
        assert!(shadow.contains("\ndaemon:*:19000:"), "other entries kept");
        let mode = std::fs::metadata(r.path().join("etc/shadow"))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o777, 0o640, "mode kept");
    }

    #[test]
    fn a_shadow_link_out_of_the_root_stays_inside_it() {
        let r = root();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("shadow");
        std::fs::write(&victim, "root:*:1:0:99999:7:::\n").unwrap();
        std::fs::remove_file(r.path().join("etc/shadow")).unwrap();
        std::os::unix::fs::symlink(&victim, r.path().join("etc/shadow")).unwrap();
        let pw = file("pw\n");
        let a = RootLogin::read(Some(pw.path()), None).unwrap();
        // The absolute link is followed inside the root, where no such file is.
        assert!(a.apply(r.path(), Path::new("x.bun")).is_err());
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "root:*:1:0:99999:7:::\n"
        );
    }

    #[test]
    fn the_identity_replaces_the_build_host_s() {
        let r = root();
        let etc = r.path().join("etc");
        std::fs::write(etc.join("hostname"), "buildhost\n").unwrap();
        std::fs::write(
            etc.join("hosts"),
            "127.0.0.1 localhost\n127.0.1.1 buildhost\n",
        )
        .unwrap();
        std::os::unix::fs::symlink(
            "/run/systemd/resolve/stub-resolv.conf",
            etc.join("resolv.conf"),
        )
        .unwrap();
        set_identity(r.path(), "ntp-100", "192.0.2.1".parse().unwrap()).unwrap();
        let read = |n: &str| std::fs::read_to_string(etc.join(n)).unwrap();
        assert_eq!(read("hostname"), "ntp-100\n");
        assert_eq!(read("hosts"), "127.0.0.1 localhost\n127.0.1.1\tntp-100\n");
        assert!(read("resolv.conf").ends_with("nameserver 192.0.2.1\n"));
        assert!(!std::fs::symlink_metadata(etc.join("resolv.conf"))
            .unwrap()
            .file_type()
            .is_symlink());
        // A root with no /etc files at all gets them.
        let bare = tempfile::tempdir().unwrap();
        set_identity(bare.path(), "web", "192.0.2.1".parse().unwrap()).unwrap();
        assert!(std::fs::read_to_string(bare.path().join("etc/hosts"))
            .unwrap()
            .contains("127.0.1.1\tweb"));
    }

    #[test]
    #[ignore = "needs root: chown of root/.ssh to uid 0"]
    fn keys_are_added_once_with_private_modes() {
        let r = root();
        let k = file(&format!("# mine\n\n{KEY}\n"));
        let a = RootLogin::read(None, Some(k.path())).unwrap();
        a.apply(r.path(), Path::new("x.bun")).unwrap();
        a.apply(r.path(), Path::new("x.bun")).unwrap();
        let f = r.path().join("root/.ssh/authorized_keys");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), format!("{KEY}\n"));
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
        let d = std::fs::metadata(r.path().join("root/.ssh")).unwrap();
        assert_eq!(d.mode() & 0o777, 0o700);
    }

    #[test]
    fn bad_inputs_name_the_file_and_line() {
        let k = file("ssh-ed25519 AAAAC3Nz op\nnot a key\n");
        let e = RootLogin::read(None, Some(k.path())).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}:2: not an OpenSSH public key (like \"ssh-ed25519 AAAA… comment\")",
                k.path().display()
            )
        );
        assert_eq!(e.exit_code(), 65);
        let k = file("-----BEGIN OPENSSH PRIVATE KEY-----\n");
        let e = RootLogin::read(None, Some(k.path())).unwrap_err();
        assert!(e
            .to_string()
            .ends_with(":1: is a private key: give the public one (the .pub file)"));
        let k = file("# nothing\n");
        let e = RootLogin::read(None, Some(k.path())).unwrap_err();
        assert!(e.to_string().ends_with(": holds no public key"));
        let p = file("\n");
        let e = RootLogin::read(Some(p.path()), None).unwrap_err();
        assert!(e.to_string().ends_with(":1: the password is empty"));
        let e = RootLogin::read(Some(Path::new("-")), Some(Path::new("-"))).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn a_root_without_a_root_entry_is_told() {
        let r = root();
        std::fs::write(r.path().join("etc/shadow"), "daemon:*:1:0:::::\n").unwrap();
        let pw = file("pw\n");
        let e = RootLogin::read(Some(pw.path()), None)
            .unwrap()
            .apply(r.path(), Path::new("x.bun"))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.bun: its /etc/shadow has no entry for root"
        );
    }
}
