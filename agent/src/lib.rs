//! The license domain of charter: signed licenses and status documents,
//! this host's fingerprint, the tamper-evident runtime state, the license
//! state computation (`active`, `grace`, `expired`, `suspended`,
//! `invalid`), and the `charter-agent` daemon's local API and audit log.
//!
//! Formats and evaluation rules: docs/SPEC.md §10.
#![deny(missing_docs)]

pub mod api;
pub mod audit;
pub mod config;
pub mod daemon;
mod error;
pub mod eval;
pub mod fingerprint;
pub mod license;
pub mod selftest;
pub mod state;

pub use error::Error;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What `version --json` and the API's `/v1/version` report about this
/// build.
pub fn version_json() -> serde_json::Value {
    serde_json::json!({
        "name": "charter-agent",
        "version": env!("CARGO_PKG_VERSION"),
        "target": format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
    })
}
