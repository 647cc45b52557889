//! The one place that runs external programs (chroot, cp, bash, hooks,
//! mkfs.ext4, qemu-img…), after cargo's `ProcessBuilder`.
//!
//! Arguments are always a vector, never a shell string. The command line
//! is told as a note (`-v`) and the program's output passed to the
//! [`Report`] when it is verbose (never to our stdout, which carries
//! results); the output is always kept, and a failure is a typed
//! [`ProcessError`] naming the program, its arguments, its exit status or
//! signal, and the last lines it printed. Names follow std: `output`
//! returns whatever the status; the calls that check say so (`_checked`).
//! A program that is not installed is `Error::Unavailable` (exit 69).

// FFI: `pre_exec` (the child's own session and death signal, set between
// fork and exec) and the tests' raw pipes.
#![allow(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::process_error::ProcessError;
pub use crate::report::{Report, Silent};

/// The administrator's directories, searched after `$PATH`: a normal
/// user's PATH on Debian lacks them (/etc/profile), while the programs
/// mkve runs from them (mkfs.ext4, debugfs, ip…) run for anyone. sudo's
/// `secure_path` and su's `ENV_SUPATH` name the same.
const ADMIN_DIRS: [&str; 3] = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// Where `program` (a bare name) is found: the first `$PATH` directory
/// that has it as an executable file, else the first of [`ADMIN_DIRS`].
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(ADMIN_DIRS.iter().map(PathBuf::from));
    find_in(dirs, program)
}

/// The first of `dirs` that has `program` as an executable file.
fn find_in(dirs: impl IntoIterator<Item = PathBuf>, program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    dirs.into_iter().map(|d| d.join(program)).find(|p| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

/// Whether `program` can be run by its bare name ([`find_program`]).
pub fn on_path(program: &str) -> bool {
    find_program(program).is_some()
}

/// A program to run: built up, then run by one of the calls below.
#[derive(Clone)]
pub struct Cmd<'r> {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    env_clear: bool,
    cwd: Option<PathBuf>,
    what: Option<String>,
    timeout: Option<Duration>,
    kill_with_parent: bool,
    report: &'r dyn Report,
}

/// The command line as a shell would read it, for logs (shell-words'
/// quoting: `+ cp -a '/a b' /c`).
impl std::fmt::Display for Cmd<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words = std::iter::once(&self.program).chain(&self.args);
        f.write_str(&shell_words::join(
            words.map(|w| w.to_string_lossy().into_owned()),
        ))
    }
}

impl<'r> Cmd<'r> {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Cmd {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            env_clear: false,
            cwd: None,
            what: None,
            timeout: None,
            kill_with_parent: false,
            report: &Silent,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Start from an empty environment (only what `env` adds).
    pub fn env_clear(mut self) -> Self {
        self.env_clear = true;
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// What this program is, for messages: `hook "01-root"`. Defaults to the
    /// program's name.
    pub fn what(mut self, what: impl Into<String>) -> Self {
        self.what = Some(what.into());
        self
    }

    /// Kill the program (SIGKILL) if it runs longer than `limit`; it then
    /// fails with `timed_out` set.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Kill the program (SIGKILL) when this process dies, whatever kills
    /// it (prctl PR_SET_PDEATHSIG): nothing it runs outlives a killed run.
    /// The kernel ties this to the thread that starts the program: start
    /// it from a thread that lives as long as the run.
    pub fn kill_with_parent(mut self) -> Self {
        self.kill_with_parent = true;
        self
    }

    /// Where the command line and, when verbose, the output go.
    pub fn report(mut self, report: &'r dyn Report) -> Self {
        self.report = report;
        self
    }

    fn label(&self) -> String {
        self.what
            .clone()
            .unwrap_or_else(|| Path::new(&self.program).display().to_string())
    }

    fn command(&self) -> Command {
        // A bare name found only in the administrator's directories is
        // run from there; any other, as the system looks it up.
        let found = (self.program.to_str())
            .filter(|p| !p.contains('/'))
            .and_then(find_program)
            .filter(|p| ADMIN_DIRS.iter().any(|d| p.starts_with(d)));
        let mut c = Command::new(found.as_deref().unwrap_or(Path::new(&self.program)));
        c.args(&self.args);
        if self.env_clear {
            c.env_clear();
        }
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        c.stdin(Stdio::null());
        // A program run here gets no descriptor of this process but its
        // own three: another thread may have made pipes that are not
        // close-on-exec at the moment of the fork (gpgme does, for the gpg
        // it runs), and a child holding one keeps that thread from its end
        // of file (mkve-web runs creates on many threads). Marked
        // close-on-exec rather than closed, so that std's own error pipe
        // still reports a failed exec. Linux 5.11 and later; older kernels
        // refuse the flag and nothing changes.
        // SAFETY: close_range is a system call, async-signal-safe; nothing
        // else runs between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut c, || {
                libc::syscall(
                    libc::SYS_close_range,
                    3u32,
                    u32::MAX,
                    libc::CLOSE_RANGE_CLOEXEC,
                );
                Ok(())
            });
        }
        if self.kill_with_parent {
            // SAFETY: prctl is async-signal-safe; nothing else runs
            // between fork and exec.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut c, || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        c
    }

