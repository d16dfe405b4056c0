//! Phased rollouts (docs/SPEC.md §9.6): the waves a channel pointer
//! signs, a host's stable position in the fleet, and when that position
//! becomes eligible. Pure functions of signed data, a host id and a time.
//!
//! A plan is a list of waves, each "by `after_secs` since the rollout's
//! start, `percent` of hosts are eligible", cumulative. Between two waves
//! the eligible share grows linearly, so the hosts of a wave arrive spread
//! over its window, not all at its first instant. A host at position `x`
//! in `[0, 10000)` is eligible from the instant the plan's share passes
//! `x / 100` percent.

use hmac::{KeyInit, Mac};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::duration::parse_duration;
use crate::{Error, Result};

/// Positions a fleet is cut into: a host's position is in `[0, POSITIONS)`.
pub const POSITIONS: u16 = 10_000;

/// Most waves in a plan.
pub const MAX_WAVES: usize = 64;

/// Longest a plan may run: a year.
pub const MAX_PLAN_SECS: u64 = 366 * 86_400;

/// Largest plan file `charter channel publish --rollout FILE` reads.
pub const MAX_PLAN_FILE_BYTES: u64 = 64 << 10;

/// Longest halt reason.
const MAX_REASON_BYTES: usize = 1024;

/// One wave: by `after_secs` since the start, `percent` of hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wave {
    /// Seconds since the rollout's start at which the wave is complete.
    pub after_secs: u64,
    /// Cumulative share of hosts eligible by then, 1 to 100.
    pub percent: u8,
}

/// A halted rollout: hosts that have not installed it do not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Halt {
    /// When the release engineer (or `charter rollout watch`) halted it.
    pub at: Timestamp,
    /// Why, shown to operators.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// The rollout of the pointer's version, inside the signed pointer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// The plan's name as published (a preset's name, or `file`).
    pub plan: String,
    /// The instant the waves count from. Kept when the pointer is
    /// re-signed; moved forward by the halted time on resume.
    pub start: Timestamp,
    /// The waves, in order.
    pub waves: Vec<Wave>,
    /// Set while the rollout is halted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted: Option<Halt>,
}

/// The presets `--rollout NAME` knows: name, and the waves as
/// (after, percent).
pub const PRESETS: &[(&str, &[(u64, u8)])] = &[
    // Bottlerocket's default plan.
    (
        "default",
        &[
            (3_600, 1),
            (4 * 3_600, 5),
            (86_400, 15),
            (2 * 86_400, 40),
            (4 * 86_400, 60),
            (5 * 86_400, 90),
            (6 * 86_400, 100),
        ],
    ),
    // Bottlerocket's "ohno" plan, for urgent fixes.
    ("fast", &[(3_600, 5), (2 * 3_600, 25), (3 * 3_600, 100)]),
    ("all-at-once", &[(0, 100)]),
];

/// The waves of a preset, or `None` for an unknown name.
pub fn preset(name: &str) -> Option<Vec<Wave>> {
    PRESETS.iter().find(|(n, _)| *n == name).map(|(_, w)| {
        w.iter()
            .map(|&(after_secs, percent)| Wave {
                after_secs,
                percent,
            })
            .collect()
    })
}

/// Checks waves: 1 to 64 of them, `after_secs` strictly increasing (the
/// first may be 0) and at most a year, `percent` strictly increasing from
/// 1, the last 100.
pub fn validate_waves(waves: &[Wave]) -> Result<()> {
    let bad = |reason: String| Error::InvalidInput {
        what: "rollout plan",
        reason,
    };
    if waves.is_empty() || waves.len() > MAX_WAVES {
        return Err(bad(format!(
            "has {} waves; use 1 to {MAX_WAVES}",
            waves.len()
        )));
    }
    let mut prev: Option<Wave> = None;
    for (i, w) in waves.iter().enumerate() {
        let n = i + 1;
        if w.percent == 0 || w.percent > 100 {
            return Err(bad(format!(
                "wave {n}: percent {} is not 1 to 100",
                w.percent
            )));
        }
        if w.after_secs > MAX_PLAN_SECS {
            return Err(bad(format!(
                "wave {n}: after {} s is more than a year",
                w.after_secs
            )));
        }
        if let Some(p) = prev {
            if w.after_secs <= p.after_secs {
                return Err(bad(format!(
                    "wave {n}: after {} s is not later than wave {i}'s {} s",
                    w.after_secs, p.after_secs
                )));
            }
            if w.percent <= p.percent {
                return Err(bad(format!(
                    "wave {n}: {}% is not more than wave {i}'s {}%",
                    w.percent, p.percent
                )));
            }
        }
        prev = Some(*w);
    }
    if waves.last().map(|w| w.percent) != Some(100) {
        return Err(bad("the last wave must reach 100%".into()));
    }
    Ok(())
}

