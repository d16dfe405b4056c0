//! `charter-agent`: the license agent. `run` is the daemon; the other
//! commands are for scripts and operators. One module per subcommand in
//! `cmd/` (part of this binary, not of the library).

// `outln!` and `out!` (stdout writes that return the error, so a closed
// pipe ends the command quietly), for every module.
#[macro_use]
extern crate charter_binkit;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

mod cmd;

/// Enforce signed licenses on this host.
#[derive(Debug, Parser)]
#[command(name = "charter-agent", version, about, max_term_width = 100)]
struct Cli {
    /// Config file (default: $CHARTER_AGENT_CONFIG, then /etc/charter/agent.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print results as JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: cmd::Cmd,
}

impl charter_binkit::Binary for Cli {
    fn run(self) -> anyhow::Result<ExitCode> {
        cmd::run(self)
    }

    /// `check-feature` and `check-limit` exit 2 on an error (1 means off,
    /// or over the limit).
    fn error_status(&self) -> u8 {
        if matches!(
            self.command,
            cmd::Cmd::CheckFeature(_) | cmd::Cmd::CheckLimit(_)
        ) {
            2
        } else {
            1
        }
    }
}

fn main() -> ExitCode {
    charter_binkit::main::<Cli>()
}
