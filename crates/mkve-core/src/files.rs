//! Inputs and outputs named on the command line: `-` is stdin or stdout,
//! and a file output is written under a temporary name in its directory,
//! fsynced and renamed into place by `commit`, so a failed run leaves
//! nothing that looks finished. Trees are copied with their metadata by
//! one function, [`copy_tree`] (cp(1)).

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::exec::Cmd;

/// Open `path` for reading; `-` is stdin.
pub fn open_input(path: &Path) -> Result<Box<dyn Read + Send>> {
    if path == Path::new("-") {
        return Ok(Box::new(std::io::stdin()));
    }
    let f = File::open(path).at(path)?;
    Ok(Box::new(f))
}

/// Name used in messages for an input: `-` reads as "(stdin)".
pub fn display_name(path: &Path) -> PathBuf {
    if path == Path::new("-") {
        PathBuf::from("(stdin)")
    } else {
        path.to_path_buf()
    }
}

/// Name used in messages for an output: `-` reads as "(stdout)".
pub fn output_name(path: &Path) -> PathBuf {
    if path == Path::new("-") {
        PathBuf::from("(stdout)")
    } else {
        path.to_path_buf()
    }
}

/// The directory `path` is in (`.` for a bare name) and its file name.
fn parent_and_name(path: &Path) -> (&Path, String) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, name)
}

/// A scratch directory beside `dest` (which must not exist yet), to be
/// renamed to `dest` when its contents are complete; removed when dropped,
/// and swept by the next run if this one is killed (see scratch.rs).
pub fn temp_dir_beside(dest: &Path) -> Result<crate::scratch::Scratch> {
    if std::fs::symlink_metadata(dest).is_ok() {
        return Err(Error::create(dest, std::io::Error::other("already exists")));
    }
    let (dir, name) = parent_and_name(dest);
    crate::scratch::Scratch::new_in(dir, &format!(".{name}."))
}

/// The suffix of an output being written (`.NAME.XXXXXX.mkve-part`).
const PART: &str = ".mkve-part";

/// Remove the outputs that runs killed while writing left in `dir`: `.*`
/// files ending in `PART`, that no run holds locked, older than
/// `scratch::SWEEP_AGE`.
fn sweep_parts(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with('.') && name.ends_with(PART)) {
            continue;
        }
        let old = e
            .metadata()
            .is_ok_and(|m| m.is_file() && crate::scratch::stale(&m));
        let Ok(f) = File::open(e.path()) else {
            continue;
        };
        if old && nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

pub enum Output {
    Stdout(BufWriter<std::io::Stdout>),
    /// A device or FIFO: written in place, there is nothing to rename.
    Special(File, PathBuf),
    File {
        /// The file written (plain, so its errors name no temporary path).
        tmp: BufWriter<File>,
        /// Its temporary name, removed unless persisted.
        name: tempfile::TempPath,
        dest: PathBuf,
        _lock: nix::fcntl::Flock<File>,
    },
}

/// Write `bytes` to `path` whole or not at all: a temporary name in its
/// directory, synced, renamed into place ([`Output`]). Errors (73): the
/// file cannot be written.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut out = Output::create(path)?;
    out.write_all(bytes).map_err(|e| Error::create(path, e))?;
    out.commit()
}

