#![no_main]
//! mkve_web::fuzzing::api_request under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| mkve_web::fuzzing::api_request(data));
