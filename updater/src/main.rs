//! `charter-update`: the host-side updater. Parses arguments, opens the
//! updater (which takes the state lock and recovers any interrupted
//! transaction), runs one command and prints its result. One module per
//! subcommand in `cmd/` (part of this binary, not of the library).

// `outln!` and `out!` (stdout writes that return the error, so a closed
// pipe ends the command quietly), for every module.
#[macro_use]
extern crate charter_binkit;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

mod cmd;

/// Fetch, verify and install signed releases; roll back on failure.
#[derive(Debug, Parser)]
#[command(name = "charter-update", version, about, max_term_width = 100)]
struct Cli {
    /// Config file (default: $CHARTER_CONFIG, then /etc/charter/charter.toml).
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
}

fn main() -> ExitCode {
    charter_binkit::main::<Cli>()
}
