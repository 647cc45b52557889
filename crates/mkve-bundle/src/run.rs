//! What each mode of mkve-bundle does, given the parsed command line
//! (already merged with the config file, see `config.rs`): one call into
//! the core.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use mkve_core::bundle::{self, Check, MakeOptions, ReadOptions, RootSource, Signing};
use mkve_core::fetch;
use mkve_core::files::{self, Output};
use mkve_core::hypervisor::Hypervisor;
use mkve_core::publish::PublishOptions;
use mkve_core::template::Template;
use mkve_core::{params, paths, probe, state, Error, Result};

use crate::cli::Cli;

pub fn run(cli: Cli) -> Result<()> {
    let report = cli.verbosity.term();

    if let Some(b) = &cli.info {
        let report = read_bundle(&cli, b, Check::Conf, false, None)?;
        let mut v = json(&report.meta)?;
        v["signature"] = json(&report.signature)?;
        // What the operator gives at create, how the service is told up,
        // and where it keeps its data (mkve-template(5)), from the
        // bundle's own members.
        let label = files::display_name(b);
        let member = |m: &str| report.conf.get(m).map(|t| (label.join(m), t));
        let params = match member(params::MEMBER) {
            Some((path, text)) => {
                params::parse(text, &path).map_err(|mut p| Error::InvalidBundle(p.remove(0)))?
            }
            None => Vec::new(),
        };
        let probes = match member(probe::MEMBER) {
            Some((path, text)) => probe::parse(text, &path)
                .map_err(|mut p| Error::InvalidBundle(p.remove(0)))?
                .into_iter()
                .map(|p| p.text)
                .collect(),
            None => Vec::new(),
        };
        let state = match member(state::MEMBER) {
            Some((path, text)) => {
                state::parse(text, &path).map_err(|mut p| Error::InvalidBundle(p.remove(0)))?
            }
            None => Vec::new(),
        };
        v["params"] = json(&params)?;
        v["probes"] = json(&probes)?;
        v["state"] = json(&state)?;
        return mkve_cli::print_json(&v);
    }
    if let [format, b] = cli.sbom.as_slice() {
        return sbom(&cli, format, b);
    }
    if !cli.audit.is_empty() {
        return audit(&cli, &cli.audit, &report);
    }
    if let Some(b) = &cli.outdated {
        return outdated(&cli, b, &report);
    }
    if let Some(b) = cli.verify.clone().or(cli.extract.clone()) {
        let report = read_bundle(&cli, &b, Check::Digests, true, cli.directory.as_deref())?;
        let n = report.meta.members.len();
        return mkve_cli::outln!(
            "{}: {}, {n} member{} verified",
            files::display_name(&b).display(),
            report.signature.describe(),
            if n == 1 { "" } else { "s" }
        );
    }

    if let Some((dir, bundles)) = cli.publish.split_first() {
        return publish(&cli, dir, bundles, &report);
    }
    if let Some(url) = &cli.fetch {
        return fetch(&cli, &fetch::Url::parse(url)?, &report);
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
        for w in template.warnings() {
            mkve_core::exec::Report::warning(&report, &w.to_string());
        }
        let checked = template
            .hypervisors
            .iter()
            .filter(|h| template.profiles.contains_key(h));
        let hvs: Vec<&str> = checked.map(|h| h.as_str()).collect();
        return mkve_cli::outln!("{}: ok for {}", dir.display(), hvs.join(", "));
    }
    if cli.all_hypervisors {
        let dir = cli
            .output_dir
            .clone()
            .ok_or_else(|| Error::Usage("--all-hypervisors needs --output-dir".into()))?;
        // Made at once as mkdir -p makes it (as --publish makes its
        // directory), before any bundle is built: one that cannot be made
        // is named now, not after the first build.
        std::fs::create_dir_all(&dir).map_err(|e| Error::create(&dir, e))?;
        for &h in &template.hypervisors {
            let out = dir.join(format!("{}-{h}.bun", template.name));
            build(&cli, &template, h, &out, &report)?;
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
    not_a_terminal(&output)?;
    build(&cli, &template, hypervisor, &output, &report)
}

fn not_a_terminal(output: &Path) -> Result<()> {
    if output.as_os_str() == "-" && std::io::stdout().is_terminal() {
        return Err(Error::Usage(
            "refusing to write a bundle to a terminal: redirect stdout or give --output FILE"
                .into(),
        ));
    }
    Ok(())
}

/// The keyring bundles are checked against: --keyring, else the default
/// one (which must then exist when `require`).
fn keyring(cli: &Cli, require: bool) -> Option<PathBuf> {
    let default = paths::default_keyring();
    match &cli.keys.keyring {
        Some(k) => Some(k.clone()),
        None if require || default.exists() => Some(default),
        None => None,
    }
}

/// --sbom FORMAT BUNDLE: the SBOM member, checked, in SPDX or CycloneDX.
fn sbom(cli: &Cli, format: &Path, b: &Path) -> Result<()> {
    use mkve_core::bundle::sbom;
    let cyclonedx = match format.to_str() {
        Some("spdx") => false,
        Some("cyclonedx") => true,
        _ => {
            return Err(Error::Usage(format!(
                "--sbom: unknown format \"{}\" (spdx or cyclonedx)",
                format.display()
            )))
        }
    };
    let v = bundle_sbom(cli, b)?;
    let v = if cyclonedx {
        let bytes = serde_json::to_vec(&v).map_err(|e| Error::Other(e.to_string()))?;
        sbom::to_cyclonedx(&bytes, &files::display_name(b))?
    } else {
        v
    };
    mkve_cli::print_json(&v)
}

/// The SBOM of a bundle, read as --sbom reads it: the signature checked,
/// then meta.json, the SBOM and the provenance only.
fn bundle_sbom(cli: &Cli, b: &Path) -> Result<serde_json::Value> {
    Ok(bundle_sbom_and_provenance(cli, b)?.0)
}

/// [`bundle_sbom`], and the provenance's bytes.
fn bundle_sbom_and_provenance(cli: &Cli, b: &Path) -> Result<(serde_json::Value, Option<Vec<u8>>)> {
    use mkve_core::bundle::sbom;
    let report = read_bundle(cli, b, Check::Sbom, true, None)?;
    let label = files::display_name(b);
    let Some(bytes) = report.sbom else {
        return Err(Error::bundle(
            &label,
            format!(
                "format {} has no {} (bundles carry one from format 3)",
                report.meta.format,
                sbom::MEMBER
            ),
        ));
    };
    let bad = |why: String| Error::bundle(&label, format!("{}: {why}", sbom::MEMBER));
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    sbom::check_spdx(&v).map_err(bad)?;
    Ok((v, report.provenance))
}

/// --outdated BUNDLE --mirror URL…: the packages the mirrors have newer
/// versions of, as a table or JSON; exit status 1 (with a line on stderr)
/// when there is one, and when there is none, say that a rebuild would
/// change nothing.
fn outdated(cli: &Cli, b: &Path, report: &dyn mkve_core::exec::Report) -> Result<()> {
    use mkve_core::outdated::{self, Mirror};
    if cli.root.mirror.is_empty() {
        return Err(Error::Usage(
            "--outdated needs --mirror URL (or \"deb URL SUITE COMPONENT…\")".into(),
        ));
    }
    let mirrors: Vec<Mirror> = cli
        .root
        .mirror
        .iter()
        .map(|m| Mirror::parse(m))
        .collect::<Result<_>>()?;
    let (doc, provenance) = bundle_sbom_and_provenance(cli, b)?;
    let label = files::display_name(b);
    let installed = mkve_core::audit::installed_from_spdx(&doc, &label)?;
    // The suite the root was built from, as its provenance says.
    let built_from = provenance
        .and_then(|p| serde_json::from_slice::<serde_json::Value>(&p).ok())
        .and_then(|v| {
            v.pointer("/predicate/buildDefinition/externalParameters/root/suite")
                .and_then(|s| s.as_str())
                .map(str::to_string)
        });
    let suite = cli.root.suite.clone().or(built_from);
    let found = outdated::outdated(&installed, &mirrors, suite.as_deref(), report)?;
    if cli.json {
        mkve_cli::print_json(&found)?;
    } else if !found.newer.is_empty() {
        let mut rows = vec![[
            "PACKAGE",
            "ARCH",
            "INSTALLED",
            "AVAILABLE",
            "SECURITY",
            "FROM",
        ]
        .map(String::from)];
        for n in &found.newer {
            rows.push([
                n.package.clone(),
                if n.architecture.is_empty() {
                    "-".into()
                } else {
                    n.architecture.clone()
                },
                n.installed.clone(),
                n.available.clone(),
                if n.security { "security" } else { "-" }.into(),
                n.from.clone(),
            ]);
        }
        mkve_cli::print_table(&rows)?;
    }
    let searched: Vec<String> = found
        .archives
        .iter()
        .map(|a| format!("{} {}", a.url, a.suite))
        .collect();
    if found.newer.is_empty() {
        if !cli.json {
            mkve_cli::outln!(
                "{}: nothing newer in {}: a rebuild from the same template and SOURCE_DATE_EPOCH would be byte-identical",
                label.display(),
                searched.join(", ")
            )?;
        }
        return Ok(());
    }
    let n = found.newer.len();
    let security = found.newer.iter().filter(|n| n.security).count();
    Err(Error::Other(format!(
        "{n} package{} newer in {} ({security} security update{}): a rebuild would change the bundle",
        if n == 1 { "" } else { "s" },
        searched.join(", "),
        if security == 1 { "" } else { "s" }
    )))
}

/// --audit BUNDLE… --feed FILE|URL: the open findings, as a table or
/// JSON; exit status 1 (with a line on stderr) when there is one.
fn audit(cli: &Cli, bundles: &[PathBuf], report: &dyn mkve_core::exec::Report) -> Result<()> {
    use mkve_core::audit;
    let feed_arg = cli
        .feed
        .as_deref()
        .ok_or_else(|| Error::Usage("--audit needs --feed FILE|URL".into()))?;
    let feed = audit::load_feed(feed_arg)?;
    let accepted_path = cli
        .accepted
        .clone()
        .unwrap_or_else(|| paths::confdir().join(audit::ACCEPTED));
    let accepted = audit::load_accepted(&accepted_path)?;
    let mut open = Vec::new();
    let mut hidden = 0;
    for b in bundles {
        let doc = bundle_sbom(cli, b)?;
        let label = files::display_name(b);
        let installed = audit::installed_from_spdx(&doc, &label)?;
        let (found, covered) = audit::open_findings(&feed, &installed, &accepted);
        hidden += covered;
        open.extend(found.into_iter().map(|f| (label.display().to_string(), f)));
    }
    if hidden > 0 {
        report.note(&format!(
            "{hidden} accepted in {} not shown",
            accepted_path.display()
        ));
    }
    if cli.json {
        let rows: Vec<serde_json::Value> = open
            .iter()
            .map(|(b, f)| {
                let mut v = json(f)?;
                v["bundle"] = b.clone().into();
                Ok(v)
            })
            .collect::<Result<_>>()?;
        mkve_cli::print_json(&rows)?;
    } else if !open.is_empty() {
        let mut table = vec![[
            "BUNDLE",
            "CVE",
            "PACKAGE",
            "SOURCE",
            "INSTALLED",
            "FIXED",
            "URGENCY",
            "REMOTE",
        ]
        .map(String::from)];
        for (b, f) in &open {
            table.push([
                b.clone(),
                f.cve.clone(),
                f.package.clone(),
                f.source.clone(),
                f.installed.clone(),
                f.fixed.clone().unwrap_or_else(|| "-".into()),
                f.urgency.clone().unwrap_or_else(|| "-".into()),
                match f.remote {
                    Some(true) => "remote",
                    Some(false) => "local",
                    None => "-",
                }
                .into(),
            ]);
        }
        mkve_cli::print_table(&table)?;
    }
    if open.is_empty() {
        return Ok(());
    }
    let n = open.len();
    Err(Error::Other(format!(
        "{n} open vulnerabilit{} (a CVE in a package of a bundle)",
        if n == 1 { "y" } else { "ies" }
    )))
}

/// --publish: print where each bundle is now.
fn publish(
    cli: &Cli,
    dir: &Path,
    bundles: &[PathBuf],
    report: &dyn mkve_core::exec::Report,
) -> Result<()> {
    let keyring = keyring(cli, true).unwrap_or_else(paths::default_keyring);
    let published = mkve_core::publish::publish(&PublishOptions {
        dir,
        bundles,
        keyring: &keyring,
        allow_unsigned: cli.keys.allow_unsigned,
        sign_key: cli.sign_key.as_deref(),
        gnupg_home: None,
        valid_for: cli.valid_for.map(|v| v.0),
        report,
    })?;
    for p in published {
        mkve_cli::outln!("{}", p.path.display())?;
    }
    Ok(())
}

/// --fetch: print the bundle's path unless it went to stdout.
fn fetch(cli: &Cli, url: &fetch::Url, report: &dyn mkve_core::exec::Report) -> Result<()> {
    let output = cli
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(url.name()));
    not_a_terminal(&output)?;
    // Stopped by a signal, the part file goes (mkve-bundle(1), SIGNALS).
    mkve_core::interrupt::catch()?;
    let keyring = keyring(cli, true);
    let opts = ReadOptions {
        keyring: keyring.as_deref(),
        require_signature: true,
        allow_unsigned: cli.keys.allow_unsigned,
        check: Check::Digests,
        unpack_to: None,
        skip_root: None,
    };
    let mut out = Output::create(&output)?;
    fetch::read(url, &opts, Some(&mut out), report)?;
    out.commit()?;
    if output.as_os_str() != "-" {
        mkve_cli::outln!("{}", output.display())?;
    }
    Ok(())
}

/// Make one bundle; print its path unless it went to stdout.
fn build(
    cli: &Cli,
    template: &Template,
    hypervisor: Hypervisor,
    output: &Path,
    report: &dyn mkve_core::exec::Report,
) -> Result<()> {
    let root = match &cli.rootfs {
        Some(r) => RootSource::from_arg(r),
        None => RootSource::Packages {
            backend: cli.root.backend,
            spec: cli.root.spec(vec![]),
            policy: cli.root.policy(),
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
        report,
        output,
    };
    let mut out = Output::create(output)?;
    bundle::make(&opts, &mut out)?;
    out.commit()?;
    if output.as_os_str() != "-" {
        mkve_cli::outln!("{}", output.display())?;
    }
    Ok(())
}

fn read_bundle(
    cli: &Cli,
    path: &std::path::Path,
    check: Check,
    require: bool,
    unpack_to: Option<&std::path::Path>,
) -> Result<bundle::ReadResult> {
    let keyring = keyring(cli, require);
    let opts = ReadOptions {
        keyring: keyring.as_deref(),
        require_signature: require,
        allow_unsigned: cli.keys.allow_unsigned,
        check,
        unpack_to,
        skip_root: None,
    };
    bundle::read(files::open_input(path)?, &files::display_name(path), &opts)
}

fn json(x: &impl serde::Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(x).map_err(|e| Error::Other(e.to_string()))
}
