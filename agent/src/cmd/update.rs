use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use charter_agent::config::Config;

use super::{Ctx, ask, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// check, apply, rollback, status, hold (with --seconds) or hold-clear.
    action: String,
    /// For `hold`: no automatic install for this many seconds.
    #[arg(long, required_if_eq("action", "hold"))]
    seconds: Option<u32>,
}

impl Args {
    pub fn run(self, ctx: &Ctx, cfg: Config) -> Result<ExitCode> {
        let action = self.action;
        let socket = cfg.paths.socket.clone();
        let path = match (action.as_str(), self.seconds) {
            ("hold", Some(n)) => format!("/v1/update/hold?seconds={n}"),
            (_, Some(_)) => bail!("only `hold` takes --seconds"),
            (a, None) => format!("/v1/update/{a}"),
        };
        let (code, v) = ask(&socket, "POST", &path)?;
        if ctx.json {
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
                if !ctx.json {
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
}
