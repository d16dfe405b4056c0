#![no_main]
// Manifest payload parse and validation (what runs after the signature holds).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(m) = charter_release::manifest::Manifest::from_payload(data) {
        let _ = m.validate(&charter_release::Limits::default());
    }
});
