//! What mkve-cache(1) does, end to end: get an installed root (from the
//! layer cache or freshly built), apply the user's steps to a copy of it,
//! and leave it as a directory or pack it. Nothing half-made is left: a
//! directory appears by rename, an archive through `files::Output`.

use std::path::{Path, PathBuf};

use super::{backend, layer, CachePolicy, RootSpec};
use crate::error::{Error, IoContext, Result};
use crate::exec::Report;
use crate::files::Output;
use crate::hooks::{run_steps, Step};
use crate::pack::{self, Compression, PackOptions};
use crate::scratch::Scratch;

pub enum Target {
    /// An archive (`-` is stdout).
    Archive {
        path: PathBuf,
        compression: Compression,
    },
    /// A new directory.
    Dir(PathBuf),
}

pub struct Job {
    pub backend: Option<super::BackendName>,
    pub spec: RootSpec,
    pub policy: CachePolicy,
    pub steps: Vec<Step>,
    pub target: Target,
}

/// Build the root, apply the steps, write the target.
pub fn run(job: &Job, report: &dyn Report) -> Result<()> {
    let backend = backend(job.backend)?;
    let layer = layer(backend.as_ref(), &job.spec, job.policy, report)?;
    match &job.target {
        Target::Dir(dest) => {
            let tmp = crate::files::temp_dir_beside(dest)?;
            let root = tmp.path().join("root");
            copy_root(&layer.root, &root, report)?;
            run_steps(&root, &job.steps, &[], report)?;
            for f in super::BUILD_HOST_FILES {
                let p = root.join(f);
                if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
                    std::fs::remove_file(&p).at(&p)?;
                }
            }
            std::fs::rename(&root, dest).map_err(|e| Error::create(dest, e))?;
            Ok(())
        }
        Target::Archive { path, compression } if job.steps.is_empty() => pack_to(
            &layer.root,
            path,
            *compression,
            &super::pack_options(),
            report,
        ),
        Target::Archive { path, compression } => {
            let work = work_dir()?;
            let root = work.path().join("root");
            copy_root(&layer.root, &root, report)?;
            run_steps(&root, &job.steps, &[], report)?;
            pack_to(&root, path, *compression, &super::pack_options(), report)
        }
    }
}

/// Pack an existing root (`--tarify-only`). A hasher work directory (one
/// with `chroot/` in it) means its chroot.
pub fn tarify(
    root: &Path,
    out: &Path,
    compression: Compression,
    report: &dyn Report,
) -> Result<()> {
    let meta = std::fs::metadata(root).at(root)?;
    if !meta.is_dir() {
        return Err(Error::Usage(format!("{}: not a directory", root.display())));
    }
    let hasher_chroot = root.join("chroot");
    let root = if hasher_chroot.is_dir() && !root.join("etc").exists() {
        hasher_chroot
    } else {
        root.to_path_buf()
    };
    pack_to(&root, out, compression, &PackOptions::from_env(), report)
}

/// Where an archive goes by default: `$TMPDIR/output.tar[.gz|.zst]`.
pub fn default_output(compression: Compression) -> PathBuf {
    let name = match compression {
        Compression::None => "output.tar",
        Compression::Gzip => "output.tar.gz",
        Compression::Zstd => "output.tar.zst",
    };
    std::env::temp_dir().join(name)
}

fn pack_to(
    root: &Path,
    out: &Path,
    compression: Compression,
    opts: &PackOptions,
    report: &dyn Report,
) -> Result<()> {
    report.progress(&format!("packing {}", root.display()));
    let start = std::time::Instant::now();
    let mut output = Output::create(out)?;
    let (_, stats) = pack::pack_dir_compressed(root, &mut output, compression, opts)?;
    output.commit()?;
    for s in &stats.skipped {
        report.note(&format!("{}: socket skipped", s.display()));
    }
    report.progress(&stats.describe(start.elapsed()));
    Ok(())
}

/// Copy a root with everything kept (owners, modes, links, xattrs, device
/// nodes); a reflink copy where the file system can.
pub fn copy_root(src: &Path, dest: &Path, report: &dyn Report) -> Result<()> {
    report.progress("copying the package layer");
    crate::files::copy_tree(src, dest, crate::files::CopyTree::SHARED)
        .report(report)
        .run_checked()
}

/// A scratch directory for a root on the cache's file system (roots are
/// large; `/tmp` is often a small tmpfs); those of killed runs are swept.
pub fn work_dir() -> Result<Scratch> {
    Scratch::new_in(&crate::paths::cachedir().join("work"), "root.")
}
