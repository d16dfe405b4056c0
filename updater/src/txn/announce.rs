//! Update events for the `[notify]` webhook (docs/SPEC.md §11.13): what
//! each outcome announces. Delivery is best effort: a failure is noted,
//! never returned.

use charter_keys::Clock;
use semver::Version;

use super::ApplyOutcome;
use crate::Error;
use crate::config::notify::EventKind;
use crate::host::state::StateDir;
use crate::net::notify::{Event, Notifier};

/// Sends the events of one host.
pub(crate) struct Announcer<'a> {
    pub(crate) notifier: Option<&'a Notifier>,
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

    fn running(&self) -> Option<Version> {
        self.state.state().ok().and_then(|s| s.current)
    }

    /// A `failed` event for an update that stopped before installing.
    pub(crate) fn failure(&self, release: Option<Version>, e: &Error) {
        self.announce(
            EventKind::Failed,
            release,
            self.running(),
            Some(e.to_string()),
        );
    }

    /// The event an outcome makes.
    pub(crate) fn outcome(&self, o: &ApplyOutcome) {
        match o {
            ApplyOutcome::UpToDate { .. } => {}
            ApplyOutcome::Installed { to, .. } => self.announce(
                EventKind::Installed,
                Some(to.clone()),
                Some(to.clone()),
                None,
            ),
            ApplyOutcome::Deferred {
                candidate, reason, ..
            } => self.announce(
                EventKind::Deferred,
                Some(candidate.clone()),
                self.running(),
                Some(reason.clone()),
            ),
            ApplyOutcome::RolledBack { failed, to, reason } => self.announce(
                EventKind::RolledBack,
                Some(failed.clone()),
                to.clone(),
                Some(reason.clone()),
            ),
        }
    }
}
