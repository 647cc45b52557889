//! A Ganeti cluster's instances (mkve.conf `engine=ganeti`; mkve-vm(1),
//! GANETI), as `mkve-vm --engine ganeti` has them: the cluster mkve.conf
//! names, and the actions on an instance (RAPI jobs) with the words the
//! log records, as the command line would say them. Its routes are
//! `routes/ganeti.rs`, its page `views/ganeti.rs`.

use std::time::Duration;

use mkve_core::vm::ganeti_rapi::{self, Engine, Instance};
use mkve_core::{Error, Result};

use crate::request::NoOptions;

/// The cluster mkve.conf names. Errors (2): it names none.
pub fn engine() -> Result<Engine> {
    ganeti_rapi::configured(None)?.ok_or_else(|| {
        Error::Usage("no Ganeti cluster: mkve.conf does not say engine=ganeti".into())
    })
}

/// The cluster's instances (`list`).
pub fn list() -> Result<Vec<Instance>> {
    engine()?.list()
}

/// One instance (`info NAME`).
pub fn info(name: &str) -> Result<Instance> {
    engine()?.info(name)
}

/// What a POST asks of an instance.
pub enum Act {
    Start,
    Stop(Duration),
    Migrate(String),
    Delete,
}

impl Act {
    /// `start` (no options), `stop` (`force=true`, or `timeout=` seconds:
    /// request.rs's `stop_query`),
    /// `migrate` (`to=` the node). Errors (2): another word or option.
    pub fn parse(word: &str, query: Option<&str>) -> Result<Act> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Migrate {
            to: String,
        }
        Ok(match word {
            "start" => {
                crate::request::query::<NoOptions>(query)?;
                Act::Start
            }
            "stop" => match crate::request::stop_query(query)? {
                (true, _) => Act::Stop(Duration::ZERO),
                (false, t) => Act::Stop(t.unwrap_or(crate::actions::STOP_TIMEOUT)),
            },
            "migrate" => Act::Migrate(crate::request::query::<Migrate>(query)?.to),
            w => return Err(crate::request::no_action(w)),
        })
    }

    /// The log's words, as the command line says it.
    pub fn words(&self, name: &str) -> String {
        match self {
            Act::Start => format!("--engine ganeti start {name}"),
            Act::Stop(t) if t.is_zero() => format!("--engine ganeti stop --force {name}"),
            Act::Stop(t) => format!("--engine ganeti stop --timeout {} {name}", t.as_secs()),
            Act::Migrate(to) => format!("--engine ganeti migrate {name} {to}"),
            Act::Delete => format!("--engine ganeti delete {name}"),
        }
    }

    pub fn run(self, name: &str) -> Result<()> {
        let e = engine()?;
        let r = &mkve_core::report::Silent;
        match self {
            Act::Start => e.start(name, r),
            Act::Stop(t) => e.stop(name, t, r),
            Act::Migrate(to) => e.migrate(name, Some(&to), r),
            Act::Delete => e.delete(name, r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_their_words() {
        assert_eq!(
            Act::parse("stop", Some("force=true")).unwrap().words("a"),
            "--engine ganeti stop --force a"
        );
        assert_eq!(
            Act::parse("migrate", Some("to=n2")).unwrap().words("a"),
            "--engine ganeti migrate a n2"
        );
        assert!(Act::parse("stop", Some("force=true&timeout=3")).is_err());
        assert!(Act::parse("migrate", None).is_err());
        assert!(Act::parse("explode", None).is_err());
    }
}
