//! The update transaction (docs/SPEC.md §11): check, fetch, verify,
//! stage, swap, restart, health-check, commit or roll back, each step
//! journaled before it is taken, and recovery of an interrupted
//! transaction on start.
//!
//! [`Updater`] is the handle the binary holds: it owns the host's parts
//! (config, locked state dir, repository client, clock, signature
//! policy, webhook) and lends each step only what it needs: a [`Ctx`]
//! (config, install root, state, clock, limits, notes) to the steps of
//! the transaction, a [`Source`] to fetching and verification, an
//! [`Announcer`] to the webhook. The steps are free functions, one file
//! each: [`install`] (SPEC §11.4's apply table), `stage`, `carry_over`,
//! `swap`, `service`, `commit`, `rollback`, `recover`, `announce`.

mod announce;
mod auto;
mod backups;
mod carry_over;
mod commit;
mod inspect;
mod install;
mod recover;
mod rollback;
mod service;
mod stage;
mod swap;

use std::time::Duration;

use charter_keys::Clock;
use charter_keys::root::VerifiedRoot;
use charter_release::Error as ReleaseError;
use charter_release::Limits;
use charter_release::archive::SetuidPolicy;
use charter_release::manifest::{CosignProof, Manifest};
use charter_release::rollout::Standing;
use charter_release::signatures::SignaturePolicy;
use jiff::Timestamp;
use semver::Version;
use serde::Serialize;

use crate::config::Config;
use crate::host::fs::{remove_tree, trusted_dir};
use crate::host::layout::InstallRoot;
use crate::host::state::{HistoryEntry, HostState, Journal, StateDir};
use crate::net::fetch::Fetcher;
use crate::net::notify::Notifier;
use crate::net::report::Reporter;
use crate::policy::admission::{Admission, admit};
use crate::policy::rollout::{self, HostPosition};
use crate::source::{self, Offered, Source};
use crate::{Error, Result};
use announce::Announcer;
use rollback::RollbackPlan;

pub use crate::policy::admission::ApplyOptions;
pub use crate::source::{Candidate, Release, Target};

/// The answer of `check`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Installed version.
    pub current: Option<Version>,
    /// The version the target names.
    pub candidate: Version,
    /// Whether `apply` would install it.
    pub update_available: bool,
    /// Why (not).
    pub reason: String,
    /// Whether the channel pointer was unchanged since the last check (304).
    pub not_modified: bool,
    /// Trust root version in force (none for plain artifacts).
    pub root_version: Option<u64>,
    /// The release keys whose signatures counted (empty when the
    /// signature policy accepted the cosign bundle alone).
    pub release_keys: Vec<String>,
    /// What the cosign bundle proved, when the policy checked one.
    pub cosign: Option<CosignProof>,
    /// This host's rollout position.
    pub position: HostPosition,
    /// Where it stands in the pointer's phased rollout, when it signs one.
    pub rollout: Option<Standing>,
}

/// One kept backup for `backups`.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    /// The backup.
    #[serde(flatten)]
    pub backup: crate::host::backup::Backup,
    /// Per file: whether its current bytes still match the backup.
    pub unchanged: Vec<bool>,
}

/// How an `apply` ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum ApplyOutcome {
    /// The target is already installed.
    UpToDate {
        /// The version.
        version: Version,
    },
    /// Installed and healthy.
    Installed {
        /// Before.
        from: Option<Version>,
        /// After.
        to: Version,
    },
    /// `auto` may not install the candidate by itself now.
    Deferred {
        /// What the channel offers.
        candidate: Version,
        /// Why not now.
        reason: String,
        /// When it could be, if that is known.
        until: Option<Timestamp>,
    },
    /// The new release failed and the old one runs again.
    RolledBack {
        /// The failed release (now marked bad).
        failed: Version,
        /// The release running again.
        to: Option<Version>,
        /// Why.
        reason: String,
    },
}

/// Status for `status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Product.
    pub product: String,
    /// Channel.
    pub channel: String,
    /// The state file.
    #[serde(flatten)]
    pub state: HostState,
    /// An unfinished transaction (only when recovery itself failed).
    pub pending: Option<Journal>,
    /// Releases on disk.
    pub releases_on_disk: Vec<Version>,
    /// What recovery did at this start, if anything.
    pub recovered: Option<HistoryEntry>,
    /// Where releases come from: charter manifests through the channel
    /// pointer, or plain artifacts (`[plain]`).
    pub releases_from: String,
    /// What `auto` (the timer) installs by itself, and when.
    pub automatic: String,
    /// The signatures a release needs (`[signatures]`).
    pub signature_policy: String,
    /// Secret config fields written in plain text (each one a warning).
    pub plain_secrets: Vec<String>,
    /// This host in phased rollouts.
    pub rollout: RolloutView,
}

