//! The trust root in force (docs/SPEC.md §5): the newer of the shipped
//! root and the one kept in the state dir, then every rotation the
//! repository offers, kept for next time.

use std::path::Path;

use charter_keys::root::VerifiedRoot;
use charter_release::Error as ReleaseError;
use charter_release::Limits;

use super::Source;
use crate::Result;
use crate::config::Config;
use crate::host::state::StateDir;

/// The trust root in force, with the repository's rotations
/// (`<N+1>.root.json`, ...) walked and the newest kept.
pub(crate) fn trusted_root(src: &Source<'_>) -> Result<VerifiedRoot> {
    let env_limits = &src.limits.envelope;
    let read = |p: &Path| {
        charter_keys::fsutil::read_capped(p, env_limits.max_envelope_bytes, "a trust root")
    };
    let shipped = VerifiedRoot::from_trusted(&read(trust_root_path(src.cfg)?)?, env_limits)?;
    let kept_path = src.state.root_path();
    let start = if kept_path.exists() {
        let kept = VerifiedRoot::from_trusted(&read(&kept_path)?, env_limits)?;
        if kept.version() >= shipped.version() {
            kept
        } else {
            shipped
        }
    } else {
        shipped
    };
    let before = start.version();
    let (root, rotations) = start.update_chain(
        |v| {
            src.fetcher
                .get_optional(&format!("{v}.root.json"), env_limits.max_envelope_bytes)
                .map_err(|e| charter_keys::Error::Malformed {
                    what: "root chain",
                    reason: e.to_string(),
                })
        },
        env_limits,
        src.clock,
    )?;
    if rotations > 0 || !kept_path.exists() {
        charter_keys::fsutil::write_atomic(&kept_path, root.envelope_bytes(), 0o644)?;
    }
    if rotations > 0 {
        (src.notes)(&format!(
            "trust root rotated from version {before} to {}",
            root.version()
        ));
    }
    Ok(root)
}

/// `paths.trust_root`, which hosts of charter manifests need.
pub(crate) fn trust_root_path(cfg: &Config) -> Result<&Path> {
    cfg.paths.trust_root.as_deref().ok_or(
        ReleaseError::InvalidInput {
            what: "paths.trust_root",
            reason: "not set: this host installs plain artifacts, which no charter root signs"
                .into(),
        }
        .into(),
    )
}

/// The trust root in force (kept or shipped), verified, offline.
pub(crate) fn trusted_root_offline(
    cfg: &Config,
    state: &StateDir,
    limits: &Limits,
) -> Result<VerifiedRoot> {
    let env_limits = &limits.envelope;
    let path = if state.root_path().exists() {
        state.root_path()
    } else {
        trust_root_path(cfg)?.to_owned()
    };
    let bytes =
        charter_keys::fsutil::read_capped(&path, env_limits.max_envelope_bytes, "a trust root")?;
    Ok(VerifiedRoot::from_trusted(&bytes, env_limits)?)
}
