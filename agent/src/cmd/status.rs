use std::process::ExitCode;

use anyhow::{Result, bail};
use charter_agent::config::Config;

use super::{Ctx, ask, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {}

impl Args {
    pub fn run(self, ctx: &Ctx, cfg: Config) -> Result<ExitCode> {
        let (code, v) = ask(&cfg.paths.socket, "GET", "/v1/license")?;
        if code != 200 {
            bail!(
                "the agent answered {code}: {}",
                v["error"].as_str().unwrap_or("")
            );
        }
        if ctx.json {
            print_json(&v)?;
        } else {
            outln!("state:     {}", v["state"].as_str().unwrap_or("?"));
            for r in v["reasons"].as_array().into_iter().flatten() {
                outln!("reason:    {}", r.as_str().unwrap_or(""));
            }
            for w in v["warnings"].as_array().into_iter().flatten() {
                outln!("warning:   {}", w.as_str().unwrap_or(""));
            }
            for w in v["config_warnings"].as_array().into_iter().flatten() {
                outln!("config:    {}", w.as_str().unwrap_or(""));
            }
            if let Some(id) = v["license_id"].as_str() {
                outln!("license:   {id} ({})", v["customer"].as_str().unwrap_or(""));
                outln!("expires:   {}", v["expires_at"].as_str().unwrap_or(""));
            }
            let features: Vec<&str> = v["features"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str())
                .collect();
            outln!(
                "features:  {}",
                if features.is_empty() {
                    "none".into()
                } else {
                    features.join(", ")
                }
            );
            if let Some(l) = v["limits"].as_object() {
                for (k, n) in l {
                    outln!("limit:     {k} = {n}");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
