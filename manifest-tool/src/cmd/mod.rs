//! One module per subcommand.

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::util::PassphraseSource;

mod blob;
mod channel;
mod key;
mod license;
mod manifest;
mod repo;
mod rollout;
mod rollout_chart;
mod root;
mod secrets;

/// What every subcommand gets besides its own arguments.
pub struct Ctx {
    pub json: bool,
    pub pass: PassphraseSource,
}

pub fn run(cli: Cli) -> Result<()> {
    let ctx = Ctx {
        json: cli.json,
        pass: PassphraseSource {
            file: cli.passphrase_file,
        },
    };
    match cli.command {
        Command::Key(c) => key::run(&ctx, c),
        Command::Root(c) => root::run(&ctx, c),
        Command::Manifest(c) => manifest::run(&ctx, c),
        Command::Channel(c) => channel::run(&ctx, c),
        Command::Repo(c) => repo::run(&ctx, c),
        Command::Rollout(c) => rollout::run(&ctx, c),
        Command::License(c) => license::run(&ctx, c),
        Command::Secrets(c) => secrets::run(&ctx, c),
        Command::HashTree(a) => manifest::hash_tree(&ctx, a),
        Command::SignBlob(a) => blob::sign(&ctx, a),
        Command::VerifyBlob(a) => blob::verify(&ctx, a),
        Command::Version => {
            let b = charter_keys::build_info!("charter");
            if ctx.json {
                crate::util::print_json(&serde_json::json!({ "build": b }))
            } else {
                outln!(
                    "charter {} ({} {}, {})",
                    b.version,
                    b.commit,
                    b.build_date,
                    b.target
                );
                Ok(())
            }
        }
    }
}
