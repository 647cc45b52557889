//! The command line and `~/.mkve/bundle-config` (mkve-bundle-config(5))
//! merged into one `Cli`. The file's variables are the command's own
//! arguments, so their list, their values' checks, their conflicts and
//! their requirements all come from clap's definition of `Cli`: nothing
//! here names an option. Running the file is `mkve_core::config`'s.
//!
//! A value from the file counts as if it had been typed before the
//! command line's arguments, unless the command line gave that argument or
//! one it conflicts with. Typed, not a clap default: clap ignores defaults
//! in `requires`, both in the argument that requires and in the one
//! required, so `--all-hypervisors` with `output_dir=` from the file would
//! be refused, and `all_hypervisors=yes` would escape its requirement.

use std::ffi::OsString;

use clap::builder::Resettable;
use clap::error::{ContextKind, ContextValue};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, FromArgMatches};
use mkve_core::config::Config;
use mkve_core::{paths, Error, Result};

use crate::cli::Cli;

/// Arguments the file may not set: which file to read, and clap's own.
const NOT_VARIABLES: &[&str] = &["config", "no_config", "help", "version"];
/// Nor the arguments of this group, which choose what mkve-bundle does: a
/// file that set one would make every run a check or a verification.
const MODE_GROUP: &str = "mode";

/// The command as clap completes it (help, version and groups added).
#[cfg(test)]
fn command() -> Command {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    cmd.build();
    cmd
}

/// The variables the file may set, with their arguments, in the order of
/// `--help`.
pub fn variables(cmd: &Command) -> Vec<(String, &Arg)> {
    let modes: Vec<&clap::Id> = cmd
        .get_groups()
        .filter(|g| g.get_id() == MODE_GROUP)
        .flat_map(|g| g.get_args())
        .collect();
    cmd.get_arguments()
        .filter(|a| !NOT_VARIABLES.contains(&a.get_id().as_str()) && !modes.contains(&a.get_id()))
        .map(|a| (variable_name(a), a))
        .collect()
}

/// `--all-hypervisors` is `all_hypervisors`; a positional argument goes by
/// its id.
fn variable_name(a: &Arg) -> String {
    a.get_long()
        .unwrap_or(a.get_id().as_str())
        .replace('-', "_")
}

/// The command line with the config file's values added: parse it, read
/// the config file it names (or the default one), and add the file's
/// values as arguments (see `with_config`). Usage errors end the process
/// as clap does; a bad config file is an error. `cmd` is the command the
/// result will be parsed with.
pub fn argv(cmd: &Command) -> Result<Vec<OsString>> {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let mut cmd = cmd.clone();
    cmd.build();
    // What an argument requires may come from the file: not yet checked.
    let given = cmd
        .clone()
        .mut_args(|a| a.requires(Resettable::Reset))
        .try_get_matches_from(&argv)
        .unwrap_or_else(|e| e.exit());
    let first = Cli::from_arg_matches(&given).unwrap_or_else(|e| e.exit());
    match load(&cmd, &first)? {
        Some(cfg) => with_config(&cmd, &given, &cfg, &argv),
        None => Ok(argv),
    }
}

/// The config file `--config` names, or `~/.mkve/bundle-config` when it
/// exists; none with `--no-config`.
fn load(cmd: &Command, cli: &Cli) -> Result<Option<Config>> {
    if cli.no_config {
        return Ok(None);
    }
    let Some(path) = cli.config.clone().or_else(paths::bundle_config) else {
        return Ok(None);
    };
    let variables = variables(cmd);
    let names: Vec<&str> = variables.iter().map(|(n, _)| n.as_str()).collect();
    match Config::load(&path, &names)? {
        None if cli.config.is_some() => Err(Error::Usage(format!(
            "{}: no such config file",
            path.display()
        ))),
        loaded => Ok(loaded),
    }
}