impl Output {
    pub fn create(path: &Path) -> Result<Output> {
        if path == Path::new("-") {
            return Ok(Output::Stdout(BufWriter::with_capacity(
                1 << 20,
                std::io::stdout(),
            )));
        }
        if let Ok(m) = std::fs::metadata(path) {
            if m.is_dir() {
                return Err(Error::create(path, std::io::Error::other("is a directory")));
            }
            if !m.is_file() {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| Error::create(path, e))?;
                return Ok(Output::Special(f, path.to_path_buf()));
            }
        }
        let (dir, base) = parent_and_name(path);
        sweep_parts(dir);
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{base}."))
            .suffix(PART)
            // What File::create would give: 0666 less the umask.
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .tempfile_in(dir)
            .map_err(|e| Error::create(path, e))?;
        // Locked while this run writes it: a sweep takes only unlocked ones.
        let lock = nix::fcntl::Flock::lock(
            tmp.as_file()
                .try_clone()
                .map_err(|e| Error::create(path, e))?,
            nix::fcntl::FlockArg::LockExclusiveNonblock,
        )
        .map_err(|(_, e)| Error::create(path, e.into()))?;
        let (file, name) = tmp.into_parts();
        Ok(Output::File {
            tmp: BufWriter::with_capacity(1 << 20, file),
            name,
            dest: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        match self {
            Output::Stdout(_) => Path::new("-"),
            Output::Special(_, p) => p,
            Output::File { dest, .. } => dest,
        }
    }

    /// Flush, sync and rename into place.
    pub fn commit(self) -> Result<()> {
        match self {
            Output::Stdout(mut w) => w.flush().map_err(|e| Error::create("(stdout)", e)),
            Output::Special(mut f, p) => f.flush().map_err(|e| Error::create(p, e)),
            Output::File {
                tmp, name, dest, ..
            } => {
                let tmp = tmp
                    .into_inner()
                    .map_err(|e| Error::create(&dest, e.into_error()))?;
                tmp.sync_all().map_err(|e| Error::create(&dest, e))?;
                name.persist(&dest)
                    .map_err(|e| Error::create(&dest, e.error))?;
                if let Some(dir) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
                    // The rename is durable only once the directory is synced.
                    let _ = File::open(dir).and_then(|d| d.sync_all());
                }
                Ok(())
            }
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Stdout(w) => w.write(buf),
            Output::Special(f, _) => f.write(buf),
            Output::File { tmp, .. } => tmp.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stdout(w) => w.flush(),
            Output::Special(f, _) => f.flush(),
            Output::File { tmp, .. } => tmp.flush(),
        }
    }
}

/// A reader that, given an [`Output`], writes every byte read through it
/// there: a bundle copied while it is verified, in one pass.
/// A failed write stops the reading (the reader gets an error) and is kept
/// apart, so that the caller reports it as the output's (exit status 73)
/// rather than as bad data: see [`CopyingReader::take_write_error`].
pub struct CopyingReader<'a, R> {
    inner: R,
    out: Option<&'a mut Output>,
    bytes: u64,
    write_error: Option<std::io::Error>,
}

impl<'a, R: Read> CopyingReader<'a, R> {
    pub fn new(inner: R, out: Option<&'a mut Output>) -> Self {
        CopyingReader {
            inner,
            out,
            bytes: 0,
            write_error: None,
        }
    }

    /// The error of a write to the output that failed, as
    /// `Error::CannotCreate` naming it; `None` when every write succeeded.
    pub fn take_write_error(&mut self) -> Option<Error> {
        let e = self.write_error.take()?;
        let path = self.out.as_ref().map_or(Path::new("-"), |o| o.path());
        Some(Error::create(output_name(path), e))
    }

    /// Copy what the reader has not read yet, and return the count of
    /// bytes. `label` names the input in a read error.
    pub fn finish(mut self, label: &Path) -> Result<u64> {
        let copied = std::io::copy(&mut self, &mut std::io::sink());
        if let Some(e) = self.take_write_error() {
            return Err(e);
        }
        copied.at(label)?;
        Ok(self.bytes)
    }
}

impl<R: Read> Read for CopyingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.write_error.is_some() {
            return Err(std::io::Error::other("the copy could not be written"));
        }
        let n = self.inner.read(buf)?;
        if let Some(out) = self.out.as_mut() {
            if let Err(e) = out.write_all(&buf[..n]) {
                self.write_error = Some(e);
                return Err(std::io::Error::other("the copy could not be written"));
            }
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

/// How [`copy_tree`] copies.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyTree {
    /// The modes alone kept (`cp -R --preserve=mode`): files that become
    /// root's whoever owned them. Otherwise everything is kept: owners,
    /// modes, links, xattrs, device nodes, times (`cp -a`).
    pub modes_only: bool,
    /// Data blocks shared where the file system can (`--reflink=auto`).
    pub reflink: bool,
    /// A file in the way at `dest` replaced, not written into
    /// (`--remove-destination`).
    pub replace: bool,
}

