//! SIGINT, SIGTERM and SIGHUP turned into an error, for the runs that must
//! undo what they made when they are stopped: a download (`mkve-bundle
//! --fetch`) and a create from a URL (`mkve-vm create URL`). A binary asks
//! for it with [`catch`]; the core then sees the signal at its next
//! [`check`] (and a download at once: see [`on_signal`]), fails with
//! `Error::Interrupted`, and undoes its work as for any other failure: the
//! `.mkve-part` output dropped, the staging directory removed, the ID and
//! its marker given back. `mkve-cli` then ends the process by the same
//! signal, so its parent sees how it ended.
//!
//! Without [`catch`] (every other run, and mkve-web, whose runtime has
//! its own handlers), nothing changes: [`check`] never fails and a signal
//! ends the process as it always did.

// FFI: installing and restoring signal handlers (sigaction).
#![allow(unsafe_code)]

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

use crate::error::{Error, Result};

/// The signals caught.
pub const SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// The first signal caught, or 0.
static CAUGHT: AtomicI32 = AtomicI32::new(0);
/// The writing end of the pipe that wakes the watcher thread, or -1.
static WAKE: AtomicI32 = AtomicI32::new(-1);
/// What to do when a signal comes, by hook number.
type Hooks = Vec<(u64, Box<dyn Fn() + Send>)>;
static HOOKS: Mutex<Hooks> = Mutex::new(Vec::new());
static NEXT_HOOK: AtomicU64 = AtomicU64::new(0);
static INSTALLED: OnceLock<std::result::Result<(), String>> = OnceLock::new();

extern "C" fn handler(sig: libc::c_int) {
    // Only async-signal-safe calls here: an atomic store and write(2).
    let _ = CAUGHT.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    let fd = WAKE.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the buffer is static.
        unsafe {
            libc::write(fd, b"!".as_ptr().cast(), 1);
        }
    }
}

/// Catch SIGINT, SIGTERM and SIGHUP from now on, for the rest of the
/// process: each is remembered (the first one counts), the hooks of
/// [`on_signal`] run on a thread of their own, and [`check`] fails. A
/// signal the process ignored when it started (`nohup` ignores SIGHUP)
/// stays ignored. Calling it again does nothing.
///
/// Errors: the pipe or a handler cannot be set up (`Error::Other`).
pub fn catch() -> Result<()> {
    INSTALLED.get_or_init(install).clone().map_err(Error::Other)
}

fn install() -> std::result::Result<(), String> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("cannot catch signals: pipe: {e}"))?;
    WAKE.store(std::os::fd::IntoRawFd::into_raw_fd(write), Ordering::SeqCst);
    std::thread::Builder::new()
        .name("mkve-signals".into())
        .spawn(move || watch(read))
        .map_err(|e| format!("cannot catch signals: {e}"))?;
    // No SA_RESTART: a blocked read returns EINTR, and whoever loops on
    // it sees the signal at its next check.
    let action = SigAction::new(
        SigHandler::Handler(handler),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for s in SIGNALS {
        // SAFETY: the handler only stores an atomic and calls write(2).
        let old = unsafe { signal::sigaction(s, &action) }
            .map_err(|e| format!("cannot catch {s}: {e}"))?;
        if matches!(old.handler(), SigHandler::SigIgn) {
            // SAFETY: restoring what was there.
            let _ = unsafe { signal::sigaction(s, &old) };
        }
    }
    Ok(())
}

/// The watcher: each byte on the pipe is a signal; run the hooks.
fn watch(read: OwnedFd) {
    let mut f = std::fs::File::from(read);
    let mut b = [0u8; 16];
    loop {
        match std::io::Read::read(&mut f, &mut b) {
            Ok(0) => return,
            Ok(_) => {
                let hooks = HOOKS.lock().unwrap_or_else(|p| p.into_inner());
                for (_, h) in hooks.iter() {
                    h();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// The signal caught, if one was (and [`catch`] was called).
pub fn caught() -> Option<Signal> {
    match CAUGHT.load(Ordering::SeqCst) {
        0 => None,
        n => Signal::try_from(n).ok(),
    }
}

/// `Err(Error::Interrupted)` naming `what` (the file, URL or machine
/// being worked on) once a signal was caught; `Ok` otherwise.
pub fn check(what: &str) -> Result<()> {
    match caught() {
        None => Ok(()),
        Some(s) => Err(interrupted(what, s)),
    }
}

/// The error of a run that `signal` stopped while it worked on `what`.
pub fn interrupted(what: &str, signal: Signal) -> Error {
    Error::Interrupted {
        what: what.to_string(),
        signal: signal as i32,
    }
}

/// A hook of [`on_signal`]: removed when dropped.
pub struct Hook(u64);

impl Drop for Hook {
    fn drop(&mut self) {
        let mut hooks = HOOKS.lock().unwrap_or_else(|p| p.into_inner());
        hooks.retain(|(n, _)| *n != self.0);
    }
}

/// Run `f` on the watcher thread when a signal is caught, while the hook
/// lives; at once if one was caught already. For what blocks without
/// looking at [`check`]: a download's socket, shut down so its read
/// returns.
pub fn on_signal(f: impl Fn() + Send + 'static) -> Hook {
    let n = NEXT_HOOK.fetch_add(1, Ordering::SeqCst);
    let mut hooks = HOOKS.lock().unwrap_or_else(|p| p.into_inner());
    if caught().is_some() {
        f();
    }
    hooks.push((n, Box::new(f)));
    Hook(n)
}

/// End the process by `signal` (its number), as if it had not been
/// caught: its default action restored, the signal sent again. Returns
/// only if that did not end it.
pub fn resend(signal: i32) {
    let Ok(s) = Signal::try_from(signal) else {
        return;
    };
    // SAFETY: restoring the default action.
    unsafe {
        let _ = signal::sigaction(
            s,
            &SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty()),
        );
    }
    let mut set = SigSet::empty();
    set.add(s);
    let _ = set.thread_unblock();
    let _ = signal::raise(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    // A signal raised here would stop every other test of the process at
    // its next check: the signals themselves are sent to the binaries
    // (mkve-bundle's tests/publish.rs).
    #[test]
    fn the_error_names_what_was_stopped_and_exits_as_the_shell_tells_a_signal() {
        assert!(check("x").is_ok());
        let e = interrupted("http://127.0.0.1/x.bun", Signal::SIGTERM);
        assert_eq!(
            e.to_string(),
            "http://127.0.0.1/x.bun: interrupted by SIGTERM"
        );
        assert_eq!(e.exit_code(), 128 + libc::SIGTERM);
    }
}
