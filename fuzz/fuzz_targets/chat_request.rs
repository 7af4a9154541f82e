#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| h2ovl_fuzz::chat_request(data));
