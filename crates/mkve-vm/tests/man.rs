//! mkve-vm(1) and the binary agree: every long option and subcommand the
//! binary has is in the page, and the page names no option it lacks.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[test]
fn the_man_page_and_the_options_agree() {
    // mkve-bundle --info shows the parameters --param gives,
    // mkve-bundle --publish makes what create takes by URL,
    // mkve-bundle --audit matches as audit does; GANETI shows Ganeti's
    // own commands' options.
    mkve_testkit::assert_man_matches_help(
        env!("CARGO_BIN_EXE_mkve-vm"),
        "mkve-vm.1",
        &[
            "--info",
            "--publish",
            "--audit",
            "--disk",
            "--enabled-hypervisors",
            "--gateway",
            "--net",
            "--nic-parameters",
            "--os-parameters-secret",
        ],
    );
}
