//! Which files are backed up when a release is left (its config files
//! and the license), and their restore when the transaction is undone
//! (docs/SPEC.md §11.9). The backups themselves are host::backup's.

use charter_release::manifest::{Entry, FileKind};
use semver::Version;

use super::Ctx;
use crate::Result;
use crate::host::backup::{self, Restore, Source};

/// The files backed up when leaving `from`: its config files and the
/// license (when `[license]` names the agent's config).
fn sources(cx: &Ctx<'_>, from: &Version) -> Vec<Source> {
    let mut out = Vec::new();
    if let Some(m) = cx.stored_manifest(from) {
        let dir = cx.root.release(from);
        for e in &m.files {
            if let Entry::File {
                path,
                kind: FileKind::Config,
                ..
            } = e
            {
                out.push(Source {
                    kind: "config",
                    path: dir.join(path.as_str()),
                });
            }
        }
    }
    if let Some(lc) = &cx.cfg.license {
        match charter_agent::config::Config::load(&lc.agent_config) {
            Ok(acfg) => out.push(Source {
                kind: "license",
                path: acfg.paths.license,
            }),
            Err(e) => cx.note(&format!("license not backed up: {e}")),
        }
    }
    out
}

/// Backs up what leaving `from` for `to` in transaction `txn` may change.
pub(crate) fn take(cx: &Ctx<'_>, from: &Version, to: &Version, txn: &str) -> Result<()> {
    let sources = sources(cx, from);
    backup::take(cx.state.path(), from, to, txn, &sources, cx.clock.now())?;
    Ok(())
}

/// Restores the backup taken when `release` was left for `to`, if that
/// is the one kept. Failures are reported, not fatal: the rollback itself
/// must go on.
pub(crate) fn restore(cx: &Ctx<'_>, release: Option<&Version>, to: &Version, which: Restore) {
    let Some(release) = release else {
        return;
    };
    let Some(b) = backup::load(cx.state.path(), release) else {
        return;
    };
    if &b.to != to {
        return;
    }
    match backup::restore(cx.state.path(), &b, which) {
        Ok(r) if r.is_empty() => {}
        Ok(r) => cx.note(&format!(
            "restored from the backup: {}",
            r.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Err(e) => cx.note(&format!("restoring the backup of {release} failed: {e}")),
    }
}
