#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| omni_cpi_fuzz::compat_translate(data));
