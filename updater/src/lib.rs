//! The host side of charter: `charter-update`'s transaction (fetch,
//! verify, stage, swap, health check, commit or roll back) and what it
//! keeps on the host. The formats it verifies are charter_release's.
//!
//! Formats and verification steps are specified in docs/SPEC.md; the step
//! numbers in comments refer to it.
#![deny(missing_docs)]

pub mod config;
pub mod door;
mod error;
pub mod failpoint;
pub mod host;
pub mod net;
pub mod policy;
pub mod selftest;
pub mod source;
pub mod txn;

pub use error::Error;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
