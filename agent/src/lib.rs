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

/// What `version --json` and the API's `/v1/version` report: this build,
/// and with a config the trust root in force and the installed release (as
/// the updater's state records it, when `paths.updater_root` says where
/// that is), so a panel can build a fleet inventory.
pub fn version_json(cfg: Option<&config::Config>) -> serde_json::Value {
    let mut v = serde_json::json!({ "build": charter_keys::build_info!("charter-agent") });
    let Some(cfg) = cfg else {
        return v;
    };
    v["trust_root"] = match daemon::load_root(cfg) {
        Ok(r) => serde_json::json!({"version": r.version(), "expires": r.expires()}),
        Err(e) => serde_json::json!({"error": e.to_string()}),
    };
    let current = cfg
        .paths
        .updater_root
        .as_ref()
        .and_then(|r| r.parent())
        .and_then(|d| std::fs::read(d.join("state.json")).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map(|s| s["current"].clone())
        .unwrap_or(serde_json::Value::Null);
    v["installed"] = serde_json::json!({"product": cfg.product, "current": current});
    v
}
