use std::process::ExitCode;

use anyhow::Result;
use charter_agent::config::Config;

use super::{Ctx, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {}

impl Args {
    /// Prints the build and, with a config that loads, the trust root and
    /// the installed release; a config that does not load is reported, not
    /// an error.
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let cfg = Config::load(&ctx.config_path());
        let mut v = charter_agent::version_json(cfg.as_ref().ok());
        if let Err(e) = &cfg {
            v["config_error"] = serde_json::json!(e.to_string());
        }
        if ctx.json {
            print_json(&v)?;
        } else {
            let b = &v["build"];
            outln!(
                "charter-agent {} ({} {}, {})",
                b["version"].as_str().unwrap_or("?"),
                b["commit"].as_str().unwrap_or("?"),
                b["build_date"].as_str().unwrap_or("?"),
                b["target"].as_str().unwrap_or("?")
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
