#![no_main]
// ArchivePath: whatever is accepted must be relative, normalized and stay
// inside the tree; link targets that resolve must too.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (a, b) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(p) = charter_release::path::ArchivePath::new(a, 4096) {
        let s = p.as_str();
        assert!(!s.starts_with('/') && !s.split('/').any(|c| c.is_empty() || c == "." || c == ".."));
        if let Some(t) = p.resolve_link_target(b) {
            assert!(!t.starts_with('/') && !t.split('/').any(|c| c == ".."));
        }
    }
});
