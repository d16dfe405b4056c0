use std::process::ExitCode;

use anyhow::{Result, bail};
use charter_agent::config::Config;

use super::{Ctx, ask, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Feature name.
    name: String,
}

impl Args {
    pub fn run(self, ctx: &Ctx, cfg: Config) -> Result<ExitCode> {
        let name = self.name;
        let (code, v) = ask(&cfg.paths.socket, "GET", &format!("/v1/features/{name}"))?;
        if code != 200 {
            bail!(
                "the agent answered {code}: {}",
                v["error"].as_str().unwrap_or("")
            );
        }
        if ctx.json {
            print_json(&v)?;
        }
        Ok(if v["enabled"] == true {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}
