//! The agent: loads the license, keeps the runtime state, evaluates the
//! license state, refreshes the signed status, enforces feature changes and
//! writes the audit log. The local API serves its evaluation.
//!
//! This module owns the [`Agent`] itself: loading, the evaluation and what
//! is recorded after each, license reloads, audit events, the update door.
//! The parts: `lifecycle` (the runtime state to update, starting it over,
//! the host ids it records), `status` (taking a signed status document)
//! and `features` (the features file and hooks when features change).

mod features;
mod lifecycle;
mod status;

use std::path::Path;

use charter_keys::Clock;
use charter_keys::root::VerifiedRoot;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::audit::AuditLog;
use crate::config::Config;
use crate::error::Result;
use crate::eval::{Evaluation, Inputs, State, evaluate};
use crate::fingerprint::{DmiRead, HostIds};
use crate::hooks::HookRunner;
use crate::installed::{held_status, load_root};
use crate::license::{VerifiedLicense, VerifiedStatus};
use crate::state::{Loaded, StateStore};

/// The agent's view of everything.
pub struct Agent {
    cfg: Config,
    store: StateStore,
    root: VerifiedRoot,
    clock: Box<dyn Clock>,
    host: HostIds,
    loaded: Loaded,
    license: Option<std::result::Result<VerifiedLicense, String>>,
    license_stamp: Option<(u64, i128)>,
    status: Option<VerifiedStatus>,
    eval: Evaluation,
    audit: AuditLog,
    notes: Vec<String>,
    hooks: Option<HookRunner>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Agent({}, {})", self.cfg.product, self.eval.state)
    }
}

fn file_stamp(path: &Path) -> Option<(u64, i128)> {
    let md = std::fs::metadata(path).ok()?;
    let mtime = md
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos() as i128;
    Some((md.len(), mtime))
}

impl Agent {
    /// Opens the state (creating the host secret on first run), the trust
    /// root, and the license, then evaluates (nothing is written: see
    /// [`Agent::evaluate_and_record`]). The DMI UUID comes from the copy
    /// root leaves at `fingerprint.host_ids`.
    pub fn load(cfg: Config, clock: Box<dyn Clock>) -> Result<Self> {
        let store = StateStore::open(&cfg.paths.state_dir)?;
        Self::load_with(cfg, clock, store, DmiRead::Copy)
    }

    /// Loads without creating anything: the state's host secret must
    /// exist. The DMI UUID is read from `fingerprint.dmi_product_uuid`
    /// itself, as root reads it. The result can still record; to check an
    /// entitlement, [`crate::entitlement::read`] cannot.
    pub fn load_readonly(cfg: Config, clock: Box<dyn Clock>) -> Result<Self> {
        let store = StateStore::open_existing(&cfg.paths.state_dir)?;
        Self::load_with(cfg, clock, store, DmiRead::Direct)
    }

    fn load_with(
        cfg: Config,
        clock: Box<dyn Clock>,
        store: StateStore,
        dmi: DmiRead,
    ) -> Result<Self> {
        let root = load_root(&cfg)?;
        let host = HostIds::read(&cfg.product, &cfg.fingerprint, dmi)?;
        let loaded = store.load()?;
        let now = clock.now();
        let audit = AuditLog::new(store.dir());
        let mut agent = Agent {
            eval: Evaluation::placeholder(now),
            cfg,
            store,
            root,
            clock,
            host,
            loaded,
            license: None,
            license_stamp: None,
            status: None,
            audit,
            notes: Vec::new(),
            hooks: None,
        };
        agent.status = held_status(&agent.loaded, &agent.root);
        agent.read_license();
        // Evaluate without side effects; the daemon then calls
        // `evaluate_and_record("start")`, which records and enforces.
        agent.eval = agent.evaluate_now();
        Ok(agent)
    }

    fn read_license(&mut self) {
        let path = &self.cfg.paths.license;
        self.license_stamp = file_stamp(path);
        self.license = crate::installed::read_license(path, &self.root);
    }

    /// The current evaluation.
    pub fn evaluation(&self) -> &Evaluation {
        &self.eval
    }

    /// This host's fingerprint to license: v2 when known, else v1.
    pub fn fingerprint(&self) -> &str {
        self.host.preferred()
    }

    /// This host's ids and both fingerprints.
    pub fn host_ids(&self) -> &HostIds {
        &self.host
    }

    /// The verified license, if any.
    pub fn license(&self) -> Option<&VerifiedLicense> {
        self.license.as_ref().and_then(|l| l.as_ref().ok())
    }

