//! charter's release formats: what a release engineer signs and a host
//! verifies. Bytes in, verified types out: the signed release manifest and
//! its tree hashing and packing, the channel pointer, SBOM references,
//! the signature policy a manifest is checked against, and the
//! repository layout. No network, no host paths, no processes: the host
//! side (fetching, staging, swapping) is charter-updater's.
//!
//! Formats and verification steps are specified in docs/SPEC.md; the step
//! numbers in comments refer to it.
#![deny(missing_docs)]

pub mod archive;
pub mod channel;
pub mod digest;
pub mod duration;
mod error;
pub mod manifest;
pub mod pack;
pub mod path;
pub mod plain;
pub mod repo;
pub mod report;
pub mod rollout;
pub mod sbom;
pub mod signatures;
pub mod tree;

pub use error::Error;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Bounds on release metadata parsed from outside (docs/SPEC.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Envelope and signature limits.
    pub envelope: charter_keys::Limits,
    /// Most entries a manifest may list (default 1,000,000).
    pub max_files: usize,
    /// Longest path inside a release, in bytes (default 4,096; each
    /// component at most 255).
    pub max_path_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            envelope: charter_keys::Limits::default(),
            max_files: 1_000_000,
            max_path_bytes: 4096,
        }
    }
}
