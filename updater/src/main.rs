//! `charter-update`: the host-side updater. Skeleton: the transaction lands
//! with the updater issue.

use clap::Parser;

/// Fetch, verify and install signed releases (work in progress).
#[derive(Debug, Parser)]
#[command(name = "charter-update", version, about)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    eprintln!("charter-update: the update transaction is not implemented yet");
    std::process::exit(2);
}
