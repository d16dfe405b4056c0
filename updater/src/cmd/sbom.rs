use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use charter_updater::txn::Updater;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Another kept release's SBOM.
    #[arg(long)]
    version: Option<semver::Version>,
}

impl Args {
    pub fn run(self, updater: Updater) -> Result<ExitCode> {
        let bytes = updater.sbom(self.version.as_ref())?;
        std::io::stdout().write_all(&bytes)?;
        Ok(ExitCode::SUCCESS)
    }
}
