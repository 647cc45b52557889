//! A machine's update and its upgrade, for the pages and the API alike
//! (mkve-vm(1), UPGRADES): the newer bundle of its template in the
//! published directory its bundle was taken from (`vm::update_for`), and
//! the upgrade to it with the checks `mkve-vm upgrade` makes (a conflict
//! refused, probes within the timeout or rolled back by itself), logged as
//! that command line.

use std::path::PathBuf;
use std::time::Duration;

use mkve_core::vm::{self, Update, UpgradeOptions, UpgradeSummary};
use mkve_core::{Error, Result};

use crate::state::{blocking, Shared};

/// How long an upgrade from here waits on the new bundle's probes: what
/// `mkve-vm upgrade` waits by default.
pub const PROBES_TIMEOUT: Duration = Duration::from_secs(300);

/// The newer bundle for machine `target`, if its directory holds one.
/// Errors: as `vm::update_for`.
pub async fn update(app: &Shared, target: &str) -> Result<Option<Update>> {
    let (uris, t, k) = (
        app.config.uris.clone(),
        target.to_string(),
        app.config.keyring(),
    );
    blocking(move || vm::update_for(&uris, &t, &k, &mkve_core::report::Silent)).await
}

/// The log's words of an upgrade: `upgrade 101 /srv/pub/ntp-2.0.bun`.
pub fn upgrade_words(target: &str, bundle: &str) -> String {
    format!("upgrade {target} {bundle}")
}

/// Upgrade machine `target` to the update its directory holds now, as
/// `mkve-vm upgrade` does (the old bundle held until a commit). Errors:
/// no update (2); as `vm::upgrade` (a conflict 1, a bundle that does not
/// verify 65, probes silent and rolled back 69).
pub async fn upgrade(app: &Shared, user: &str, target: &str) -> Result<(Update, UpgradeSummary)> {
    let Some(u) = update(app, target).await? else {
        return Err(Error::Usage(format!(
            "machine {target}: no newer bundle of its template in the directory its bundle came from"
        )));
    };
    let (uris, t, k) = (
        app.config.uris.clone(),
        target.to_string(),
        app.config.keyring(),
    );
    let o = UpgradeOptions {
        bundle: PathBuf::from(&u.bundle),
        keyring: Some(k),
        allow_unsigned: false,
        params: Vec::new(),
        timeout: PROBES_TIMEOUT,
        force: false,
    };
    let summary = app
        .act(user, upgrade_words(target, &u.bundle), move || {
            vm::upgrade(&uris, &t, &o, &mkve_core::report::Silent)
        })
        .await?;
    Ok((u, summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upgrade_is_logged_as_its_command_line() {
        assert_eq!(
            upgrade_words("101", "/srv/pub/ntp-2.0.bun"),
            "upgrade 101 /srv/pub/ntp-2.0.bun"
        );
    }
}
