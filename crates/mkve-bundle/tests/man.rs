//! mkve-bundle(1) and the binary agree: every long option and subcommand the
//! binary has is in the page, and the page names no option it lacks.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[test]
fn the_man_page_and_the_options_agree() {
    mkve_testkit::assert_man_matches_help(
        env!("CARGO_BIN_EXE_mkve-bundle"),
        "mkve-bundle.1",
        // --out: the original's spelling, a hidden alias of --output;
        // gpg --export and mmdebstrap --include in examples;
        // mkve-vm create --param, which the parameters are for;
        // gpg --detach-sign, which writes what SHA256SUMS.gpg is;
        // dpkg --compare-versions, which --audit compares as.
        &[
            "--out",
            "--export",
            "--include",
            "--param",
            "--detach-sign",
            "--compare-versions",
        ],
    );
}
