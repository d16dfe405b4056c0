//! The agent taking a signed status document (docs/SPEC.md §10.2,
//! Acceptance): the checks a status must pass, re-establishing a tampered
//! or deleted state from a fresh one, and what a fetch needs so that it can
//! run without the agent's lock.

use std::time::Duration;

use jiff::SignedDuration;
use serde_json::json;

use super::Agent;
use crate::error::{Error, Result};
use crate::license::VerifiedStatus;
use crate::state::{Loaded, RuntimeState};
use crate::status_fetch::StatusRequest;

impl Agent {
    /// Takes a signed status document (docs/SPEC.md §10.2, Acceptance):
    /// verified, for this license, not issued before it, not older than
    /// the one held, not from the future. A new state waiting for its
    /// first status, or a tampered or deleted one, takes only a fresh one
    /// (issued within a day, or within the license's offline allowance),
    /// which also re-establishes a tampered or deleted state.
    pub fn accept_status(&mut self, bytes: &[u8]) -> Result<()> {
        let st = VerifiedStatus::verify(bytes, &self.root)?;
        let Some(lic) = self.license().map(|l| l.license().clone()) else {
            return Err(Error::Invalid {
                what: "license status",
                reason: "no license is installed".into(),
            });
        };
        if st.status().license_id != lic.license_id {
            self.record(json!({"kind": "status", "action": "refused", "reason": "for another license", "license_id": st.status().license_id}))?;
            return Err(Error::Invalid {
                what: "license status",
                reason: format!(
                    "it is for license `{}`, this host has `{}`",
                    st.status().license_id,
                    lic.license_id
                ),
            });
        }
        // The status server and the license issuer are different machines
        // with their own clocks: old news means older than the license by
        // more than the clock tolerance.
        let tolerance = self.cfg.clock.tolerance();
        if st.status().issued_at + tolerance < lic.issued_at {
            return Err(Error::Invalid {
                what: "license status",
                reason: format!(
                    "issued at {}, before the installed license (issued at {})",
                    st.status().issued_at,
                    lic.issued_at
                ),
            });
        }
        if let Some(held) = &self.status
            && held.status().issued_at > st.status().issued_at
        {
            return Err(Error::Invalid {
                what: "license status",
                reason: "older than the status already held".into(),
            });
        }
        let now = self.clock.now();
        if st.status().issued_at > now + tolerance {
            return Err(Error::Invalid {
                what: "license status",
                reason: format!(
                    "issued at {}, in the future of this host's clock ({now})",
                    st.status().issued_at
                ),
            });
        }
        let freshness = SignedDuration::from_secs(
            i64::try_from(lic.max_offline_secs.unwrap_or(86_400).min(86_400)).unwrap_or(86_400),
        );
        let fresh = st.status().issued_at + freshness >= now;
        let mut rt = match (&self.loaded, fresh) {
            (Loaded::Tampered(_) | Loaded::Deleted, true) => {
                let (why, detail) = match &self.loaded {
                    Loaded::Tampered(detail) => ("tampered", detail.clone()),
                    _ => (
                        "deleted",
                        format!("{} was deleted", self.store.state_path().display()),
                    ),
                };
                self.notes.push(format!(
                    "a fresh signed status re-established the license state ({why})"
                ));
                // The serial mark comes from the status (`current_serial`),
                // not from the installed license, which may be the replay.
                let mut rt = RuntimeState {
                    time_floor: now.max(st.status().issued_at),
                    ..RuntimeState::default()
                };
                self.start_over(&mut rt, why, detail, now)?;
                rt
            }
            (Loaded::Tampered(_) | Loaded::Deleted, false) => {
                return Err(Error::Invalid {
                    what: "license status",
                    reason: format!(
                        "issued at {}: not fresh enough to re-establish a tampered state",
                        st.status().issued_at
                    ),
                });
            }
            // A new or reset state takes its first status only fresh too:
            // an old `active` status kept from before a revocation must
            // not stand in for the vendor's current word (§10.4).
            (Loaded::Fresh, false) => return Err(not_fresh_for_new_state(&st)),
            (Loaded::Ok(rt), false) if rt.awaiting_first_status => {
                return Err(not_fresh_for_new_state(&st));
            }
            _ => self.runtime_for_update()?.unwrap_or_default(),
        };
        if let Some(cur) = st.status().current_serial {
            rt.record_serial(&lic.license_id, cur, now);
        }
        rt.awaiting_first_status = false;
        rt.last_status = Some(String::from_utf8_lossy(bytes).into_owned());
        rt.last_status_fetch = Some(now);
        self.audit.append(&self.store, &mut rt, now, json!({"kind": "status", "action": "accepted", "state": st.status().state, "issued_at": st.status().issued_at}))?;
        self.store.save(&rt)?;
        self.loaded = Loaded::Ok(rt);
        self.status = Some(st);
        self.evaluate_and_record("status")
    }

    /// Fetches the status document from the license's status URL and takes
    /// it. Returns false when the license has no status URL. This holds
    /// `&mut self` for the whole fetch: the daemon, once it serves, uses
    /// [`Agent::status_request`] and fetches without the agent's lock
    /// (the API's `Shared::refresh_status`).
    pub fn refresh_status(&mut self) -> Result<bool> {
        let Some(req) = self.status_request() else {
            return Ok(false);
        };
        let bytes = req.fetch()?;
        self.accept_status(&bytes)?;
        Ok(true)
    }

    /// What a status fetch needs (the license's status URL, the timeout,
    /// the token), or None when the license has no status URL.
    pub fn status_request(&self) -> Option<StatusRequest> {
        let url = self.license()?.license().status_url.clone()?;
        Some(StatusRequest::new(
            url,
            Duration::from_secs(self.cfg.status.timeout_secs),
            self.cfg
                .status
                .token
                .as_ref()
                .and_then(|t| t.expose())
                .map(|t| zeroize::Zeroizing::new(t.to_owned())),
        ))
    }
}

fn not_fresh_for_new_state(st: &VerifiedStatus) -> Error {
    Error::Invalid {
        what: "license status",
        reason: format!(
            "issued at {}: not fresh enough to be the first status of a new or reset license state",
            st.status().issued_at
        ),
    }
}
