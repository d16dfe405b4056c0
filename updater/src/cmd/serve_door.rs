use std::os::fd::AsFd;
use std::process::ExitCode;

use anyhow::{Context, Result};
use charter_updater::door::{Response, read_request, run_action};

use super::Ctx;

#[derive(Debug, clap::Args)]
pub struct Args {}

impl Args {
    /// The root side of the socket door (stdin and stdout are the
    /// connection).
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
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
                    action.request_line()
                );
                let exe = std::env::current_exe().context("cannot find this program")?;
                let extra: Vec<std::ffi::OsString> = ctx
                    .config
                    .as_deref()
                    .map(|c| vec!["--config".into(), c.as_os_str().to_owned()])
                    .unwrap_or_default();
                let r = run_action(&exe, &extra, action);
                eprintln!(
                    "charter-update: door: {} for {peer} exited {:?}",
                    action.request_line(),
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
}
