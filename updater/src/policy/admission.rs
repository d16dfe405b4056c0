//! Whether a verified candidate may be installed on this host
//! (docs/SPEC.md §11.2 step 6): not already current, not below the
//! version ratchet (unless the signed pointer allows a downgrade), not
//! marked bad (unless asked), and entitled by the license.

use charter_keys::Clock;
use semver::Version;

use super::entitlement::entitled;
use crate::config::LicenseCheck;
use crate::host::state::HostState;
use crate::source::{Candidate, Release};
use crate::{Error, Result};

/// Options an operator gives `apply`.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Install a version even though it was marked bad.
    pub retry_bad: bool,
}

/// The host's answer to a candidate that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// It may be installed.
    Install,
    /// It is the release running already.
    AlreadyInstalled(Version),
}

/// Decides on `c` for a host in state `st`; a refusal (a rollback
/// attack, a bad version, no entitlement) is an error naming why.
pub fn admit(
    c: &Candidate,
    st: &HostState,
    opts: &ApplyOptions,
    license: Option<&LicenseCheck>,
    clock: &dyn Clock,
) -> Result<Admission> {
    let v = c.version();
    if st.current.as_ref() == Some(v) {
        return Ok(Admission::AlreadyInstalled(v.clone()));
    }
    let downgrade_ok = c.pointer.as_ref().is_some_and(|p| p.allow_downgrade);
    if let Some(r) = &st.ratchet
        && v < r
        && !downgrade_ok
    {
        return Err(Error::Rollback {
            candidate: v.clone(),
            ratchet: r.clone(),
        });
    }
    if st.bad.contains(v) && !opts.retry_bad {
        return Err(Error::BadVersion {
            version: v.clone(),
            cause: st.bad_causes.get(v).copied(),
        });
    }
    match &c.release {
        Release::Signed { manifest, .. } => {
            let m = manifest.manifest();
            entitled(license, clock, &m.version, m.released_at, m.security_fix)?;
        }
        // The transparency log's time is when it was signed; without one,
        // now (the strictest reading of updates-until).
        Release::Plain(p) => entitled(
            license,
            clock,
            p.version(),
            p.released_at().unwrap_or_else(|| clock.now()),
            false,
        )?,
    }
    Ok(Admission::Install)
}
