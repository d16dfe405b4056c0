#![no_main]
// Trust root: envelope, payload parse, validation, self-signature check.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = charter_keys::root::VerifiedRoot::from_trusted(data, &charter_keys::Limits::default());
});
