#![no_main]
// Sigstore bundle parsing and checking, including the cosign 2.x format's
// conversion: any bytes must give an error, never a panic or a pass.
use std::sync::OnceLock;

use charter_keys::sigstore::{self, Identity, Policy, Subject, TrustedRoot};

fn root() -> &'static TrustedRoot {
    static ROOT: OnceLock<TrustedRoot> = OnceLock::new();
    ROOT.get_or_init(|| {
        sigstore::trusted_root(sigstore::PRODUCTION_TRUSTED_ROOT.as_bytes()).expect("built-in root")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let policy = Policy::Keyless {
        identity: Identity::Exact("fuzz@example.com".into()),
        issuer: "https://example.com".into(),
    };
    let r = sigstore::verify(data, Subject::Bytes(b"fuzz"), &policy, root());
    assert!(r.is_err(), "an arbitrary bundle verified");
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sigstore::legacy_to_bundle(text);
    }
});
