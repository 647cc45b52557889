//! A create's form fields, the page's and the API's alike, named after
//! mkve-vm create's options (`memory`, `vcpus`, `cpu_shares`, …,
//! `param.NAME` or `param=NAME=VALUE`): [`create_options`] is the one
//! place they become a `CreateOptions`.

use std::path::{Path, PathBuf};

use mkve_core::access::RootLogin;
use mkve_core::hypervisor::Hypervisor;
use mkve_core::ids::MachineId;
use mkve_core::params::{self, Given};
use mkve_core::vm::{
    BlkioWeight, CpuShares, CreateOptions, DiskFormat, DiskSize, MachineName, Memory, Vcpus,
};
use mkve_core::{Error, Result};

use crate::config::Config;

/// The form fields of a create, in order, their values as sent (bytes:
/// [`create_options`] checks them).
pub type Fields = Vec<(String, Vec<u8>)>;

/// The one way form fields become `vm::create`'s options, for the page and
/// the API alike; each value is checked by its core type, as mkve-vm's
/// command line checks it, with the same words. Fields: `hypervisor`,
/// `id`, `name`, `memory` (default 512M), `vcpus` (1), `cpu_shares`,
/// `blkio_weight`, `disk_format` (qcow2 on a base, raw without),
/// `disk_size`, `no_base`, `vnc`, `start`, `allow_unsigned` (checkboxes:
/// `on`, `true`, `yes`, `1`, or `off`, `false`, `no`, `0`),
/// `root_password`, `ssh_key` (the text of a public key file),
/// `param.NAME` = VALUE or `param` = NAME=VALUE (repeated); empty fields
/// are not given. Errors, each naming its field: a field nobody reads or
/// given twice, a value that is not UTF-8 or not the option's (2); a bad
/// password or key (65).
pub fn create_options(
    bundle: PathBuf,
    fields: &[(String, Vec<u8>)],
    config: &Config,
) -> Result<CreateOptions> {
    let dashed = |k: &str| format!("--{}", k.replace('_', "-"));
    let mut seen: Vec<&str> = Vec::new();
    for (n, _) in fields {
        crate::request::field_name(n, &seen)?;
        if n == "bundle" {
            return Err(Error::Usage(
                "the field bundle is the bundle's file, not an option".into(),
            ));
        }
        seen.push(n);
    }
    // Each name is there once at most (but param, read below).
    let text = |k: &str| -> Result<Option<&str>> {
        match fields.iter().find(|(n, v)| n == k && !v.is_empty()) {
            None => Ok(None),
            Some((_, v)) => std::str::from_utf8(v)
                .map(Some)
                .map_err(|_| Error::Usage(format!("{}: not UTF-8", dashed(k)))),
        }
    };
    let flag = |k: &str| -> Result<bool> {
        match text(k)? {
            None | Some("off" | "false" | "no" | "0") => Ok(false),
            Some("on" | "true" | "yes" | "1") => Ok(true),
            Some(v) => Err(Error::Usage(format!(
                "{}: \"{}\" is neither on nor off",
                dashed(k),
                mkve_core::text::printable(v)
            ))),
        }
    };
    // The value as the command line's clap parses it: whole, untrimmed.
    fn typed<T: std::str::FromStr<Err = String>>(k: &str, v: Option<&str>) -> Result<Option<T>> {
        v.map(|v| {
            v.parse::<T>()
                .map_err(|e| Error::Usage(format!("--{}: {e}", k.replace('_', "-"))))
        })
        .transpose()
    }
    let hypervisor = match text("hypervisor")? {
        Some(h) => Some(
            h.parse::<Hypervisor>()
                .map_err(|e| Error::Usage(format!("--hypervisor: {e}")))?,
        ),
        None => None,
    };
    let mut given = Vec::new();
    for (n, v) in fields {
        let arg = match n.strip_prefix("param.") {
            Some(name) => [name.as_bytes(), b"=", v].concat(),
            None if n == "param" => v.clone(),
            None => continue,
        };
        if !v.is_empty() {
            given.push(
                Given::parse_bytes(&arg, false)
                    .map_err(|e| Error::Usage(format!("--param: {e}")))?,
            );
        }
    }
    let access = RootLogin::from_texts(
        text("root_password")?.map(|p| (Path::new("root password"), p)),
        text("ssh_key")?.map(|k| (Path::new("SSH key"), k)),
    )?;
    Ok(CreateOptions {
        bundle,
        hypervisor,
        id: typed::<MachineId>("id", text("id")?)?,
        name: typed::<MachineName>("name", text("name")?)?,
        again: None,
        memory: typed::<Memory>("memory", text("memory")?)?
            .map_or_else(|| "512M".parse().map_err(Error::Usage), Ok)?,
        vcpus: typed::<Vcpus>("vcpus", text("vcpus")?)?
            .map_or_else(|| "1".parse().map_err(Error::Usage), Ok)?,
        cpu_shares: typed::<CpuShares>("cpu_shares", text("cpu_shares")?)?,
        blkio_weight: typed::<BlkioWeight>("blkio_weight", text("blkio_weight")?)?,
        vnc: flag("vnc")?,
        connect: config.connect.clone(),
        keyring: config.keyring.clone(),
        allow_unsigned: flag("allow_unsigned")?,
        start: flag("start")?,
        access,
        disk_format: typed::<DiskFormat>("disk_format", text("disk_format")?)?,
        disk_size: typed::<DiskSize>("disk_size", text("disk_size")?)?,
        params: params::read_given(&given)?,
        no_base: flag("no_base")?,
        // A node that does not answer stops a create from the web: the
        // operator who means to go on says so on the command line.
        local_ids: false,
        source: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkve_core::vm;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.as_bytes().to_vec()))
            .collect()
    }

    fn config() -> Config {
        Config::new(vm::uris(Some("test:///default")).unwrap())
    }

    #[test]
    fn fields_become_the_options_mkve_vm_would_make() {
        let o = create_options(
            "b.bun".into(),
            &fields(&[
                ("memory", "1G"),
                ("vcpus", "2"),
                ("cpu_shares", "512"),
                ("blkio_weight", ""),
                ("start", "on"),
                ("root_password", "s3cret"),
                ("param.admin", "x y"),
                ("param", "other=1"),
            ]),
            &config(),
        )
        .unwrap();
        assert_eq!(o.memory.mib(), 1024);
        assert_eq!(o.vcpus.get(), 2);
        assert_eq!(o.cpu_shares.map(CpuShares::get), Some(512));
        assert!(o.blkio_weight.is_none());
        assert!(o.start && !o.allow_unsigned && !o.vnc);
        assert!(!o.access.is_empty());
        assert_eq!(
            o.params,
            vec![
                ("admin".to_string(), "x y".to_string()),
                ("other".to_string(), "1".to_string())
            ]
        );
        let defaults = create_options("b.bun".into(), &[], &config()).unwrap();
        assert_eq!(defaults.memory.mib(), 512);
        assert_eq!(defaults.vcpus.get(), 1);
    }

    #[test]
    fn bad_fields_are_refused_as_the_cli_refuses_them() {
        let refused =
            |f: &[(&str, &str)]| match create_options("b.bun".into(), &fields(f), &config()) {
                Err(e) => e,
                Ok(_) => panic!("{f:?} accepted"),
            };
        let e = refused(&[("memory", "1X")]);
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("--memory: "), "{e}");
        let e = refused(&[("ssh_key", "nope")]);
        assert_eq!(e.exit_code(), 65);
        assert!(e.to_string().contains("not an OpenSSH public key"), "{e}");
        let e = refused(&[("param", "a=1"), ("param.a", "2")]);
        assert_eq!(e.to_string(), "parameter a is given twice");
    }
}
