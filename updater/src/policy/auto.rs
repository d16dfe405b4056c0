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

use crate::config::auto::AutoPolicy;
/// Re-exported for the transaction, which names the mode from here.
use crate::config::auto::Automatic;

/// What `auto` knows of the candidate when it decides.
#[derive(Debug, Clone)]
pub struct Offer {
    /// Signed as a security fix (charter manifests only).
    pub security_fix: bool,
    /// Since when it has been out: the later of the signed release time
    /// and the signed channel pointer's publication.
    pub out_since: Timestamp,
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

/// Decides, in this order: the `automatic` mode, the security flag,
/// `min_age`, the windows.
pub fn decide(p: &AutoPolicy, offer: &Offer, now: Timestamp) -> Decision {
    let defer = |reason: String, until| Decision::Defer { reason, until };
    match p.automatic {
        Automatic::Check => {
            return defer(
                "update.automatic = \"check\": the host installs nothing by itself".into(),
                None,
            );
        }
        Automatic::Security if !offer.security_fix => {
            return defer(
                "update.automatic = \"security\" and this is not a signed security fix".into(),
                None,
            );
        }
        _ => {}
    }
    let ripe = offer
        .out_since
        .checked_add(p.min_age)
        .unwrap_or(Timestamp::MAX);
    if now < ripe {
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
            security_fix,
            out_since: utc(out_since),
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
}
