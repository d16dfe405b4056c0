//! Commit (docs/SPEC.md §11.4, apply rows 10 and 11): the state records
//! the new release, the history says so, the journal goes, old releases
//! are pruned and charter-update replaces itself when the release ships
//! a newer one.

use semver::Version;

use super::Ctx;
use crate::Result;
use crate::failpoint;
use crate::host::fs::remove_tree;
use crate::host::state::{HostState, Journal};
use charter_release::Error as ReleaseError;

/// Commits the healthy apply `j`.
pub(crate) fn commit(cx: &Ctx<'_>, j: &Journal) -> Result<()> {
    let to = j.to.clone().ok_or_else(|| ReleaseError::InvalidInput {
        what: "journal",
        reason: "apply without target".into(),
    })?;
    let mut st = cx.state.state()?;
    st.commit(&to, j.from.as_ref());
    cx.state.save_state(&st)?;
    failpoint::hit("apply:after-commit-state");
    cx.history("apply", j.from.clone(), Some(to.clone()), "committed", None)?;
    cx.state.clear_journal()?;
    prune(cx, &st)?;
    cx.note(&format!("{} {to} installed", cx.cfg.product));
    self_update(cx, &to);
    Ok(())
}

/// Removes old releases: `current` and `previous` always stay, then
/// the newest `keep_releases` good ones; a bad version never takes a
/// place, so it goes first (docs/SPEC.md §11.4). Their stored manifests,
/// backups and SBOMs go with them.
fn prune(cx: &Ctx<'_>, st: &HostState) -> Result<()> {
    let installed = cx.root.installed_versions().into_iter();
    for v in prune_list(installed, st, cx.cfg.update.keep_releases) {
        remove_tree(&cx.root.release(&v))?;
        let _ = std::fs::remove_file(cx.state.manifest_path(&v));
        let _ = std::fs::remove_file(cx.state.plain_record_path(&v));
        crate::host::backup::remove(cx.state.path(), &v);
        let _ = std::fs::remove_file(cx.state.sbom_path(&v));
    }
    Ok(())
}

/// Replaces the running `charter-update` with the one the committed
/// release ships (self-replace: a copy next to the running executable,
/// then one rename over it). Only after the release was found healthy;
/// a failure is reported and leaves the old binary in place.
fn self_update(cx: &Ctx<'_>, v: &Version) {
    let Some(su) = &cx.cfg.self_update else {
        return;
    };
    let new = cx.root.release(v).join(&su.binary);
    let result = match std::fs::symlink_metadata(&new) {
        Ok(md) if md.is_file() => self_replace::self_replace(&new).map_err(|e| e.to_string()),
        Ok(_) => Err("not a regular file".into()),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(()) => cx.note(&format!("charter-update replaced by {}", new.display())),
        Err(e) => cx.note(&format!(
            "self-update from {} failed (old binary kept): {e}",
            new.display()
        )),
    }
}

/// The installed versions pruning removes, given `keep` (at least 2):
/// `current` and `previous` always stay and count; the other good
/// versions fill the remaining places newest first; bad versions take
/// none.
fn prune_list(
    installed: impl Iterator<Item = Version>,
    st: &HostState,
    keep: usize,
) -> Vec<Version> {
    let mut versions: Vec<Version> = installed.collect();
    versions.sort();
    versions.reverse();
    let pinned = |v: &Version| st.current.as_ref() == Some(v) || st.previous.as_ref() == Some(v);
    let mut kept = versions.iter().filter(|v| pinned(v)).count();
    let mut gone = Vec::new();
    for v in versions {
        if pinned(&v) {
            continue;
        }
        if !st.bad.contains(&v) && kept < keep {
            kept += 1;
            continue;
        }
        gone.push(v);
    }
    gone
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::state::BadCause;

    /// Regression (SPEC §12 Q45): with keep_releases = 3, a bad 1.2.0 was
    /// kept while a good 1.0.0 was pruned. Bad versions take no place.
    #[test]
    fn prune_removes_bad_versions_first() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        let mut st = HostState {
            current: Some(v("1.3.0")),
            previous: Some(v("1.1.0")),
            ..HostState::default()
        };
        st.mark_bad(&v("1.2.0"), Some(BadCause::HealthCheck));
        let all = || ["1.0.0", "1.1.0", "1.2.0", "1.3.0"].map(v).into_iter();
        assert_eq!(prune_list(all(), &st, 3), [v("1.2.0")]);
        // Nothing bad: the oldest goes.
        st.clear_bad(&v("1.2.0"));
        assert_eq!(prune_list(all(), &st, 3), [v("1.0.0")]);
        // Current and previous stay whatever their age or mark, and count.
        st.current = Some(v("1.0.0"));
        st.previous = Some(v("1.2.0"));
        st.mark_bad(&v("1.2.0"), Some(BadCause::Requested));
        st.mark_bad(&v("1.3.0"), Some(BadCause::Start));
        assert_eq!(prune_list(all(), &st, 2), [v("1.3.0"), v("1.1.0")]);
        assert_eq!(prune_list(all(), &st, 3), [v("1.3.0")]);
    }
}
