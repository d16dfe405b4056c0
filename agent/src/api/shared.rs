//! What every connection of the local API shares: the agent behind its
//! lock, the evaluation published to readers, who is allowed, the
//! connection counts, the per-uid rate limiter and the update job.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::access::Membership;
use crate::daemon::Agent;
use crate::eval::Evaluation;

/// A finished or running update job.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Job {
    /// check, apply, rollback.
    pub action: String,
    /// Who asked.
    pub requested_by: Value,
    /// When it started.
    pub started: jiff::Timestamp,
    /// When it finished (None: running).
    pub finished: Option<jiff::Timestamp>,
    /// Exit code of the door command.
    pub exit_code: Option<i32>,
    /// Its JSON output (or the last lines of text).
    pub output: Value,
}

/// What every connection shares.
pub struct Shared {
    pub(super) agent: Mutex<Agent>,
    pub(super) snapshot: RwLock<Arc<(Evaluation, String)>>,
    pub(super) allowed_uids: BTreeSet<u32>,
    pub(super) membership: Mutex<Membership>,
    pub(super) limiter: Mutex<HashMap<u32, (f64, Instant)>>,
    pub(super) per_uid: Mutex<HashMap<u32, usize>>,
    pub(super) rate: f64,
    pub(super) burst: f64,
    pub(super) max_conns: usize,
    pub(super) per_uid_cap: usize,
    pub(super) conns: AtomicUsize,
    pub(super) refused_conns: AtomicUsize,
    pub(super) request_timeout: Duration,
    pub(super) job: Mutex<Option<Job>>,
    pub(super) refreshing: Mutex<()>,
    pub(super) door_timeout: Duration,
    pub(super) config_warnings: Vec<String>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

impl Shared {
    /// Wraps an agent for serving.
    pub fn new(agent: Agent) -> Arc<Self> {
        let cfg = agent.config().api.clone();
        let door_timeout = Duration::from_secs(agent.config().update.timeout_secs);
        let config_warnings = agent
            .config()
            .plain_secrets()
            .into_iter()
            .map(|f| {
                format!(
                    "{f} is in plain text in the config; encrypt it with `charter secrets encrypt`"
                )
            })
            .collect();
        let mut allowed_uids: BTreeSet<u32> = cfg.allowed_uids.iter().copied().collect();
        allowed_uids.insert(0);
        allowed_uids.insert(rustix::process::getuid().as_raw());
        let membership = Membership::load(&cfg.allowed_groups, &cfg.group_file, &cfg.passwd_file);
        let snap = Arc::new((agent.evaluation().clone(), agent.fingerprint().to_owned()));
        Arc::new(Shared {
            agent: Mutex::new(agent),
            snapshot: RwLock::new(snap),
            allowed_uids,
            membership: Mutex::new(membership),
            limiter: Mutex::new(HashMap::new()),
            per_uid: Mutex::new(HashMap::new()),
            rate: f64::from(cfg.rate_per_sec),
            burst: f64::from(cfg.burst),
            max_conns: cfg.max_connections,
            per_uid_cap: cfg.per_uid_cap(),
            conns: AtomicUsize::new(0),
            refused_conns: AtomicUsize::new(0),
            request_timeout: Duration::from_secs(cfg.request_timeout_secs),
            job: Mutex::new(None),
            refreshing: Mutex::new(()),
            door_timeout,
            config_warnings,
        })
    }

    /// Runs `f` on the agent, then republishes its evaluation to readers.
    pub fn with_agent<T>(&self, f: impl FnOnce(&mut Agent) -> T) -> T {
        let mut agent = self.agent.lock().unwrap_or_else(|e| e.into_inner());
        let out = f(&mut agent);
        let snap = Arc::new((agent.evaluation().clone(), agent.fingerprint().to_owned()));
        drop(agent);
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = snap;
        out
    }

    /// Fetches the license's signed status and takes it, without holding
    /// the agent's lock during the fetch (docs/SPEC.md §10.2, Fetching):
    /// what the fetch needs is taken under the lock, the lock released, the
    /// document fetched, and the lock taken again to accept it with every
    /// check of [`Agent::accept_status`] (a status older than the one held
    /// by then is refused, so a late answer cannot replace a newer one).
    /// Fetches run one at a time. Returns false when the license has no
    /// status URL.
    pub fn refresh_status(&self) -> crate::error::Result<bool> {
        let _one_at_a_time = self.refreshing.lock().unwrap_or_else(|e| e.into_inner());
        let Some(req) = self.with_agent(|a| a.status_request()) else {
            return Ok(false);
        };
        let bytes = req.fetch()?;
        self.with_agent(|a| a.accept_status(&bytes))?;
        Ok(true)
    }

    pub(super) fn authorized(&self, uid: u32, gid: u32) -> bool {
        if self.allowed_uids.contains(&uid) {
            return true;
        }
        let mut m = self.membership.lock().unwrap_or_else(|e| e.into_inner());
        m.refresh();
        m.allows(uid, gid)
    }

    pub(super) fn take_token(&self, uid: u32) -> bool {
        let mut l = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let (tokens, last) = l.entry(uid).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
