//! What can be done to a machine, for the pages and the API alike: each
//! action's words in the log (as the mkve-vm command line would say it)
//! and its one call into core.

use std::time::Duration;

use mkve_core::vm::{self, Uris};
use mkve_core::Result;

/// How long a stop waits for the machine to be off, as `mkve-vm stop`.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    /// Ask it to shut down and wait `timeout` at most; `force` pulls the
    /// plug.
    Stop {
        force: bool,
        timeout: Duration,
    },
    Reboot,
    Autostart {
        on: bool,
    },
    Delete,
}

impl Action {
    /// The action a page's button names: `start`, `stop`, `force-stop`,
    /// `reboot`, `autostart-on`, `autostart-off`. Errors: another word (2).
    pub fn from_page(word: &str) -> Result<Action> {
        Ok(match word {
            "start" => Action::Start,
            "stop" => Action::Stop {
                force: false,
                timeout: STOP_TIMEOUT,
            },
            "force-stop" => Action::Stop {
                force: true,
                timeout: STOP_TIMEOUT,
            },
            "reboot" => Action::Reboot,
            "autostart-on" => Action::Autostart { on: true },
            "autostart-off" => Action::Autostart { on: false },
            w => return Err(crate::request::no_action(w)),
        })
    }

    /// The action `POST /api/machines/ID/WORD?QUERY` asks for: `start`,
    /// `reboot` (no options), `stop` (`force=true|false`, `timeout=`
    /// seconds, as `mkve-vm stop --force`, `--timeout`; not both),
    /// `autostart` (`off=true|false`). Errors (2): another word, an
    /// option the action does not take or given twice, a value that is not
    /// UTF-8 or not the option's (`request::query`'s words).
    pub fn from_api(word: &str, query: Option<&str>) -> Result<Action> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Autostart {
            off: Option<String>,
        }
        Ok(match word {
            "start" | "reboot" => {
                crate::request::query::<crate::request::NoOptions>(query)?;
                if word == "start" {
                    Action::Start
                } else {
                    Action::Reboot
                }
            }
            "stop" => {
                let (force, timeout) = crate::request::stop_query(query)?;
                Action::Stop {
                    force,
                    timeout: timeout.unwrap_or(STOP_TIMEOUT),
                }
            }
            "autostart" => {
                let q: Autostart = crate::request::query(query)?;
                Action::Autostart {
                    on: !crate::request::flag("off", q.off)?,
                }
            }
            w => return Err(crate::request::no_action(w)),
        })
    }

    /// The words of the log: `stop --force 101`.
    pub fn words(&self, target: &str) -> String {
        match self {
            Action::Start => format!("start {target}"),
            Action::Stop { force: true, .. } => format!("stop --force {target}"),
            Action::Stop { force: false, .. } => format!("stop {target}"),
            Action::Reboot => format!("reboot {target}"),
            Action::Autostart { on: true } => format!("autostart {target}"),
            Action::Autostart { on: false } => format!("autostart --off {target}"),
            Action::Delete => format!("delete {target}"),
        }
    }

    /// Do it: the same call `mkve-vm` makes. Blocks (libvirt; a stop
    /// waits for the machine).
    pub fn run(self, uris: &Uris, target: &str) -> Result<()> {
        match self {
            Action::Start => vm::start(uris, target),
            Action::Stop { force, timeout } => vm::stop(uris, target, force, timeout),
            Action::Reboot => vm::reboot(uris, target),
            Action::Autostart { on } => vm::autostart(uris, target, on),
            Action::Delete => vm::delete(uris, target, &mkve_core::report::Silent).map(drop),
        }
    }
}

/// Run `action` on `target` for `user`, on a blocking thread, logged.
pub async fn act(app: &crate::state::App, user: &str, action: Action, target: &str) -> Result<()> {
    let uris = app.config.uris.clone();
    let t = target.to_string();
    app.act(user, action.words(target), move || action.run(&uris, &t))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_words_and_log_words() {
        let a = Action::from_page("force-stop").unwrap();
        assert_eq!(a.words("101"), "stop --force 101");
        assert_eq!(
            Action::from_page("autostart-off").unwrap().words("7"),
            "autostart --off 7"
        );
        assert_eq!(Action::Delete.words("101"), "delete 101");
        assert!(Action::from_page("explode").is_err());
    }
}