/// A plan file as a release engineer writes it:
/// `[{"after": "1h", "percent": 1}, {"after": "1d", "percent": 100}]`.
pub fn parse_plan_file(bytes: &[u8]) -> Result<Vec<Wave>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Written {
        after: String,
        percent: u8,
    }
    let bad = |reason: String| Error::InvalidInput {
        what: "rollout plan file",
        reason,
    };
    if bytes.len() as u64 > MAX_PLAN_FILE_BYTES {
        return Err(bad(format!(
            "is {} bytes, more than {MAX_PLAN_FILE_BYTES}",
            bytes.len()
        )));
    }
    let written: Vec<Written> = serde_json::from_slice(bytes).map_err(|e| {
        bad(format!(
            "{e} (expected [{{\"after\": \"1h\", \"percent\": 1}}, ...])"
        ))
    })?;
    let mut waves = Vec::with_capacity(written.len().min(MAX_WAVES + 1));
    for (i, w) in written.iter().enumerate() {
        let d = parse_duration(&w.after).map_err(|e| bad(format!("wave {}: {e}", i + 1)))?;
        let after_secs = u64::try_from(d.as_secs())
            .map_err(|_| bad(format!("wave {}: negative `after`", i + 1)))?;
        waves.push(Wave {
            after_secs,
            percent: w.percent,
        });
    }
    validate_waves(&waves)?;
    Ok(waves)
}

/// Where a host stands in a rollout at an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Standing {
    /// The host's position, 0 to 9999.
    pub position: u16,
    /// Its wave, from 1.
    pub wave: usize,
    /// How many waves the plan has.
    pub waves: usize,
    /// When the host becomes eligible.
    pub eligible_at: Timestamp,
    /// Whether it is eligible now (and the rollout is not halted).
    pub eligible: bool,
    /// The halt, when the rollout is halted.
    pub halted: Option<Halt>,
}

impl Rollout {
    /// Checks the waves, the reason's length and that the start is not
    /// after the pointer's publication.
    pub fn validate(&self, published_at: Timestamp) -> Result<()> {
        validate_waves(&self.waves)?;
        let bad = |reason: String| Error::InvalidInput {
            what: "rollout",
            reason,
        };
        if self.plan.is_empty() || self.plan.len() > 64 {
            return Err(bad("plan name must be 1 to 64 bytes".into()));
        }
        if self.start > published_at {
            return Err(bad(format!(
                "starts at {}, after the pointer's publication {published_at}",
                self.start
            )));
        }
        if let Some(h) = &self.halted {
            if h.reason.len() > MAX_REASON_BYTES {
                return Err(bad(format!(
                    "halt reason is longer than {MAX_REASON_BYTES} bytes"
                )));
            }
            if h.at > published_at {
                return Err(bad(format!(
                    "halted at {}, after the pointer's publication {published_at}",
                    h.at
                )));
            }
        }
        Ok(())
    }

    /// The wave (from 1) of `position` and the time after the start at
    /// which it becomes eligible: where the plan's share, linear between
    /// waves, passes the position.
    pub fn turn(&self, position: u16) -> (usize, SignedDuration) {
        let x = u64::from(position.min(POSITIONS - 1));
        let (mut t0, mut p0) = (0u64, 0u64);
        for (i, w) in self.waves.iter().enumerate() {
            let p1 = u64::from(w.percent) * 100;
            if x < p1 {
                // p1 > p0 (validated), so no division by zero.
                let span = w.after_secs - t0;
                let off = t0 + (x - p0) * span / (p1 - p0);
                return (i + 1, SignedDuration::from_secs(off as i64));
            }
            (t0, p0) = (w.after_secs, p1);
        }
        // Unreachable for a valid plan (the last wave is 100%).
        (
            self.waves.len(),
            SignedDuration::from_secs(self.waves.last().map_or(0, |w| w.after_secs) as i64),
        )
    }