    fn spawn_error(&self, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Unavailable {
                what: self.label(),
                why: format!(
                    "{} is not installed (not in PATH, nor in /usr/local/sbin, /usr/sbin or /sbin)",
                    self.program.to_string_lossy()
                ),
            }
        } else {
            Error::io(
                Path::new(&self.program),
                std::io::Error::new(e.kind(), format!("cannot run {}: {e}", self.label())),
            )
        }
    }

    /// The failure of this program, as an error.
    fn failure(&self, status: Option<ExitStatus>, timed_out: bool, output: Vec<u8>) -> Error {
        Error::Process(Box::new(ProcessError {
            what: self.label(),
            program: self.program.to_string_lossy().into_owned(),
            args: self
                .args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            status,
            timed_out: self.timeout.filter(|_| timed_out),
            output,
        }))
    }

    /// Run to completion with stdout and stderr merged into one pipe (so
    /// their order is kept), handing each line to `on_line` as it comes.
    /// Returns what happened whatever the status; only a program that
    /// cannot start is an error. Check it with [`Finished::check`].
    pub fn run_lines(&self, mut on_line: impl FnMut(&str)) -> Result<Finished> {
        self.report.note(&format!("+ {self}"));
        let mut c = self.command();
        let (reader, writer) = std::io::pipe().map_err(|e| self.spawn_error(e))?;
        let writer2 = writer.try_clone().map_err(|e| self.spawn_error(e))?;
        c.stdout(writer).stderr(writer2);
        let mut child = c.spawn().map_err(|e| self.spawn_error(e))?;
        drop(c);
        let watchdog = Watchdog::start(child.id(), self.timeout);
        let mut out = Vec::new();
        let mut reader = std::io::BufReader::new(reader);
        let mut line = Vec::new();
        let verbose = self.report.verbose();
        loop {
            line.clear();
            match std::io::BufRead::read_until(&mut reader, b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(Path::new(&self.program), e)),
            }
            if verbose {
                self.report.output(&line);
            }
            on_line(String::from_utf8_lossy(&line).trim_end());
            out.extend_from_slice(&line);
        }
        let status = child.wait().map_err(|e| self.spawn_error(e))?;
        let timed_out = watchdog.stop();
        Ok(Finished {
            status,
            timed_out,
            output: out,
        })
    }

    /// Run to completion (see `run_lines`) and fail unless it succeeded.
    pub fn run_checked(&self) -> Result<()> {
        self.run_lines(|_| {})?.check(self)
    }

    /// Run and capture stdout and stderr apart, whatever the status (as
    /// std's `output`); only a program that cannot start is an error.
    pub fn output(&self) -> Result<Output> {
        self.report.note(&format!("+ {self}"));
        let mut c = self.command();
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = c.spawn().map_err(|e| self.spawn_error(e))?;
        let watchdog = Watchdog::start(child.id(), self.timeout);
        let out = child.wait_with_output().map_err(|e| self.spawn_error(e))?;
        if watchdog.stop() {
            let mut all = out.stdout;
            all.extend_from_slice(&out.stderr);
            return Err(self.failure(Some(out.status), true, all));
        }
        if self.report.verbose() {
            self.report.output(&out.stderr);
        }
        Ok(out)
    }

    /// `output`, failing unless the program succeeded (the error quotes
    /// its stderr).
    pub fn output_checked(&self) -> Result<Output> {
        let out = self.output()?;
        if !out.status.success() {
            return Err(self.failure(Some(out.status), false, out.stderr));
        }
        Ok(out)
    }
}

