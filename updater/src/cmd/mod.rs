//! One module per subcommand, each with its `Args` and `Args::run`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use charter_keys::SystemClock;
use charter_updater::config::Config;
use charter_updater::txn::Updater;
use clap::Subcommand;

use crate::Cli;

mod apply;
mod auto;
mod backups;
mod check;
mod config;
mod door;
mod history;
mod hold;
mod rollback;
mod sbom;
mod serve_door;
mod status;
mod verify;
mod version;

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Check the repository for an update (verifies it; installs nothing).
    Check(check::Args),
    /// Install the channel's release (or --version), roll back if unhealthy.
    Apply(apply::Args),
    /// What the timer runs: install the channel's release if `[update]`
    /// lets the host do so by itself now (automatic, windows, min_age),
    /// else say why not and when it could.
    Auto(auto::Args),
    /// Hold automatic installs until a time (`--until`), or lift the hold
    /// (`--clear`); `apply` by hand still installs.
    Hold(hold::Args),
    /// Return to the previous release (marks the current one bad).
    Rollback(rollback::Args),
    /// Installed, previous and bad versions, ratchet, pending transaction.
    Status(status::Args),
    /// Finished transactions, oldest first.
    History(history::Args),
    /// Check the installed tree against its signed manifest (like rpm -V).
    Verify(verify::Args),
    /// The config and license backups taken before each update.
    Backups(backups::Args),
    /// Print the installed release's CycloneDX SBOM (for grype, trivy).
    Sbom(sbom::Args),
    /// Check the configuration.
    #[command(subcommand)]
    Config(config::Cmd),
    /// This build (version, commit, date, target, features), the trust
    /// root in force and the installed release.
    Version(version::Args),
    /// Ask the root updater for ACTION through the socket door (for the
    /// agent and panels in the `charter-update` group; no sudo needed).
    Door(door::Args),
    /// The root side of the socket door: read one action from stdin (a
    /// connection from charter-update-door.socket), run it, answer on stdout.
    ServeDoor(serve_door::Args),
}

/// What every subcommand gets besides its own arguments: the global flags.
pub struct Ctx {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--json`.
    pub json: bool,
}

impl Ctx {
    /// The config's path: `--config`, else $CHARTER_CONFIG, else the default.
    fn config_path(&self) -> PathBuf {
        Config::locate(self.config.as_deref())
    }

    /// Loads the config and opens the updater (which takes the state lock
    /// and recovers any interrupted transaction).
    fn open(&self) -> Result<Updater> {
        let path = self.config_path();
        let cfg = Config::load(&path)
            .with_context(|| format!("cannot load the config (from {})", path.display()))?;
        Ok(Updater::open(
            cfg,
            Box::new(SystemClock),
            Box::new(|line: &str| eprintln!("charter-update: {line}")),
        )?)
    }
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let ctx = Ctx {
        config: cli.config,
        json: cli.json,
    };
    // The door's two sides load no config here: the client runs
    // unprivileged, the server passes its --config to the action it runs.
    // `version` and `config test` report a config they cannot load.
    match cli.command {
        Cmd::Door(a) => a.run(),
        Cmd::ServeDoor(a) => a.run(&ctx),
        Cmd::Version(a) => a.run(&ctx),
        Cmd::Config(c) => c.run(&ctx),
        Cmd::Check(a) => a.run(&ctx, ctx.open()?),
        Cmd::Apply(a) => a.run(&ctx, ctx.open()?),
        Cmd::Auto(a) => a.run(&ctx, ctx.open()?),
        Cmd::Rollback(a) => a.run(&ctx, ctx.open()?),
        Cmd::Hold(a) => a.run(&ctx, ctx.open()?),
        Cmd::Status(a) => a.run(&ctx, ctx.open()?),
        Cmd::History(a) => a.run(&ctx, ctx.open()?),
        Cmd::Verify(a) => a.run(&ctx, ctx.open()?),
        Cmd::Backups(a) => a.run(&ctx, ctx.open()?),
        Cmd::Sbom(a) => a.run(ctx.open()?),
    }
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(v)?;
    text.push(b'\n');
    std::io::stdout().lock().write_all(&text)?;
    Ok(())
}
