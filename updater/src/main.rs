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
use clap::{CommandFactory, Parser, Subcommand};

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
    /// What the timer runs: install the channel's release if `[update]`
    /// lets the host do so by itself now (automatic, windows, min_age),
    /// else say why not and when it could.
    Auto,
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
    /// Print the installed release's CycloneDX SBOM (for grype, trivy).
    Sbom {
        /// Another kept release's SBOM.
        #[arg(long)]
        version: Option<semver::Version>,
    },
    /// Check the configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// This build (version, commit, date, target, features), the trust
    /// root in force and the installed release.
    Version,
    /// Ask the root updater for ACTION through the socket door (for the
    /// agent and panels in the `charter-update` group; no sudo needed).
    Door {
        /// check, apply, rollback or status.
        #[arg(value_parser = ["check", "apply", "rollback", "status"])]
        action: String,
        /// The door's socket.
        #[arg(long, value_name = "PATH", default_value = DOOR_SOCKET)]
        socket: PathBuf,
    },
    /// The root side of the socket door: read one action from stdin (a
    /// connection from charter-update-door.socket), run it, answer on stdout.
    ServeDoor,
}

#[derive(Debug, Subcommand)]
enum ConfigCmd {
    /// Parse the config, decrypt its secrets, load the signature policy
    /// and trust root, reach the repository and verify its channel
    /// pointer and manifest, load the license: each check ok or failed;
    /// exit status 1 if any failed.
    Test,
}

/// Where charter-update-door.socket listens.
const DOOR_SOCKET: &str = "/run/charter-update/door.sock";

fn main() -> ExitCode {
    if let Some(code) = charter_agent::generate_docs(Cli::command) {
        return code;
    }
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

/// The client side of the socket door: one request, the answer relayed.
fn door_call(socket: &std::path::Path, action: &str) -> Result<ExitCode> {
    use charter_updater::door::{Action, Response, write_request};
    let action = Action::from_name(action).context("unknown action")?;
    let mut s = std::os::unix::net::UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach the update door at {} (is charter-update-door.socket running, \
             and is this user in the charter-update group?)",
            socket.display()
        )
    })?;
    write_request(&mut s, action)?;
    s.shutdown(std::net::Shutdown::Write)?;
    let r = Response::read(&mut s).context("reading the door's answer")?;
    std::io::stderr().write_all(r.stderr.as_bytes())?;
    std::io::stdout().write_all(r.stdout.as_bytes())?;
    Ok(ExitCode::from(
        r.exit_code.and_then(|c| u8::try_from(c).ok()).unwrap_or(1),
    ))
}

