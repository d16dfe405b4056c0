//! The license check of an update (docs/SPEC.md §10.6): from the same
//! license and state files the agent uses, whoever started the update,
//! read-only.

use charter_keys::Clock;
use jiff::Timestamp;
use semver::Version;

use crate::config::LicenseCheck;
use crate::{Error, Result};

/// Whether the license (when `[license]` names the agent's config)
/// entitles this host to `version`, released at `released_at`.
pub fn entitled(
    license: Option<&LicenseCheck>,
    clock: &dyn Clock,
    version: &Version,
    released_at: Timestamp,
    security_fix: bool,
) -> Result<()> {
    let Some(lc) = license else {
        return Ok(());
    };
    let not = |reason: String| Error::NotEntitled {
        version: version.clone(),
        reason,
    };
    let acfg =
        charter_agent::config::Config::load(&lc.agent_config).map_err(|e| not(e.to_string()))?;
    // The updater's clock, so the license is judged at the same "now" as
    // the release it would admit. Root reads the DMI UUID itself.
    let dmi = charter_agent::fingerprint::DmiRead::Direct;
    charter_agent::entitlement::read(&acfg, clock, dmi)
        .map_err(|e| not(e.to_string()))?
        .admits(released_at, security_fix)
        .map_err(not)
}