/// This host in phased rollouts, as `status` shows it (from the last
/// channel pointer accepted, without the network).
#[derive(Debug, Clone, Serialize)]
pub struct RolloutView {
    /// Its position and where it comes from.
    #[serde(flatten)]
    pub position: HostPosition,
    /// The version of the last pointer accepted, when it signs a rollout.
    pub version: Option<Version>,
    /// Where the host stands in that rollout now.
    pub standing: Option<Standing>,
}

/// The updater for one host configuration, holding the state lock.
pub struct Updater {
    cfg: Config,
    state: StateDir,
    fetcher: Fetcher,
    clock: std::sync::Arc<dyn Clock>,
    limits: Limits,
    notes: Box<dyn Fn(&str)>,
    signatures: SignaturePolicy,
    notifier: Option<Notifier>,
    reporter: Option<Reporter>,
}

impl std::fmt::Debug for Updater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Updater({})", self.cfg.product)
    }
}

/// What the steps of a transaction work with: the host's config and
/// install root, the state dir, the clock, the limits on what is read
/// back, and where progress is said. Nothing of the network: the steps
/// that download get a [`Source`] of their own.
pub(crate) struct Ctx<'a> {
    pub(crate) cfg: &'a Config,
    pub(crate) root: InstallRoot<'a>,
    pub(crate) state: &'a StateDir,
    pub(crate) clock: &'a dyn Clock,
    pub(crate) limits: &'a Limits,
    notes: &'a dyn Fn(&str),
}

impl Ctx<'_> {
    /// Says one line of progress.
    pub(crate) fn note(&self, line: &str) {
        (self.notes)(line)
    }

    /// A new transaction id (its start time in ms).
    pub(crate) fn txn_id(&self) -> String {
        self.clock.now().as_millisecond().to_string()
    }

    /// Appends one finished transaction to the history.
    pub(crate) fn history(
        &self,
        op: &str,
        from: Option<Version>,
        to: Option<Version>,
        result: &str,
        reason: Option<String>,
    ) -> Result<HistoryEntry> {
        let h = HistoryEntry {
            time: self.clock.now(),
            op: op.into(),
            from,
            to,
            result: result.into(),
            reason,
        };
        self.state.append_history(&h)?;
        Ok(h)
    }

    /// `update.allow_setuid` as a policy (checked at config load already).
    pub(crate) fn setuid_policy(&self) -> Result<SetuidPolicy> {
        self.cfg
            .setuid_policy()
            .map_err(|reason| ReleaseError::InvalidInput {
                what: "update.allow_setuid",
                reason,
            })
            .map_err(crate::Error::from)
    }

    /// The manifest `v` was installed from, unverified (what was checked
    /// when it was installed). A record that exists but cannot be read is
    /// said, not passed over in silence.
    pub(crate) fn stored_manifest(&self, v: &Version) -> Option<Manifest> {
        match self.state.plain_record(v) {
            Ok(Some(r)) => return Some(r.manifest),
            Ok(None) => {}
            Err(e) => {
                self.note(&format!("the stored record of {v} cannot be read: {e}"));
                return None;
            }
        }
        if !self.state.manifest_path(v).exists() {
            return None;
        }
        let bytes = self
            .state
            .manifest(v)
            .map_err(|e| self.note(&format!("the stored manifest of {v} cannot be read: {e}")))
            .ok()?;
        let env = charter_keys::dsse::Envelope::from_slice(&bytes, &self.limits.envelope).ok()?;
        Manifest::from_payload(env.unverified_payload()).ok()
    }
}

impl Updater {
    /// Takes the state lock and prepares the repository client. `notes`
    /// receives progress lines (the binary prints them on stderr).
    pub fn open(cfg: Config, clock: Box<dyn Clock>, notes: Box<dyn Fn(&str)>) -> Result<Self> {
        let signatures = cfg.signatures.load()?;
        Self::open_with_policy(cfg, signatures, clock, notes)
    }

    /// As [`Updater::open`], with the signature policy already loaded
    /// from `cfg.signatures` (`config test` loads it first, to report it).
    pub fn open_with_policy(
        cfg: Config,
        signatures: SignaturePolicy,
        clock: Box<dyn Clock>,
        notes: Box<dyn Fn(&str)>,
    ) -> Result<Self> {
        let state = StateDir::lock(&cfg.paths.state_dir)?;
        let fetcher = Fetcher::new(&cfg.repository, &*notes)?;
        for field in cfg.plain_secrets() {
            notes(&format!(
                "WARNING: {field} is in plain text in the config; encrypt it with `charter secrets encrypt`"
            ));
        }
        // A webhook that cannot be set up (its CA file is gone, say) must
        // not stop `rollback` or `status`: said, and no events are sent.
        let notifier = match cfg.notify.as_ref().map(Notifier::new) {
            Some(Ok(n)) => Some(n),
            Some(Err(e)) => {
                notes(&format!(
                    "WARNING: [notify] cannot be used ({e}); no update events are sent"
                ));
                None
            }
            None => None,
        };
        let reporter = match Reporter::new(&cfg.rollout) {
            Ok(r) => r,
            Err(e) => {
                notes(&format!(
                    "WARNING: [rollout] report_url cannot be used ({e}); no rollout reports are sent"
                ));
                None
            }
        };
        Ok(Updater {
            cfg,
            state,
            fetcher,
            clock: clock.into(),
            limits: Limits::default(),
            notes,
            signatures,
            notifier,
            reporter,
        })
    }

