use std::process::ExitCode;

use anyhow::Result;
use charter_updater::txn::Updater;

use super::{Ctx, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {}

impl Args {
    pub fn run(self, ctx: &Ctx, updater: Updater) -> Result<ExitCode> {
        let b = updater.backups();
        if ctx.json {
            print_json(&b)?;
        } else if b.is_empty() {
            outln!("no backups");
        } else {
            for r in b {
                outln!(
                    "{} (left for {} at {}, transaction {}):",
                    r.backup.release,
                    r.backup.to,
                    r.backup.created,
                    r.backup.txn
                );
                for (f, same) in r.backup.files.iter().zip(&r.unchanged) {
                    outln!(
                        "  {:<7} {} sha256 {} {}",
                        f.kind,
                        f.path.display(),
                        f.sha256,
                        if *same { "unchanged" } else { "CHANGED since" }
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
