//! The socket door: how an unprivileged caller (the license agent, a panel)
//! asks the root updater for one action without sudo (docs/PACKAGING.md).
//!
//! systemd listens on a unix socket that only the `charter-update` group may
//! open (`charter-update-door.socket`, `Accept=yes`) and starts one root
//! `charter-update serve-door` per connection with the connection as its
//! stdin and stdout. The request is one line naming the action; nothing else
//! crosses the door. The server runs `charter-update <action> --json` with a
//! cleared environment and answers with one JSON line carrying the exit code
//! and the output, which `charter-update door <action>` (the client) relays,
//! so a caller sees exactly what it would have seen through sudo.
//!
//! Everything the server reads is untrusted: the request is at most
//! [`MAX_REQUEST_BYTES`], must be exactly one of [`Action`]'s names and a
//! newline, and is read with a timeout.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

/// Longest request line read, newline included.
pub const MAX_REQUEST_BYTES: u64 = 32;

/// Largest answer a client accepts (stdout and stderr are capped below it).
pub const MAX_RESPONSE_BYTES: u64 = 4 << 20;

/// Most bytes of the action's stdout put into an answer.
pub const MAX_STDOUT_BYTES: u64 = 1 << 20;

/// Most bytes of the action's stderr put into an answer (its tail is kept).
pub const MAX_STDERR_BYTES: usize = 64 << 10;

/// The actions the door lets through: the same four the sudoers rule names.
/// `apply --version`, `--retry-bad`, `history` and `verify` are for root at
/// a shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `charter-update check --json`.
    Check,
    /// `charter-update apply --json`.
    Apply,
    /// `charter-update rollback --json`.
    Rollback,
    /// `charter-update status --json`.
    Status,
}

impl Action {
    /// The subcommand name, as sent on the wire and passed to the updater.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Check => "check",
            Action::Apply => "apply",
            Action::Rollback => "rollback",
            Action::Status => "status",
        }
    }

    /// Parses a name; anything but the four exact names is refused.
    pub fn from_name(name: &str) -> Option<Action> {
        [
            Action::Check,
            Action::Apply,
            Action::Rollback,
            Action::Status,
        ]
        .into_iter()
        .find(|a| a.as_str() == name)
    }
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The caller sent more than [`MAX_REQUEST_BYTES`] without a newline.
    #[error("request longer than {MAX_REQUEST_BYTES} bytes")]
    TooLong,
    /// The connection ended (or timed out) before a newline.
    #[error("request not terminated by a newline")]
    Unterminated,
    /// The line is not one of the four actions.
    #[error("unknown action (expected check, apply, rollback or status)")]
    UnknownAction,
    /// Reading failed.
    #[error("cannot read the request: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one request line: exactly an action name and `\n`.
pub fn read_request(r: impl Read) -> Result<Action, RequestError> {
    let mut buf = Vec::new();
    let mut r = r.take(MAX_REQUEST_BYTES);
    let mut byte = [0u8; 1];
    loop {
        match r.read(&mut byte) {
            Ok(0) => {
                return Err(if buf.len() as u64 >= MAX_REQUEST_BYTES {
                    RequestError::TooLong
                } else {
                    RequestError::Unterminated
                });
            }
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => buf.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(RequestError::Unterminated);
            }
            Err(e) => return Err(e.into()),
        }
    }
    std::str::from_utf8(&buf)
        .ok()
        .and_then(Action::from_name)
        .ok_or(RequestError::UnknownAction)
}

/// Writes a request line.
pub fn write_request(mut w: impl Write, action: Action) -> std::io::Result<()> {
    w.write_all(format!("{}\n", action.as_str()).as_bytes())?;
    w.flush()
}

/// The server's one-line answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    /// The action's exit code; `None` when it was killed by a signal or
    /// could not be started.
    pub exit_code: Option<i32>,
    /// Its stdout (the JSON result), at most [`MAX_STDOUT_BYTES`].
    pub stdout: String,
    /// The tail of its stderr, at most [`MAX_STDERR_BYTES`].
    pub stderr: String,
}

impl Response {
    /// A refusal or failure of the door itself (exit code 2).
    pub fn refused(reason: &str) -> Response {
        Response {
            exit_code: Some(2),
            stdout: String::new(),
            stderr: format!("charter-update door: {reason}\n"),
        }
    }

    /// Writes the answer as one JSON line.
    pub fn write(&self, mut w: impl Write) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        line.push(b'\n');
        w.write_all(&line)?;
        w.flush()
    }

    /// Reads an answer (capped at [`MAX_RESPONSE_BYTES`]).
    pub fn read(r: impl Read) -> std::io::Result<Response> {
        let mut buf = Vec::new();
        r.take(MAX_RESPONSE_BYTES + 1).read_to_end(&mut buf)?;
        if buf.len() as u64 > MAX_RESPONSE_BYTES {
            return Err(std::io::Error::other("door answer too large"));
        }
        if buf.is_empty() {
            return Err(std::io::Error::other(
                "the door closed the connection without answering",
            ));
        }
        serde_json::from_slice(&buf).map_err(std::io::Error::other)
    }
}

/// Runs `program <action> --json` (plus `extra_args`, which come from the
/// server's own trusted command line, never from the request) with a
/// cleared environment and stdin from /dev/null, and collects its answer.
pub fn run_action(
    program: &std::path::Path,
    extra_args: &[std::ffi::OsString],
    action: Action,
) -> Response {
    let out = std::process::Command::new(program)
        .args(extra_args)
        .arg(action.as_str())
        .arg("--json")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) => {
            let stdout = &o.stdout[..o.stdout.len().min(MAX_STDOUT_BYTES as usize)];
            let stderr = &o.stderr[o.stderr.len().saturating_sub(MAX_STDERR_BYTES)..];
            Response {
                exit_code: o.status.code(),
                stdout: String::from_utf8_lossy(stdout).into_owned(),
                stderr: String::from_utf8_lossy(stderr).into_owned(),
            }
        }
        Err(e) => Response::refused(&format!("cannot run {}: {e}", program.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_four_exact_actions_pass() {
        for a in ["check", "apply", "rollback", "status"] {
            let got = read_request(format!("{a}\n").as_bytes()).unwrap();
            assert_eq!(got.as_str(), a);
        }
        for bad in [
            "history\n",
            "verify\n",
            "apply --version 0.0.1\n",
            "apply \n",
            " apply\n",
            "APPLY\n",
            "apply\r\n",
            "\n",
            "app\0ly\n",
        ] {
            assert!(
                matches!(
                    read_request(bad.as_bytes()),
                    Err(RequestError::UnknownAction)
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn unterminated_and_long_requests_are_refused() {
        assert!(matches!(
            read_request(&b"apply"[..]),
            Err(RequestError::Unterminated)
        ));
        let long = "a".repeat(1000);
        assert!(matches!(
            read_request(long.as_bytes()),
            Err(RequestError::TooLong)
        ));
    }

    #[test]
    fn response_round_trips_and_is_capped() {
        let r = Response {
            exit_code: Some(3),
            stdout: "{\"x\":1}\n".into(),
            stderr: "rolled back\n".into(),
        };
        let mut buf = Vec::new();
        r.write(&mut buf).unwrap();
        assert_eq!(Response::read(&buf[..]).unwrap(), r);
        assert!(Response::read(&b""[..]).is_err());
        let huge = vec![b' '; (MAX_RESPONSE_BYTES + 2) as usize];
        assert!(Response::read(&huge[..]).is_err());
    }
}
