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
pub mod entitlement;
mod error;
pub mod eval;
pub mod fingerprint;
mod hooks;
mod installed;
pub mod license;
mod procgroup;
pub mod selftest;
pub mod state;
pub mod status_fetch;
mod version;

pub use error::{Error, Result};
pub use version::version_json;
