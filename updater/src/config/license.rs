//! `[license]`: where the license agent's configuration is, when a
//! release is installed only if the license entitles the host to it.

use std::path::PathBuf;

use serde::Deserialize;

/// Where the license agent's configuration is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenseCheck {
    /// The agent's config file (license path, state dir, trust root,
    /// fingerprint sources).
    pub agent_config: PathBuf,
}
