//! Recovery of an interrupted transaction (docs/SPEC.md §11.4, the
//! recovery table), run first by every command.

use super::rollback::{self, RollbackPlan};
use super::{ApplyOutcome, Ctx, commit, stage};
use crate::Result;
use crate::host::backup::Restore;
use crate::host::state::{HistoryEntry, Op, Step};
use charter_release::Error as ReleaseError;

/// Finishes or undoes the transaction the journal names, if any;
/// `announce` hears of a rollback it makes. Returns what it did.
pub(crate) fn recover(
    cx: &Ctx<'_>,
    announce: &dyn Fn(&ApplyOutcome),
) -> Result<Option<HistoryEntry>> {
    let _ = std::fs::remove_file(cx.root.current_tmp());
    let Some(mut j) = cx.state.journal()? else {
        return Ok(None);
    };
    cx.note(&format!(
        "recovering an interrupted {:?} (step {:?})",
        j.op, j.step
    ));
    match j.op {
        // A rollback, any step: finished from its step.
        Op::Rollback => {
            rollback::finish(cx, &mut j)?;
            Ok(cx.state.history()?.pop())
        }
        // An apply found healthy: committed.
        Op::Apply if j.step == Step::Healthy => {
            commit::commit(cx, &j)?;
            Ok(cx.state.history()?.pop())
        }
        Op::Apply => {
            let to = j.to.clone();
            let link = cx.root.current_link();
            // The swap may have happened after the last journal write.
            let swapped =
                j.step >= Step::Swapped || (link.is_some() && link == to && link != j.from);
            if swapped {
                // Swapped but not known healthy: back to the old release.
                let failed = to.clone().ok_or_else(|| ReleaseError::InvalidInput {
                    what: "journal",
                    reason: "apply without target".into(),
                })?;
                let reason = "interrupted after the swap; returned to the previous release";
                rollback::roll_back(
                    cx,
                    &failed,
                    j.from.clone(),
                    reason,
                    RollbackPlan::Interrupted,
                )?;
                announce(&ApplyOutcome::RolledBack {
                    failed,
                    to: j.from.clone(),
                    reason: reason.into(),
                });
                return Ok(cx.state.history()?.pop());
            }
            // Not swapped: the old release is intact; drop the staging and
            // undo what a pre_swap script may have changed.
            if let Some(to) = &to {
                super::backups::restore(cx, j.from.as_ref(), to, Restore::ConfigAndLicense);
                let st = cx.state.state()?;
                stage::abort(cx.root, &st, to);
            }
            cx.state.clear_journal()?;
            let h = cx.history(
                "recover",
                j.from.clone(),
                to,
                "aborted",
                Some(format!(
                    "interrupted at step {:?}; nothing was swapped",
                    j.step
                )),
            )?;
            Ok(Some(h))
        }
    }
}
