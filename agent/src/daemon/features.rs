//! Enforcing the features in force when they change (docs/SPEC.md §10.8):
//! the features file is rewritten and each changed feature's `on` or `off`
//! hook is queued to a thread of its own, so a slow hook never holds the
//! agent.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use super::Agent;
use crate::error::{Error, Result};
use crate::hooks::{HookJob, HookRunner};

impl Agent {
    pub(super) fn enforce(&mut self, before: &BTreeSet<String>) -> Result<()> {
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
}
