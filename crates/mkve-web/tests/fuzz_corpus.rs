//! Every input the fuzzer kept for mkve-web's request readers
//! (`fuzz/corpus/api_request/`) and every one that crashed it
//! (`fuzz/crashes/api_request/`), replayed through the same target
//! function (`mkve_web::fuzzing`), in a plain `cargo test`.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[test]
fn api_request() {
    mkve_testkit::replay_fuzz_inputs("api_request", mkve_web::fuzzing::api_request);
}
