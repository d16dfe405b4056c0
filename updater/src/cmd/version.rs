use std::process::ExitCode;

use anyhow::Result;
use charter_updater::config::Config;

use super::{Ctx, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {}

impl Args {
    /// Prints the build and, with a config that loads, the trust root and
    /// the installed release; a config that does not load is reported, not
    /// an error.
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let cfg = Config::load(&ctx.config_path());
        let mut v = charter_updater::selftest::inventory(cfg.as_ref().ok());
        if let Err(e) = &cfg {
            v["config_error"] = serde_json::json!(format!("{e:#}"));
        }
        if ctx.json {
            print_json(&v)?;
        } else {
            let b = &v["build"];
            outln!(
                "charter-update {} ({} {}, {})",
                b["version"].as_str().unwrap_or("?"),
                b["commit"].as_str().unwrap_or("?"),
                b["build_date"].as_str().unwrap_or("?"),
                b["target"].as_str().unwrap_or("?")
            );
            if let Some(r) = v["trust_root"]["version"].as_u64() {
                outln!("trust root version {r}");
            }
            if let Some(c) = v["installed"]["current"].as_str() {
                outln!(
                    "installed {} {c}",
                    v["installed"]["product"].as_str().unwrap_or("?")
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