impl Cmd<'_> {
    /// Run with this process's own stdin, stdout and stderr (a command on
    /// another node that the operator drives, its console say); return its
    /// exit status, whatever it is. Only a program that cannot start is an
    /// error.
    pub fn status_inherited(&self) -> Result<ExitStatus> {
        self.report.note(&format!("+ {self}"));
        let mut c = self.command();
        c.stdin(Stdio::inherit());
        let mut child = c.spawn().map_err(|e| self.spawn_error(e))?;
        child.wait().map_err(|e| self.spawn_error(e))
    }

    /// Run with `input` copied to its stdin, its stdout captured and its
    /// stderr this process's (what a remote mkve-vm tells, as it comes);
    /// return its exit status and stdout, whatever the status. A program
    /// that stops reading before `input` ends is no error here (its status
    /// says why it stopped); failing to read `input` is.
    pub fn run_with_input(&self, input: &mut dyn Read) -> Result<(ExitStatus, Vec<u8>)> {
        self.report.note(&format!("+ {self}"));
        let mut c = self.command();
        c.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = c.spawn().map_err(|e| self.spawn_error(e))?;
        let reader = read_on_thread(child.stdout.take());
        let mut stdin = child.stdin.take();
        let copied = match stdin.as_mut() {
            Some(w) => copy_until_closed(input, w),
            None => Ok(()),
        };
        drop(stdin);
        let status = child.wait().map_err(|e| self.spawn_error(e))?;
        let out = reader.join().unwrap_or_default();
        copied.map_err(|e| Error::io("(input)", e))?;
        Ok((status, out))
    }

    /// Started (and told) with its stdin, stdout and stderr as pipes.
    fn spawn_piped(&self) -> Result<std::process::Child> {
        self.report.note(&format!("+ {self}"));
        let mut c = self.command();
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().map_err(|e| self.spawn_error(e))
    }

    /// Run with `input` written to its stdin, its stdout and stderr
    /// captured apart; whatever the status (as [`Cmd::output`]). A program
    /// that stops reading before `input` ends is no error here (its status
    /// says why it stopped).
    pub fn output_with_input(&self, input: &[u8]) -> Result<Output> {
        let mut child = self.spawn_piped()?;
        let stdin = child.stdin.take();
        // Written on a thread of its own while the output is read (neither
        // side waits on a full pipe), and closed once written.
        std::thread::scope(|s| {
            if let Some(mut w) = stdin {
                s.spawn(move || {
                    let _ = w.write_all(input);
                });
            }
            child.wait_with_output().map_err(|e| self.spawn_error(e))
        })
    }

    /// Start the program with its stdin and stdout as pipes for this
    /// process to talk through, and its stderr kept for the error a
    /// failure makes (see [`Talk`]).
    pub fn talk(&self) -> Result<Talk<'_>> {
        let mut child = self.spawn_piped()?;
        let stderr = read_on_thread(child.stderr.take());
        Ok(Talk {
            stdin: child.stdin.take(),
            stdout: child.stdout.take().map(std::io::BufReader::new),
            child,
            stderr: Some(stderr),
            cmd: self,
        })
    }
}

impl Cmd<'_> {
    /// Start the program as a helper this process uses by other means
    /// while it runs (a server on a socket, an export on a file): its
    /// stdin nothing, its stdout and stderr kept for the error a failure
    /// makes, killed with this process whatever kills it
    /// (`PR_SET_PDEATHSIG`), and stopped by the guard's drop. Start it from
    /// a thread that outlives it (see [`Cmd::kill_with_parent`]).
    pub fn spawn_service(&self) -> Result<Service> {
        self.report.note(&format!("+ {self}"));
        let mut c = self.clone().kill_with_parent().command();
        let (reader, writer) = std::io::pipe().map_err(|e| self.spawn_error(e))?;
        let writer2 = writer.try_clone().map_err(|e| self.spawn_error(e))?;
        c.stdout(writer).stderr(writer2);
        let child = c.spawn().map_err(|e| self.spawn_error(e))?;
        drop(c);
        Ok(Service {
            child,
            output: Some(read_on_thread(Some(reader))),
            failure: Box::new(self.failure(None, false, Vec::new())),
        })
    }
}

