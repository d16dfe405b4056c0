//! Installing an admitted candidate (docs/SPEC.md §11.4, the apply
//! table): one numbered call a row, each step journaled after it is
//! done, a failure before the swap undone on the spot, a failure after it
//! rolled back.

use semver::Version;

use super::announce::Announcer;
use super::rollback::{self, RollbackPlan};
use super::service::Service;
use super::swap::point_current;
use super::{ApplyOutcome, Ctx, backups, commit, stage};
use crate::failpoint;
use crate::host::backup::Restore;
use crate::host::state::{BadCause, Journal, Op, Step};
use crate::source::{Candidate, Source, ToInstall, to_install};
use crate::{Error, Result};

/// Installs `c` over `from` (the running release), then announces the
/// outcome.
pub(crate) fn install(
    cx: &Ctx<'_>,
    src: &Source<'_>,
    announcer: &Announcer<'_>,
    c: &Candidate,
    from: Option<Version>,
) -> Result<ApplyOutcome> {
    let r = run(cx, src, c, from);
    match &r {
        Ok(o) => announcer.outcome(o),
        Err(e) => announcer.failure(Some(c.version().clone()), e),
    }
    r
}

fn run(
    cx: &Ctx<'_>,
    src: &Source<'_>,
    c: &Candidate,
    from: Option<Version>,
) -> Result<ApplyOutcome> {
    let ToInstall {
        manifest: m,
        evidence,
        download,
    } = to_install(src, cx.root, c)?;
    let to = m.version.clone();
    let service = Service::of(cx);
    stage::check_space(cx.root, &m)?;
    // A failure before the swap: nothing to roll back, the failed
    // attempt recorded.
    let failed = |e: Error| -> Result<ApplyOutcome> {
        cx.state.clear_journal()?;
        cx.history(
            "apply",
            from.clone(),
            Some(to.clone()),
            "failed",
            Some(e.to_string()),
        )?;
        Err(e)
    };

    // 1. Journal `Begin`.
    let mut j = Journal {
        id: cx.txn_id(),
        op: Op::Apply,
        from: from.clone(),
        to: Some(to.clone()),
        step: Step::Begin,
        reason: None,
        mark_bad: false,
        bad_cause: None,
        restore_license: false,
        started: cx.clock.now(),
    };
    cx.state.save_journal(&j)?;
    failpoint::hit("apply:after-begin");
    // (The config and license files of the release being left are backed
    // up before anything else happens.)
    if let Some(f) = &from
        && let Err(e) = backups::take(cx, f, &to, &j.id)
    {
        return failed(e);
    }

    // 2. Stage: `.staging/<to>.partial`, checked entry by entry, renamed.
    if let Err(e) = stage::stage(cx, src.fetcher, &m, download, from.as_ref()) {
        stage::abort(cx.root, &cx.state.state().unwrap_or_default(), &to);
        return failed(e);
    }

    // 3. Store what vouched for it: journal `Staged`.
    evidence.save(cx.state, &to)?;
    step(cx, &mut j, Step::Staged, "apply:after-staged")?;

    // 4. The pre-swap script: a failure stops the update, nothing was
    //    swapped (the script may have changed what it should not have).
    if let Some(script) = &m.scripts.pre_swap
        && let Err(e) = service.run_script(
            "pre_swap",
            script.as_str(),
            &cx.root.release(&to),
            from.as_ref(),
            &to,
        )
    {
        backups::restore(cx, from.as_ref(), &to, Restore::ConfigAndLicense);
        return failed(e);
    }
    step(cx, &mut j, Step::PreSwapDone, "apply:after-pre-swap")?;

    // 5. Swap `current`; 6. journal `Swapped`.
    point_current(cx.root, Some(&to))?;
    failpoint::hit("apply:after-swap");
    step(cx, &mut j, Step::Swapped, "apply:after-swapped")?;

    // 7. Restart, 8. post-swap script, 9. health check; a failure of any
    //    rolls back to `from`, marking `to` bad.
    let outcome = service.restart().and_then(|()| {
        step(cx, &mut j, Step::Restarted, "apply:after-restart")?;
        if let Some(script) = &m.scripts.post_swap {
            service.run_script(
                "post_swap",
                script.as_str(),
                &cx.root.release(&to),
                from.as_ref(),
                &to,
            )?;
        }
        step(cx, &mut j, Step::PostSwapDone, "apply:after-post-swap")?;
        service.health(&m, &cx.root.release(&to))
    });
    if let Err(e) = outcome {
        let reason = e.to_string();
        cx.note(&format!("{to} failed: {reason}; rolling back"));
        // The health check runs once the post-swap step is journaled;
        // before that, the restart or the script failed.
        let cause = if j.step == Step::PostSwapDone {
            BadCause::HealthCheck
        } else {
            BadCause::Start
        };
        rollback::roll_back(cx, &to, from.clone(), &reason, RollbackPlan::Failed(cause))?;
        return Ok(ApplyOutcome::RolledBack {
            failed: to,
            to: from,
            reason,
        });
    }
    step(cx, &mut j, Step::Healthy, "apply:after-healthy")?;

    // 10-11. Commit, history, prune, self-update.
    commit::commit(cx, &j)?;
    Ok(ApplyOutcome::Installed { from, to })
}

/// Journals `step` (its action is done), then the failpoint after it.
fn step(cx: &Ctx<'_>, j: &mut Journal, step: Step, failpoint: &str) -> Result<()> {
    j.step = step;
    cx.state.save_journal(j)?;
    failpoint::hit(failpoint);
    Ok(())
}
