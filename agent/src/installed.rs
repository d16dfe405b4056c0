//! What is installed on this host, read from disk without writing
//! anything: the trust root in force, the license file, and the status
//! document kept in the runtime state. The agent and the read-only
//! entitlement check read them the same way.

use std::path::Path;

use charter_keys::root::VerifiedRoot;

use crate::config::Config;
use crate::error::Result;
use crate::license::{MAX_DOCUMENT_BYTES, VerifiedLicense, VerifiedStatus};
use crate::state::Loaded;

/// The trust root: the shipped one, or the newer one the updater keeps
/// after following rotations (`paths.updater_root`), when that file is
/// owned by root, verifies, and has a higher version.
pub fn load_root(cfg: &Config) -> Result<VerifiedRoot> {
    let limits = charter_keys::Limits::default();
    let read =
        |p: &Path| charter_keys::fsutil::read_capped(p, limits.max_envelope_bytes, "a trust root");
    let shipped = VerifiedRoot::from_trusted(&read(&cfg.paths.trust_root)?, &limits)?;
    let Some(kept) = &cfg.paths.updater_root else {
        return Ok(shipped);
    };
    let owned_by_root =
        std::fs::metadata(kept).is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    match read(kept)
        .ok()
        .filter(|_| owned_by_root)
        .and_then(|b| VerifiedRoot::from_trusted(&b, &limits).ok())
    {
        Some(r) if r.version() > shipped.version() => Ok(r),
        _ => Ok(shipped),
    }
}

/// The license file at `path`, verified against `root`: None when there is
/// no file, the reason when it cannot be read or does not verify (the
/// evaluation reports it).
pub(crate) fn read_license(
    path: &Path,
    root: &VerifiedRoot,
) -> Option<std::result::Result<VerifiedLicense, String>> {
    match charter_keys::fsutil::read_capped(path, MAX_DOCUMENT_BYTES, "a license") {
        Err(charter_keys::Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            None
        }
        Err(e) => Some(Err(e.to_string())),
        Ok(bytes) => Some(VerifiedLicense::verify(&bytes, root).map_err(|e| e.to_string())),
    }
}

/// The last status document the runtime state keeps, when the state is
/// sound and the document still verifies against `root`.
pub(crate) fn held_status(loaded: &Loaded, root: &VerifiedRoot) -> Option<VerifiedStatus> {
    match loaded {
        Loaded::Ok(rt) => rt
            .last_status
            .as_ref()
            .and_then(|text| VerifiedStatus::verify(text.as_bytes(), root).ok()),
        _ => None,
    }
}
