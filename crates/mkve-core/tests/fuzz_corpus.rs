//! Every input the fuzzers kept (`fuzz/corpus/TARGET/`) and every one that
//! crashed a target (`fuzz/crashes/TARGET/`), replayed through the same
//! target function (`mkve_core::fuzzing`): a fixed crash that comes back
//! fails here, in a plain `cargo test`, without a fuzzer.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut files: Vec<PathBuf> = ["corpus", "crashes"]
        .iter()
        .filter_map(|kind| std::fs::read_dir(fuzz.join(kind).join(target)).ok())
        .flat_map(|rd| rd.map(|e| e.unwrap().path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no input for {target} in fuzz/corpus");
    for f in files {
        let data = std::fs::read(&f).unwrap();
        // A panic names the target's check; this names the input.
        eprintln!("{}", f.display());
        run(&data);
    }
}

/// One test per target, named after it.
macro_rules! replayed {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        $(
            $(#[$attr])*
            #[test]
            fn $name() {
                replay(stringify!($name), mkve_core::fuzzing::$name);
            }
        )*
    };
}

replayed!(
    template,
    list,
    vps_conf,
    params,
    probes,
    state,
    sums,
    rootfs,
    #[cfg(feature = "gpg")]
    meta,
    #[cfg(feature = "gpg")]
    bundle,
    #[cfg(feature = "gpg")]
    stamp,
    #[cfg(feature = "gpg")]
    seen,
);
