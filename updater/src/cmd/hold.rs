use std::process::ExitCode;

use anyhow::{Result, bail};
use charter_updater::txn::Updater;
use jiff::Timestamp;

use super::{Ctx, print_json};

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("what").required(true))]
pub struct Args {
    /// Until when: an RFC 3339 time or a duration from now (`4h`, `2d`).
    #[arg(long, group = "what")]
    until: Option<String>,
    /// Why (one line; shown by `status`, `auto` and the agent's API).
    #[arg(long, default_value = "", requires = "until")]
    reason: String,
    /// Lift the hold.
    #[arg(long, group = "what")]
    clear: bool,
}

impl Args {
    pub fn run(self, ctx: &Ctx, updater: Updater) -> Result<ExitCode> {
        if self.clear {
            let old = updater.clear_hold()?;
            if ctx.json {
                print_json(&serde_json::json!({ "cleared": old }))?;
            } else if old.is_some() {
                outln!("hold cleared: automatic installs may go on");
            } else {
                outln!("no hold was set");
            }
            return Ok(ExitCode::SUCCESS);
        }
        let Some(text) = self.until else {
            bail!("pass --until TIME or --clear");
        };
        let until = match text.parse::<Timestamp>() {
            Ok(t) => t,
            Err(_) => {
                let d = charter_release::duration::parse_duration(&text).map_err(|e| {
                    anyhow::anyhow!(
                        "--until `{text}` is neither an RFC 3339 time nor a duration: {e}"
                    )
                })?;
                Timestamp::from_second(updater.now().as_second())?.checked_add(d)?
            }
        };
        let hold = updater.hold(until, &self.reason)?;
        if ctx.json {
            print_json(&hold)?;
        } else {
            outln!(
                "{}; `charter-update apply` still installs by hand",
                hold.describe(updater.now())
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
