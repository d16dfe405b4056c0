use std::process::ExitCode;

use anyhow::Result;
use charter_updater::txn::Updater;

use super::Ctx;
use super::apply::report_outcome;

#[derive(Debug, clap::Args)]
pub struct Args {}

impl Args {
    pub fn run(self, ctx: &Ctx, updater: Updater) -> Result<ExitCode> {
        report_outcome(&updater.auto()?, ctx.json)
    }
}
