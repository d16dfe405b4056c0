#![no_main]
// A rollout report line as `charter rollout watch` reads it from a
// collector: parse, signature under a fixed key, payload checks; and a
// report that verifies signs back to a line that verifies.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let key = |_: &str| [7u8; 32];
    if let Ok(r) = charter_release::report::Report::verify(data, key) {
        let line = r.sign(&[7u8; 32]).expect("a verified report signs");
        assert_eq!(
            charter_release::report::Report::verify(line.as_bytes(), key).ok(),
            Some(r)
        );
    }
    let _ = charter_release::report::Report::verify(data, |id| {
        *charter_release::report::license_key(data, id)
    });
});
