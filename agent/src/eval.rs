//! License state = f(license, latest signed status, runtime state, clock,
//! grace) (docs/SPEC.md §10.5). A pure function of its inputs, so every
//! state and transition is tested with an injected clock.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::fingerprint::{Form, HostIds};
use crate::license::{StatusState, VerifiedLicense, VerifiedStatus};
use crate::state::Loaded;

/// The license state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Valid and current.
    Active,
    /// Expired or offline too long, still working, with warnings.
    Grace,
    /// Past expiry (or offline) and past the grace period.
    Expired,
    /// Suspended by a signed status.
    Suspended,
    /// Bad signature, wrong machine or product, tampered state, clock moved
    /// back, replayed serial, revoked, or no license at all.
    Invalid,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Active => "active",
            State::Grace => "grace",
            State::Expired => "expired",
            State::Suspended => "suspended",
            State::Invalid => "invalid",
        })
    }
}

/// What the evaluation needs.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// The license: verified, or why it did not verify (None: no file).
    pub license: Option<Result<&'a VerifiedLicense, String>>,
    /// The last verified status document, if any.
    pub status: Option<&'a VerifiedStatus>,
    /// The product this host runs.
    pub product: &'a str,
    /// This host's ids and fingerprints for the product.
    pub host: &'a HostIds,
    /// The runtime state as loaded.
    pub runtime: &'a Loaded,
    /// Now.
    pub now: Timestamp,
    /// How far the clock may fall below the high-water mark.
    pub clock_tolerance: SignedDuration,
}

/// The result.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// The state.
    pub state: State,
    /// Why the state is not `active` (empty when it is).
    pub reasons: Vec<String>,
    /// Things the operator should know (grace ending, ...).
    pub warnings: Vec<String>,
    /// Features in force.
    pub features: BTreeSet<String>,
    /// Limits in force.
    pub limits: BTreeMap<String, i64>,
    /// License id, when a license verified.
    pub license_id: Option<String>,
    /// Customer.
    pub customer: Option<String>,
    /// License expiry.
    pub expires_at: Option<Timestamp>,
    /// End of the grace period, while in grace.
    pub grace_until: Option<Timestamp>,
    /// Updates until.
    pub updates_until: Option<Timestamp>,
    /// When this was computed.
    pub evaluated_at: Timestamp,
}

impl Evaluation {
    fn new(now: Timestamp) -> Self {
        Evaluation {
            state: State::Active,
            reasons: Vec::new(),
            warnings: Vec::new(),
            features: BTreeSet::new(),
            limits: BTreeMap::new(),
            license_id: None,
            customer: None,
            expires_at: None,
            grace_until: None,
            updates_until: None,
            evaluated_at: now,
        }
    }

    fn worsen(&mut self, state: State, reason: String) {
        if state > self.state {
            self.state = state;
        }
        self.reasons.push(reason);
    }

    /// Whether a feature is on.
    pub fn feature(&self, name: &str) -> bool {
        self.features.contains(name)
    }

    /// Whether `value` is within the limit `name` (value <= limit). A
    /// missing limit allows nothing.
    pub fn within_limit(&self, name: &str, value: i64) -> Result<(), String> {
        match self.limits.get(name) {
            Some(max) if value <= *max => Ok(()),
            Some(max) => Err(format!("{value} is above {name} = {max}")),
            None => Err(format!("no limit `{name}` in force (state {})", self.state)),
        }
    }
}

/// The reason a license with a status URL is `invalid` on a new or reset
/// state until its first signed status arrives (rule 3b).
pub const WAITING_FOR_FIRST_STATUS: &str =
    "waiting for the first license status on a new or reset license state";

