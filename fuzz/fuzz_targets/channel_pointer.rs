#![no_main]
// Channel pointer payload parse and validation (what runs after the
// signature holds), with its rollout's arithmetic at the fuzzed instants,
// and the release engineer's rollout plan file.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = charter_release::rollout::parse_plan_file(data);
    if let Ok(p) = serde_json::from_slice::<charter_release::channel::ChannelPointer>(data)
        && p.validate().is_ok()
        && let Some(r) = &p.rollout
    {
        for position in [0, 1, 4999, 9999] {
            let s = r.standing(position, p.published_at);
            let _ = r.share_at(s.eligible_at);
            let _ = r.wave_at(p.expires);
        }
        let _ = r.resume(p.expires).validate(p.expires);
    }
});
