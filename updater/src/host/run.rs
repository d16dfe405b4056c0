//! Running the commands an update needs: the service restart, health
//! probes, and the release's own update scripts. Each runs without a shell,
//! with a timeout (the whole process group is killed when it expires), and
//! with a fixed environment.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Result};
use charter_release::Error as ReleaseError;
use charter_release::manifest::{HealthCheck, Probe};

/// Output kept of each stream (stdout, stderr) of a command.
const MAX_OUTPUT_BYTES: u64 = 64 << 10;

/// The environment every command gets (nothing inherited).
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A user to run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// Looks a user up in /etc/passwd (no NSS: the updater must not load
/// plugins as root).
pub fn lookup_user(name: &str) -> Result<RunAs> {
    let passwd =
        std::fs::read_to_string("/etc/passwd").map_err(|e| Error::io("read", "/etc/passwd", e))?;
    passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[0] == name).then(|| {
                Some(RunAs {
                    uid: f[2].parse().ok()?,
                    gid: f[3].parse().ok()?,
                })
            })?
        })
        .next()
        .ok_or_else(|| ReleaseError::InvalidInput {
            what: "service.scripts_user",
            reason: format!("no user `{name}` in /etc/passwd"),
        })
        .map_err(crate::Error::from)
}

/// Runs `argv` in `cwd` with `env` (plus PATH and LANG=C), as `user` when
/// given, killing it after `timeout`. Fails with the last lines of its
/// output when it exits non-zero.
pub fn run_command(
    what: &str,
    argv: &[String],
    cwd: &Path,
    env: &[(&str, String)],
    user: Option<RunAs>,
    timeout: Duration,
) -> Result<()> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(Error::Command {
            what: what.into(),
            reason: "empty command".into(),
        });
    };
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", PATH)
        .env("LANG", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(u) = user {
        cmd.uid(u.uid).gid(u.gid);
    }
    let mut child = cmd.spawn().map_err(|e| Error::Command {
        what: what.into(),
        reason: format!("cannot start `{prog}`: {e}"),
    })?;
    // Collect output on threads so a chatty command cannot block on a full
    // pipe. A command that leaves a daemon holding its stdout would keep the
    // pipe open forever: after the command exits, output is awaited only
    // briefly.
    let collect = |r: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut r) = r {
                let _ = r.by_ref().take(MAX_OUTPUT_BYTES).read_to_end(&mut out);
                let _ = tx.send(out);
                let _ = std::io::copy(&mut r, &mut std::io::sink());
            } else {
                let _ = tx.send(out);
            }
        });
        rx
    };
    let out_t = collect(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err_t = collect(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let pgid = child.id() as i32;
                if let Some(pid) = rustix::process::Pid::from_raw(pgid) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                return Err(Error::Command {
                    what: what.into(),
                    reason: e.to_string(),
                });
            }
        }
    };
    let grace = Duration::from_millis(500);
    let mut output = out_t.recv_timeout(grace).unwrap_or_default();
    output.extend(err_t.recv_timeout(grace).unwrap_or_default());
    let tail = tail_lines(&output, 5);
    match status {
        None => Err(Error::Command {
            what: what.into(),
            reason: format!("timed out after {}s{tail}", timeout.as_secs()),
        }),
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(Error::Command {
            what: what.into(),
            reason: format!("{s}{tail}"),
        }),
    }
}

fn tail_lines(out: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(out);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let start = lines.len().saturating_sub(n);
    format!(": {}", lines[start..].join(" | "))
}

/// Probes a release once. A command probe runs as `user` (the scripts'
/// user), and a relative `argv[0]` names a program of the release, never
/// one found in PATH.
fn probe_once(
    probe: &Probe,
    release_dir: &Path,
    user: Option<RunAs>,
    timeout: Duration,
) -> Result<()> {
    match probe {
        Probe::Http { url, expect_status } => {
            let agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(timeout))
                .proxy(None)
                .build()
                .new_agent();
            let resp = agent.get(url).call().map_err(|e| Error::Command {
                what: "health check".into(),
                reason: format!("GET {url}: {e}"),
            })?;
            let status = resp.status().as_u16();
            if status == *expect_status {
                Ok(())
            } else {
                Err(Error::Command {
                    what: "health check".into(),
                    reason: format!("GET {url} answered {status}, expected {expect_status}"),
                })
            }
        }
        Probe::Command { argv } => {
            let mut argv = argv.clone();
            if let Some(first) = argv.first_mut()
                && !first.starts_with('/')
            {
                *first = release_dir.join(&*first).to_string_lossy().into_owned();
            }
            run_command("health check", &argv, release_dir, &[], user, timeout)
        }
    }
}

/// Runs the health check with its retries, command probes as `user`; the
/// last failure is returned.
pub fn health_check(check: &HealthCheck, release_dir: &Path, user: Option<RunAs>) -> Result<()> {
    let timeout = Duration::from_secs(u64::from(check.timeout_secs.max(1)));
    let mut last = None;
    for attempt in 0..=check.retries {
        if attempt > 0 {
            std::thread::sleep(Duration::from_secs(u64::from(check.interval_secs)));
        }
        match probe_once(&check.probe, release_dir, user, timeout) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::Command {
        what: "health check".into(),
        reason: "no attempt made".into(),
    }))
}
