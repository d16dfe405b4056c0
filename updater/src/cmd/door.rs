use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use charter_updater::door::{Action, Response, write_request};

/// Where charter-update-door.socket listens.
const DOOR_SOCKET: &str = "/run/charter-update/door.sock";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// check, apply, rollback, status, hold (with SECONDS) or hold-clear.
    #[arg(value_parser = ["check", "apply", "rollback", "status", "hold", "hold-clear"])]
    action: String,
    /// For `hold`: how long, in seconds (1 to 366 days).
    #[arg(required_if_eq("action", "hold"))]
    seconds: Option<String>,
    /// The door's socket.
    #[arg(long, value_name = "PATH", default_value = DOOR_SOCKET)]
    socket: PathBuf,
}

impl Args {
    /// The client side of the socket door: one request, the answer relayed.
    pub fn run(self) -> Result<ExitCode> {
        let line = match (&self.action[..], &self.seconds) {
            ("hold", Some(secs)) => format!("hold {secs}"),
            (_, Some(_)) => anyhow::bail!("only `hold` takes a number of seconds"),
            (a, None) => a.to_owned(),
        };
        let action = Action::from_line(&line).with_context(|| {
            format!(
                "`{line}` is not an action the door offers (hold takes whole seconds, \
                 1 to {})",
                charter_updater::host::state::Hold::MAX_SECS
            )
        })?;
        let socket = &self.socket;
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
}
