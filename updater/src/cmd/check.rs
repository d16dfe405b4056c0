use std::process::ExitCode;

use anyhow::Result;
use charter_updater::txn::{Target, Updater};

use super::{Ctx, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Check a specific version instead of the channel's.
    #[arg(long)]
    version: Option<semver::Version>,
}

impl Args {
    pub fn run(self, ctx: &Ctx, updater: Updater) -> Result<ExitCode> {
        let target = self.version.map_or(Target::Channel, Target::Version);
        let r = updater.check(&target)?;
        if ctx.json {
            print_json(&r)?;
        } else {
            let cur = r
                .current
                .as_ref()
                .map_or("nothing".into(), ToString::to_string);
            outln!("installed: {cur}; offered: {}; {}", r.candidate, r.reason);
        }
        Ok(ExitCode::SUCCESS)
    }
}
