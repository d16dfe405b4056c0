//! One module per subcommand, each with its `Args` and `Args::run`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use charter_agent::config::Config;
use clap::Subcommand;

use crate::Cli;

mod audit;
mod check_feature;
mod check_limit;
mod config;
mod fingerprint;
mod host_ids;
mod run;
mod status;
mod update;
mod version;

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the agent (the service's main process).
    Run(run::Args),
    /// License state, reasons, features and limits (asks the running agent).
    Status(status::Args),
    /// Exit 0 if the feature is on, 1 if off, 2 on error.
    CheckFeature(check_feature::Args),
    /// Exit 0 if VALUE is within the limit NAME, 1 if not, 2 on error.
    CheckLimit(check_limit::Args),
    /// Print this host's fingerprint for the product (for license binding):
    /// the v2 form (machine id and DMI product UUID) unless --form v1.
    /// Root reads the DMI UUID itself; other users read the copy that
    /// `host-ids` left.
    Fingerprint(fingerprint::Args),
    /// As root, before the agent starts (the packaged unit's
    /// ExecStartPre=+): write a digest of the DMI product UUID, which only
    /// root can read, to `fingerprint.host_ids` for the agent.
    HostIds(host_ids::Args),
    /// Ask the agent to run an update action through the updater's door.
    Update(update::Args),
    /// Audit log tools.
    #[command(subcommand)]
    Audit(audit::Cmd),
    /// Check the configuration.
    #[command(subcommand)]
    Config(config::Cmd),
    /// This build (version, commit, date, target, features), the trust
    /// root in force and the installed release.
    Version(version::Args),
}

/// What every subcommand gets besides its own arguments: the global flags.
pub struct Ctx {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--json`.
    pub json: bool,
}

impl Ctx {
    /// The config's path: `--config`, else $CHARTER_AGENT_CONFIG, else the
    /// default.
    fn config_path(&self) -> PathBuf {
        Config::locate(self.config.as_deref())
    }

    /// Loads the config (decrypting its secrets).
    fn load_config(&self) -> Result<Config> {
        let path = self.config_path();
        Config::load(&path)
            .with_context(|| format!("cannot load the config (from {})", path.display()))
    }
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let ctx = Ctx {
        config: cli.config,
        json: cli.json,
    };
    // `version` and `config test` report a config they cannot load;
    // `host-ids` parses it without decrypting its secrets.
    match cli.command {
        Cmd::Version(a) => a.run(&ctx),
        Cmd::Config(c) => c.run(&ctx),
        Cmd::HostIds(a) => a.run(&ctx),
        Cmd::Run(a) => a.run(ctx.load_config()?),
        Cmd::Fingerprint(a) => a.run(&ctx, ctx.load_config()?),
        Cmd::Status(a) => a.run(&ctx, ctx.load_config()?),
        Cmd::CheckFeature(a) => a.run(&ctx, ctx.load_config()?),
        Cmd::CheckLimit(a) => a.run(&ctx, ctx.load_config()?),
        Cmd::Update(a) => a.run(&ctx, ctx.load_config()?),
        Cmd::Audit(c) => c.run(&ctx, ctx.load_config()?),
    }
}

/// One request to the running agent over its socket.
fn ask(socket: &Path, method: &str, path: &str) -> Result<(u16, serde_json::Value)> {
    let mut s = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach the agent at {} (is `charter-agent run` running?)",
            socket.display()
        )
    })?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    // The agent reads the request before it answers, even a 403; a failed
    // write is still not the end (an older agent answered first): the
    // answer is read all the same.
    let _ = write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let mut resp = Vec::new();
    let _ = s.take(1 << 20).read_to_end(&mut resp);
    if resp.is_empty() {
        anyhow::bail!(
            "the agent at {} closed the connection without answering",
            socket.display()
        );
    }
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let json = serde_json::from_str(body.trim()).unwrap_or(serde_json::Value::Null);
    Ok((code, json))
}

fn print_json(v: &serde_json::Value) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(v)?;
    text.push(b'\n');
    std::io::stdout().lock().write_all(&text)?;
    Ok(())
}
