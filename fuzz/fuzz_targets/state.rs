#![no_main]
//! mkve_core::fuzzing::state under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| mkve_core::fuzzing::state(data));
