//! What each mode of mkve-bundle does, given the parsed command line
//! (already merged with the config file, see `config.rs`): one call into
//! the core.

use std::io::IsTerminal;
use std::path::Path;

use mkve_core::bundle::{self, Check, MakeOptions, ReadOptions, RootSource, Signing};
use mkve_core::files::{self, Output};
use mkve_core::root::{CachePolicy, RootSpec};
use mkve_core::template::{Hypervisor, Template};
use mkve_core::{exec, paths, Error, Result};

use crate::Cli;

pub fn run(cli: Cli) -> Result<()> {
    exec::set_verbose(cli.verbose);
    exec::set_quiet(cli.quiet);

    if let Some(b) = &cli.info {
        let report = read_bundle(&cli, b, Check::Meta, false, None)?;
        let mut v = serde_json::to_value(&report.meta).map_err(|e| Error::Other(e.to_string()))?;
        v["signature"] =
            serde_json::to_value(&report.signature).map_err(|e| Error::Other(e.to_string()))?;
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| Error::Other(e.to_string()))?
        );
        return Ok(());
    }
    if let Some(b) = cli.verify.clone().or(cli.extract.clone()) {
        let report = read_bundle(&cli, &b, Check::Digests, true, cli.directory.as_deref())?;
        let n = report.meta.members.len();
        println!(
            "{}: {}, {n} members verified",
            files::display_name(&b).display(),
            report.signature.describe()
        );
        return Ok(());
    }

    let template_arg = cli.template.clone().ok_or_else(|| {
        Error::Usage(
            "no template given: name one, or set template= in ~/.mkve/bundle-config".into(),
        )
    })?;
    let dir = Template::locate(&template_arg)?;
    let hooks_dir = cli.hooks.clone().unwrap_or_else(paths::default_hooks_dir);
    let template = Template::load(&dir, &hooks_dir, cli.hypervisor)?;
    if cli.check {
        let checked = template
            .hypervisors
            .iter()
            .filter(|h| template.profiles.contains_key(h));
        let hvs: Vec<&str> = checked.map(|h| h.as_str()).collect();
        println!("{}: ok for {}", dir.display(), hvs.join(", "));
        return Ok(());
    }
    if cli.all_hypervisors {
        let dir = cli.output_dir.clone().expect("clap requires --output-dir");
        for &h in &template.hypervisors {
            let out = dir.join(format!("{}-{h}.bun", template.name));
            build(&cli, &template, h, &out)?;
        }
        return Ok(());
    }
    let hypervisor = match (cli.hypervisor, template.hypervisors.as_slice()) {
        (Some(h), _) => h,
        (None, [only]) => *only,
        (None, many) => {
            let names: Vec<&str> = many.iter().map(|h| h.as_str()).collect();
            return Err(Error::Usage(format!(
                "{} lists {}: choose one with --hypervisor",
                dir.display(),
                names.join(", ")
            )));
        }
    };
    let output = cli
        .output
        .clone()
        .ok_or_else(|| Error::Usage("no output given: --output FILE, or - for stdout".into()))?;
    if output.as_os_str() == "-" && std::io::stdout().is_terminal() {
        return Err(Error::Usage(
            "refusing to write a bundle to a terminal: redirect stdout or give --output FILE"
                .into(),
        ));
    }
    build(&cli, &template, hypervisor, &output)
}

/// Make one bundle; print its path unless it went to stdout.
fn build(cli: &Cli, template: &Template, hypervisor: Hypervisor, output: &Path) -> Result<()> {
    let root = match &cli.rootfs {
        Some(r) => RootSource::from_arg(r),
        None => RootSource::Packages {
            backend: cli.backend.clone(),
            spec: RootSpec {
                suite: cli.suite.clone(),
                mirrors: cli.mirror.clone(),
                arch: cli.arch.clone(),
                variant: cli.variant.clone(),
                packages: vec![],
            },
            policy: match (cli.no_cache, cli.refresh) {
                (true, _) => CachePolicy::Skip,
                (_, true) => CachePolicy::Refresh,
                _ => CachePolicy::Use,
            },
        },
    };
    let signing = if cli.force_no_sign {
        Signing::Unsigned
    } else {
        Signing::Key(cli.sign_key.clone())
    };
    let opts = MakeOptions {
        template,
        hypervisor,
        root,
        signing,
        gnupg_home: None,
    };
    let mut out = Output::create(output)?;
    bundle::make(&opts, &mut out)?;
    out.commit()?;
    if output.as_os_str() != "-" {
        println!("{}", output.display());
    }
    Ok(())
}

fn read_bundle(
    cli: &Cli,
    path: &std::path::Path,
    check: Check,
    require: bool,
    unpack_to: Option<&std::path::Path>,
) -> Result<bundle::Report> {
    let default = paths::default_keyring();
    let keyring = match &cli.keyring {
        Some(k) => Some(k.as_path()),
        None if require || default.exists() => Some(default.as_path()),
        None => None,
    };
    let opts = ReadOptions {
        keyring,
        require_signature: require,
        allow_unsigned: cli.allow_unsigned,
        check,
        unpack_to,
    };
    bundle::read(files::open_input(path)?, &files::display_name(path), &opts)
}
