//! `mkve-vm console`: a machine's console through a libvirt stream. On a
//! terminal, the terminal is put in raw mode and Ctrl-] detaches (as in
//! virsh); otherwise stdin is copied to the console until it ends, so
//! scripts can drive a console through a pipe. Output goes to stdout.
//! [`Console`] is the stream itself, for a caller with no terminal (the
//! web front-end bridges it to a WebSocket).

use std::io::Write;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios;
use virt::stream::Stream;

use crate::error::{Error, Result};

/// The byte that detaches on a terminal: Ctrl-].
pub const ESCAPE: u8 = 0x1d;

/// The terminal's settings before raw mode, put back when dropped.
struct Raw(termios::Termios);

impl Raw {
    fn enter() -> Option<Raw> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), termios::SetArg::TCSADRAIN, &raw).ok()?;
        Some(Raw(saved))
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(
            std::io::stdin().as_fd(),
            termios::SetArg::TCSADRAIN,
            &self.0,
        );
    }
}

/// A machine's console, opened (`vm::open_console`): bytes the guest
/// writes come out of [`Console::recv`], bytes for it go in through
/// [`Console::send`]. Both block; clones share the stream, so one thread
/// may read while another writes, and [`Console::close`] from either ends
/// a `recv` waiting in the other.
#[derive(Clone)]
pub struct Console {
    stream: Stream,
    what: String,
}

impl Console {
    pub(crate) fn new(stream: Stream, what: &str) -> Console {
        Console {
            stream,
            what: what.to_string(),
        }
    }

    /// `machine 101 (name)`, for messages.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Wait for output and put it in `buf`: its length, 0 when the
    /// console closed. Errors: the stream failed or was closed by
    /// [`Console::close`] (`machine 101 (name): console: …`).
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        loop {
            match self.stream.recv(buf) {
                Ok(n) if n >= 0 => return Ok(n as usize),
                Ok(_) => continue,
                Err(e) => return Err(self.failed(&e)),
            }
        }
    }

    /// The stream's failure, naming the machine: `machine 101 (name):
    /// console: …`.
    fn failed(&self, e: &virt::error::Error) -> Error {
        Error::Other(format!("{}: console: {}", self.what, e.message()))
    }

    /// Send all of `data` to the guest. Errors as [`Console::recv`].
    pub fn send(&self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            match self.stream.send(data) {
                Ok(k) if k > 0 => data = &data[k as usize..],
                Ok(_) => continue,
                Err(e) => return Err(self.failed(&e)),
            }
        }
        Ok(())
    }

    /// End the stream: a `recv` waiting elsewhere returns an error.
    pub fn close(&self) {
        let _ = self.stream.clone().abort();
    }
}

/// Copy between stdin/stdout and `stream` (a console opened on it) until
/// the console closes, stdin ends, or Ctrl-] on a terminal.
pub fn attach(console: Console) -> Result<()> {
    let Console { stream, what } = console;
    let what = what.as_str();
    let tty = nix::unistd::isatty(std::io::stdin().as_fd()).unwrap_or(false);
    if tty {
        eprint!("Connected to {what}; Ctrl-] detaches.\r\n");
    }
    let raw = if tty { Raw::enter() } else { None };
    let closed = Arc::new(AtomicBool::new(false));
    let reader = {
        let stream = stream.clone();
        let closed = closed.clone();
        std::thread::spawn(move || -> std::result::Result<(), String> {
            let mut buf = vec![0u8; 16 << 10];
            let mut out = std::io::stdout().lock();
            let r = loop {
                match stream.recv(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(n) if n > 0 => {
                        if out
                            .write_all(&buf[..n as usize])
                            .and_then(|_| out.flush())
                            .is_err()
                        {
                            break Ok(());
                        }
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        break if closed.load(Ordering::SeqCst) {
                            Ok(())
                        } else {
                            Err(e.message().to_string())
                        }
                    }
                }
            };
            closed.store(true, Ordering::SeqCst);
            r
        })
    };
    // Read the descriptor itself: a buffered reader could hold bytes that
    // poll does not see.
    let stdin = std::io::stdin();
    let mut buf = [0u8; 4096];
    let result = loop {
        if closed.load(Ordering::SeqCst) {
            break Ok(());
        }
        // Wake up now and then to see whether the console closed.
        let ready = {
            let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::from(200u16))
        };
        match ready {
            Ok(0) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => break Err(Error::io("(stdin)", e.into())),
            Ok(_) => {}
        }
        let n = match nix::unistd::read(stdin.as_fd(), &mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => break Err(Error::io("(stdin)", e.into())),
        };
        let (data, detach) = match buf[..n].iter().position(|b| tty && *b == ESCAPE) {
            Some(i) => (&buf[..i], true),
            None => (&buf[..n], false),
        };
        let mut rest = data;
        while !rest.is_empty() {
            match stream.send(rest) {
                Ok(k) if k > 0 => rest = &rest[k as usize..],
                Ok(_) => continue,
                Err(e) => {
                    closed.store(true, Ordering::SeqCst);
                    return Err(Error::Other(format!("{what}: console: {}", e.message())));
                }
            }
        }
        if detach {
            break Ok(());
        }
    };
    let ended_by_guest = closed.swap(true, Ordering::SeqCst);
    if !ended_by_guest {
        let _ = stream.abort();
    }
    let read = reader.join().unwrap_or(Ok(()));
    drop(raw);
    if tty {
        eprintln!();
    }
    result?;
    read.map_err(|e| Error::Other(format!("{what}: console: {e}")))
}