    /// Progress notes since the last call (the daemon logs them).
    pub fn take_notes(&mut self) -> Vec<String> {
        let mut notes = std::mem::take(&mut self.notes);
        if let Some(h) = &self.hooks {
            notes.append(&mut h.take_notes());
        }
        notes
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn evaluate_now(&self) -> Evaluation {
        let license = self
            .license
            .as_ref()
            .map(|l| l.as_ref().map_err(Clone::clone));
        evaluate(&Inputs {
            license,
            status: self.status.as_ref(),
            product: &self.cfg.product,
            host: &self.host,
            runtime: &self.loaded,
            now: self.clock.now(),
            clock_tolerance: self.cfg.clock.tolerance(),
        })
    }

    /// Re-evaluates; records changes in the audit log; raises the runtime
    /// state's high-water mark and serial; runs feature hooks and writes the
    /// features file when the features in force changed.
    pub fn evaluate_and_record(&mut self, why: &str) -> Result<()> {
        let fresh = self.evaluate_now();
        let mut before = std::mem::replace(&mut self.eval, fresh);
        if why == "start" {
            // Everything counts as changed at start: hooks run, the
            // features file is written, the audit log notes the start.
            before.features.clear();
        }
        let now = self.clock.now();
        let changed_state = before.state != self.eval.state || before.reasons != self.eval.reasons;
        let mut rt = self.runtime_for_update()?;
        if let Some(rt) = rt.as_mut() {
            let mut dirty = false;
            if changed_state || why == "start" {
                self.audit.append(
                    &self.store,
                    rt,
                    now,
                    json!({"kind": "state", "why": why, "from": before.state, "to": self.eval.state, "reasons": self.eval.reasons}),
                )?;
                dirty = true;
            }
            // Raise the high-water mark and the serial only from a sound
            // evaluation: an invalid clock must not move the floor.
            if !self.eval.reasons.iter().any(|r| r.starts_with("clock")) {
                let mut floor = rt.time_floor.max(now);
                if let Some(l) = self.license() {
                    floor = floor.max(l.license().issued_at);
                }
                if let Some(s) = &self.status {
                    floor = floor.max(s.status().issued_at);
                }
                // Persist the mark when it moved by a minute or more (or a
                // signed document raised it): no disk write every tick.
                let moved = floor.duration_since(rt.time_floor) >= SignedDuration::from_secs(60);
                if floor != rt.time_floor && (moved || dirty) {
                    rt.time_floor = floor;
                    dirty = true;
                }
            }
            // The serial ratchet, one mark per license id (§10.4): a known
            // id's mark only rises; a new id is recorded once the license
            // evaluates to something other than `invalid`.
            if let Some(l) = self.license.as_ref().and_then(|l| l.as_ref().ok()) {
                let l = l.license();
                let known = rt.highest_serial(&l.license_id).is_some();
                if (known || self.eval.state != State::Invalid)
                    && rt.record_serial(&l.license_id, l.serial, now)
                {
                    dirty = true;
                }
            }
            dirty |= self.remember_host_ids(rt, now)?;
            if dirty {
                self.store.save(rt)?;
                self.loaded = Loaded::Ok(rt.clone());
            }
        }
        if before.features != self.eval.features || why == "start" {
            let before = before.features.clone();
            self.enforce(&before)?;
        }
        Ok(())
    }

    /// Re-reads the license file when it changed on disk (no restart).
    /// Returns whether it changed.
    pub fn reload_license_if_changed(&mut self) -> Result<bool> {
        if file_stamp(&self.cfg.paths.license) == self.license_stamp {
            return Ok(false);
        }
        let before = self.license().map(|l| l.digest().to_owned());
        self.read_license();
        let after = self.license().map(|l| l.digest().to_owned());
        if before == after && self.license.as_ref().is_none_or(|l| l.is_ok()) {
            return Ok(false);
        }
        self.record(json!({"kind": "license", "action": "loaded", "license": self.license().map(|l| json!({"id": l.license().license_id, "serial": l.license().serial}))}))?;
        self.evaluate_and_record("license changed")?;
        Ok(true)
    }

    /// Appends an event (when the state is sound) and saves.
    pub fn record(&mut self, event: serde_json::Value) -> Result<()> {
        if let Some(mut rt) = self.runtime_for_update()? {
            self.audit
                .append(&self.store, &mut rt, self.clock.now(), event)?;
            self.store.save(&rt)?;
            self.loaded = Loaded::Ok(rt);
        }
        Ok(())
    }

    /// The updater's door command for `what` (check, apply, rollback,
    /// status, hold, hold-clear), refused for apply when the license does
    /// not allow updates. A hold is never refused: holding back updates
    /// needs no entitlement.
    pub fn door(&self, what: &str) -> std::result::Result<Vec<String>, String> {
        let d = &self.cfg.update;
        match what {
            "check" => Ok(d.check.clone()),
            "status" => Ok(d.status.clone()),
            "rollback" => Ok(d.rollback.clone()),
            "hold" => Ok(d.hold.clone()),
            "hold-clear" => Ok(d.hold_clear.clone()),
            "apply" if matches!(self.eval.state, State::Suspended | State::Invalid) => {
                Err(format!(
                    "updates are not allowed while the license is {}",
                    self.eval.state
                ))
            }
            "apply" => Ok(d.apply.clone()),
            other => Err(format!("unknown update action `{other}`")),
        }
    }

    /// Now, by the agent's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Checks the audit log against the state.
    pub fn verify_audit(&self) -> Result<crate::audit::AuditReport> {
        match &self.loaded {
            Loaded::Ok(rt) => self.audit.verify(&self.store, rt),
            other => Ok(crate::audit::AuditReport {
                lines: 0,
                problem: Some(format!("the license state is not sound ({other:?})")),
            }),
        }
    }
}

impl Evaluation {
    /// An evaluation before the first one (replaced at once).
    pub fn placeholder(now: Timestamp) -> Self {
        crate::eval::evaluate(&Inputs {
            license: None,
            status: None,
            product: "",
            host: &HostIds::from_raw("", "", crate::fingerprint::Dmi::Absent),
            runtime: &Loaded::Fresh,
            now,
            clock_tolerance: SignedDuration::ZERO,
        })
    }
}
