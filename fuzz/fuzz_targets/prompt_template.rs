#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| h2ovl_fuzz::prompt_template(data));