/// Computes the license state (docs/SPEC.md §10.5, rules 1 to 9).
pub fn evaluate(i: &Inputs<'_>) -> Evaluation {
    let mut e = Evaluation::new(i.now);
    // 1. A license must exist and verify.
    let lic = match &i.license {
        None => {
            e.worsen(State::Invalid, "no license installed".into());
            return e;
        }
        Some(Err(why)) => {
            e.worsen(State::Invalid, format!("license does not verify: {why}"));
            return e;
        }
        Some(Ok(l)) => l.license(),
    };
    e.license_id = Some(lic.license_id.clone());
    e.customer = Some(lic.customer.clone());
    e.expires_at = Some(lic.expires_at);
    e.updates_until = Some(lic.updates_until);
    // 2. For this product and this machine.
    if lic.product != i.product {
        e.worsen(
            State::Invalid,
            format!(
                "license is for product `{}`, this host runs `{}`",
                lic.product, i.product
            ),
        );
    }
    // A license names the form it binds by each entry's form (§10.3): a
    // v1 entry matches the v1 fingerprint, a v2 entry the v2 one.
    let mut bound_by_v1_only = false;
    if !lic.machines.is_empty() {
        let v2 = i.host.v2();
        let by_v2 = v2.is_ok_and(|f| lic.machines.iter().any(|m| m == f));
        let by_v1 = lic.machines.iter().any(|m| m == i.host.v1());
        bound_by_v1_only = by_v1 && !by_v2;
        let wants_v2 = lic
            .machines
            .iter()
            .any(|m| Form::of_entry(m) == Some(Form::V2));
        match v2 {
            _ if by_v1 || by_v2 => {}
            Err(why) if wants_v2 => e.worsen(
                State::Invalid,
                format!("license is bound to v2 fingerprints and this host's is unknown: {why}"),
            ),
            _ => e.worsen(
                State::Invalid,
                "license is bound to other machines (see `charter-agent fingerprint`)".into(),
            ),
        }
        if let Err(why) = v2 {
            e.warnings
                .push(format!("this host's v2 fingerprint is unknown: {why}"));
        }
    }
    // 3. The runtime state is intact.
    let runtime = match i.runtime {
        crate::state::Loaded::Fresh => None,
        crate::state::Loaded::Ok(s) => Some(s),
        crate::state::Loaded::Tampered(why) => {
            e.worsen(
                State::Invalid,
                format!(
                    "license state was tampered with: {why}; waiting for a fresh signed status"
                ),
            );
            None
        }
        crate::state::Loaded::Deleted => {
            e.worsen(
                State::Invalid,
                "license state file was deleted; waiting for a fresh signed status".into(),
            );
            None
        }
    };
    // 3b. A state started from nothing (a first run, or the host secret
    // and the state deleted together) has forgotten any revocation,
    // suspension or newer serial: a license with a status URL waits for
    // its first signed status.
    let awaiting = match i.runtime {
        crate::state::Loaded::Fresh => true,
        crate::state::Loaded::Ok(s) => s.awaiting_first_status,
        _ => false,
    };
    if awaiting && lic.status_url.is_some() {
        e.worsen(State::Invalid, WAITING_FOR_FIRST_STATUS.into());
    }
    if let Some(rt) = runtime {
        // 3a. Not a copy of another host's state: a v1 fingerprint cannot
        // see the DMI UUID, so a cloned VM (same machine id, new SMBIOS
        // UUID) would pass rule 2 with the state it was cloned with.
        if bound_by_v1_only
            && let (Some(was), Some(is)) = (&rt.host_ids, i.host.seen())
            && was.machine_id == is.machine_id
            && was.dmi != is.dmi
        {
            e.worsen(
                State::Invalid,
                "this host's DMI product UUID is not the one its license state was recorded \
                 on, under the same machine id (a cloned VM, or a new motherboard); a license \
                 bound to a v1 fingerprint cannot tell which: ask the vendor for one bound to \
                 the v2 fingerprint (`charter-agent fingerprint`)"
                    .into(),
            );
        }
        // 4. The clock did not move back below the high-water mark.
        if i.now + i.clock_tolerance < rt.time_floor {
            e.worsen(
                State::Invalid,
                format!(
                    "clock moved back: now {} is before {} already reached",
                    i.now, rt.time_floor
                ),
            );
        }
        // 5. No older license replayed (the highest serial is kept per
        // license id).
        if let Some(highest) = rt.highest_serial(&lic.license_id)
            && lic.serial < highest
        {
            e.worsen(
                State::Invalid,
                format!(
                    "license serial {} is older than serial {highest} already seen here",
                    lic.serial
                ),
            );
        }
    }
    // Signed documents are a floor for the clock too.
    if i.now + i.clock_tolerance < lic.issued_at {
        e.worsen(
            State::Invalid,
            format!("clock is behind the license's issue time {}", lic.issued_at),
        );
    }
    // 6. Not before.
    if i.now < lic.not_before {
        e.worsen(
            State::Invalid,
            format!("license is not valid before {}", lic.not_before),
        );
    }
    // 7. The signed status.
    let mut last_contact = lic.issued_at;
    if let Some(st) = i.status {
        let s = st.status();
        if s.license_id != lic.license_id {
            e.warnings.push(format!(
                "ignored a status document for license `{}`",
                s.license_id
            ));
        } else {
            last_contact = last_contact.max(s.issued_at);
            let why = s
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            // Suspension and revocation hold until a newer status replaces
            // them; an `active` status only speaks until valid_until.
            match s.state {
                StatusState::Active => {}
                StatusState::Suspended => {
                    e.worsen(State::Suspended, format!("license suspended{why}"))
                }
                StatusState::Revoked => e.worsen(State::Invalid, format!("license revoked{why}")),
            }
            if let Some(cur) = s.current_serial
                && cur > lic.serial
            {
                e.worsen(
                    State::Invalid,
                    format!(
                        "license serial {} was superseded by serial {cur}; install the current license",
                        lic.serial
                    ),
                );
            }
        }
    }
    let grace =
        SignedDuration::from_secs(i64::try_from(lic.grace_period_secs).unwrap_or(i64::MAX / 2));
    // 8. Expiry, then grace.
    if i.now >= lic.expires_at {
        let until = lic
            .expires_at
            .saturating_add(grace)
            .unwrap_or(lic.expires_at);
        if i.now < until {
            e.worsen(
                State::Grace,
                format!("license expired at {}; grace until {until}", lic.expires_at),
            );
            e.grace_until = Some(until);
        } else {
            e.worsen(
                State::Expired,
                format!(
                    "license expired at {} and its grace period ended at {until}",
                    lic.expires_at
                ),
            );
        }
    }
    // 9. Offline too long.
    if let Some(max) = lic.max_offline_secs {
        let deadline = last_contact
            .saturating_add(SignedDuration::from_secs(
                i64::try_from(max).unwrap_or(i64::MAX / 2),
            ))
            .unwrap_or(last_contact);
        if i.now >= deadline {
            let until = deadline.saturating_add(grace).unwrap_or(deadline);
            if i.now < until {
                e.worsen(
                    State::Grace,
                    format!("no fresh license status since {last_contact}; grace until {until}"),
                );
                e.grace_until = Some(e.grace_until.map_or(until, |g| g.min(until)));
            } else {
                e.worsen(
                    State::Expired,
                    format!("offline too long: no fresh license status since {last_contact}"),
                );
            }
        }
    }
    if matches!(e.state, State::Active | State::Grace) {
        e.features = lic.features.iter().cloned().collect();
        e.limits = lic.limits.clone();
    }
    if e.state == State::Grace
        && let Some(g) = e.grace_until
    {
        e.warnings.push(format!(
            "features switch off at {g} unless the license is renewed"
        ));
    }
    e
}

/// Whether a release may be installed under a license (docs/SPEC.md
/// §10.6): never when suspended or invalid; releases dated up to
/// `updates_until` while active or in grace; after that (or once
/// expired), only security fixes, and only when the license allows them.
pub fn entitled(
    e: &Evaluation,
    license: &crate::license::License,
    released_at: Timestamp,
    security_fix: bool,
) -> Result<(), String> {
    match e.state {
        State::Suspended | State::Invalid => {
            return Err(format!("license is {}: {}", e.state, e.reasons.join("; ")));
        }
        State::Active | State::Grace if released_at <= license.updates_until => return Ok(()),
        _ => {}
    }
    if security_fix && license.security_updates_after {
        return Ok(());
    }
    if e.state == State::Expired {
        return Err(format!(
            "license expired: only security fixes are installed{}",
            if license.security_updates_after {
                ""
            } else {
                ", and this license does not include them"
            }
        ));
    }
    Err(format!(
        "release dated {released_at} is after the license's updates-until {}",
        license.updates_until
    ))
}
