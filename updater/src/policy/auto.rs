//! Unattended updates (docs/SPEC.md §11.12): `charter-update auto`, what
//! `charter-update.timer` runs. The host config says what the host may
//! install by itself (`[update] automatic`: nothing, security releases, or
//! everything), when (maintenance `windows` in the host's or a named time
//! zone), and how long a release must have been out first (`min_age`, so a
//! vendor can pull a bad release before the fleet takes it).
//!
//! Everything here decides; nothing here installs. The decision is a pure
//! function of the policy, the verified candidate and the time, so it is
//! unit-tested with fixed instants. The settings it decides with are
//! parsed in [`crate::config::auto`].

use jiff::Timestamp;

use charter_release::rollout::Standing;

use super::rollout::describe;
use crate::config::auto::AutoPolicy;
/// Re-exported for the transaction, which names the mode from here.
use crate::config::auto::Automatic;
use crate::host::state::Hold;

/// What `auto` knows of the candidate when it decides.
#[derive(Debug, Clone)]
pub struct Offer {
    /// Its version.
    pub version: semver::Version,
    /// Signed as a security fix (charter manifests only).
    pub security_fix: bool,
    /// Since when it has been out: the later of the signed release time
    /// and the signed channel pointer's publication.
    pub out_since: Timestamp,
    /// Where this host stands in the pointer's phased rollout, when it
    /// signs one (docs/SPEC.md §9.6).
    pub rollout: Option<Standing>,
    /// The signed pointer reverts the host's running release (`charter
    /// channel halt --revert`): neither `min_age` nor the security filter
    /// hold a revert back.
    pub revert: bool,
    /// The operator's hold, when one is set (it may have expired).
    pub hold: Option<Hold>,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Install now.
    Install,
    /// Not now: why, and when it could be (if that is known).
    Defer {
        /// One line.
        reason: String,
        /// When the next attempt could install it.
        until: Option<Timestamp>,
    },
}

