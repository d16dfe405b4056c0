//! The agent: loads the license, keeps the runtime state, evaluates the
//! license state, refreshes the signed status, enforces feature changes and
//! writes the audit log. The API (in [`crate::api`]) reads its evaluation.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use charter_keys::Clock;
use charter_keys::root::VerifiedRoot;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::audit::AuditLog;
use crate::config::Config;
use crate::eval::{Evaluation, Inputs, State, evaluate};
use crate::fingerprint::{DmiRead, HostIds};
use crate::license::{MAX_DOCUMENT_BYTES, VerifiedLicense, VerifiedStatus};
use crate::state::{Loaded, RuntimeState, StateStore};
use crate::{Error, Result};

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

    /// Loads without creating or writing anything (the updater checking an
    /// entitlement from the agent's files). Do not call the recording
    /// methods on the result. The DMI UUID is read from
    /// `fingerprint.dmi_product_uuid` itself (the updater is root).
    pub fn load_readonly(cfg: Config, clock: Box<dyn Clock>) -> Result<Self> {
        Self::load_readonly_via(cfg, clock, DmiRead::Direct)
    }

    /// [`Agent::load_readonly`], learning the DMI UUID as `dmi` says
    /// (`charter-agent config test` run by a user other than root reads the
    /// copy).
    pub fn load_readonly_via(cfg: Config, clock: Box<dyn Clock>, dmi: DmiRead) -> Result<Self> {
        let store = StateStore::open_existing(&cfg.paths.state_dir)?;
        Self::load_with(cfg, clock, store, dmi)
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
        if let Loaded::Ok(rt) = &agent.loaded
            && let Some(text) = &rt.last_status
        {
            agent.status = VerifiedStatus::verify(text.as_bytes(), &agent.root).ok();
        }
        agent.read_license();
        // Evaluate without side effects; the daemon then calls
        // `evaluate_and_record("start")`, which records and enforces.
        agent.eval = agent.evaluate_now();
        Ok(agent)
    }

    fn read_license(&mut self) {
        let path = &self.cfg.paths.license;
        self.license_stamp = file_stamp(path);
        self.license =
            match charter_keys::fsutil::read_capped(path, MAX_DOCUMENT_BYTES, "a license") {
                Err(charter_keys::Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    None
                }
                Err(e) => Some(Err(e.to_string())),
                Ok(bytes) => {
                    Some(VerifiedLicense::verify(&bytes, &self.root).map_err(|e| e.to_string()))
                }
            };
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
            notes.append(&mut h.notes.lock().unwrap_or_else(|e| e.into_inner()));
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

    /// Records this host's ids in the state (docs/SPEC.md §10.4) when none
    /// are recorded yet, or when the installed license is bound to this
    /// host's v2 fingerprint (the vendor vouched for these ids). Never
    /// otherwise: a clone must not launder its new ids by removing the
    /// license or installing another for a while. A change is audited.
    fn remember_host_ids(&self, rt: &mut RuntimeState, now: Timestamp) -> Result<bool> {
        let Some(seen) = self.host.seen() else {
            return Ok(false);
        };
        if rt.host_ids.as_ref() == Some(&seen) {
            return Ok(false);
        }
        let vouched = self.license().is_some_and(|l| {
            self.host
                .v2()
                .is_ok_and(|v2| l.license().machines.iter().any(|m| m == v2))
        });
        if rt.host_ids.is_some() && !vouched {
            return Ok(false);
        }
        let changed: Vec<&str> = match &rt.host_ids {
            None => vec![],
            Some(was) => [
                ("machine_id", was.machine_id != seen.machine_id),
                ("dmi", was.dmi != seen.dmi),
            ]
            .into_iter()
            .filter_map(|(n, c)| c.then_some(n))
            .collect(),
        };
        let action = if rt.host_ids.is_none() {
            "recorded"
        } else {
            "changed"
        };
        rt.host_ids = Some(seen);
        self.audit.append(
            &self.store,
            rt,
            now,
            json!({"kind": "host", "action": action, "changed": changed}),
        )?;
        Ok(true)
    }

    /// The runtime state to update, or None while it is tampered/deleted
    /// (it stays so until a fresh signed status arrives). A first run
    /// that finds an audit log left behind (the host secret and the state
    /// were deleted, the log was not) starts the log over first.
    fn runtime_for_update(&mut self) -> Result<Option<RuntimeState>> {
        match &self.loaded {
            Loaded::Ok(rt) => Ok(Some(rt.clone())),
            Loaded::Fresh => {
                let now = self.clock.now();
                let mut rt = RuntimeState {
                    time_floor: now,
                    awaiting_first_status: true,
                    ..RuntimeState::default()
                };
                if self.audit.path().exists() {
                    self.start_over(
                        &mut rt,
                        "fresh",
                        "no host key and no license state: a first run, but an audit log was already there".into(),
                        now,
                    )?;
                    self.store.save(&rt)?;
                    self.loaded = Loaded::Ok(rt.clone());
                }
                Ok(Some(rt))
            }
            Loaded::Tampered(_) | Loaded::Deleted => Ok(None),
        }
    }

    /// Starts the audit log over for a new runtime state (docs/SPEC.md
    /// §10.4, §10.7). The old log cannot verify against the new state, so
    /// it is renamed aside (`audit.<time>.jsonl`), as is a tampered state
    /// file (`license-state.<time>.tampered.json`), both kept as evidence;
    /// the new log's first line says why and names them.
    fn start_over(
        &mut self,
        rt: &mut RuntimeState,
        why: &'static str,
        detail: String,
        now: Timestamp,
    ) -> Result<()> {
        let stamp = now.strftime("%Y%m%dT%H%M%SZ").to_string();
        let log = set_aside(self.audit.path(), "audit", &stamp, "jsonl")?;
        let state = if why == "tampered" {
            set_aside(
                &self.store.state_path(),
                "license-state",
                &stamp,
                "tampered.json",
            )?
        } else {
            None
        };
        for p in [&log, &state].into_iter().flatten() {
            self.notes.push(format!("kept {} aside", p.display()));
        }
        self.audit.append(
            &self.store,
            rt,
            now,
            json!({"kind": "reestablished", "why": why, "detail": detail, "set_aside": {"audit_log": log, "state": state}}),
        )
    }

    fn enforce(&mut self, before: &BTreeSet<String>) -> Result<()> {
        let now = &self.eval.features;
        for (name, hooks) in &self.cfg.features {
            let (was, is) = (before.contains(name), now.contains(name));
            let cmd = match (was, is) {
                (false, true) => hooks.on.as_ref(),
                (true, false) => hooks.off.as_ref(),
                _ => None,
            };
            if let Some(argv) = cmd {
                let job = HookJob {
                    label: format!("feature {name} turned {}", if is { "on" } else { "off" }),
                    argv: argv.clone(),
                    timeout: Duration::from_secs(hooks.timeout_secs),
                };
                let hooks = self.hooks.get_or_insert_with(HookRunner::start);
                if let Err(why) = hooks.queue(job) {
                    self.notes.push(why);
                }
            }
        }
        let doc = json!({
            "state": self.eval.state,
            "features": self.eval.features,
            "limits": self.eval.limits,
            "evaluated_at": self.eval.evaluated_at,
        });
        let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
        bytes.push(b'\n');
        let path = &self.cfg.paths.features_file;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        }
        charter_keys::fsutil::write_atomic(path, &bytes, 0o644)?;
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

    /// Takes a signed status document (docs/SPEC.md §10.2, Acceptance):
    /// verified, for this license, not issued before it, not older than
    /// the one held, not from the future. A new state waiting for its
    /// first status, or a tampered or deleted one, takes only a fresh one
    /// (issued within a day, or within the license's offline allowance),
    /// which also re-establishes a tampered or deleted state.
    pub fn accept_status(&mut self, bytes: &[u8]) -> Result<()> {
        let st = VerifiedStatus::verify(bytes, &self.root)?;
        let Some(lic) = self.license().map(|l| l.license().clone()) else {
            return Err(Error::Invalid {
                what: "license status",
                reason: "no license is installed".into(),
            });
        };
        if st.status().license_id != lic.license_id {
            self.record(json!({"kind": "status", "action": "refused", "reason": "for another license", "license_id": st.status().license_id}))?;
            return Err(Error::Invalid {
                what: "license status",
                reason: format!(
                    "it is for license `{}`, this host has `{}`",
                    st.status().license_id,
                    lic.license_id
                ),
            });
        }
        // The status server and the license issuer are different machines
        // with their own clocks: old news means older than the license by
        // more than the clock tolerance.
        let tolerance = self.cfg.clock.tolerance();
        if st.status().issued_at + tolerance < lic.issued_at {
            return Err(Error::Invalid {
                what: "license status",
                reason: format!(
                    "issued at {}, before the installed license (issued at {})",
                    st.status().issued_at,
                    lic.issued_at
                ),
            });
        }
        if let Some(held) = &self.status
            && held.status().issued_at > st.status().issued_at
        {
            return Err(Error::Invalid {
                what: "license status",
                reason: "older than the status already held".into(),
            });
        }
        let now = self.clock.now();
        if st.status().issued_at > now + tolerance {
            return Err(Error::Invalid {
                what: "license status",
                reason: format!(
                    "issued at {}, in the future of this host's clock ({now})",
                    st.status().issued_at
                ),
            });
        }
        let freshness = SignedDuration::from_secs(
            i64::try_from(lic.max_offline_secs.unwrap_or(86_400).min(86_400)).unwrap_or(86_400),
        );
        let fresh = st.status().issued_at + freshness >= now;
        let mut rt = match (&self.loaded, fresh) {
            (Loaded::Tampered(_) | Loaded::Deleted, true) => {
                let (why, detail) = match &self.loaded {
                    Loaded::Tampered(detail) => ("tampered", detail.clone()),
                    _ => (
                        "deleted",
                        format!("{} was deleted", self.store.state_path().display()),
                    ),
                };
                self.notes.push(format!(
                    "a fresh signed status re-established the license state ({why})"
                ));
                // The serial mark comes from the status (`current_serial`),
                // not from the installed license, which may be the replay.
                let mut rt = RuntimeState {
                    time_floor: now.max(st.status().issued_at),
                    ..RuntimeState::default()
                };
                self.start_over(&mut rt, why, detail, now)?;
                rt
            }
            (Loaded::Tampered(_) | Loaded::Deleted, false) => {
                return Err(Error::Invalid {
                    what: "license status",
                    reason: format!(
                        "issued at {}: not fresh enough to re-establish a tampered state",
                        st.status().issued_at
                    ),
                });
            }
            // A new or reset state takes its first status only fresh too:
            // an old `active` status kept from before a revocation must
            // not stand in for the vendor's current word (§10.4).
            (Loaded::Fresh, false) => return Err(not_fresh_for_new_state(&st)),
            (Loaded::Ok(rt), false) if rt.awaiting_first_status => {
                return Err(not_fresh_for_new_state(&st));
            }
            _ => self.runtime_for_update()?.unwrap_or_default(),
        };
        if let Some(cur) = st.status().current_serial {
            rt.record_serial(&lic.license_id, cur, now);
        }
        rt.awaiting_first_status = false;
        rt.last_status = Some(String::from_utf8_lossy(bytes).into_owned());
        rt.last_status_fetch = Some(now);
        self.audit.append(&self.store, &mut rt, now, json!({"kind": "status", "action": "accepted", "state": st.status().state, "issued_at": st.status().issued_at}))?;
        self.store.save(&rt)?;
        self.loaded = Loaded::Ok(rt);
        self.status = Some(st);
        self.evaluate_and_record("status")
    }

    /// Fetches the status document from the license's status URL and takes
    /// it. Returns false when the license has no status URL. This holds
    /// `&mut self` for the whole fetch: the daemon, once it serves, uses
    /// [`Agent::status_request`] and fetches without the agent's lock
    /// ([`crate::api::Shared::refresh_status`]).
    pub fn refresh_status(&mut self) -> Result<bool> {
        let Some(req) = self.status_request() else {
            return Ok(false);
        };
        let bytes = req.fetch()?;
        self.accept_status(&bytes)?;
        Ok(true)
    }

    /// What a status fetch needs (the license's status URL, the timeout,
    /// the token), or None when the license has no status URL.
    pub fn status_request(&self) -> Option<StatusRequest> {
        let url = self.license()?.license().status_url.clone()?;
        Some(StatusRequest {
            url,
            timeout: Duration::from_secs(self.cfg.status.timeout_secs),
            token: self
                .cfg
                .status
                .token
                .as_ref()
                .and_then(|t| t.expose())
                .map(|t| zeroize::Zeroizing::new(t.to_owned())),
        })
    }

    /// The updater's door command for `what` (check, apply, rollback,
    /// status), refused for apply when the license does not allow updates.
    pub fn door(&self, what: &str) -> std::result::Result<Vec<String>, String> {
        let d = &self.cfg.update;
        match what {
            "check" => Ok(d.check.clone()),
            "status" => Ok(d.status.clone()),
            "rollback" => Ok(d.rollback.clone()),
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

fn not_fresh_for_new_state(st: &VerifiedStatus) -> Error {
    Error::Invalid {
        what: "license status",
        reason: format!(
            "issued at {}: not fresh enough to be the first status of a new or reset license state",
            st.status().issued_at
        ),
    }
}

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

/// The `PATH` a hook gets: its environment is otherwise empty.
const HOOK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Hooks waiting to run, at most; past that a change is noted and its
/// hook skipped.
const HOOK_QUEUE: usize = 64;

/// One hook to run.
struct HookJob {
    label: String,
    argv: Vec<String>,
    timeout: Duration,
}

/// Runs feature hooks on a thread of its own, one at a time in the order
/// they were queued (an `off` never overtakes the `on` before it), so a
/// slow or hanging hook never holds the agent (docs/SPEC.md §10.8). The
/// results come back as notes. The thread ends when the agent is dropped
/// and the queue is empty.
struct HookRunner {
    tx: Option<std::sync::mpsc::SyncSender<HookJob>>,
    notes: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl HookRunner {
    fn start() -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<HookJob>(HOOK_QUEUE);
        let notes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = std::sync::Arc::clone(&notes);
        let spawned = std::thread::Builder::new()
            .name("feature-hooks".into())
            .spawn(move || {
                for job in rx {
                    let result = run_hook(&job.argv, job.timeout);
                    out.lock().unwrap_or_else(|e| e.into_inner()).push(format!(
                        "{}: {}",
                        job.label,
                        result.as_deref().unwrap_or_else(|e| e.as_str())
                    ));
                }
            });
        HookRunner {
            tx: spawned.is_ok().then_some(tx),
            notes,
        }
    }

    fn queue(&self, job: HookJob) -> std::result::Result<(), String> {
        let Some(tx) = &self.tx else {
            return Err(format!("{}: hook not run: no thread to run it", job.label));
        };
        tx.try_send(job).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(j) => format!(
                "{}: hook not run: {HOOK_QUEUE} hooks are already waiting",
                j.label
            ),
            std::sync::mpsc::TrySendError::Disconnected(j) => {
                format!("{}: hook not run: the hook thread is gone", j.label)
            }
        })
    }
}

/// Runs a feature hook: no shell, stdin/stdout/stderr on `/dev/null`, an
/// empty environment but for `PATH`, in a process group of its own that
/// is killed as a whole when `timeout` passes.
fn run_hook(argv: &[String], timeout: Duration) -> std::result::Result<String, String> {
    use std::os::unix::process::CommandExt;
    let Some((prog, args)) = argv.split_first() else {
        return Err("empty command".into());
    };
    let mut child = std::process::Command::new(prog)
        .args(args)
        .env_clear()
        .env("PATH", HOOK_PATH)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run `{prog}`: {e}"))?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(s)) if s.success() => return Ok("ok".into()),
            Ok(Some(s)) => return Err(format!("`{prog}` failed: {s}")),
            Ok(None) if std::time::Instant::now() > deadline => {
                kill_group(child.id());
                let _ = child.wait();
                return Err(format!(
                    "`{prog}` timed out after {} s; its process group was killed",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Renames `path` (when it exists) to `<stem>.<stamp>.<ext>` in the same
/// directory, or `<stem>.<stamp>-N.<ext>` when that is taken; returns the
/// new path.
fn set_aside(path: &Path, stem: &str, stamp: &str, ext: &str) -> Result<Option<PathBuf>> {
    if !path.exists() {
        return Ok(None);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut aside = dir.join(format!("{stem}.{stamp}.{ext}"));
    let mut n = 1;
    while aside.exists() {
        aside = dir.join(format!("{stem}.{stamp}-{n}.{ext}"));
        n += 1;
    }
    std::fs::rename(path, &aside).map_err(|e| Error::io("rename", path, e))?;
    Ok(Some(aside))
}

/// Kills a process group (the child was started as its leader).
pub(crate) fn kill_group(pid: u32) {
    if let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
    }
}

/// One status fetch, taken from the agent so that it can run without the
/// agent's lock (docs/SPEC.md §10.2, Fetching). No `Debug`: it holds the
/// token.
pub struct StatusRequest {
    url: String,
    timeout: Duration,
    token: Option<zeroize::Zeroizing<String>>,
}

impl StatusRequest {
    /// GETs the status document ([`fetch`]).
    pub fn fetch(&self) -> Result<Vec<u8>> {
        fetch(
            &self.url,
            self.timeout,
            self.token.as_ref().map(|t| t.as_str()),
        )
    }
}

/// GETs a status document (http(s) or file://), capped in size.
/// `token`, when given, goes in an `Authorization: Bearer` header (never
/// for `file://`, and never across a redirect: ureq drops it).
pub fn fetch(url: &str, timeout: Duration, token: Option<&str>) -> Result<Vec<u8>> {
    if let Some(path) = url.strip_prefix("file://") {
        return Ok(charter_keys::fsutil::read_capped(
            Path::new(path),
            MAX_DOCUMENT_BYTES,
            "a license status",
        )?);
    }
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .new_agent();
    let mut req = agent.get(url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let resp = req.call().map_err(|e| Error::Http {
        url: url.into(),
        reason: e.to_string(),
    })?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(Error::Http {
            url: url.into(),
            reason: format!("HTTP status {status}"),
        });
    }
    let mut bytes = Vec::new();
    use std::io::Read;
    resp.into_body()
        .into_with_config()
        .limit(MAX_DOCUMENT_BYTES + 1)
        .reader()
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Http {
            url: url.into(),
            reason: e.to_string(),
        })?;
    if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(Error::Http {
            url: url.into(),
            reason: "status document too large".into(),
        });
    }
    Ok(bytes)
}
