//! Where core tells what it is doing while it works: progress lines (the
//! phases of a long job), notes (details for `-v`: command lines, the XML
//! given to libvirt) and the output of the programs it runs. Core keeps no
//! global state for this: every long call takes a `&dyn Report`, which the
//! command-line tools print on stderr (mkve-cli) and a server can route to
//! the request that asked.

/// A sink for what core tells while it works. Only `progress` must be
/// written; the rest is for `-v`.
pub trait Report: Sync {
    /// A phase of a long job: `verifying and unpacking the bundle`.
    fn progress(&self, msg: &str);

    /// Something went wrong that does not stop the job (a leftover that
    /// could not be removed): always worth telling.
    fn warning(&self, msg: &str);

    /// A detail worth telling with `-v`.
    fn note(&self, _msg: &str) {}

    /// Whether the programs core runs should have their own output passed
    /// to `output` as it comes (it is kept for error messages either way).
    fn verbose(&self) -> bool {
        false
    }

    /// Output of a program core runs, when `verbose`.
    fn output(&self, _bytes: &[u8]) {}
}

/// Tells nothing: for tests and callers that only want the result.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Report for Silent {
    fn progress(&self, _msg: &str) {}
    fn warning(&self, _msg: &str) {}
}
