/// Bounds on everything this crate parses from outside. Every parser checks
/// them before doing work proportional to the input, so an attacker who
/// controls a repository cannot make a host allocate or compute without end.
///
/// The defaults are documented in docs/SPEC.md §7 and chosen so that a
/// release of a million files still fits while a hostile document stays
/// cheap to refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest serialized envelope accepted, in bytes (default 32 MiB).
    pub max_envelope_bytes: u64,
    /// Largest decoded payload, in bytes (default 24 MiB: base64 makes the
    /// envelope a third larger than its payload).
    pub max_payload_bytes: u64,
    /// Most signatures one envelope may carry (default 32).
    pub max_signatures: usize,
    /// Most keys a trust root may list (default 256).
    pub max_root_keys: usize,
    /// Most rotations walked from the trusted root in one update (default 64).
    pub max_root_rotations: u32,
    /// Largest key file read, in bytes (default 64 KiB).
    pub max_key_file_bytes: u64,
    /// Largest file `sign-blob`/`verify-blob` hashes whole with pure Ed25519
    /// (default 256 MiB); larger files need Ed25519ph (`--prehash`).
    pub max_pure_blob_bytes: u64,
    /// Most memory scrypt may use (128 * N * r bytes) when decrypting a key
    /// file (default 256 MiB; charter's own files use 16 MiB). Also caps
    /// p at 16.
    pub max_scrypt_memory: u64,
    /// Highest PBKDF2 iteration count accepted when decrypting a key file
    /// (default 10,000,000).
    pub max_pbkdf2_iterations: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_envelope_bytes: 32 << 20,
            max_payload_bytes: 24 << 20,
            max_signatures: 32,
            max_root_keys: 256,
            max_root_rotations: 64,
            max_key_file_bytes: 64 << 10,
            max_pure_blob_bytes: 256 << 20,
            max_scrypt_memory: 256 << 20,
            max_pbkdf2_iterations: 10_000_000,
        }
    }
}
