//! `auto` (docs/SPEC.md §11.12): what the channel offers, installed when
//! `[update]` lets the host install it by itself now, else deferred with
//! the reason. A release marked bad is deferred too (`apply --retry-bad`
//! is the operator's call); a rollback attack or a missing entitlement is
//! an error, as for `apply`.

use charter_release::Error as ReleaseError;

use super::{ApplyOptions, ApplyOutcome, Release, Target, Updater};
use crate::policy::admission::Admission;
use crate::policy::auto;
use crate::{Error, Result};

/// Runs `auto` on the host of `u`.
pub(super) fn auto(u: &Updater) -> Result<ApplyOutcome> {
    let policy = u
        .cfg
        .auto_policy()
        .map_err(|reason| ReleaseError::InvalidInput {
            what: "[update]",
            reason,
        })?;
    let (c, mut st) = u
        .prepare(&Target::Channel)
        .inspect_err(|e| u.announcer().failure(None, e))?;
    let candidate = c.version().clone();
    let check_only = policy.automatic == crate::config::auto::Automatic::Check;
    let defer = |reason: String| {
        let o = ApplyOutcome::Deferred {
            candidate: candidate.clone(),
            reason,
            until: None,
        };
        u.announcer().outcome(&o);
        Ok(o)
    };
    match u.admit(&c, &st, &ApplyOptions::default()) {
        Ok(Admission::Install) => {}
        Ok(Admission::AlreadyInstalled(_)) => {
            return Ok(ApplyOutcome::UpToDate { version: candidate });
        }
        // What `check` reports without failing, `auto` does not fail
        // on either while it only checks.
        Err(e) if check_only => return defer(e.to_string()),
        Err(Error::BadVersion { .. }) => {
            return defer(format!(
                "{candidate} failed here before and is marked bad; \
                 `charter-update apply --retry-bad` installs it"
            ));
        }
        // A license matter, not an attack: the timer keeps waiting.
        Err(e @ Error::NotEntitled { .. }) => return defer(e.to_string()),
        Err(e) => {
            u.announcer().failure(Some(candidate), &e);
            return Err(e);
        }
    }
    // When this host first saw the candidate on offer: re-signed
    // channel pointers must not restart min_age.
    let now = u.clock.now();
    let first_seen = match &st.offered {
        Some(o) if o.version == candidate => o.since,
        _ => {
            st.offered = Some(crate::host::state::Offered {
                version: candidate.clone(),
                since: now,
            });
            u.state.save_state(&st)?;
            now
        }
    };
    let rollout = u.standing(&c, u.position()?);
    // The pointer reverts the release this host runs (`channel halt
    // --revert`).
    let revert = c
        .pointer
        .as_ref()
        .and_then(|p| p.reverted.as_ref())
        .is_some_and(|r| st.current.as_ref() == Some(&r.version));
    let offer = match &c.release {
        Release::Signed { manifest, .. } => {
            let m = manifest.manifest();
            let published = c
                .pointer
                .as_ref()
                .map_or(first_seen, |p| p.published_at.min(first_seen));
            auto::Offer {
                version: candidate.clone(),
                security_fix: m.security_fix,
                out_since: published.max(m.released_at),
                rollout,
                revert,
                hold: st.hold.clone(),
            }
        }
        Release::Plain(p) => auto::Offer {
            version: candidate.clone(),
            security_fix: false,
            out_since: p.released_at().unwrap_or(first_seen),
            rollout: None,
            revert: false,
            hold: st.hold.clone(),
        },
    };
    match auto::decide(&policy, &offer, u.clock.now()) {
        auto::Decision::Install => {
            u.cx().note(&format!(
                "installing {candidate} by itself (update.automatic = \"{}\")",
                policy.automatic.name()
            ));
            u.install(&c, st.current)
        }
        auto::Decision::Defer { reason, until } => {
            let o = ApplyOutcome::Deferred {
                candidate,
                reason,
                until,
            };
            u.announcer().outcome(&o);
            Ok(o)
        }
    }
}
