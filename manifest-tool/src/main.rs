//! `charter`: the release engineer's CLI. It makes keys and trust roots,
//! packs and signs release manifests, and signs and verifies blobs. All the
//! work is done by the `charter-keys` and `charter-updater` libraries; this
//! binary parses arguments, calls them and prints.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

mod cli;
mod cmd;
mod util;

fn main() -> ExitCode {
    if let Some(code) = generate() {
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

/// Hidden `--generate KIND DIR` for packaging/build.sh: man pages (one per
/// subcommand) or a completion script (KIND = bash, zsh, fish, ...), made
/// from the clap definitions and written into DIR. Looked for before the
/// real parse, which requires a subcommand.
fn generate() -> Option<ExitCode> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_none_or(|a| a != "--generate") {
        return None;
    }
    let made = match &args[..] {
        [_, _, kind, dir] if kind == "man" => clap_mangen::generate_to(cli::Cli::command(), dir),
        [_, _, kind, dir] => match kind.to_string_lossy().parse::<clap_complete::Shell>() {
            Ok(shell) => {
                clap_complete::generate_to(shell, &mut cli::Cli::command(), "charter", dir)
                    .map(drop)
            }
            Err(e) => Err(std::io::Error::other(e)),
        },
        _ => Err(std::io::Error::other(
            "usage: --generate man|bash|zsh|fish|elvish|powershell DIR",
        )),
    };
    Some(match made {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("charter: error: --generate: {e}");
            ExitCode::from(2)
        }
    })
}
