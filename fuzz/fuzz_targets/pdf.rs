#![no_main]
// The renderer's panics are caught by the PDF module's guard and become errors (by design);
// a silent hook keeps libfuzzer-sys's abort-on-panic hook from counting those. A panic that
// escapes the guard still aborts (libfuzzer-sys catches it at the target boundary).
libfuzzer_sys::fuzz_target!(
    init: { std::panic::set_hook(Box::new(|_| {})); },
    |data: &[u8]| h2ovl_fuzz::pdf(data)
);
