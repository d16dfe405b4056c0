//! The service steps of a transaction (docs/SPEC.md §11.5): restarting
//! the service, the release's scripts, and the health check.

use std::path::Path;
use std::time::Duration;

use charter_release::manifest::Manifest;
use semver::Version;

use super::Ctx;
use crate::Result;
use crate::config::Config;
use crate::host::run::{self, RunAs};

/// What the service steps need: the config's `[service]`, `[health]`,
/// product and install root, and where progress is said.
pub(crate) struct Service<'a> {
    cfg: &'a Config,
    notes: &'a dyn Fn(&str),
}

impl<'a> Service<'a> {
    /// The service of the transaction `cx` belongs to.
    pub(crate) fn of(cx: &Ctx<'a>) -> Self {
        Service {
            cfg: cx.cfg,
            notes: cx.notes,
        }
    }

    /// `service.restart`, if configured, within its timeout.
    pub(crate) fn restart(&self) -> Result<()> {
        let Some(argv) = &self.cfg.service.restart else {
            return Ok(());
        };
        let timeout = Duration::from_secs(u64::from(self.cfg.service.restart_timeout_secs));
        run::run_command(
            "service restart",
            argv,
            &self.cfg.paths.install_root,
            &[],
            None,
            timeout,
        )
    }

    /// The health check of release `v` in `dir`: the config's
    /// `[health]`, else the manifest's; none configured passes.
    pub(crate) fn health(&self, m: &Manifest, dir: &Path) -> Result<()> {
        let check = self.cfg.health.as_ref().or(m.health_check.as_ref());
        match check {
            Some(c) => run::health_check(c, dir, self.script_user()?),
            None => {
                (self.notes)("no health check configured: the release is taken as healthy");
                Ok(())
            }
        }
    }

    fn script_user(&self) -> Result<Option<RunAs>> {
        self.cfg
            .service
            .scripts_user
            .as_deref()
            .map(run::lookup_user)
            .transpose()
    }

    /// Runs the release's `script` (a path in `dir`) for `stage`, with
    /// the fixed environment and `service.script_timeout_secs`.
    pub(crate) fn run_script(
        &self,
        stage: &str,
        script: &str,
        dir: &Path,
        from: Option<&Version>,
        to: &Version,
    ) -> Result<()> {
        (self.notes)(&format!("running {stage} script {script}"));
        let env = [
            ("CHARTER_STAGE", stage.to_owned()),
            ("CHARTER_PRODUCT", self.cfg.product.clone()),
            ("CHARTER_VERSION", to.to_string()),
            (
                "CHARTER_PREVIOUS_VERSION",
                from.map(ToString::to_string).unwrap_or_default(),
            ),
            ("CHARTER_RELEASE_DIR", dir.to_string_lossy().into_owned()),
            (
                "CHARTER_INSTALL_ROOT",
                self.cfg.paths.install_root.to_string_lossy().into_owned(),
            ),
        ];
        let timeout = Duration::from_secs(u64::from(self.cfg.service.script_timeout_secs));
        let argv = [dir.join(script).to_string_lossy().into_owned()];
        run::run_command(
            &format!("{stage} script {script}"),
            &argv,
            dir,
            &env,
            self.script_user()?,
            timeout,
        )
    }
}
