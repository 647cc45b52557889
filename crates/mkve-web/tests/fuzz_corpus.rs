//! Every input the fuzzer kept for mkve-web's request readers
//! (`fuzz/corpus/api_request/`) and every one that crashed it
//! (`fuzz/crashes/api_request/`), replayed through the same target
//! function (`mkve_web::fuzzing`), in a plain `cargo test`.

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

#[test]
fn api_request() {
    let files = inputs("api_request");
    assert!(!files.is_empty(), "no input for api_request in fuzz/corpus");
    for f in files {
        // A panic names the target's check; this names the input.
        eprintln!("{}", f.display());
        mkve_web::fuzzing::api_request(&std::fs::read(&f).unwrap());
    }
}
