//! `charter-agent`: the license agent. Skeleton: licensing lands with the
//! agent issue.

use clap::Parser;

/// Enforce signed licenses on this host (work in progress).
#[derive(Debug, Parser)]
#[command(name = "charter-agent", version, about)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    eprintln!("charter-agent: licensing is not implemented yet");
    std::process::exit(2);
}
