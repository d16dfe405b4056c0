//! `[paths]`: where things live on the host.

use std::path::PathBuf;

use serde::Deserialize;

/// Paths on the host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paths {
    /// `releases/<version>/` and the `current` symlink live here.
    pub install_root: PathBuf,
    /// Ratchet, journal, history, installed manifests, lock.
    pub state_dir: PathBuf,
    /// The trust root shipped with the package (version 1 or later);
    /// required unless releases are plain artifacts (`[plain]`).
    #[serde(default)]
    pub trust_root: Option<PathBuf>,
}
