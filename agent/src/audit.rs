//! The audit log: one JSON line per license change, state change and
//! state-changing API call, each carrying a keyed hash (HMAC with the host
//! secret) of the line before it. The number of lines and the last hash
//! live in the authenticated runtime state, so an edited, deleted,
//! reordered or truncated line is noticed by `charter-agent audit verify`
//! (docs/SPEC.md §10.7).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::state::{RuntimeState, StateStore};

/// Largest audit log `audit verify` reads.
const MAX_AUDIT_BYTES: u64 = 1 << 30;

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const LABEL: &[u8] = b"charter-audit-v1\0";

/// One line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    /// 1, 2, 3, ...
    pub seq: u64,
    /// When.
    pub time: Timestamp,
    /// Keyed hash of the previous line's bytes (zeros for the first).
    pub prev: String,
    /// What happened.
    pub event: serde_json::Value,
}

/// The audit log file.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

/// The outcome of `audit verify`.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    /// Lines checked.
    pub lines: u64,
    /// The first problem found, if any.
    pub problem: Option<String>,
}

impl AuditLog {
    /// The log in the state directory.
    pub fn new(dir: &Path) -> Self {
        AuditLog {
            path: dir.join("audit.jsonl"),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends an event, chaining it to the head kept in `state` (which the
    /// caller then saves).
    pub fn append(
        &self,
        store: &StateStore,
        state: &mut RuntimeState,
        time: Timestamp,
        event: serde_json::Value,
    ) -> Result<()> {
        let line = Line {
            seq: state.audit_lines + 1,
            time,
            prev: state.audit_head.clone().unwrap_or_else(|| GENESIS.into()),
            event,
        };
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        let hash = store.keyed_hash(LABEL, &bytes);
        bytes.push(b'\n');
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| Error::io("open", &self.path, e))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_data())
            .map_err(|e| Error::io("write", &self.path, e))?;
        state.audit_lines = line.seq;
        state.audit_head = Some(hash);
        Ok(())
    }

    /// Checks the chain and that it ends where the state says.
    pub fn verify(&self, store: &StateStore, state: &RuntimeState) -> Result<AuditReport> {
        let bytes = if self.path.exists() {
            charter_keys::fsutil::read_capped(&self.path, MAX_AUDIT_BYTES, "an audit log")?
        } else {
            Vec::new()
        };
        let mut prev = GENESIS.to_owned();
        let mut n = 0u64;
        for (i, raw) in bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            let lineno = i as u64 + 1;
            let Ok(line) = serde_json::from_slice::<Line>(raw) else {
                return Ok(AuditReport {
                    lines: n,
                    problem: Some(format!("line {lineno} does not parse")),
                });
            };
            if line.seq != lineno {
                return Ok(AuditReport {
                    lines: n,
                    problem: Some(format!(
                        "line {lineno} has sequence number {} (a line was removed or reordered)",
                        line.seq
                    )),
                });
            }
            if line.prev != prev {
                return Ok(AuditReport {
                    lines: n,
                    problem: Some(format!(
                        "line {lineno} does not chain to line {} (edited or removed)",
                        lineno - 1
                    )),
                });
            }
            prev = store.keyed_hash(LABEL, raw);
            n = lineno;
        }
        if n != state.audit_lines || (n > 0 && state.audit_head.as_deref() != Some(prev.as_str())) {
            return Ok(AuditReport {
                lines: n,
                problem: Some(format!(
                    "the log has {n} line(s) but {} were written (lines lost or the last one edited)",
                    state.audit_lines
                )),
            });
        }
        Ok(AuditReport {
            lines: n,
            problem: None,
        })
    }
}
