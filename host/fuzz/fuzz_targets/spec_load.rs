#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| omni_cpi_fuzz::spec_load(data));
