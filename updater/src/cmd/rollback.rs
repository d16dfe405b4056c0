use std::process::ExitCode;

use anyhow::Result;
use charter_updater::txn::{ApplyOutcome, Updater};

use super::{Ctx, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {}

impl Args {
    pub fn run(self, ctx: &Ctx, updater: Updater) -> Result<ExitCode> {
        let outcome = updater.rollback()?;
        if ctx.json {
            print_json(&outcome)?;
        } else if let ApplyOutcome::RolledBack { failed, to, .. } = &outcome {
            let to = to.as_ref().map_or("nothing".into(), ToString::to_string);
            outln!("rolled back from {failed} to {to}");
        }
        Ok(ExitCode::SUCCESS)
    }
}
