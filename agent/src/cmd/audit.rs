use std::process::ExitCode;

use anyhow::Result;
use charter_agent::config::Config;
use charter_agent::daemon::Agent;
use charter_keys::SystemClock;
use clap::Subcommand;

use super::{Ctx, print_json};

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Check the audit log's hash chain against the authenticated state.
    Verify,
}

impl Cmd {
    pub fn run(self, ctx: &Ctx, cfg: Config) -> Result<ExitCode> {
        match self {
            Cmd::Verify => {
                let agent = Agent::load(cfg, Box::new(SystemClock))?;
                let r = agent.verify_audit()?;
                if ctx.json {
                    print_json(&serde_json::to_value(&r)?)?;
                } else {
                    match &r.problem {
                        None => outln!("audit log OK: {} line(s)", r.lines),
                        Some(p) => outln!("audit log NOT OK after {} line(s): {p}", r.lines),
                    }
                }
                Ok(if r.problem.is_none() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            }
        }
    }
}
