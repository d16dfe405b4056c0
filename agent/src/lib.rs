//! The license domain of charter: signed licenses and status documents,
//! this host's fingerprint, the tamper-evident runtime state, the license
//! state computation (`active`, `grace`, `expired`, `suspended`,
//! `invalid`), and the `charter-agent` daemon's local API and audit log.
//!
//! Formats and evaluation rules: docs/SPEC.md §10.
#![deny(missing_docs)]

pub mod api;
pub mod audit;
pub mod config;
pub mod daemon;
pub mod entitlement;
mod error;
pub mod eval;
pub mod fingerprint;
mod hooks;
mod installed;
pub mod license;
mod procgroup;
pub mod selftest;
pub mod state;
pub mod status_fetch;
mod version;

pub use error::{Error, Result};
pub use version::version_json;

/// Hidden `--generate KIND DIR` for packaging/build.sh, shared by the three
/// binaries: man pages (one per subcommand) or a completion script (KIND =
/// bash, zsh, fish, ...) made from `cmd`, the binary's clap definition, and
/// written into DIR. Called before the real parse (which requires a
/// subcommand); `None` when the first argument is not `--generate`.
pub fn generate_docs(cmd: impl FnOnce() -> clap::Command) -> Option<std::process::ExitCode> {
    use std::process::ExitCode;
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_none_or(|a| a != "--generate") {
        return None;
    }
    let mut cmd = cmd();
    let name = cmd.get_name().to_owned();
    let made = match &args[..] {
        [_, _, kind, dir] if kind == "man" => clap_mangen::generate_to(cmd, dir),
        [_, _, kind, dir] => match kind.to_string_lossy().parse::<clap_complete::Shell>() {
            Ok(shell) => clap_complete::generate_to(shell, &mut cmd, &name, dir).map(drop),
            Err(e) => Err(std::io::Error::other(e)),
        },
        _ => Err(std::io::Error::other(
            "usage: --generate man|bash|zsh|fish|elvish|powershell DIR",
        )),
    };
    Some(match made {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: error: --generate: {e}");
            ExitCode::from(2)
        }
    })
}
