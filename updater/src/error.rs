use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything that can go wrong on the host (what is wrong with release
/// metadata itself is a [`charter_release::Error`]). Attack outcomes have
/// variants of their own; every variant names the file, path or field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Release metadata or a release tree that is not valid.
    #[error(transparent)]
    Release(#[from] charter_release::Error),
    /// A signature, envelope or key problem.
    #[error(transparent)]
    Keys(#[from] charter_keys::Error),
    /// A file system operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A repository document that does not exist.
    #[error("{url}: not found")]
    NotFound {
        /// Where it was looked for.
        url: String,
    },
    /// An HTTP answer other than success.
    #[error("{url}: HTTP status {status}")]
    HttpStatus {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// A transport failure (connection refused, reset, timed out, TLS).
    #[error("{url}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// More bytes than the signed metadata (or the metadata cap) allows:
    /// the endless-data attack.
    #[error("{url}: more than the {max} bytes allowed{}", found.map(|f| format!(" (server announced {f})")).unwrap_or_default())]
    TooLarge {
        /// The URL.
        url: String,
        /// The cap.
        max: u64,
        /// What the server announced, when it did.
        found: Option<u64>,
    },
    /// An archive entry the manifest does not list (extra file).
    #[error("archive entry `{path}` is not in the signed manifest")]
    UnexpectedEntry {
        /// The entry.
        path: String,
    },
    /// A manifest entry the archive lacks.
    #[error("`{path}` is in the signed manifest but not in the archive")]
    MissingEntry {
        /// The entry.
        path: String,
    },
    /// A decompressed stream larger than the manifest justifies.
    #[error(
        "decompressed artifact exceeds the {max} bytes the manifest allows (decompression bomb?)"
    )]
    DecompressionBomb {
        /// The bound.
        max: u64,
    },
    /// A compressed or tar stream that does not decode.
    #[error("corrupt artifact while staging into {}: {reason}", path.display())]
    Corrupt {
        /// The staging directory.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// A candidate version not above the host's ratchet.
    #[error(
        "refusing {candidate}: this host already ran {ratchet} (rollback attack? a downgrade needs a signed channel pointer with allow_downgrade)"
    )]
    Rollback {
        /// Offered version.
        candidate: semver::Version,
        /// Highest version committed here.
        ratchet: semver::Version,
    },
    /// The license does not entitle this host to the release.
    #[error("the license does not entitle this host to {version}: {reason}")]
    NotEntitled {
        /// The release.
        version: semver::Version,
        /// Why.
        reason: String,
    },
    /// A channel pointer older than one this host already accepted.
    #[error(
        "channel pointer published at {published} is older than one already accepted here ({seen}): a replay?"
    )]
    ReplayedPointer {
        /// Its publication time.
        published: jiff::Timestamp,
        /// The newest seen.
        seen: jiff::Timestamp,
    },
    /// A version marked bad here: it failed, or was rolled back on request.
    #[error(
        "{version} {} and is marked bad; pass --retry-bad to try it again",
        cause.map_or("was marked bad on this host".to_string(), |c| c.to_string())
    )]
    BadVersion {
        /// The version.
        version: semver::Version,
        /// Why it was marked (unknown for marks older than the record).
        cause: Option<BadCause>,
    },
    /// The channel's rollout of this version is halted (docs/SPEC.md §9.6).
    #[error(
        "the rollout of {version} is halted{}; `apply --version {version}` installs it anyway",
        if reason.is_empty() { format!(" (since {at})") } else { format!(" (since {at}: {reason})") }
    )]
    RolloutHalted {
        /// The version.
        version: semver::Version,
        /// When it was halted.
        at: jiff::Timestamp,
        /// Why.
        reason: String,
    },
    /// Not enough disk space to stage a release.
    #[error("not enough space in {}: {needed} bytes needed, {available} available", path.display())]
    NoSpace {
        /// Where.
        path: PathBuf,
        /// Needed.
        needed: u64,
        /// Available.
        available: u64,
    },
    /// Nothing to roll back to (or from).
    #[error("cannot roll back: {reason}")]
    NothingToRollBack {
        /// Why.
        reason: String,
    },
    /// A command that needs an installed release found none.
    #[error("nothing is installed under {}: run `charter-update apply` first", install_root.display())]
    NothingInstalled {
        /// `paths.install_root`.
        install_root: PathBuf,
    },
    /// Another charter-update holds the state lock.
    #[error("another charter-update is running (pid {holder}, lock {}); try again when it has finished", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The pid written in it.
        holder: String,
    },
    /// A state file that does not parse.
    #[error("state file {} is corrupt: {reason}", path.display())]
    StateCorrupt {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// A restart command, health check or update script failed.
    #[error("{what} failed: {reason}")]
    Command {
        /// Which command.
        what: String,
        /// Exit status or timeout, and the last lines of output.
        reason: String,
    },
    /// A config file that does not parse or is not valid.
    #[error("config {}: {reason}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the field name.
        reason: String,
    },
}

impl Error {
    /// Failures worth retrying: transport errors and server-side 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Http { .. } => true,
            Error::HttpStatus { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// What marked a version bad (kept in the host state, `bad_causes`, and
/// named by [`Error::BadVersion`]; defined here, below every module that
/// uses it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BadCause {
    /// It was swapped in and its health check failed.
    HealthCheck,
    /// It was swapped in and its restart or `post_swap` script failed.
    Start,
    /// An operator (or the panel) asked for a rollback from it.
    Requested,
}

impl std::fmt::Display for BadCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BadCause::HealthCheck => "failed its health check on this host before",
            BadCause::Start => {
                "failed to start on this host before (its restart or post_swap script failed)"
            }
            BadCause::Requested => "was rolled back on request on this host",
        })
    }
}
