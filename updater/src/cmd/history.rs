use std::process::ExitCode;

use anyhow::Result;
use charter_updater::txn::Updater;

use super::{Ctx, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {}

impl Args {
    pub fn run(self, ctx: &Ctx, updater: Updater) -> Result<ExitCode> {
        let h = updater.history_entries()?;
        if ctx.json {
            print_json(&h)?;
        } else {
            for e in h {
                let v = |x: &Option<semver::Version>| {
                    x.as_ref().map_or("-".into(), ToString::to_string)
                };
                outln!(
                    "{}  {:<8} {} -> {}  {}{}",
                    e.time,
                    e.op,
                    v(&e.from),
                    v(&e.to),
                    e.result,
                    e.reason.map(|r| format!(" ({r})")).unwrap_or_default()
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