/// Decides, in this order: the `automatic` mode, the operator's hold, the
/// security flag, the rollout (halted, or not this host's turn yet),
/// `min_age`, the windows.
pub fn decide(p: &AutoPolicy, offer: &Offer, now: Timestamp) -> Decision {
    let defer = |reason: String, until| Decision::Defer { reason, until };
    if p.automatic == Automatic::Check {
        return defer(
            "update.automatic = \"check\": the host installs nothing by itself".into(),
            None,
        );
    }
    if let Some(h) = offer.hold.as_ref().filter(|h| h.active(now)) {
        return defer(h.describe(now), Some(h.until));
    }
    if p.automatic == Automatic::Security && !offer.security_fix && !offer.revert {
        return defer(
            "update.automatic = \"security\" and this is not a signed security fix".into(),
            None,
        );
    }
    if let Some(s) = &offer.rollout {
        if s.halted.is_some() {
            return defer(describe(s, &offer.version), None);
        }
        if !s.eligible {
            return defer(
                format!("not this host's turn yet: {}", describe(s, &offer.version)),
                Some(s.eligible_at),
            );
        }
    }
    let ripe = offer
        .out_since
        .checked_add(p.min_age)
        .unwrap_or(Timestamp::MAX);
    if now < ripe && !offer.revert {
        return defer(
            format!(
                "out since {} only; update.min_age is {}",
                offer.out_since, p.min_age_text
            ),
            Some(ripe),
        );
    }
    if p.windows.is_empty() {
        return Decision::Install;
    }
    let local = now.to_zoned(p.tz.clone());
    if p.windows.iter().any(|w| w.contains(&local)) {
        return Decision::Install;
    }
    let next = p
        .windows
        .iter()
        .filter_map(|w| w.next_start(&local))
        .min()
        .map(|z| z.timestamp());
    defer(
        format!(
            "outside the maintenance windows ({} is {} in {})",
            now,
            local.strftime("%a %H:%M"),
            p.tz_name
        ),
        next,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn policy(automatic: Automatic, windows: &[&str], min_age: Option<&str>) -> AutoPolicy {
        let w: Vec<String> = windows.iter().map(|s| s.to_string()).collect();
        AutoPolicy::new(automatic, &w, min_age, Some("UTC")).unwrap()
    }

    #[test]
    fn decisions_in_order() {
        let now = utc("2026-11-22T03:00:00Z");
        let offer = |security_fix, out_since: &str| Offer {
            version: "2.0.0".parse().unwrap(),
            security_fix,
            out_since: utc(out_since),
            rollout: None,
            revert: false,
            hold: None,
        };
        let old = offer(false, "2026-11-01T00:00:00Z");
        let d = decide(&policy(Automatic::Check, &[], None), &old, now);
        assert!(
            matches!(d, Decision::Defer { ref reason, until: None } if reason.contains("\"check\""))
        );
        let d = decide(&policy(Automatic::Security, &[], None), &old, now);
        assert!(
            matches!(d, Decision::Defer { ref reason, .. } if reason.contains("not a signed security fix"))
        );
        assert_eq!(
            decide(
                &policy(Automatic::Security, &[], None),
                &offer(true, "2026-11-01T00:00:00Z"),
                now
            ),
            Decision::Install
        );
        assert_eq!(
            decide(&policy(Automatic::All, &[], None), &old, now),
            Decision::Install
        );
        // Too fresh for min_age: deferred until it is old enough.
        let fresh = offer(false, "2026-11-22T01:00:00Z");
        let d = decide(&policy(Automatic::All, &[], Some("6h")), &fresh, now);
        assert_eq!(
            d,
            Decision::Defer {
                reason: "out since 2026-11-22T01:00:00Z only; update.min_age is 6h".into(),
                until: Some(utc("2026-11-22T07:00:00Z")),
            }
        );
        assert_eq!(
            decide(&policy(Automatic::All, &[], Some("1h")), &fresh, now),
            Decision::Install
        );
        // Windows: inside installs, outside defers to the next opening.
        let p = policy(
            Automatic::All,
            &["Sun 02:00-05:00", "Wed 01:00-02:00"],
            None,
        );
        assert_eq!(decide(&p, &old, now), Decision::Install);
        let later = utc("2026-11-22T06:00:00Z");
        match decide(&p, &old, later) {
            Decision::Defer { reason, until } => {
                assert!(reason.contains("Sun 06:00 in UTC"), "{reason}");
                assert_eq!(until, Some(utc("2026-11-25T01:00:00Z")));
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn rollout_turn_and_halt_defer_and_a_revert_skips_min_age_and_the_security_filter() {
        use charter_release::rollout::{Rollout, preset};
        let now = utc("2026-11-22T03:00:00Z");
        let plan = Rollout {
            plan: "fast".into(),
            start: utc("2026-11-22T02:30:00Z"),
            waves: preset("fast").unwrap(),
            halted: None,
        };
        let offer = |position| Offer {
            version: "2.0.0".parse().unwrap(),
            security_fix: false,
            out_since: utc("2026-11-22T02:30:00Z"),
            rollout: Some(plan.standing(position, now)),
            revert: false,
            hold: None,
        };
        let all = policy(Automatic::All, &[], None);
        // 30 minutes in, half of the first 5% may go: position 100 may.
        assert_eq!(decide(&all, &offer(100), now), Decision::Install);
        // Position 5000 is in wave 3 (25% to 100% from 2 h to 3 h).
        match decide(&all, &offer(5000), now) {
            Decision::Defer { reason, until } => {
                assert!(
                    reason.starts_with("not this host's turn yet: position 5000, wave 3 of 3"),
                    "{reason}"
                );
                assert_eq!(until, Some(plan.standing(5000, now).eligible_at));
            }
            d => panic!("{d:?}"),
        }
        // Halted: nobody, with no time to wait for.
        let mut halted = offer(100);
        halted.rollout = Some(plan.halt(now, "crash reports").standing(100, now));
        match decide(&all, &halted, now) {
            Decision::Defer {
                reason,
                until: None,
            } => {
                assert!(
                    reason.contains("halted") && reason.contains("crash reports"),
                    "{reason}"
                )
            }
            d => panic!("{d:?}"),
        }
        // A revert is taken at once, even under min_age and "security".
        let revert = Offer {
            rollout: None,
            revert: true,
            out_since: now,
            ..offer(0)
        };
        assert_eq!(
            decide(&policy(Automatic::Security, &[], Some("2d")), &revert, now),
            Decision::Install
        );
        // Nor while the operator holds the host; an expired hold is gone.
        let hold = |until: &str| Hold {
            until: utc(until),
            reason: "quarter-end".into(),
            since: utc("2026-11-20T00:00:00Z"),
        };
        let held = Offer {
            hold: Some(hold("2026-11-23T00:00:00Z")),
            ..revert.clone()
        };
        assert_eq!(
            decide(&all, &held, now),
            Decision::Defer {
                reason: "held by the operator until 2026-11-23T00:00:00Z: quarter-end".into(),
                until: Some(utc("2026-11-23T00:00:00Z")),
            }
        );
        let expired = Offer {
            hold: Some(hold("2026-11-22T02:00:00Z")),
            ..revert.clone()
        };
        assert_eq!(decide(&all, &expired, now), Decision::Install);
        // ... but not under "check".
        assert!(matches!(
            decide(&policy(Automatic::Check, &[], None), &revert, now),
            Decision::Defer { .. }
        ));
    }
}
