use std::os::unix::net::UnixListener;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use charter_agent::config::Config;
use charter_agent::daemon::Agent;
use charter_keys::SystemClock;

#[derive(Debug, clap::Args)]
pub struct Args {}

impl Args {
    /// The daemon: serves the API until killed.
    pub fn run(self, cfg: Config) -> Result<ExitCode> {
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
}