/// A helper program running for this process ([`Cmd::spawn_service`]).
/// Dropped (or [`Service::stop`]ped), it gets SIGTERM, and SIGKILL when it
/// has not ended within [`Service::GRACE`]; it is always waited for.
pub struct Service {
    child: std::process::Child,
    output: Option<std::thread::JoinHandle<Vec<u8>>>,
    /// The error its failure makes, its status and output filled in then.
    failure: Box<Error>,
}

impl Service {
    /// How long a stopped helper may take to end before it is killed.
    pub const GRACE: Duration = Duration::from_secs(5);

    /// Its process ID.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// `Some` error (its status and what it printed) once it has ended:
    /// a helper ends only when told to.
    pub fn ended(&mut self) -> Option<Error> {
        match self.child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(self.failed(Some(status))),
            Err(e) => Some(Error::io("(helper)", e)),
        }
    }

    fn failed(&mut self, status: Option<ExitStatus>) -> Error {
        let output = self
            .output
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        match &*self.failure {
            Error::Process(p) => Error::Process(Box::new(ProcessError {
                status,
                output,
                ..(**p).clone()
            })),
            other => Error::Other(other.to_string()),
        }
    }

    /// End it (SIGTERM, then SIGKILL after [`Service::GRACE`]) and wait
    /// for it. Errors: it had ended before it was told to, or ended with
    /// a failure status when told.
    pub fn stop(mut self) -> Result<()> {
        if let Some(e) = self.ended() {
            return Err(e);
        }
        let status = self.terminate();
        match status {
            Some(s) if s.success() || s.code().is_none() => Ok(()),
            other => Err(self.failed(other)),
        }
    }

    fn terminate(&mut self) -> Option<ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        if !matches!(self.child.try_wait(), Ok(None)) {
            return self.child.wait().ok();
        }
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = std::time::Instant::now() + Self::GRACE;
        while std::time::Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(s)) => return Some(s),
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.terminate();
        if let Some(h) = self.output.take() {
            let _ = h.join();
        }
    }
}

impl Cmd<'_> {
    /// Start the program to watch this process: its stdin a pipe from
    /// here that ends when this process ends, however it ends (killed
    /// too), its stdout nowhere, its stderr this process's, and in a
    /// process group of its own, so that a terminal's Ctrl-C, which ends
    /// this process, does not end it too. It is not waited for past a
    /// moment: it may outlive this process, which is what it is for.
    pub fn spawn_watcher(&self) -> Result<Watcher> {
        self.report.note(&format!("+ {self}"));
        let mut c = self.command();
        c.stdin(Stdio::piped()).stdout(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        let mut child = c.spawn().map_err(|e| self.spawn_error(e))?;
        Ok(Watcher {
            stdin: child.stdin.take(),
            child,
        })
    }
}

/// A program watching this process ([`Cmd::spawn_watcher`]). Dropped, its
/// stdin is closed (it sees this process end) and it is waited for a
/// moment, so that one that ends at once is not left a zombie.
pub struct Watcher {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        drop(self.stdin.take());
        for _ in 0..50 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Read a child's pipe to its end on a thread of its own (so that the
/// child never waits on a full pipe while this process does something
/// else); joined, what it read (nothing without a pipe).
fn read_on_thread<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut out);
        }
        out
    })
}

/// Copy `input` into `w` until `input` ends or `w`'s reader goes away (a
/// broken pipe is not an error: the reader's status tells why).
fn copy_until_closed(input: &mut dyn Read, w: &mut dyn Write) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        match w.write_all(&buf[..n]) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// A running program this process talks to through its stdin and stdout
/// ([`Cmd::talk`]). Dropped without [`Talk::finish`], its stdin is closed
/// and it is waited for.
pub struct Talk<'c> {
    child: std::process::Child,
    pub stdin: Option<std::process::ChildStdin>,
    pub stdout: Option<std::io::BufReader<std::process::ChildStdout>>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
    cmd: &'c Cmd<'c>,
}

