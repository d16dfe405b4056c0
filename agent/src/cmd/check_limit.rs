use std::process::ExitCode;

use anyhow::{Result, bail};
use charter_agent::config::Config;

use super::{Ctx, ask, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Limit name.
    name: String,
    /// Value to check.
    value: i64,
}

impl Args {
    pub fn run(self, ctx: &Ctx, cfg: Config) -> Result<ExitCode> {
        let Args { name, value } = self;
        let (code, v) = ask(
            &cfg.paths.socket,
            "GET",
            &format!("/v1/limits/{name}?value={value}"),
        )?;
        if code != 200 {
            bail!(
                "the agent answered {code}: {}",
                v["error"].as_str().unwrap_or("")
            );
        }
        if ctx.json {
            print_json(&v)?;
        } else if v["allowed"] != true {
            eprintln!("{}", v["reason"].as_str().unwrap_or("not allowed"));
        }
        Ok(if v["allowed"] == true {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}
