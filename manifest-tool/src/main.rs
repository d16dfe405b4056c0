//! `charter`: the release engineer's CLI. It makes keys and trust roots,
//! packs and signs release manifests, and signs and verifies blobs. All the
//! work is done by the `charter-keys` and `charter-updater` libraries; this
//! binary parses arguments, calls them and prints.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

/// `println!` that returns the write error instead of panicking, so a
/// closed pipe (`... | head`) ends the command quietly: `main` treats
/// `BrokenPipe` as success.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?
    }};
}

/// `print!` likewise.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($arg)*)?
    }};
}

mod cli;
mod cmd;
mod util;

fn main() -> ExitCode {
    if let Some(code) = charter_agent::generate_docs(cli::Cli::command) {
        return code;
    }
    let args = cli::Cli::parse();
    match cmd::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A closed pipe (`charter ... | head`) is not a failure.
            if err
                .chain()
                .filter_map(|c| c.downcast_ref::<std::io::Error>())
                .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(std::io::stderr(), "charter: error: {err:#}");
            ExitCode::from(1)
        }
    }
}
