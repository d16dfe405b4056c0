//! `charter-agent`: the license agent. `run` is the daemon; the other
//! commands are for scripts and operators.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use charter_agent::config::Config;
use charter_agent::daemon::Agent;
use charter_keys::SystemClock;
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

/// Enforce signed licenses on this host.
#[derive(Debug, Parser)]
#[command(name = "charter-agent", version, about, max_term_width = 100)]
struct Cli {
    /// Config file (default: $CHARTER_AGENT_CONFIG, then /etc/charter/agent.toml).
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
    /// Run the agent (the service's main process).
    Run,
    /// License state, reasons, features and limits (asks the running agent).
    Status,
    /// Exit 0 if the feature is on, 1 if off, 2 on error.
    CheckFeature {
        /// Feature name.
        name: String,
    },
    /// Exit 0 if VALUE is within the limit NAME, 1 if not, 2 on error.
    CheckLimit {
        /// Limit name.
        name: String,
        /// Value to check.
        value: i64,
    },
    /// Print this host's fingerprint for the product (for license binding):
    /// the v2 form (machine id and DMI product UUID) unless --form v1.
    /// Root reads the DMI UUID itself; other users read the copy that
    /// `host-ids` left.
    Fingerprint {
        /// v2 (`v2:` and 64 hex digits) or v1 (64 hex digits, the form
        /// before v2).
        #[arg(long, value_enum, default_value_t = FormArg::V2)]
        form: FormArg,
    },
    /// As root, before the agent starts (the packaged unit's
    /// ExecStartPre=+): write a digest of the DMI product UUID, which only
    /// root can read, to `fingerprint.host_ids` for the agent.
    HostIds,
    /// Ask the agent to run an update action through the updater's door.
    Update {
        /// check, apply or rollback.
        action: String,
    },
    /// Audit log tools.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Check the configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// This build (version, commit, date, target, features), the trust
    /// root in force and the installed release.
    Version,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FormArg {
    V1,
    V2,
}

#[derive(Debug, Subcommand)]
enum ConfigCmd {
    /// Parse the config, decrypt its secrets, load the trust root, compute
    /// the fingerprint, load and verify the license, fetch and verify the
    /// status document: each check ok or failed; exit status 1 if any
    /// failed. Writes nothing.
    Test,
}

#[derive(Debug, Subcommand)]
enum AuditCmd {
    /// Check the audit log's hash chain against the authenticated state.
    Verify,
}

fn main() -> ExitCode {
    if let Some(code) = charter_agent::generate_docs(Cli::command) {
        return code;
    }
    let cli = Cli::parse();
    let check = matches!(
        cli.command,
        Cmd::CheckFeature { .. } | Cmd::CheckLimit { .. }
    );
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`charter-agent status | head`) is not a failure.
            if err
                .chain()
                .filter_map(|c| c.downcast_ref::<std::io::Error>())
                .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(std::io::stderr(), "charter-agent: error: {err:#}");
            ExitCode::from(if check { 2 } else { 1 })
        }
    }
}

