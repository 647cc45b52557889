//! Every input the fuzzers kept (`fuzz/corpus/TARGET/`) and every one that
//! crashed a target (`fuzz/crashes/TARGET/`), replayed through the same
//! target function (`mkve_core::fuzzing`): a fixed crash that comes back
//! fails here, in a plain `cargo test`, without a fuzzer.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// One test per target, named after it.
macro_rules! replayed {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        $(
            $(#[$attr])*
            #[test]
            fn $name() {
                mkve_testkit::replay_fuzz_inputs(stringify!($name), mkve_core::fuzzing::$name);
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
