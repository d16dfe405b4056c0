//! Rollback (docs/SPEC.md §11.4): from a failed or unwanted release back
//! to the one before, journaled so that recovery can finish it from any
//! step.

use semver::Version;

use super::Ctx;
use super::backups;
use super::service::Service;
use super::swap::point_current;
use crate::Result;
use crate::failpoint;
use crate::host::backup::Restore;
use crate::host::state::{BadCause, Journal, Op, Step};

/// Why a rollback happens, which says what it does besides returning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RollbackPlan {
    /// The release this update installed failed (`Start`: its restart or
    /// post-swap script; `HealthCheck`: its health check). It is marked
    /// bad, and the license is restored from the update's backup too:
    /// nothing but the update can have changed it.
    Failed(BadCause),
    /// The operator asked (`charter-update rollback`): the release left is
    /// marked bad as `requested`; the license stays as it is (the
    /// operator may have changed it since).
    Requested,
    /// An update was interrupted after its swap: back to the release
    /// before, which is not marked bad (nothing showed it is); the
    /// license is restored as for a failure.
    Interrupted,
}

impl RollbackPlan {
    /// Why the release left is marked bad, if it is.
    fn bad_cause(self) -> Option<BadCause> {
        match self {
            RollbackPlan::Failed(cause) => Some(cause),
            RollbackPlan::Requested => Some(BadCause::Requested),
            RollbackPlan::Interrupted => None,
        }
    }

    /// Whether the license comes back from the backup too.
    fn restores_license(self) -> bool {
        match self {
            RollbackPlan::Failed(_) | RollbackPlan::Interrupted => true,
            RollbackPlan::Requested => false,
        }
    }
}

/// Rolls back from `failed` to `to` (none: nothing to return to) for
/// `reason`, as `plan` says: journaled at `Begin`, then [`finish`].
pub(crate) fn roll_back(
    cx: &Ctx<'_>,
    failed: &Version,
    to: Option<Version>,
    reason: &str,
    plan: RollbackPlan,
) -> Result<()> {
    let mut j = Journal {
        id: cx.txn_id(),
        op: Op::Rollback,
        from: Some(failed.clone()),
        to,
        step: Step::Begin,
        reason: Some(reason.to_owned()),
        mark_bad: plan.bad_cause().is_some(),
        bad_cause: plan.bad_cause(),
        restore_license: plan.restores_license(),
        started: cx.clock.now(),
    };
    cx.state.save_journal(&j)?;
    failpoint::hit("rollback:after-begin");
    finish(cx, &mut j)
}

/// Completes a rollback journal from whatever step it reached; every
/// action is idempotent, so recovery can call it again.
pub(crate) fn finish(cx: &Ctx<'_>, j: &mut Journal) -> Result<()> {
    let service = Service::of(cx);
    let failed = j.from.clone();
    let to = j.to.clone();
    // 1. Back to `to`, the failed release's on_rollback script first.
    if j.step < Step::Swapped {
        if let (Some(f), Some(manifest)) =
            (&failed, failed.as_ref().and_then(|f| cx.stored_manifest(f)))
            && let Some(script) = &manifest.scripts.on_rollback
            && cx.root.release(f).is_dir()
            && let Err(e) = service.run_script(
                "on_rollback",
                script.as_str(),
                &cx.root.release(f),
                Some(f),
                to.as_ref().unwrap_or(f),
            )
        {
            cx.note(&format!(
                "on_rollback script failed (rolling back anyway): {e}"
            ));
        }
        point_current(cx.root, to.as_ref())?;
        failpoint::hit("rollback:after-swap");
        j.step = Step::Swapped;
        cx.state.save_journal(j)?;
        failpoint::hit("rollback:after-swapped");
    }
    // The backup taken when `to` was left for `failed` (idempotent: only
    // files that differ are written).
    if let (Some(t), Some(f)) = (&to, &failed) {
        let which = if j.restore_license {
            Restore::ConfigAndLicense
        } else {
            Restore::Config
        };
        backups::restore(cx, Some(t), f, which);
    }
    // 2. The service on `to`, and its health (only noted: there is
    //    nowhere further to go back to).
    let mut health_note = None;
    if let Some(v) = &to {
        if let Err(e) = service.restart() {
            health_note = Some(format!("restarting {v} failed too: {e}"));
        } else {
            failpoint::hit("rollback:after-restart");
            if let Some(m) = cx.stored_manifest(v)
                && let Err(e) = service.health(&m, &cx.root.release(v))
            {
                health_note = Some(format!("{v} is unhealthy after the rollback too: {e}"));
            }
        }
    }
    if let Some(n) = &health_note {
        cx.note(n);
    }
    // 3. The state.
    let mut st = cx.state.state()?;
    let bad = failed.as_ref().filter(|_| j.mark_bad);
    st.roll_back(to.as_ref(), bad.map(|f| (f, j.bad_cause)));
    cx.state.save_state(&st)?;
    failpoint::hit("rollback:after-state");
    // 4. History, and the journal goes.
    let reason = match (&j.reason, &health_note) {
        (Some(r), Some(n)) => Some(format!("{r}; {n}")),
        (r, n) => r.clone().or(n.clone()),
    };
    cx.history("rollback", failed, to, "rolled-back", reason)?;
    cx.state.clear_journal()?;
    Ok(())
}