    /// Where `position` stands at `now`.
    pub fn standing(&self, position: u16, now: Timestamp) -> Standing {
        let (wave, off) = self.turn(position);
        let eligible_at = self.start.checked_add(off).unwrap_or(Timestamp::MAX);
        Standing {
            position,
            wave,
            waves: self.waves.len(),
            eligible_at,
            eligible: self.halted.is_none() && now >= eligible_at,
            halted: self.halted.clone(),
        }
    }

    /// The share of positions the plan makes eligible by `t` (percent,
    /// 0 to 100), ignoring a halt.
    pub fn share_at(&self, t: Timestamp) -> f64 {
        let since = t.duration_since(self.start).as_secs_f64();
        if since < 0.0 {
            return 0.0;
        }
        let (mut t0, mut p0) = (0.0f64, 0.0f64);
        for w in &self.waves {
            let (t1, p1) = (w.after_secs as f64, f64::from(w.percent));
            if since < t1 {
                return p0 + (since - t0) / (t1 - t0) * (p1 - p0);
            }
            (t0, p0) = (t1, p1);
        }
        100.0
    }

    /// The wave in progress at `t` (from 1), or the last when the plan is
    /// complete.
    pub fn wave_at(&self, t: Timestamp) -> usize {
        let since = t.duration_since(self.start).as_secs();
        self.waves
            .iter()
            .position(|w| since < w.after_secs as i64)
            .map_or(self.waves.len(), |i| i + 1)
    }

    /// The same rollout halted at `at`.
    pub fn halt(&self, at: Timestamp, reason: &str) -> Rollout {
        Rollout {
            halted: Some(Halt {
                at,
                reason: reason.into(),
            }),
            ..self.clone()
        }
    }

    /// The same rollout resumed at `at`: the start moves forward by the
    /// time it was halted, so the plan goes on from where it stopped.
    pub fn resume(&self, at: Timestamp) -> Rollout {
        let start = match &self.halted {
            Some(h) if at > h.at => self
                .start
                .checked_add(at.duration_since(h.at))
                .unwrap_or(self.start),
            _ => self.start,
        };
        Rollout {
            start,
            halted: None,
            ..self.clone()
        }
    }
}

