//! Plumbing shared by the three charter binaries (`charter`,
//! `charter-update`, `charter-agent`) and nothing else: the `outln!` and
//! `out!` macros, the `main` wrapper (broken pipe, error line, exit
//! status) and the hidden `--generate` for packaging/build.sh. No domain
//! code goes here (docs/DECISIONS.md).
#![deny(missing_docs)]

use std::io::Write as _;
use std::process::ExitCode;

/// `println!` that returns the write error instead of panicking, so a
/// closed pipe (`... | head`) ends the command quietly: [`main`] treats
/// `BrokenPipe` as success. Use it in a function returning a `Result`
/// whose error converts from `std::io::Error`.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        ::std::writeln!(::std::io::stdout(), $($arg)*)?
    }};
}

/// `print!` likewise.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        ::std::write!(::std::io::stdout(), $($arg)*)?
    }};
}

/// A binary's command line: how it runs, and the exit status of a failure.
pub trait Binary: clap::Parser {
    /// Runs the parsed command; its exit status on success.
    fn run(self) -> anyhow::Result<ExitCode>;

    /// The exit status when [`Binary::run`] fails (1 unless the command
    /// says otherwise). Asked before the run.
    fn error_status(&self) -> u8 {
        1
    }
}

/// The whole `main` of a binary: the hidden `--generate` (see
/// [`generate_docs`]), then the parse (clap prints usage errors and exits
/// 2), then the run. A failure is printed as one line,
/// `<name>: error: <error and its causes>`, with the command's
/// [`Binary::error_status`]; a failure caused by a closed stdout
/// (`... | head`) is a success and prints nothing.
pub fn main<B: Binary>() -> ExitCode {
    if let Some(code) = generate_docs(B::command) {
        return code;
    }
    let cli = B::parse();
    let status = cli.error_status();
    match cli.run() {
        Ok(code) => code,
        Err(err) => {
            if err
                .chain()
                .filter_map(|c| c.downcast_ref::<std::io::Error>())
                .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            let name = B::command().get_name().to_owned();
            let _ = writeln!(std::io::stderr(), "{name}: error: {err:#}");
            ExitCode::from(status)
        }
    }
}

/// Hidden `--generate KIND DIR` for packaging/build.sh, shared by the three
/// binaries: man pages (one per subcommand) or a completion script (KIND =
/// bash, zsh, fish, ...) made from `cmd`, the binary's clap definition, and
/// written into DIR. Called before the real parse (which requires a
/// subcommand); `None` when the first argument is not `--generate`.
pub fn generate_docs(cmd: impl FnOnce() -> clap::Command) -> Option<ExitCode> {
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

/// Crash injection for tests. With the `failpoints` feature,
/// `CHARTER_FAILPOINT=<name>` makes the process abort (no destructors, no
/// flushing: as close to `kill -9` as a process can do to itself) when it
/// reaches the named point. Without the feature this compiles to nothing.
pub mod failpoint {
    /// Aborts the process when `CHARTER_FAILPOINT` names this point.
    #[cfg(feature = "failpoints")]
    pub fn hit(name: &str) {
        if std::env::var("CHARTER_FAILPOINT").as_deref() == Ok(name) {
            eprintln!("charter-update: failpoint {name}: aborting");
            std::process::abort();
        }
    }

    /// No-op without the `failpoints` feature.
    #[cfg(not(feature = "failpoints"))]
    #[inline(always)]
    pub fn hit(_name: &str) {}
}
