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

/// The actions the door lets through: the four the sudoers rule names,
/// and the operator's hold (docs/SPEC.md §11.12), which sudoers cannot
/// offer safely (its one argument, a number, cannot be checked by a
/// sudoers rule). `apply --version`, `--retry-bad`, `history` and `verify`
/// are for root at a shell.
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
    /// `charter-update hold --until <SECS>s --reason "…" --json`: no
    /// automatic install for this many seconds (1 to [`Hold::MAX_SECS`]).
    ///
    /// [`Hold::MAX_SECS`]: crate::host::state::Hold::MAX_SECS
    Hold(u32),
    /// `charter-update hold --clear --json`.
    HoldClear,
}

/// The reason a hold set through the door records.
pub const DOOR_HOLD_REASON: &str = "held through the update door";

impl Action {
    /// The action's name (`hold` for a hold of any length).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Check => "check",
            Action::Apply => "apply",
            Action::Rollback => "rollback",
            Action::Status => "status",
            Action::Hold(_) => "hold",
            Action::HoldClear => "hold-clear",
        }
    }

    /// The request line, without its newline: the name, and for a hold
    /// its seconds.
    pub fn request_line(self) -> String {
        match self {
            Action::Hold(secs) => format!("hold {secs}"),
            a => a.as_str().to_owned(),
        }
    }

    /// Parses a request line (without its newline): one of the four
    /// names, `hold-clear`, or `hold` and a number of seconds in plain
    /// decimal (no sign, no leading zero) from 1 to [`Hold::MAX_SECS`];
    /// anything else is refused.
    ///
    /// [`Hold::MAX_SECS`]: crate::host::state::Hold::MAX_SECS
    pub fn from_line(line: &str) -> Option<Action> {
        if let Some(n) = line.strip_prefix("hold ") {
            let plain = !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && !n.starts_with('0')
                && n.len() <= 10;
            let secs: u32 = n.parse().ok().filter(|_| plain)?;
            let max = crate::host::state::Hold::MAX_SECS;
            return (i64::from(secs) <= max).then_some(Action::Hold(secs));
        }
        [
            Action::Check,
            Action::Apply,
            Action::Rollback,
            Action::Status,
            Action::HoldClear,
        ]
        .into_iter()
        .find(|a| a.as_str() == line)
    }

    /// The updater's arguments for it, made here from the parsed action
    /// (never from the request's bytes).
    pub fn args(self) -> Vec<String> {
        let mut v: Vec<String> = match self {
            Action::Hold(secs) => vec![
                "hold".into(),
                "--until".into(),
                format!("{secs}s"),
                "--reason".into(),
                DOOR_HOLD_REASON.into(),
            ],
            Action::HoldClear => vec!["hold".into(), "--clear".into()],
            a => vec![a.as_str().into()],
        };
        v.push("--json".into());
        v
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
    /// The line is not one of the actions.
    #[error("unknown action (expected check, apply, rollback, status, hold SECONDS or hold-clear)")]
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
        .and_then(Action::from_line)
        .ok_or(RequestError::UnknownAction)
}

/// Writes a request line.
pub fn write_request(mut w: impl Write, action: Action) -> std::io::Result<()> {
    w.write_all(format!("{}\n", action.request_line()).as_bytes())?;
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

/// Runs `program <action's args>` ([`Action::args`], after `extra_args`,
/// which come from the server's own trusted command line, never from the
/// request) with a cleared environment and stdin from /dev/null, and
/// collects its answer.
pub fn run_action(
    program: &std::path::Path,
    extra_args: &[std::ffi::OsString],
    action: Action,
) -> Response {
    let out = std::process::Command::new(program)
        .args(extra_args)
        .args(action.args())
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
    fn only_the_exact_actions_pass() {
        for a in ["check", "apply", "rollback", "status", "hold-clear"] {
            let got = read_request(format!("{a}\n").as_bytes()).unwrap();
            assert_eq!(got.as_str(), a);
        }
        for (line, secs) in [
            ("hold 1", 1),
            ("hold 3600", 3600),
            ("hold 31622400", 31_622_400),
        ] {
            let got = read_request(format!("{line}\n").as_bytes()).unwrap();
            assert_eq!(got, Action::Hold(secs));
            assert_eq!(got.request_line(), line);
            assert_eq!(
                got.args(),
                [
                    "hold",
                    "--until",
                    &format!("{secs}s"),
                    "--reason",
                    DOOR_HOLD_REASON,
                    "--json"
                ]
            );
        }
        assert_eq!(Action::HoldClear.args(), ["hold", "--clear", "--json"]);
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
            "hold\n",
            "hold 0\n",
            "hold 01\n",
            "hold -1\n",
            "hold +5\n",
            "hold 1e3\n",
            "hold  5\n",
            "hold 5 \n",
            "hold 5 --clear\n",
            "hold 31622401\n",
            "hold 99999999999\n",
            "hold 4294967296\n",
            "hold 5s\n",
            "hold-clear now\n",
            "HOLD 5\n",
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