fn load_config(flag: Option<&Path>) -> Result<Config> {
    let path = Config::locate(flag);
    Config::load(&path).with_context(|| format!("cannot load the config (from {})", path.display()))
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

fn run(cli: Cli) -> Result<ExitCode> {
    if let Cmd::Version = cli.command {
        let path = Config::locate(cli.config.as_deref());
        let cfg = Config::load(&path);
        let mut v = charter_agent::version_json(cfg.as_ref().ok());
        if let Err(e) = &cfg {
            v["config_error"] = serde_json::json!(e.to_string());
        }
        if cli.json {
            print_json(&v)?;
        } else {
            let b = &v["build"];
            outln!(
                "charter-agent {} ({} {}, {})",
                b["version"].as_str().unwrap_or("?"),
                b["commit"].as_str().unwrap_or("?"),
                b["build_date"].as_str().unwrap_or("?"),
                b["target"].as_str().unwrap_or("?")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Cmd::Config(ConfigCmd::Test) = cli.command {
        let path = Config::locate(cli.config.as_deref());
        let r = charter_agent::selftest::run(&path, Box::new(SystemClock));
        if cli.json {
            print_json(&serde_json::to_value(&r)?)?;
        } else {
            out!("{}", r.to_text());
        }
        return Ok(if r.ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    if let Cmd::HostIds = cli.command {
        return host_ids(cli.config.as_deref(), cli.json);
    }
    let cfg = load_config(cli.config.as_deref())?;
    let socket = cfg.paths.socket.clone();
    match cli.command {
        Cmd::Run => daemon(cfg),
        Cmd::Fingerprint { form } => {
            use charter_agent::fingerprint::{DmiRead, HostIds};
            let ids = HostIds::read(&cfg.product, &cfg.fingerprint, DmiRead::for_this_process())?;
            let (name, fp) = match form {
                FormArg::V1 => ("v1", ids.v1()),
                FormArg::V2 => (
                    "v2",
                    ids.v2().map_err(|why| {
                        anyhow::anyhow!(
                            "this host's v2 fingerprint is unknown: {why}; \
                         `charter-agent fingerprint --form v1` prints the v1 form"
                        )
                    })?,
                ),
            };
            if cli.json {
                print_json(
                    &serde_json::json!({"product": cfg.product, "form": name, "fingerprint": fp}),
                )?;
            } else {
                outln!("{fp}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Status => {
            let (code, v) = ask(&socket, "GET", "/v1/license")?;
            if code != 200 {
                bail!(
                    "the agent answered {code}: {}",
                    v["error"].as_str().unwrap_or("")
                );
            }
            if cli.json {
                print_json(&v)?;
            } else {
                outln!("state:     {}", v["state"].as_str().unwrap_or("?"));
                for r in v["reasons"].as_array().into_iter().flatten() {
                    outln!("reason:    {}", r.as_str().unwrap_or(""));
                }
                for w in v["warnings"].as_array().into_iter().flatten() {
                    outln!("warning:   {}", w.as_str().unwrap_or(""));
                }
                for w in v["config_warnings"].as_array().into_iter().flatten() {
                    outln!("config:    {}", w.as_str().unwrap_or(""));
                }
                if let Some(id) = v["license_id"].as_str() {
                    outln!("license:   {id} ({})", v["customer"].as_str().unwrap_or(""));
                    outln!("expires:   {}", v["expires_at"].as_str().unwrap_or(""));
                }
                let features: Vec<&str> = v["features"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f.as_str())
                    .collect();
                outln!(
                    "features:  {}",
                    if features.is_empty() {
                        "none".into()
                    } else {
                        features.join(", ")
                    }
                );
                if let Some(l) = v["limits"].as_object() {
                    for (k, n) in l {
                        outln!("limit:     {k} = {n}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::CheckFeature { name } => {
            let (code, v) = ask(&socket, "GET", &format!("/v1/features/{name}"))?;
            if code != 200 {
                bail!(
                    "the agent answered {code}: {}",
                    v["error"].as_str().unwrap_or("")
                );
            }
            if cli.json {
                print_json(&v)?;
            }
            Ok(if v["enabled"] == true {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::CheckLimit { name, value } => {
            let (code, v) = ask(&socket, "GET", &format!("/v1/limits/{name}?value={value}"))?;
            if code != 200 {
                bail!(
                    "the agent answered {code}: {}",
                    v["error"].as_str().unwrap_or("")
                );
            }
            if cli.json {
                print_json(&v)?;
            } else if v["allowed"] != true {
                eprintln!("{}", v["reason"].as_str().unwrap_or("not allowed"));
            }
            Ok(if v["allowed"] == true {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Update { action } => {
            let (code, v) = ask(&socket, "POST", &format!("/v1/update/{action}"))?;
            if cli.json {
                print_json(&v)?;
            }
            if code != 202 {
                bail!(
                    "the agent answered {code}: {}",
                    v["error"].as_str().unwrap_or("")
                );
            }
            // Wait for the job to finish, then report it.
            let t = Instant::now();
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let (_, s) = ask(&socket, "GET", "/v1/update")?;
                if !s["job"]["finished"].is_null() {
                    if !cli.json {
                        outln!("{action}: exit {}", s["job"]["exit_code"]);
                        outln!("{}", serde_json::to_string_pretty(&s["job"]["output"])?);
                    }
                    return Ok(if s["job"]["exit_code"] == 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    });
                }
                if t.elapsed() > Duration::from_secs(cfg.update.timeout_secs) {
                    bail!("the update job did not finish in time");
                }
            }
        }
        Cmd::Config(ConfigCmd::Test) | Cmd::Version | Cmd::HostIds => {
            unreachable!("handled above")
        }
        Cmd::Audit(AuditCmd::Verify) => {
            let agent = Agent::load(cfg, Box::new(SystemClock))?;
            let r = agent.verify_audit()?;
            if cli.json {
                print_json(&serde_json::to_value(&r)?)?;
            } else {
                match &r.problem {
                    None => outln!("audit log OK: {} line(s)", r.lines),
                    Some(p) => outln!("audit log NOT OK after {} line(s): {p}", r.lines),
                }
            }
            Ok(if r.problem.is_none() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// `host-ids`: the config is parsed without decrypting its secrets (root
/// may not hold the master key the agent is given as a credential).
fn host_ids(flag: Option<&Path>, json: bool) -> Result<ExitCode> {
    use charter_agent::fingerprint::{Dmi, write_host_ids};
    let path = Config::locate(flag);
    let cfg = charter_keys::fsutil::read_capped(&path, 1 << 20, "a config file")
        .map_err(anyhow::Error::from)
        .and_then(|b| Ok(String::from_utf8(b)?))
        .and_then(|t| Ok(Config::parse(&t, &path)?))
        .with_context(|| format!("cannot load the config (from {})", path.display()))?;
    charter_agent::fingerprint::check_host_ids_target(&path, &cfg.product, &cfg.fingerprint)?;
    let dmi = write_host_ids(&cfg.product, &cfg.fingerprint)?;
    let what = match dmi {
        Dmi::Present(_) => "present",
        _ => "absent",
    };
    let out = &cfg.fingerprint.host_ids;
    if json {
        print_json(&serde_json::json!({"host_ids": out, "dmi_product_uuid": what}))?;
    } else if dmi == Dmi::Absent {
        outln!(
            "{}: this host has no DMI product UUID ({} is missing); v2 fingerprints bind its machine id alone",
            out.display(),
            cfg.fingerprint.dmi_product_uuid.display()
        );
    } else {
        outln!("{}: DMI product UUID digest written", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn daemon(cfg: Config) -> Result<ExitCode> {
    let socket = cfg.paths.socket.clone();
    let refresh = Duration::from_secs(cfg.status.refresh_secs);
    let jitter = cfg.status.jitter_secs;
    for field in cfg.plain_secrets() {
        eprintln!(
            "charter-agent: WARNING: {field} is in plain text in the config; encrypt it with `charter secrets encrypt`"
        );
    }
    let mut agent = Agent::load(cfg, Box::new(SystemClock))?;
    agent.evaluate_and_record("start")?;
    // A first status refresh before serving, so the state the API reports
    // from the start (and the READY notification) is informed.
    if let Err(e) = agent.refresh_status() {
        eprintln!("charter-agent: status refresh failed: {e}");
    }
    let e = agent.evaluation();
    eprintln!(
        "charter-agent: license state {} {}",
        e.state,
        e.reasons.join("; ")
    );
    let shared = charter_agent::api::Shared::new(agent);
    if let Some(parent) = socket.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    // Anyone may connect; SO_PEERCRED decides who gets answers (403 for the
    // rest), which gives callers a clear error instead of EACCES.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666))?;
    let server = std::sync::Arc::clone(&shared);
    std::thread::spawn(move || charter_agent::api::serve(listener, server));
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    eprintln!("charter-agent: serving on {}", socket.display());
    // Later refreshes on a thread of their own, the fetch outside the
    // agent's lock: a slow status server stalls neither the API nor the
    // evaluation below.
    let refresher = std::sync::Arc::clone(&shared);
    std::thread::Builder::new()
        .name("status-refresh".into())
        .spawn(move || {
            loop {
                let mut j = [0u8; 8];
                let _ = getrandom::fill(&mut j);
                let extra = if jitter == 0 {
                    0
                } else {
                    u64::from_le_bytes(j) % jitter
                };
                std::thread::sleep(refresh + Duration::from_secs(extra));
                if let Err(e) = refresher.refresh_status() {
                    eprintln!("charter-agent: status refresh failed: {e}");
                }
            }
        })
        .context("cannot start the status refresh thread")?;
    loop {
        let notes = shared.with_agent(|a| {
            if let Err(e) = a.reload_license_if_changed() {
                eprintln!("charter-agent: license reload failed: {e}");
            }
            if let Err(e) = a.evaluate_and_record("tick") {
                eprintln!("charter-agent: evaluation failed: {e}");
            }
            a.take_notes()
        });
        for n in notes {
            eprintln!("charter-agent: {n}");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
