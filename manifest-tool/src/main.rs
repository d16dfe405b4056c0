//! `charter`: the release engineer's CLI. It makes keys and trust roots,
//! packs and signs release manifests, and signs and verifies blobs. All the
//! work is done by the `charter-keys` and `charter-updater` libraries; this
//! binary parses arguments, calls them and prints.

// `outln!` and `out!` (stdout writes that return the error, so a closed
// pipe ends the command quietly), for every module.
#[macro_use]
extern crate charter_binkit;

use std::process::ExitCode;

mod cli;
mod cmd;
mod util;

impl charter_binkit::Binary for cli::Cli {
    fn run(self) -> anyhow::Result<ExitCode> {
        cmd::run(self).map(|()| ExitCode::SUCCESS)
    }
}

fn main() -> ExitCode {
    charter_binkit::main::<cli::Cli>()
}