impl Talk<'_> {
    /// One line of its stdout, without the newline; `None` at its end.
    pub fn read_line(&mut self) -> Result<Option<String>> {
        let Some(r) = self.stdout.as_mut() else {
            return Ok(None);
        };
        let mut line = String::new();
        let n = std::io::BufRead::read_line(r, &mut line)
            .map_err(|e| Error::io(Path::new(&self.cmd.program), e))?;
        Ok((n > 0).then(|| line.trim_end_matches('\n').to_string()))
    }

    /// Close its stdin, wait for it, and fail unless it succeeded (the
    /// error quotes what it printed on stderr).
    pub fn finish(mut self) -> Result<()> {
        let (status, stderr) = self.wait()?;
        if !status.success() {
            return Err(self.cmd.failure(Some(status), false, stderr));
        }
        Ok(())
    }

    /// Close its stdin and wait for it: its status and what it printed
    /// on stderr.
    pub fn wait(&mut self) -> Result<(ExitStatus, Vec<u8>)> {
        drop(self.stdin.take());
        drop(self.stdout.take());
        let status = self.child.wait().map_err(|e| self.cmd.spawn_error(e))?;
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        Ok((status, stderr))
    }

    /// The error its failure makes, from what `wait` returned.
    pub fn failure(&self, status: ExitStatus, stderr: Vec<u8>) -> Error {
        self.cmd.failure(Some(status), false, stderr)
    }
}

impl Drop for Talk<'_> {
    fn drop(&mut self) {
        if self.stderr.is_some() {
            let _ = self.wait();
        }
    }
}

/// A program `run_lines` ran to its end.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// Killed for running past the command's timeout.
    pub timed_out: bool,
    /// stdout and stderr, merged.
    pub output: Vec<u8>,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.status.success() && !self.timed_out
    }

    /// `Ok` if `cmd` succeeded, else its `ProcessError`.
    pub fn check(self, cmd: &Cmd) -> Result<()> {
        if self.success() {
            return Ok(());
        }
        Err(cmd.failure(Some(self.status), self.timed_out, self.output))
    }
}

/// Kills a process that runs past its time limit, from a thread of its
/// own; `stop` says whether it had to.
struct Watchdog {
    done: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<bool>>,
}