impl CopyTree {
    /// Everything kept (`cp -a`), data blocks shared where the file system
    /// can: how a root or a layer is copied.
    pub const SHARED: CopyTree = CopyTree {
        modes_only: false,
        reflink: true,
        replace: false,
    };
}

/// cp(1), the one way mkve copies a tree with its metadata: `src` copied
/// as `dest` (the copy itself, never a directory it goes into), as `how`
/// says. The command, for the caller to give its report (and a name for
/// its errors) and run.
pub fn copy_tree<'r>(src: &Path, dest: &Path, how: CopyTree) -> Cmd<'r> {
    let keep: &[&str] = if how.modes_only {
        &["-R", "--preserve=mode"]
    } else {
        &["-a"]
    };
    Cmd::new("cp")
        .args(keep)
        .args(how.reflink.then_some("--reflink=auto"))
        .args(how.replace.then_some("--remove-destination"))
        .args(["--no-target-directory", "--"])
        .arg(src)
        .arg(dest)
}

/// cp(1) of the paths `rels` (relative to `from`) into `into` with the
/// directories leading to them (`cp -a --parents`), everything kept as
/// [`copy_tree`] keeps it. The command, for the caller to run.
pub fn copy_parents<'r, P: AsRef<std::ffi::OsStr>>(
    from: &Path,
    rels: impl IntoIterator<Item = P>,
    into: &Path,
) -> Cmd<'r> {
    Cmd::new("cp")
        .args(["-a", "--parents", "--"])
        .args(rels)
        .arg(into)
        .current_dir(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_are_copied_as_the_destination_and_replace_what_is_in_the_way() {
        let d = crate::testing::tree(&[("src/a", "1"), ("src/sub/b", "2"), ("file", "new")]);
        let copy = d.path().join("copy");
        copy_tree(&d.path().join("src"), &copy, CopyTree::default())
            .run_checked()
            .unwrap();
        assert_eq!(std::fs::read_to_string(copy.join("sub/b")).unwrap(), "2");
        let how = CopyTree {
            replace: true,
            ..Default::default()
        };
        copy_tree(&d.path().join("file"), &copy.join("a"), how)
            .run_checked()
            .unwrap();
        assert_eq!(std::fs::read_to_string(copy.join("a")).unwrap(), "new");
    }
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn output_appears_only_on_commit_and_nothing_is_left_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out.bun");
        let mut o = Output::create(&dest).unwrap();
        o.write_all(b"half").unwrap();
        drop(o);
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            0,
            "a dropped output leaves no file"
        );
        let mut o = Output::create(&dest).unwrap();
        o.write_all(b"whole").unwrap();
        assert!(!dest.exists());
        o.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"whole");
        let umask = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        nix::sys::stat::umask(umask);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&dest).unwrap().permissions(),
        );
        assert_eq!(
            mode & 0o777,
            0o666 & !umask.bits(),
            "an output is made like any new file"
        );
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_device_is_written_in_place() {
        let mut o = Output::create(Path::new("/dev/null")).unwrap();
        o.write_all(b"x").unwrap();
        o.commit().unwrap();
        assert!(std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
    }

    #[test]
    fn a_directory_cannot_be_an_output() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(Output::create(d.path()).err().unwrap().exit_code(), 73);
    }

    #[test]
    fn a_copying_reader_copies_what_is_read_and_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("copy");
        let mut out = Output::create(&dest).unwrap();
        let mut r = CopyingReader::new(&b"hello world"[..], Some(&mut out));
        let mut first = [0u8; 5];
        r.read_exact(&mut first).unwrap();
        assert_eq!(r.finish(Path::new("in")).unwrap(), 11);
        out.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello world");
    }

    #[test]
    fn a_copying_reader_tells_a_failed_write_as_the_outputs() {
        let mut out = Output::create(Path::new("/dev/full")).unwrap();
        let big = vec![0u8; 4 << 20];
        let mut r = CopyingReader::new(&big[..], Some(&mut out));
        assert!(std::io::copy(&mut r, &mut std::io::sink()).is_err());
        let e = r.take_write_error().unwrap();
        assert_eq!(e.exit_code(), 73);
        assert!(e.to_string().starts_with("/dev/full: cannot create"), "{e}");
        assert!(r.take_write_error().is_none());
    }
}
