//! mkve-web(8) and the binary agree: every long option the binary has is
//! in the page, and the page names no option it lacks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[test]
fn the_man_page_and_the_options_agree() {
    // mkve-vm's and mkve-net's --json, the log's words for a forced stop,
    // mkve-vm stop's --timeout (the query's timeout), mkve-vm backup's
    // --full and --force-no-sign (a backup's options, --force-no-sign a
    // pack's too), mkve-vm adopt's --id and --dry-run (the query's id and
    // dry_run), mkve-vm's --engine (the Ganeti section), mkve-bundle's
    // --publish (what --publish-dir does), mkve-vm upgrade's --commit
    // (what the Update section's button leaves), and curl's --unix-socket
    // in the examples.
    mkve_testkit::assert_man_matches_help(
        env!("CARGO_BIN_EXE_mkve-web"),
        "mkve-web.8",
        &[
            "--json",
            "--force",
            "--timeout",
            "--full",
            "--force-no-sign",
            "--engine",
            "--id",
            "--dry-run",
            "--publish",
            "--commit",
            "--unix-socket",
        ],
    );
}
