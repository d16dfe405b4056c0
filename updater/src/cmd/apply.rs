use std::process::ExitCode;

use anyhow::Result;
use charter_updater::txn::{ApplyOptions, ApplyOutcome, Target, Updater};

use super::{Ctx, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Install this version instead of the channel's.
    #[arg(long)]
    version: Option<semver::Version>,
    /// Install even a version that failed here before.
    #[arg(long)]
    retry_bad: bool,
}

impl Args {
    pub fn run(self, ctx: &Ctx, updater: Updater) -> Result<ExitCode> {
        let target = self.version.map_or(Target::Channel, Target::Version);
        let options = ApplyOptions {
            retry_bad: self.retry_bad,
        };
        report_outcome(&updater.apply(&target, &options)?, ctx.json)
    }
}

/// Prints how an `apply` or `auto` ended; exit status 3 when the new
/// release was rolled back.
pub(super) fn report_outcome(outcome: &ApplyOutcome, json: bool) -> Result<ExitCode> {
    if json {
        print_json(outcome)?;
    }
    Ok(match outcome {
        ApplyOutcome::UpToDate { version } => {
            if !json {
                outln!("{version} is already installed");
            }
            ExitCode::SUCCESS
        }
        ApplyOutcome::Installed { from, to } => {
            if !json {
                let from = from.as_ref().map_or("nothing".into(), ToString::to_string);
                outln!("installed {to} (was {from})");
            }
            ExitCode::SUCCESS
        }
        ApplyOutcome::Deferred {
            candidate,
            reason,
            until,
        } => {
            if !json {
                match until {
                    Some(t) => outln!("{candidate} is not installed now: {reason}; not before {t}"),
                    None => outln!("{candidate} is not installed now: {reason}"),
                }
            }
            ExitCode::SUCCESS
        }
        ApplyOutcome::RolledBack { failed, to, reason } => {
            let to = to.as_ref().map_or("nothing".into(), ToString::to_string);
            eprintln!("charter-update: error: {failed} was rolled back to {to}: {reason}");
            ExitCode::from(3)
        }
    })
}
