#![no_main]
//! mkve_core::fuzzing::meta under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| mkve_core::fuzzing::meta(data));
