//! mkve-cache completes under its own name and as hsh-pack.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[test]
fn completes_as_mkve_cache_and_as_hsh_pack() {
    let (_d, link) = mkve_testkit::linked_as(env!("CARGO_BIN_EXE_mkve-cache"), "hsh-pack");
    for (bin, name) in [
        (
            std::path::Path::new(env!("CARGO_BIN_EXE_mkve-cache")),
            "mkve-cache",
        ),
        (link.as_path(), "hsh-pack"),
    ] {
        let o = std::process::Command::new(bin)
            .env("COMPLETE", "bash")
            .output()
            .unwrap();
        let script = String::from_utf8_lossy(&o.stdout);
        assert!(
            script.contains(&format!("\"{name}\" -- \""))
                && script.contains(&format!(" {name}\nfi\n")),
            "{script}"
        );
        let words = mkve_testkit::complete(bin.to_str().unwrap(), &[name, "--tar"], &[]);
        assert_eq!(words, ["--tarify-only"]);
    }
}
