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
use crate::host::state::kept_root_path;

/// The trust root in force, with the repository's rotations
/// (`<N+1>.root.json`, ...) walked and the newest kept.
pub(crate) fn trusted_root(src: &Source<'_>) -> Result<VerifiedRoot> {
    let env_limits = &src.limits.envelope;
    let kept_path = src.state.root_path();
    let start = newer(
        shipped_root(src.cfg, src.limits)?,
        kept_root(&kept_path, src.limits)?,
    );
    let before = start.version();
    let (root, rotations) = start.update_chain(
        |v| {
            // The probe for the next root runs on every check (TUF's rule:
            // a host learns of a new root even when the channel key is
            // lost), so it is a HEAD; the root itself is then fetched.
            let rel = format!("{v}.root.json");
            let max = env_limits.max_envelope_bytes;
            src.fetcher
                .exists(&rel, max)
                .and_then(|found| {
                    if found {
                        src.fetcher.get_optional(&rel, max)
                    } else {
                        Ok(None)
                    }
                })
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

/// The trust root in force, verified, offline: the newer of the kept
/// root and the shipped one (a package upgrade may ship a root newer than
/// the one kept); the kept one alone when the shipped one cannot be read.
pub fn trusted_root_offline(cfg: &Config, limits: &Limits) -> Result<VerifiedRoot> {
    match kept_root(&kept_root_path(&cfg.paths.state_dir), limits)? {
        Some(kept) => Ok(match shipped_root(cfg, limits) {
            Ok(shipped) => newer(shipped, Some(kept)),
            Err(_) => kept,
        }),
        None => shipped_root(cfg, limits),
    }
}

/// The root the package ships (`paths.trust_root`), verified.
fn shipped_root(cfg: &Config, limits: &Limits) -> Result<VerifiedRoot> {
    read_root(trust_root_path(cfg)?, limits)
}

/// The root kept in the state dir from an earlier run, if any, verified.
fn kept_root(path: &Path, limits: &Limits) -> Result<Option<VerifiedRoot>> {
    if !path.exists() {
        return Ok(None);
    }
    read_root(path, limits).map(Some)
}

fn read_root(path: &Path, limits: &Limits) -> Result<VerifiedRoot> {
    let env_limits = &limits.envelope;
    let bytes =
        charter_keys::fsutil::read_capped(path, env_limits.max_envelope_bytes, "a trust root")?;
    Ok(VerifiedRoot::from_trusted(&bytes, env_limits)?)
}

/// The newer of two roots (the shipped one on a tie).
fn newer(shipped: VerifiedRoot, kept: Option<VerifiedRoot>) -> VerifiedRoot {
    match kept {
        Some(k) if k.version() >= shipped.version() => k,
        _ => shipped,
    }
}
