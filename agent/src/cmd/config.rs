use std::process::ExitCode;

use anyhow::Result;
use charter_keys::SystemClock;
use clap::Subcommand;

use super::{Ctx, print_json};

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Parse the config, decrypt its secrets, load the trust root, compute
    /// the fingerprint, load and verify the license, fetch and verify the
    /// status document: each check ok or failed; exit status 1 if any
    /// failed. Writes nothing.
    Test,
}

impl Cmd {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        match self {
            Cmd::Test => {
                let r = charter_agent::selftest::run(&ctx.config_path(), Box::new(SystemClock));
                if ctx.json {
                    print_json(&serde_json::to_value(&r)?)?;
                } else {
                    out!("{}", r.to_text());
                }
                Ok(if r.ok() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            }
        }
    }
}