/// Prints how an `apply` or `auto` ended; exit status 3 when the new
/// release was rolled back.
fn report_outcome(outcome: &ApplyOutcome, json: bool) -> Result<ExitCode> {
    if json {
        print_json(outcome)?;
    }
    Ok(match outcome {
        ApplyOutcome::UpToDate { version } => {
            if !json {
                outln!("{version} is already installed");
            }
            ExitCode::SUCCESS
        }
        ApplyOutcome::Installed { from, to } => {
            if !json {
                let from = from.as_ref().map_or("nothing".into(), ToString::to_string);
                outln!("installed {to} (was {from})");
            }
            ExitCode::SUCCESS
        }
        ApplyOutcome::Deferred {
            candidate,
            reason,
            until,
        } => {
            if !json {
                match until {
                    Some(t) => outln!("{candidate} is not installed now: {reason}; not before {t}"),
                    None => outln!("{candidate} is not installed now: {reason}"),
                }
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

/// The root side of the socket door (stdin and stdout are the connection).
fn door_serve(config: Option<&std::path::Path>) -> Result<ExitCode> {
    use charter_updater::door::{Response, read_request, run_action};
    use std::os::fd::AsFd;
    let stdin = std::io::stdin();
    // Who is asking, for the journal; and a bound on a silent caller.
    let peer = rustix::net::sockopt::socket_peercred(stdin.as_fd())
        .map(|c| format!("uid {} pid {}", c.uid.as_raw(), c.pid.as_raw_nonzero()))
        .unwrap_or_else(|_| "an unknown peer".into());
    let _ = rustix::net::sockopt::set_socket_timeout(
        stdin.as_fd(),
        rustix::net::sockopt::Timeout::Recv,
        Some(std::time::Duration::from_secs(10)),
    );
    let response = match read_request(stdin.lock()) {
        Ok(action) => {
            eprintln!(
                "charter-update: door: {} requested by {peer}",
                action.as_str()
            );
            let exe = std::env::current_exe().context("cannot find this program")?;
            let extra: Vec<std::ffi::OsString> = config
                .map(|c| vec!["--config".into(), c.as_os_str().to_owned()])
                .unwrap_or_default();
            let r = run_action(&exe, &extra, action);
            eprintln!(
                "charter-update: door: {} for {peer} exited {:?}",
                action.as_str(),
                r.exit_code
            );
            r
        }
        Err(e) => {
            eprintln!("charter-update: door: refused a request from {peer}: {e}");
            Response::refused(&e.to_string())
        }
    };
    response.write(std::io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}

fn run(cli: Cli) -> Result<ExitCode> {
    // The door's two sides load no config here: the client runs
    // unprivileged, the server passes its --config to the action it runs.
    match &cli.command {
        Cmd::Door { action, socket } => return door_call(socket, action),
        Cmd::ServeDoor => return door_serve(cli.config.as_deref()),
        Cmd::Version => {
            let path = Config::locate(cli.config.as_deref());
            let cfg = Config::load(&path);
            let mut v = charter_updater::selftest::inventory(cfg.as_ref().ok());
            if let Err(e) = &cfg {
                v["config_error"] = serde_json::json!(format!("{e:#}"));
            }
            if cli.json {
                print_json(&v)?;
            } else {
                let b = &v["build"];
                outln!(
                    "charter-update {} ({} {}, {})",
                    b["version"].as_str().unwrap_or("?"),
                    b["commit"].as_str().unwrap_or("?"),
                    b["build_date"].as_str().unwrap_or("?"),
                    b["target"].as_str().unwrap_or("?")
                );
                if let Some(r) = v["trust_root"]["version"].as_u64() {
                    outln!("trust root version {r}");
                }
                if let Some(c) = v["installed"]["current"].as_str() {
                    outln!(
                        "installed {} {c}",
                        v["installed"]["product"].as_str().unwrap_or("?")
                    );
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Config(ConfigCmd::Test) => {
            let path = Config::locate(cli.config.as_deref());
            let r = charter_updater::selftest::run(&path, Box::new(SystemClock));
            if cli.json {
                print_json(&r)?;
            } else {
                out!("{}", r.to_text());
            }
            return Ok(if r.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        _ => {}
    }
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
                outln!("installed: {cur}; offered: {}; {}", r.candidate, r.reason);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Apply { version, retry_bad } => {
            let target = version.map_or(Target::Channel, Target::Version);
            report_outcome(&updater.apply(&target, &ApplyOptions { retry_bad })?, json)
        }
        Cmd::Auto => report_outcome(&updater.auto()?, json),
        Cmd::Rollback => {
            let outcome = updater.rollback()?;
            if json {
                print_json(&outcome)?;
            } else if let ApplyOutcome::RolledBack { failed, to, .. } = &outcome {
                let to = to.as_ref().map_or("nothing".into(), ToString::to_string);
                outln!("rolled back from {failed} to {to}");
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
                outln!("product:  {} (channel {})", s.product, s.channel);
                outln!("current:  {}", v(&s.state.current));
                outln!("previous: {}", v(&s.state.previous));
                outln!("ratchet:  {}", v(&s.state.ratchet));
                let bad: Vec<String> = s.state.bad.iter().map(ToString::to_string).collect();
                outln!(
                    "bad:      {}",
                    if bad.is_empty() {
                        "none".into()
                    } else {
                        bad.join(", ")
                    }
                );
                if let Some(t) = s.state.last_check {
                    outln!("checked:  {t}");
                }
                outln!("releases: {}", s.releases_from);
                outln!("requires: {}", s.signature_policy);
                outln!("auto:     {}", s.automatic);
                if let Some(h) = &s.recovered {
                    outln!("recovered: {} {}", h.op, h.result);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Sbom { version } => {
            let bytes = updater.sbom(version.as_ref())?;
            std::io::stdout().write_all(&bytes)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Backups => {
            let b = updater.backups();
            if json {
                print_json(&b)?;
            } else if b.is_empty() {
                outln!("no backups");
            } else {
                for r in b {
                    outln!(
                        "{} (left for {} at {}, transaction {}):",
                        r.backup.release,
                        r.backup.to,
                        r.backup.created,
                        r.backup.txn
                    );
                    for (f, same) in r.backup.files.iter().zip(&r.unchanged) {
                        outln!(
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
                    outln!(
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
                    outln!("{:<8} {}  {}", p.kind, p.path, p.detail);
                }
                for c in &r.config_changed {
                    outln!("config   {c}  changed by the operator (kept)");
                }
                outln!(
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
        Cmd::Door { .. } | Cmd::ServeDoor | Cmd::Config(_) | Cmd::Version => {
            unreachable!("handled above")
        }
    }
}
