//! The package-layer cache: the installed root for one resolved spec
//! (backend, suite, mirrors, architecture, variant, sorted package set) is
//! kept in `$MKVE_CACHEDIR/layers/KEY/root` and reused, so a rebuild whose
//! package set did not change installs nothing. A layer is built beside its
//! final place under an exclusive lock and renamed into place; readers hold
//! a shared lock while they use it, so a `--refresh` never pulls a layer
//! from under them. Downloaded packages are kept in `$MKVE_CACHEDIR/debs`.

use std::path::{Path, PathBuf};

use super::spec::{Backend, ResolvedSpec, RootSpec};
use crate::error::{Error, IoContext, Result};
use crate::exec::Report;
use crate::lock::{Lock, Mode};
use crate::paths;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// Reuse a cached layer, or build and keep one.
    Use,
    /// Build again and replace the cached layer.
    Refresh,
    /// Build into a temporary directory and keep nothing.
    Skip,
}

/// An installed root, cached or temporary, held until dropped.
pub struct Layer {
    pub root: PathBuf,
    pub resolved: ResolvedSpec,
    /// Whether it came from the cache without building.
    pub hit: bool,
    _hold: Hold,
}

enum Hold {
    Shared(#[allow(dead_code)] Lock),
    Temp(#[allow(dead_code)] crate::scratch::Scratch),
}

/// Get the root for `spec`: from the cache, or built by `backend`.
pub fn layer(
    backend: &dyn Backend,
    spec: &RootSpec,
    policy: CachePolicy,
    report: &dyn Report,
) -> Result<Layer> {
    let resolved = backend.resolve(spec)?;
    let unknown = backend.unknown_packages(&resolved);
    if !unknown.is_empty() {
        return Err(Error::UnknownPackages {
            suite: resolved.suite.clone(),
            names: unknown,
        });
    }
    let cache = paths::cachedir();
    let debs = cache.join("debs").join(format!(
        "{}-{}-{}",
        resolved.backend, resolved.suite, resolved.arch
    ));
    let layers = cache.join("layers");
    std::fs::create_dir_all(&layers).map_err(|e| Error::create(&layers, e))?;

    if policy == CachePolicy::Skip {
        let tmp = crate::scratch::Scratch::new_in(&layers, ".build.")?;
        let root = tmp.path().join("root");
        backend.build(&resolved, &root, &debs, report)?;
        return Ok(Layer {
            root,
            resolved,
            hit: false,
            _hold: Hold::Temp(tmp),
        });
    }

    let key = resolved.key()?;
    let dir = layers.join(&key);
    let lock_name = format!("layer-{key}.lock");
    if policy == CachePolicy::Use {
        let shared = Lock::acquire(&lock_name, Mode::Shared)?;
        if dir.join("root").is_dir() {
            report.progress(&format!("using the cached package layer {}", &key[..12]));
            return Ok(Layer {
                root: dir.join("root"),
                resolved,
                hit: true,
                _hold: Hold::Shared(shared),
            });
        }
    }
    let exclusive = Lock::acquire(&lock_name, Mode::Exclusive)?;
    if policy == CachePolicy::Use && dir.join("root").is_dir() {
        // Built by another process while this one waited.
        drop(exclusive);
        let shared = Lock::acquire(&lock_name, Mode::Shared)?;
        return Ok(Layer {
            root: dir.join("root"),
            resolved,
            hit: true,
            _hold: Hold::Shared(shared),
        });
    }
    build_into(backend, &resolved, &layers, &dir, &debs, report)?;
    drop(exclusive);
    let shared = Lock::acquire(&lock_name, Mode::Shared)?;
    Ok(Layer {
        root: dir.join("root"),
        resolved,
        hit: false,
        _hold: Hold::Shared(shared),
    })
}

/// Build beside `dir` and rename into place; the caller holds the lock.
fn build_into(
    backend: &dyn Backend,
    r: &ResolvedSpec,
    layers: &Path,
    dir: &Path,
    debs: &Path,
    report: &dyn Report,
) -> Result<()> {
    let tmp = crate::scratch::Scratch::new_in(layers, ".build.")?;
    backend.build(r, &tmp.path().join("root"), debs, report)?;
    // One syncfs instead of dpkg's fsync per file: a layer is in place only
    // once it is on disk.
    let fd = std::fs::File::open(tmp.path()).at(tmp.path())?;
    nix::unistd::syncfs(&fd).map_err(|e| Error::io(tmp.path(), e.into()))?;
    let spec = serde_json::to_vec_pretty(r).map_err(|e| Error::Other(e.to_string()))?;
    std::fs::write(tmp.path().join("spec.json"), spec).map_err(|e| Error::create(tmp.path(), e))?;
    if dir.exists() {
        let old = crate::scratch::Scratch::new_in(layers, ".old.")?;
        std::fs::rename(dir, old.path().join("layer")).at(dir)?;
        // `old` is removed when dropped, below.
        std::fs::rename(tmp.keep(), dir).at(dir)?;
        drop(old);
    } else {
        std::fs::rename(tmp.keep(), dir).at(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Silent;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A backend that "installs" by writing the package names to a file,
    /// slowly enough for concurrent callers to overlap.
    struct Fake {
        builds: AtomicU32,
    }

    impl Backend for Fake {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn resolve(&self, spec: &RootSpec) -> Result<ResolvedSpec> {
            Ok(ResolvedSpec {
                backend: "fake".into(),
                recipe: 1,
                suite: "s".into(),
                mirrors: vec![],
                arch: "a".into(),
                variant: "v".into(),
                packages: crate::root::package_set(spec.packages.iter().cloned()),
            })
        }
        fn unknown_packages(&self, r: &ResolvedSpec) -> Vec<String> {
            r.packages
                .iter()
                .filter(|p| p.starts_with("no-"))
                .cloned()
                .collect()
        }
        fn build(
            &self,
            r: &ResolvedSpec,
            target: &Path,
            _debs: &Path,
            _report: &dyn Report,
        ) -> Result<()> {
            self.builds.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(100));
            std::fs::create_dir_all(target).unwrap();
            std::fs::write(target.join("packages"), r.packages.join("\n")).unwrap();
            Ok(())
        }
    }

    #[test]
    fn same_set_hits_other_set_builds_refresh_rebuilds() {
        let d = tempfile::tempdir().unwrap();
        // The cache and lock directories come from the environment, the
        // process's: tests that set it hold testing::ENV.
        let _env = crate::testing::ENV
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        std::env::set_var("MKVE_CACHEDIR", d.path().join("cache"));
        std::env::set_var("MKVE_LOCKDIR", d.path().join("lock"));
        let fake = Fake {
            builds: AtomicU32::new(0),
        };
        let spec = |p: &[&str]| RootSpec {
            packages: p.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };

        let a = layer(&fake, &spec(&["b", "a"]), CachePolicy::Use, &Silent).unwrap();
        assert!(!a.hit);
        assert_eq!(
            std::fs::read_to_string(a.root.join("packages")).unwrap(),
            "a\nb"
        );
        drop(a);
        let again = layer(&fake, &spec(&["a", "b", "a"]), CachePolicy::Use, &Silent).unwrap();
        assert!(again.hit, "the same set in another order is the same layer");
        assert_eq!(fake.builds.load(Ordering::SeqCst), 1);
        drop(again);
        assert!(
            !layer(&fake, &spec(&["a"]), CachePolicy::Use, &Silent)
                .unwrap()
                .hit
        );
        assert!(
            !layer(&fake, &spec(&["a", "b"]), CachePolicy::Refresh, &Silent)
                .unwrap()
                .hit
        );
        assert_eq!(fake.builds.load(Ordering::SeqCst), 3);
        let tmp = layer(&fake, &spec(&["a", "b"]), CachePolicy::Skip, &Silent).unwrap();
        let tmp_root = tmp.root.clone();
        drop(tmp);
        assert!(!tmp_root.exists(), "an uncached root goes away");
        let leftovers: Vec<_> = std::fs::read_dir(d.path().join("cache/layers"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let err = layer(&fake, &spec(&["a", "no-such"]), CachePolicy::Use, &Silent)
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "package \"no-such\" not available in s");
        assert_eq!(err.exit_code(), 65);
    }
}
