use std::process::ExitCode;

use anyhow::Result;
use charter_updater::txn::Updater;

use super::{Ctx, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {}

impl Args {
    /// Exit status 1 when the installed tree has problems.
    pub fn run(self, ctx: &Ctx, updater: Updater) -> Result<ExitCode> {
        let r = updater.verify_installed()?;
        if ctx.json {
            print_json(&r)?;
        } else {
            for p in &r.problems {
                outln!("{:<8} {}  {}", p.kind, p.path, p.detail);
            }
            for c in &r.config_changed {
                outln!("config   {c}  changed by the operator (kept)");
            }
            outln!(
                "{} entries checked, {} bytes hashed: {}",
                r.checked,
                r.bytes_hashed,
                if r.ok() {
                    "OK".to_string()
                } else {
                    format!("{} problem(s)", r.problems.len())
                }
            );
        }
        Ok(if r.ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}
