//! What a binary reports about its own build (`version --json`, the
//! agent's `/v1/version`). The values come from `build/buildinfo.rs`, run
//! by each binary crate's build script; [`build_info!`](crate::build_info)
//! reads them in the calling crate.

use serde::Serialize;

/// A binary's build.
#[derive(Debug, Clone, Serialize)]
pub struct BuildInfo {
    /// The binary's name.
    pub name: &'static str,
    /// Its package version.
    pub version: &'static str,
    /// The git commit it was built from (`unknown` outside a checkout).
    pub commit: &'static str,
    /// `SOURCE_DATE_EPOCH`, else the commit's date (reproducible).
    pub build_date: &'static str,
    /// The target triple.
    pub target: &'static str,
    /// Enabled cargo features of the binary's crate.
    pub features: Vec<&'static str>,
}

impl BuildInfo {
    /// Splits the comma-separated feature list.
    pub fn features(list: &'static str) -> Vec<&'static str> {
        list.split(',').filter(|f| !f.is_empty()).collect()
    }
}

/// The [`BuildInfo`] of the calling crate's binary `name`.
#[macro_export]
macro_rules! build_info {
    ($name:expr) => {
        $crate::buildinfo::BuildInfo {
            name: $name,
            version: env!("CARGO_PKG_VERSION"),
            commit: env!("CHARTER_GIT_COMMIT"),
            build_date: env!("CHARTER_BUILD_DATE"),
            target: env!("CHARTER_TARGET"),
            features: $crate::buildinfo::BuildInfo::features(env!("CHARTER_FEATURES")),
        }
    };
}