/// `argv` with the file's values added as arguments: options first, then
/// the command line, then positional values after `--`.
fn with_config(
    cmd: &Command,
    given: &ArgMatches,
    cfg: &Config,
    argv: &[OsString],
) -> Result<Vec<OsString>> {
    let on_command_line: Vec<&Arg> = cmd
        .get_arguments()
        .filter(|a| given.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine))
        .collect();
    let mut set: Vec<(String, &Arg, Vec<String>)> = Vec::new();
    for (name, arg) in variables(cmd) {
        // Every value is checked, even one the command line overrides.
        let values = values_of(cfg, &name, arg)?;
        if values.is_empty()
            || on_command_line
                .iter()
                .any(|c| c.get_id() == arg.get_id() || conflict(cmd, c, arg))
        {
            continue;
        }
        if let Some((other, _, _)) = set.iter().find(|(_, a, _)| conflict(cmd, a, arg)) {
            return Err(cfg.error(&name, format!("cannot be set together with {other}")));
        }
        set.push((name, arg, values));
    }

    let mut options: Vec<OsString> = vec![];
    let mut positional: Vec<(usize, String)> = vec![];
    for (_, arg, values) in set {
        let long = arg.get_long();
        match (arg.get_index(), arg.get_action(), long) {
            (Some(i), _, _) => positional.extend(values.into_iter().map(|v| (i, v))),
            (None, ArgAction::SetTrue, Some(l)) => options.push(format!("--{l}").into()),
            (None, _, Some(l)) => {
                options.extend(values.into_iter().map(|v| format!("--{l}={v}").into()))
            }
            (None, _, None) => unreachable!("every option of mkve-bundle has a long name"),
        }
    }
    positional.sort_by_key(|(i, _)| *i);

    let mut out = argv[..1].to_vec();
    out.extend(options);
    out.extend_from_slice(&argv[1..]);
    if !positional.is_empty() {
        // A `--` on the command line is its end of options (the first parse
        // accepted it), and nothing follows it: the positional argument
        // would have been given.
        if !argv[1..].iter().any(|a| a == "--") {
            out.push("--".into());
        }
        out.extend(positional.into_iter().map(|(_, v)| v.into()));
    }
    Ok(out)
}

/// Whether clap refuses `a` and `b` together (a conflict is declared on
/// one side only).
fn conflict(cmd: &Command, a: &Arg, b: &Arg) -> bool {
    let declared = |x: &Arg, y: &Arg| {
        cmd.get_arg_conflicts_with(x)
            .iter()
            .any(|c| c.get_id() == y.get_id())
    };
    declared(a, b) || declared(b, a)
}

/// The values the file gives `arg`, checked by the argument's own value
/// parser; empty when it sets nothing (unset, empty, a flag that is off).
fn values_of(cfg: &Config, name: &str, arg: &Arg) -> Result<Vec<String>> {
    let values: Vec<&str> = match arg.get_action() {
        // A flag that is on: one value standing for it.
        ArgAction::SetTrue => {
            return Ok(if cfg.flag(name)? {
                vec!["true".into()]
            } else {
                vec![]
            })
        }
        ArgAction::Append => cfg.list(name),
        ArgAction::Set => cfg.value(name)?.into_iter().collect(),
        other => unreachable!("{name}: no config variable for an argument with {other:?}"),
    };
    for v in &values {
        check(arg, v).map_err(|why| cfg.error(name, why))?;
    }
    Ok(values.into_iter().map(str::to_string).collect())
}

