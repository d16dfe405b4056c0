#![no_main]
// DSSE envelope parsing: size limits, JSON shape, base64 payload.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = charter_keys::dsse::Envelope::from_slice(data, &charter_keys::Limits::default());
});
