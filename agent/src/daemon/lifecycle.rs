//! The runtime state's lifecycle under the agent (docs/SPEC.md §10.4,
//! §10.7): the state to update (a first run's, or none while it is
//! tampered or deleted), starting the audit log over with the old log and
//! state kept aside as evidence, and recording this host's ids.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_json::json;

use super::Agent;
use crate::error::{Error, Result};
use crate::state::{Loaded, RuntimeState};

impl Agent {
    /// Records this host's ids in the state (docs/SPEC.md §10.4) when none
    /// are recorded yet, or when the installed license is bound to this
    /// host's v2 fingerprint (the vendor vouched for these ids). Never
    /// otherwise: a clone must not launder its new ids by removing the
    /// license or installing another for a while. A change is audited.
    pub(super) fn remember_host_ids(&self, rt: &mut RuntimeState, now: Timestamp) -> Result<bool> {
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
    pub(super) fn runtime_for_update(&mut self) -> Result<Option<RuntimeState>> {
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
    pub(super) fn start_over(
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
