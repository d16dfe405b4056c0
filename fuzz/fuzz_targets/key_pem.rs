#![no_main]
// Public and private key PEM parsing. KDF costs are capped low so the fuzzer
// explores parsing, not scrypt.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = charter_keys::PublicKey::from_pem(text);
    let limits = charter_keys::Limits {
        max_scrypt_memory: 1 << 20,
        max_pbkdf2_iterations: 1000,
        ..charter_keys::Limits::default()
    };
    let _ = charter_keys::secret::SecretKey::from_pem(text, std::path::Path::new("fuzz"), &limits, || {
        Ok(zeroize_pass())
    });
});

fn zeroize_pass() -> charter_keys::secret::Passphrase {
    charter_keys::secret::Passphrase::new(b"fuzz".to_vec())
}
