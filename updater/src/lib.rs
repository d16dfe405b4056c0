//! The release domain of charter: the signed release manifest, hashing of
//! release trees, packing a directory into a release, and (as the updater
//! issue lands) the host-side transaction behind `charter-update`.
//!
//! Formats and verification steps are specified in docs/SPEC.md; the step
//! numbers in comments refer to it.
#![deny(missing_docs)]

pub mod auto;
pub mod backup;
pub mod channel;
pub mod config;
pub mod door;
mod error;
pub mod extract;
pub mod failpoint;
pub mod fetch;
pub mod manifest;
pub mod notify;
pub mod pack;
pub mod path;
pub mod plain;
pub mod policy;
pub mod repo;
pub mod run;
pub mod sbom;
pub mod selftest;
pub mod state;
pub mod tree;
pub mod txn;
pub mod verify;

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
