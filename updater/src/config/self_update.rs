//! `[self_update]`: when the product is charter itself.

use serde::Deserialize;

/// Self-update: charter's own binaries are a release like any other.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfUpdate {
    /// Path of the new `charter-update` inside the release tree.
    pub binary: String,
}
