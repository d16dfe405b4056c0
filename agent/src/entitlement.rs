//! The license as another program on the host sees it (the updater
//! deciding whether a release is entitled, `charter-agent config test`):
//! evaluated from the agent's files exactly as the agent evaluates them,
//! and read-only by construction. [`read`] opens the runtime state through
//! a [`StateReader`], which cannot save it or create the host secret, and
//! keeps no handle to write through: an [`Entitlement`] is the evaluation
//! and the verified license, nothing more.

use charter_keys::Clock;
use jiff::Timestamp;

use crate::config::Config;
use crate::error::Result;
use crate::eval::{Evaluation, Inputs, State, entitled, evaluate};
use crate::fingerprint::{DmiRead, HostIds};
use crate::installed::{held_status, load_root, read_license};
use crate::license::{License, VerifiedLicense};
use crate::state::StateReader;

/// What the license allows on this host now: its evaluation, and the
/// license when one verified.
///
/// Its fields are private: [`read`] is the only way to get one.
///
/// ```compile_fail
/// use charter_agent::entitlement::Entitlement;
/// fn forge(evaluation: charter_agent::eval::Evaluation) -> Entitlement {
///     Entitlement { evaluation, license: None }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Entitlement {
    evaluation: Evaluation,
    license: Option<VerifiedLicense>,
}

/// Evaluates the license from the files `cfg` names (the state in
/// `paths.state_dir`, the trust root, the license file) at `clock`'s now,
/// writing nothing. The state's host secret must exist (the agent creates
/// it on its first start). `dmi` says how this host's DMI product UUID is
/// learnt: [`DmiRead::Direct`] for root, which can read
/// `fingerprint.dmi_product_uuid` itself.
pub fn read(cfg: &Config, clock: &dyn Clock, dmi: DmiRead) -> Result<Entitlement> {
    let state = StateReader::open_existing(&cfg.paths.state_dir)?;
    let root = load_root(cfg)?;
    let host = HostIds::read(&cfg.product, &cfg.fingerprint, dmi)?;
    let loaded = state.load()?;
    let status = held_status(&loaded, &root);
    let license = read_license(&cfg.paths.license, &root);
    let evaluation = evaluate(&Inputs {
        license: license.as_ref().map(|l| l.as_ref().map_err(Clone::clone)),
        status: status.as_ref(),
        product: &cfg.product,
        host: &host,
        runtime: &loaded,
        now: clock.now(),
        clock_tolerance: cfg.clock.tolerance(),
    });
    Ok(Entitlement {
        evaluation,
        license: license.and_then(std::result::Result::ok),
    })
}

impl Entitlement {
    /// The evaluation (state, reasons, features, limits, dates).
    pub fn evaluation(&self) -> &Evaluation {
        &self.evaluation
    }

    /// The license state.
    pub fn state(&self) -> State {
        self.evaluation.state
    }

    /// Why the state is not `active` (empty when it is).
    pub fn reasons(&self) -> &[String] {
        &self.evaluation.reasons
    }

    /// The verified license, if one is installed and verifies.
    pub fn license(&self) -> Option<&License> {
        self.license.as_ref().map(VerifiedLicense::license)
    }

    /// Whether a release dated `released_at` may be installed
    /// (docs/SPEC.md §10.6, [`crate::eval::entitled`]); without a verified
    /// license, never, for the evaluation's reasons.
    pub fn admits(
        &self,
        released_at: Timestamp,
        security_fix: bool,
    ) -> std::result::Result<(), String> {
        let Some(license) = self.license() else {
            return Err(self.evaluation.reasons.join("; "));
        };
        entitled(&self.evaluation, license, released_at, security_fix)
    }
}