    /// Sets the first retry backoff (tests).
    pub fn with_backoff(mut self, d: Duration) -> Self {
        self.fetcher = Fetcher::new(&self.cfg.repository, &|_| {})
            .map(|f| f.with_backoff(d))
            .unwrap_or(self.fetcher);
        self
    }

    fn cx(&self) -> Ctx<'_> {
        Ctx {
            cfg: &self.cfg,
            root: InstallRoot::new(&self.cfg.paths.install_root),
            state: &self.state,
            clock: self.clock.as_ref(),
            limits: &self.limits,
            notes: &*self.notes,
        }
    }

    fn source(&self) -> Source<'_> {
        Source {
            cfg: &self.cfg,
            state: &self.state,
            fetcher: &self.fetcher,
            clock: self.clock.as_ref(),
            limits: &self.limits,
            signatures: &self.signatures,
            notes: &*self.notes,
        }
    }

    fn announcer(&self) -> Announcer<'_> {
        Announcer {
            notifier: self.notifier.as_ref(),
            reporter: self.reporter.as_ref(),
            cfg: &self.cfg,
            product: &self.cfg.product,
            state: &self.state,
            clock: self.clock.as_ref(),
            notes: &*self.notes,
        }
    }

    /// The trust root in force: the newer of the shipped root and the one
    /// kept in the state directory, then every rotation the repository
    /// offers (`<N+1>.root.json`, ...), which is kept for next time.
    pub fn trusted_root(&self) -> Result<VerifiedRoot> {
        source::trusted_root(&self.source())
    }

    /// The trust root in force (kept or shipped), verified, offline.
    pub fn trust_root_in_force(&self) -> Result<VerifiedRoot> {
        source::trusted_root_offline(&self.cfg, &self.limits)
    }

    /// Fetches and verifies the target's metadata (docs/SPEC.md §11.2,
    /// steps 1 to 6). Nothing on disk changes except the channel cache and
    /// the kept trust root.
    pub fn candidate(&self, target: &Target) -> Result<Offered> {
        source::candidate(&self.source(), target)
    }

    fn admit(&self, c: &Candidate, st: &HostState, opts: &ApplyOptions) -> Result<Admission> {
        admit(c, st, opts, self.cfg.license.as_ref(), self.clock.as_ref())
    }

    /// `check`: what `apply` would do, without doing it.
    pub fn check(&self, target: &Target) -> Result<CheckReport> {
        self.recover()?;
        let Offered {
            candidate: c,
            not_modified,
            root,
        } = self.candidate(target)?;
        let mut st = self.state.state()?;
        st.last_check = Some(self.clock.now());
        self.state.save_state(&st)?;
        let candidate = c.version().clone();
        let position = self.position()?;
        let standing = self.standing(&c, position);
        let (update_available, reason) = match self.admit(&c, &st, &ApplyOptions::default()) {
            Ok(Admission::Install) => match &standing {
                Some(s) if s.halted.is_some() => (false, rollout::describe(s, &candidate)),
                Some(s) if !s.eligible => (
                    true,
                    format!(
                        "{candidate} can be installed by hand, ahead of this host's turn ({})",
                        rollout::describe(s, &candidate)
                    ),
                ),
                Some(s) => (
                    true,
                    format!(
                        "{candidate} can be installed ({})",
                        rollout::describe(s, &candidate)
                    ),
                ),
                None => (true, format!("{candidate} can be installed")),
            },
            Ok(Admission::AlreadyInstalled(v)) => (false, format!("{v} is already installed")),
            Err(e) => (false, e.to_string()),
        };
        Ok(CheckReport {
            current: st.current,
            candidate,
            update_available,
            reason,
            not_modified,
            root_version: root.map(|r| r.version()),
            release_keys: c.release_keys(),
            cosign: c.cosign().cloned(),
            position,
            rollout: standing,
        })
    }

    /// This host's rollout position (docs/SPEC.md §9.6).
    pub fn position(&self) -> Result<HostPosition> {
        rollout::host_position(&self.cfg, &self.state)
    }

    /// Where this host stands now in the rollout of the pointer that
    /// offered `c`, when it signs one.
    fn standing(&self, c: &Candidate, position: HostPosition) -> Option<Standing> {
        c.pointer
            .as_ref()
            .and_then(|p| rollout::standing(p, position.position, self.clock.now()))
    }

    /// The install root and the state directory are ours alone
    /// ([`trusted_dir`]).
    pub fn check_paths(&self) -> Result<()> {
        trusted_dir(&self.cfg.paths.install_root, "paths.install_root")?;
        trusted_dir(&self.cfg.paths.state_dir, "paths.state_dir")
    }

    /// Recovery, a clean staging area, the verified candidate, and the
    /// host state with the check time recorded.
    fn prepare(&self, target: &Target) -> Result<(Candidate, HostState)> {
        self.check_paths()?;
        self.recover()?;
        // No transaction is open: whatever is under .staging is left over
        // from one that was interrupted before its journal was written.
        let _ = remove_tree(&self.cx().root.staging());
        let c = self.candidate(target)?.candidate;
        let mut st = self.state.state()?;
        st.last_check = Some(self.clock.now());
        self.state.save_state(&st)?;
        Ok((c, st))
    }

    /// `apply`: the whole transaction.
    pub fn apply(&self, target: &Target, opts: &ApplyOptions) -> Result<ApplyOutcome> {
        let (c, st) = self
            .prepare(target)
            .inspect_err(|e| self.announcer().failure(None, e))?;
        match self.admit(&c, &st, opts) {
            Ok(Admission::AlreadyInstalled(_)) => {
                return Ok(ApplyOutcome::UpToDate {
                    version: c.version().clone(),
                });
            }
            Ok(Admission::Install) => {}
            Err(e) => {
                self.announcer().failure(Some(c.version().clone()), &e);
                return Err(e);
            }
        }
        // A halted rollout stops `apply` too; one that has not reached
        // this host yet does not, and says so.
        match self.standing(&c, self.position()?) {
            Some(s) if s.halted.is_some() => {
                let h = s.halted.unwrap_or_else(|| unreachable!("checked"));
                let e = Error::RolloutHalted {
                    version: c.version().clone(),
                    at: h.at,
                    reason: h.reason,
                };
                self.announcer().failure(Some(c.version().clone()), &e);
                return Err(e);
            }
            Some(s) if !s.eligible => self.cx().note(&format!(
                "installing {} by hand, ahead of this host's turn in the rollout ({})",
                c.version(),
                rollout::describe(&s, c.version())
            )),
            _ => {}
        }
        self.install(&c, st.current)
    }

    /// Installs an admitted candidate: download, stage, swap, restart,
    /// health check, then commit or roll back.
    fn install(&self, c: &Candidate, from: Option<Version>) -> Result<ApplyOutcome> {
        install::install(&self.cx(), &self.source(), &self.announcer(), c, from)
    }

    /// `auto` (docs/SPEC.md §11.12): what the channel offers, installed
    /// when `[update]` lets the host install it by itself now, else
    /// deferred with the reason.
    pub fn auto(&self) -> Result<ApplyOutcome> {
        auto::auto(self)
    }

    /// `rollback`: returns to the previous release on disk (the current
    /// one is marked bad so it is not installed again automatically).
    pub fn rollback(&self) -> Result<ApplyOutcome> {
        self.check_paths()?;
        self.recover()?;
        let cx = self.cx();
        let st = self.state.state()?;
        let current = st.current.clone().ok_or(crate::Error::NothingToRollBack {
            reason: "nothing is installed".into(),
        })?;
        let prev = st.previous.clone().ok_or(crate::Error::NothingToRollBack {
            reason: format!("no release before {current} is kept"),
        })?;
        if !cx.root.release(&prev).is_dir() {
            return Err(crate::Error::NothingToRollBack {
                reason: format!("{} is gone", cx.root.release(&prev).display()),
            });
        }
        let reason = "rollback requested".to_string();
        rollback::roll_back(
            &cx,
            &current,
            Some(prev.clone()),
            &reason,
            RollbackPlan::Requested,
        )?;
        let o = ApplyOutcome::RolledBack {
            failed: current,
            to: Some(prev),
            reason,
        };
        self.announcer().outcome(&o);
        Ok(o)
    }

    /// Finishes or undoes an interrupted transaction (docs/SPEC.md §11.4).
    /// Runs first in every command. Returns what it did.
    pub fn recover(&self) -> Result<Option<HistoryEntry>> {
        let announcer = self.announcer();
        recover::recover(&self.cx(), &|o| announcer.outcome(o))
    }

    /// The version `current` points at, read from the file system.
    pub fn current_link(&self) -> Option<Version> {
        self.cx().root.current_link()
    }

    /// The clock in use.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}
