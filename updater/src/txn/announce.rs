//! Update events for the `[notify]` webhook (docs/SPEC.md §11.13) and
//! rollout reports for `[rollout] report_url` (§9.8): what each outcome
//! announces. Delivery is best effort: a failure is noted, never returned.

use charter_keys::Clock;
use semver::Version;

use super::ApplyOutcome;
use crate::Error;
use crate::config::Config;
use crate::config::notify::EventKind;
use crate::host::state::StateDir;
use crate::net::notify::{Event, Notifier};
use crate::net::report::Reporter;
use charter_release::report::{MAX_REASON_BYTES, Outcome, Report, host_tag, truncate};

/// Sends the events of one host.
pub(crate) struct Announcer<'a> {
    pub(crate) notifier: Option<&'a Notifier>,
    pub(crate) reporter: Option<&'a Reporter>,
    pub(crate) cfg: &'a Config,
    pub(crate) product: &'a str,
    pub(crate) state: &'a StateDir,
    pub(crate) clock: &'a dyn Clock,
    pub(crate) notes: &'a dyn Fn(&str),
}

impl Announcer<'_> {
    /// Sends an event to the webhook, if one is set and wants it.
    fn announce(
        &self,
        kind: EventKind,
        release: Option<Version>,
        running: Option<Version>,
        reason: Option<String>,
    ) {
        let Some(n) = self.notifier else { return };
        if !n.wants(kind) {
            return;
        }
        let ev = Event::new(
            kind,
            self.product,
            release,
            running,
            reason,
            self.clock.now(),
        );
        if let Err(e) = n.send(&ev) {
            (self.notes)(&format!("the {} event was not delivered: {e}", kind.name()));
        }
    }

    /// Sends a rollout report, if `report_url` is set.
    fn report(
        &self,
        outcome: Outcome,
        version: Version,
        from: Option<Version>,
        reason: Option<&str>,
    ) {
        let Some(r) = self.reporter else { return };
        let made = (|| -> crate::Result<Report> {
            let position = crate::policy::rollout::host_position(self.cfg, self.state)?.position;
            let (id, _) = crate::policy::rollout::host_id(self.cfg, self.state)?;
            // The wave of this host's position in the plan of the pointer
            // that offered the version (none without a plan, or for a
            // version the pointer does not name).
            let wave = self
                .state
                .channel_cache()
                .ok()
                .flatten()
                .and_then(|c| c.pointer())
                .filter(|p| p.version == version)
                .and_then(|p| p.rollout)
                .map(|plan| plan.turn(position).0 as u32);
            let mut rid = [0u8; 16];
            let _ = getrandom::fill(&mut rid);
            Ok(Report {
                product: self.product.to_owned(),
                version,
                from,
                outcome,
                reason: reason.map(|s| truncate(s, MAX_REASON_BYTES)),
                position,
                wave,
                host: host_tag(self.product, &id),
                license: r.license().to_owned(),
                time: self.clock.now(),
                id: hex::encode(rid),
            })
        })();
        let sent = made.map_err(|e| e.to_string()).and_then(|rep| r.send(rep));
        if let Err(e) = sent {
            (self.notes)(&format!(
                "the {} rollout report was not delivered: {e}",
                outcome.name()
            ));
        }
    }

    fn running(&self) -> Option<Version> {
        self.state.state().ok().and_then(|s| s.current)
    }

    /// A `failed` event for an update that stopped before installing.
    pub(crate) fn failure(&self, release: Option<Version>, e: &Error) {
        let reason = e.to_string();
        if let Some(v) = &release {
            self.report(Outcome::Failed, v.clone(), self.running(), Some(&reason));
        }
        self.announce(EventKind::Failed, release, self.running(), Some(reason));
    }

    /// The event an outcome makes.
    pub(crate) fn outcome(&self, o: &ApplyOutcome) {
        match o {
            ApplyOutcome::UpToDate { .. } => {}
            ApplyOutcome::Installed { from, to } => {
                self.report(Outcome::Healthy, to.clone(), from.clone(), None);
                self.announce(
                    EventKind::Installed,
                    Some(to.clone()),
                    Some(to.clone()),
                    None,
                );
            }
            ApplyOutcome::Deferred {
                candidate, reason, ..
            } => self.announce(
                EventKind::Deferred,
                Some(candidate.clone()),
                self.running(),
                Some(reason.clone()),
            ),
            ApplyOutcome::RolledBack { failed, to, reason } => {
                self.report(
                    Outcome::RolledBack,
                    failed.clone(),
                    to.clone(),
                    Some(reason),
                );
                self.announce(
                    EventKind::RolledBack,
                    Some(failed.clone()),
                    to.clone(),
                    Some(reason.clone()),
                );
            }
        }
    }
}