/// A host's stable position for `product`: HMAC-SHA256 keyed by the
/// product over the host id, reduced to `[0, 10000)`. The same host has
/// unrelated positions in two products, and the id never leaves the host.
pub fn position(product: &str, host_id: &[u8]) -> u16 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(product.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(b"charter-rollout-position-v1\0");
    m.update(host_id);
    let d = m.finalize().into_bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(first) % u64::from(POSITIONS)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str) -> Rollout {
        Rollout {
            plan: name.into(),
            start: "2026-12-01T00:00:00Z".parse().unwrap(),
            waves: preset(name).unwrap(),
            halted: None,
        }
    }

    #[test]
    fn presets_are_valid() {
        for (name, _) in PRESETS {
            validate_waves(&preset(name).unwrap()).unwrap();
        }
        assert!(preset("sometimes").is_none());
    }

    #[test]
    fn invalid_waves_are_refused_with_the_wave_named() {
        let w = |a, p| Wave {
            after_secs: a,
            percent: p,
        };
        for (waves, needle) in [
            (vec![], "has 0 waves"),
            (vec![w(10, 0), w(20, 100)], "wave 1: percent 0"),
            (
                vec![w(10, 50), w(10, 100)],
                "wave 2: after 10 s is not later",
            ),
            (
                vec![w(10, 50), w(20, 40), w(30, 100)],
                "wave 2: 40% is not more",
            ),
            (vec![w(10, 50)], "must reach 100%"),
            (vec![w(10, 101)], "percent 101"),
            (vec![w(MAX_PLAN_SECS + 1, 100)], "more than a year"),
        ] {
            let e = validate_waves(&waves).unwrap_err().to_string();
            assert!(e.contains(needle), "{e} does not say {needle}");
        }
    }

    #[test]
    fn turns_follow_the_plan_linearly_within_each_wave() {
        let p = plan("default");
        // Position 0 is first, at the start.
        assert_eq!(p.turn(0), (1, SignedDuration::ZERO));
        // Position 50 is half-way through wave 1 (1% at 1 h).
        assert_eq!(p.turn(50), (1, SignedDuration::from_secs(1800)));
        // Position 100 opens wave 2 (5% at 4 h) at 1 h.
        assert_eq!(p.turn(100), (2, SignedDuration::from_secs(3600)));
        // The last position is in the last wave, before its end.
        let (w, t) = p.turn(9999);
        assert_eq!(w, 7);
        assert!(
            t < SignedDuration::from_secs(6 * 86_400) && t > SignedDuration::from_secs(5 * 86_400)
        );
        // all-at-once: everyone at the start.
        assert_eq!(plan("all-at-once").turn(9999), (1, SignedDuration::ZERO));
    }

    #[test]
    fn eligible_share_matches_the_plan_at_each_wave_end() {
        let p = plan("default");
        for w in &p.waves {
            let t = p.start + SignedDuration::from_secs(w.after_secs as i64);
            // A second before the wave's end, its share of positions is
            // eligible, within one position (whole seconds).
            let before = t - SignedDuration::from_secs(1);
            let eligible = (0..POSITIONS)
                .filter(|&x| p.standing(x, before).eligible)
                .count();
            let planned = usize::from(w.percent) * 100;
            assert!(
                planned - eligible <= 1,
                "{eligible} eligible at {before}, planned {planned}"
            );
            assert!((p.share_at(t) - f64::from(w.percent)).abs() < 1e-9);
        }
    }

    #[test]
    fn halt_stops_everyone_not_yet_installed_and_resume_goes_on_where_it_stopped() {
        let p = plan("fast");
        let h_at = p.start + SignedDuration::from_secs(1800);
        let halted = p.halt(h_at, "crash reports");
        // Even position 0, eligible since the start, is not now.
        assert!(!halted.standing(0, h_at).eligible);
        let resumed_at = h_at + SignedDuration::from_secs(86_400);
        let r = halted.resume(resumed_at);
        assert_eq!(r.halted, None);
        // The share at resumption is the share at the halt.
        assert!((r.share_at(resumed_at) - p.share_at(h_at)).abs() < 1e-9);
        assert!(r.standing(0, resumed_at).eligible);
        r.validate(resumed_at).unwrap();
    }

    #[test]
    fn positions_are_stable_spread_and_differ_per_product() {
        assert_eq!(position("panel", b"abc"), position("panel", b"abc"));
        let mut per_tenth = [0u32; 10];
        let mut same = 0;
        for i in 0..20_000u32 {
            let id = format!("{i:032x}");
            let p = position("panel", id.as_bytes());
            assert!(p < POSITIONS);
            per_tenth[usize::from(p / 1000)] += 1;
            if p == position("other", id.as_bytes()) {
                same += 1;
            }
        }
        // 2,000 expected per tenth; a uniform hash is well within 10%.
        assert!(
            per_tenth.iter().all(|&n| (1800..2200).contains(&n)),
            "{per_tenth:?}"
        );
        // Two products agree by chance only (about 2 in 20,000).
        assert!(same < 20, "{same}");
    }

    #[test]
    fn plan_files_parse_and_are_checked() {
        let w = parse_plan_file(
            br#"[{"after": "30m", "percent": 10}, {"after": "1d", "percent": 100}]"#,
        )
        .unwrap();
        assert_eq!(
            w,
            vec![
                Wave {
                    after_secs: 1800,
                    percent: 10
                },
                Wave {
                    after_secs: 86_400,
                    percent: 100
                }
            ]
        );
        let e = parse_plan_file(br#"[{"after": "1x", "percent": 100}]"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("wave 1") && e.contains("unknown unit"), "{e}");
        let e = parse_plan_file(b"{}").unwrap_err().to_string();
        assert!(e.contains("rollout plan file"), "{e}");
        let big = vec![b' '; MAX_PLAN_FILE_BYTES as usize + 1];
        assert!(
            parse_plan_file(&big)
                .unwrap_err()
                .to_string()
                .contains("more than")
        );
    }

    #[test]
    fn start_after_publication_is_refused() {
        let p = plan("fast");
        let e = p
            .validate(p.start - SignedDuration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("after the pointer's publication"), "{e}");
    }
}
