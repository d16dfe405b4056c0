//! `charter-update`: the host-side updater. Parses arguments, opens the
//! updater (which takes the state lock and recovers any interrupted
//! transaction), runs one command and prints its result.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use charter_keys::SystemClock;
use charter_updater::config::Config;
use charter_updater::txn::{ApplyOptions, ApplyOutcome, Target, Updater};
use clap::{Parser, Subcommand};

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
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Check the repository for an update (verifies it; installs nothing).
    Check {
        /// Check a specific version instead of the channel's.
        #[arg(long)]
        version: Option<semver::Version>,
    },
    /// Install the channel's release (or --version), roll back if unhealthy.
    Apply {
        /// Install this version instead of the channel's.
        #[arg(long)]
        version: Option<semver::Version>,
        /// Install even a version that failed here before.
        #[arg(long)]
        retry_bad: bool,
    },
    /// Return to the previous release (marks the current one bad).
    Rollback,
    /// Installed, previous and bad versions, ratchet, pending transaction.
    Status,
    /// Finished transactions, oldest first.
    History,
    /// Check the installed tree against its signed manifest (like rpm -V).
    Verify,
    /// The config and license backups taken before each update.
    Backups,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`charter-update status --json | head`) is not a failure.
            if err
                .chain()
                .filter_map(|c| c.downcast_ref::<std::io::Error>())
                .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(std::io::stderr(), "charter-update: error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(v)?;
    text.push(b'\n');
    std::io::stdout().lock().write_all(&text)?;
    Ok(())
}

fn run(cli: Cli) -> Result<ExitCode> {
    let path = Config::locate(cli.config.as_deref());
    let cfg = Config::load(&path)
        .with_context(|| format!("cannot load the config (from {})", path.display()))?;
    let json = cli.json;
    let updater = Updater::open(
        cfg,
        Box::new(SystemClock),
        Box::new(|line: &str| eprintln!("charter-update: {line}")),
    )?;
    match cli.command {
        Cmd::Check { version } => {
            let target = version.map_or(Target::Channel, Target::Version);
            let r = updater.check(&target)?;
            if json {
                print_json(&r)?;
            } else {
                let cur = r
                    .current
                    .as_ref()
                    .map_or("nothing".into(), ToString::to_string);
                println!("installed: {cur}; offered: {}; {}", r.candidate, r.reason);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Apply { version, retry_bad } => {
            let target = version.map_or(Target::Channel, Target::Version);
            let outcome = updater.apply(&target, &ApplyOptions { retry_bad })?;
            if json {
                print_json(&outcome)?;
            }
            Ok(match &outcome {
                ApplyOutcome::UpToDate { version } => {
                    if !json {
                        println!("{version} is already installed");
                    }
                    ExitCode::SUCCESS
                }
                ApplyOutcome::Installed { from, to } => {
                    if !json {
                        let from = from.as_ref().map_or("nothing".into(), ToString::to_string);
                        println!("installed {to} (was {from})");
                    }
                    ExitCode::SUCCESS
                }
                ApplyOutcome::RolledBack { failed, to, reason } => {
                    let to = to.as_ref().map_or("nothing".into(), ToString::to_string);
                    eprintln!("charter-update: error: {failed} was rolled back to {to}: {reason}");
                    ExitCode::from(3)
                }
            })
        }
        Cmd::Rollback => {
            let outcome = updater.rollback()?;
            if json {
                print_json(&outcome)?;
            } else if let ApplyOutcome::RolledBack { failed, to, .. } = &outcome {
                let to = to.as_ref().map_or("nothing".into(), ToString::to_string);
                println!("rolled back from {failed} to {to}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Status => {
            let s = updater.status()?;
            if json {
                print_json(&s)?;
            } else {
                let v = |x: &Option<semver::Version>| {
                    x.as_ref().map_or("none".into(), ToString::to_string)
                };
                println!("product:  {} (channel {})", s.product, s.channel);
                println!("current:  {}", v(&s.state.current));
                println!("previous: {}", v(&s.state.previous));
                println!("ratchet:  {}", v(&s.state.ratchet));
                let bad: Vec<String> = s.state.bad.iter().map(ToString::to_string).collect();
                println!(
                    "bad:      {}",
                    if bad.is_empty() {
                        "none".into()
                    } else {
                        bad.join(", ")
                    }
                );
                if let Some(t) = s.state.last_check {
                    println!("checked:  {t}");
                }
                if let Some(h) = &s.recovered {
                    println!("recovered: {} {}", h.op, h.result);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Backups => {
            let b = updater.backups();
            if json {
                print_json(&b)?;
            } else if b.is_empty() {
                println!("no backups");
            } else {
                for r in b {
                    println!(
                        "{} (left for {} at {}, transaction {}):",
                        r.backup.release, r.backup.to, r.backup.created, r.backup.txn
                    );
                    for (f, same) in r.backup.files.iter().zip(&r.unchanged) {
                        println!(
                            "  {:<7} {} sha256 {} {}",
                            f.kind,
                            f.path.display(),
                            f.sha256,
                            if *same { "unchanged" } else { "CHANGED since" }
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::History => {
            let h = updater.history_entries()?;
            if json {
                print_json(&h)?;
            } else {
                for e in h {
                    let v = |x: &Option<semver::Version>| {
                        x.as_ref().map_or("-".into(), ToString::to_string)
                    };
                    println!(
                        "{}  {:<8} {} -> {}  {}{}",
                        e.time,
                        e.op,
                        v(&e.from),
                        v(&e.to),
                        e.result,
                        e.reason.map(|r| format!(" ({r})")).unwrap_or_default()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Verify => {
            let r = updater.verify_installed()?;
            if json {
                print_json(&r)?;
            } else {
                for p in &r.problems {
                    println!("{:<8} {}  {}", p.kind, p.path, p.detail);
                }
                for c in &r.config_changed {
                    println!("config   {c}  changed by the operator (kept)");
                }
                println!(
                    "{} entries checked, {} bytes hashed: {}",
                    r.checked,
                    r.bytes_hashed,
                    if r.ok() {
                        "OK".to_string()
                    } else {
                        format!("{} problem(s)", r.problems.len())
                    }
                );
            }
            Ok(if r.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