/// Run `value` through `arg`'s value parser, alone.
fn check(arg: &Arg, value: &str) -> std::result::Result<(), String> {
    let probe = Arg::new("value")
        .long("value")
        .value_parser(arg.get_value_parser().clone());
    let e = match Command::new("bundle-config")
        .no_binary_name(true)
        .arg(probe)
        .try_get_matches_from([format!("--value={value}")])
    {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    Err(
        match (
            std::error::Error::source(&e),
            e.get(ContextKind::ValidValue),
        ) {
            (Some(why), _) => why.to_string(),
            (None, Some(ContextValue::Strings(valid))) => {
                format!("\"{value}\" is not one of {}", valid.join(", "))
            }
            (None, _) => format!("\"{value}\" is not a valid value"),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first words of the `.TP` tags of a man page section, `.B x` or
    /// `.BR x ", " y`.
    fn tags(page: &str, section: &str) -> Vec<String> {
        let mut lines = page
            .lines()
            .skip_while(|l| *l != format!(".SH {section}"))
            .skip(1)
            .take_while(|l| !l.starts_with(".SH "));
        let mut out = vec![];
        while let Some(l) = lines.next() {
            if l == ".TP" {
                let tag = lines.next().unwrap_or_default();
                let words = tag.split_once(' ').map_or("", |(_, w)| w);
                out.extend(
                    words
                        .split(['"', ',', ' '])
                        .filter(|w| !w.is_empty())
                        .map(str::to_string),
                );
            }
        }
        out
    }

    #[test]
    fn the_man_page_lists_the_variables_and_only_them() {
        let page = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../man/mkve-bundle-config.5"
        ))
        .unwrap();
        let cmd = command();
        let mut from_clap: Vec<String> = variables(&cmd).into_iter().map(|(n, _)| n).collect();
        let mut documented = tags(&page, "VARIABLES");
        from_clap.sort();
        documented.sort();
        assert_eq!(
            documented, from_clap,
            "man/mkve-bundle-config.5 VARIABLES and the command line disagree"
        );

        let mut others: Vec<String> = cmd
            .get_arguments()
            .map(variable_name)
            .filter(|n| !from_clap.contains(n))
            .collect();
        let mut excluded = tags(&page, "NOT VARIABLES");
        others.sort();
        excluded.sort();
        assert_eq!(
            excluded, others,
            "man/mkve-bundle-config.5 NOT VARIABLES and the command line disagree"
        );
    }

    #[test]
    fn every_variable_has_an_integration_test() {
        let tests = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/config_variables.rs"
        ))
        .unwrap();
        let untested: Vec<String> = variables(&command())
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| !tests.contains(&format!("fn variable_{n}() {{")))
            .collect();
        assert!(
            untested.is_empty(),
            "no test in tests/config_variables.rs sets {untested:?} in the config file"
        );
    }

    #[test]
    fn the_mode_and_the_file_are_not_variables() {
        let names: Vec<String> = variables(&command()).into_iter().map(|(n, _)| n).collect();
        for not in [
            "check",
            "info",
            "verify",
            "extract",
            "publish",
            "fetch",
            "config",
            "no_config",
            "help",
        ] {
            assert!(!names.contains(&not.to_string()), "{not}");
        }
        for is in [
            "template",
            "all_hypervisors",
            "output_dir",
            "mirror",
            "quiet",
        ] {
            assert!(names.contains(&is.to_string()), "{is}");
        }
    }

    #[test]
    fn every_variable_is_a_flag_an_option_or_a_positional_argument() {
        let cmd = command();
        for (name, arg) in variables(&cmd) {
            let kind = (arg.get_index(), arg.get_action(), arg.get_long());
            assert!(
                matches!(
                    kind,
                    (Some(_), ArgAction::Set, _)
                        | (
                            None,
                            ArgAction::Set | ArgAction::Append | ArgAction::SetTrue,
                            Some(_)
                        )
                ),
                "{name}: {kind:?} cannot be read from the config file (see values_of)"
            );
        }
    }

    #[test]
    fn values_are_checked_by_the_arguments_own_parser() {
        let cmd = command();
        let hv = cmd
            .get_arguments()
            .find(|a| a.get_id() == "hypervisor")
            .unwrap();
        assert_eq!(check(hv, "qemu"), Ok(()));
        assert_eq!(
            check(hv, "vmware").unwrap_err(),
            "unknown hypervisor \"vmware\" (known: openvz, qemu, kvm, lxc, xen)"
        );
        let choice = Arg::new("x").value_parser(["a", "b"]);
        assert_eq!(check(&choice, "c").unwrap_err(), "\"c\" is not one of a, b");
        let number = Arg::new("n").value_parser(clap::value_parser!(u8));
        assert!(check(&number, "300").unwrap_err().contains("300"));
        assert_eq!(check(&number, "-1").map_err(|_| ()), Err(()));
        let text = Arg::new("t");
        assert_eq!(check(&text, "--looks-like-an-option"), Ok(()));
    }
}