impl Watchdog {
    fn start(pid: u32, limit: Option<Duration>) -> Watchdog {
        let Some(limit) = limit else {
            return Watchdog {
                done: None,
                thread: None,
            };
        };
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if rx.recv_timeout(limit) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                // Not yet waited for, so the PID is still this child's
                // (a zombie at worst).
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                return true;
            }
            false
        });
        Watchdog {
            done: Some(tx),
            thread: Some(thread),
        }
    }

    /// Called once the child has been waited for.
    fn stop(mut self) -> bool {
        drop(self.done.take());
        self.thread
            .take()
            .map(|t| t.join().unwrap_or(false))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    /// A child gets none of this process's descriptors but its three, even
    /// one another thread made without close-on-exec; and a program that
    /// is not there is still told as such (std's error pipe survives).
    #[test]
    fn children_inherit_no_descriptor() {
        let mut fds = [0i32; 2];
        // SAFETY: pipe(2) writes two descriptors into the array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let pipe = std::fs::read_link(format!("/proc/self/fd/{}", fds[1])).unwrap();
        let out = Cmd::new("sh")
            .args([
                "-c",
                "for f in /proc/$$/fd/*; do readlink \"$f\"; done; true",
            ])
            .output_checked()
            .unwrap();
        let held = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            !held.lines().any(|l| std::path::Path::new(l) == pipe),
            "the child holds {}: {held}",
            pipe.display()
        );
        for fd in fds {
            // SAFETY: our own descriptors, closed once.
            unsafe { libc::close(fd) };
        }
        let e = Cmd::new("mkve-no-such-program").run_checked().unwrap_err();
        assert!(e.to_string().contains("mkve-no-such-program"), "{e}");
    }

    use super::*;

    #[test]
    fn a_program_is_the_first_executable_file_of_its_name() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let [a, b, c, e] = ["a", "b", "c", "e"].map(|n| d.path().join(n));
        for x in [&a, &b, &c, &e] {
            std::fs::create_dir(x).unwrap();
        }
        std::fs::create_dir(a.join("prog")).unwrap(); // a directory
        std::fs::write(b.join("prog"), "").unwrap(); // not executable
        for x in [&c, &e] {
            std::fs::write(x.join("prog"), "").unwrap();
            std::fs::set_permissions(x.join("prog"), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        let dirs = [a.clone(), b.clone(), c.clone(), e.clone()];
        assert_eq!(find_in(dirs, "prog"), Some(c.join("prog")));
        assert_eq!(find_in([a, b], "prog"), None);
    }

    #[test]
    fn failure_names_the_program_status_and_last_lines() {
        let err = Cmd::new("sh")
            .args(["-c", "echo first; echo second >&2; exit 3"])
            .what("hook \"x\"")
            .run_checked()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "hook \"x\" failed with exit status 3\n  first\n  second"
        );
        assert_eq!(err.exit_code(), 1);
        let Error::Process(p) = err else {
            panic!("a process error")
        };
        assert_eq!(p.code(), Some(3));
        assert_eq!(p.program, "sh");
        assert_eq!(p.args[0], "-c");
        assert_eq!(p.output_text(), "first\nsecond\n");
    }

    #[test]
    fn missing_program_is_unavailable() {
        let err = Cmd::new("mkve-no-such-program").run_checked().unwrap_err();
        assert_eq!(err.exit_code(), 69, "{err}");
    }

    #[test]
    fn input_goes_in_and_output_comes_back_whatever_the_status() {
        let (status, out) = Cmd::new("sh")
            .args(["-c", "head -c 3; exit 5"])
            .run_with_input(&mut &b"abcdefgh"[..])
            .unwrap();
        assert_eq!((status.code(), out.as_slice()), (Some(5), &b"abc"[..]));
        // A reader that stops early (a broken pipe) is told by its status.
        let big = vec![b'x'; 1 << 22];
        let (status, _) = Cmd::new("true")
            .run_with_input(&mut big.as_slice())
            .unwrap();
        assert!(status.success());
    }

    #[test]
    fn a_talk_is_lines_both_ways_and_its_failure_quotes_stderr() {
        let cmd = Cmd::new("sh").args(["-c", "read x; echo got $x; echo bad >&2; exit 2"]);
        let mut t = cmd.talk().unwrap();
        t.stdin.as_mut().unwrap().write_all(b"hello\n").unwrap();
        assert_eq!(t.read_line().unwrap().as_deref(), Some("got hello"));
        assert_eq!(t.read_line().unwrap(), None);
        let e = t.finish().unwrap_err();
        assert_eq!(e.to_string(), "sh failed with exit status 2\n  bad");
    }

    #[test]
    fn display_quotes_like_a_shell() {
        assert_eq!(
            Cmd::new("sh").args(["-c", "a b"]).to_string(),
            "sh -c 'a b'"
        );
    }

    #[test]
    fn output_captures_stdout_and_does_not_check() {
        let out = Cmd::new("printf").arg("a\\0b").output().unwrap();
        assert_eq!(out.stdout, b"a\0b");
        let out = Cmd::new("false").output().unwrap();
        assert!(!out.status.success());
        let e = Cmd::new("sh")
            .args(["-c", "echo why >&2; exit 4"])
            .output_checked()
            .unwrap_err();
        assert_eq!(e.to_string(), "sh failed with exit status 4\n  why");
    }

    #[test]
    fn a_program_past_its_timeout_is_killed() {
        let start = std::time::Instant::now();
        let e = Cmd::new("sleep")
            .arg("30")
            .timeout(Duration::from_millis(200))
            .run_checked()
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(10));
        assert_eq!(e.to_string(), "sleep did not finish in 0 s and was killed");
        let e = Cmd::new("sleep")
            .arg("30")
            .timeout(Duration::from_millis(200))
            .output()
            .unwrap_err();
        assert!(e.to_string().contains("was killed"), "{e}");
        // One that finishes in time is not disturbed.
        Cmd::new("true")
            .timeout(Duration::from_secs(30))
            .run_checked()
            .unwrap();
    }

    #[test]
    fn the_report_gets_the_command_line_and_output_when_verbose() {
        struct Log(std::sync::Mutex<Vec<String>>);
        impl Report for Log {
            fn progress(&self, _: &str) {}
            fn warning(&self, _: &str) {}
            fn note(&self, m: &str) {
                self.0.lock().unwrap().push(format!("note {m}"));
            }
            fn verbose(&self) -> bool {
                true
            }
            fn output(&self, b: &[u8]) {
                self.0
                    .lock()
                    .unwrap()
                    .push(format!("out {}", String::from_utf8_lossy(b)));
            }
        }
        let log = Log(Default::default());
        Cmd::new("echo")
            .arg("hi")
            .report(&log)
            .run_checked()
            .unwrap();
        assert_eq!(*log.0.lock().unwrap(), ["note + echo hi", "out hi\n"]);
    }
}
