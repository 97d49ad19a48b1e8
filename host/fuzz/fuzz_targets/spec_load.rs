#![no_main]

libfuzzer_sys::fuzz_target!(init: omni_cpi_fuzz::let_the_host_catch_shell_parser_panics(), |data: &[u8]| {
    omni_cpi_fuzz::spec_load(data)
});
