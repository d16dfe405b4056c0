use std::path::PathBuf;

/// What can be wrong with release metadata or a release tree: every
/// variant names the file, path or field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
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
    /// A path inside a release that could escape the tree or is not
    /// representable.
    #[error("unsafe path `{path}`: {reason}")]
    UnsafePath {
        /// The path as found (lossily printed).
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A device, FIFO or socket in a release tree.
    #[error("{} is a {kind}; releases may hold only files, directories and symlinks", path.display())]
    SpecialFile {
        /// The file.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// A symlink whose target leaves the release tree.
    #[error("symlink {} points to `{target}`, outside the release tree", path.display())]
    SymlinkEscape {
        /// The link.
        path: PathBuf,
        /// Its target.
        target: String,
    },
    /// A file that changed size while it was being read.
    #[error("{} changed while it was being read; try again on a quiet tree", path.display())]
    FileChanged {
        /// The file.
        path: PathBuf,
    },
    /// The release's signatures do not meet the host's signature policy
    /// (`[signatures]`): which part failed, and why.
    #[error("signature policy not met: {0}")]
    SignaturePolicy(String),
    /// A manifest that parsed but is not valid.
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// A manifest past its expiry.
    #[error("{what} expired at {expires} (now {now})")]
    Expired {
        /// What expired ("manifest for panel 1.2.0").
        what: String,
        /// Expiry.
        expires: jiff::Timestamp,
        /// Now.
        now: jiff::Timestamp,
    },
    /// Bytes whose digest is not the one the signed metadata states.
    #[error("{what}: sha256 {found}, expected {expected}")]
    DigestMismatch {
        /// What was hashed.
        what: String,
        /// Digest in the signed metadata.
        expected: String,
        /// Digest of the bytes.
        found: String,
    },
    /// Bytes whose length is not the one the signed metadata states.
    #[error("{what}: {found} bytes, expected {expected}")]
    SizeMismatch {
        /// What was measured.
        what: String,
        /// Size in the signed metadata.
        expected: u64,
        /// Size found.
        found: u64,
    },
    /// An output file that already exists (nothing is overwritten).
    #[error("{} already exists; remove it or choose another output", path.display())]
    OutputExists {
        /// The file.
        path: PathBuf,
    },
    /// A bad glob pattern.
    #[error("invalid glob `{pattern}`: {reason}")]
    InvalidGlob {
        /// The pattern.
        pattern: String,
        /// The parser's complaint.
        reason: String,
    },
    /// An archive entry that differs from its manifest entry.
    #[error("archive entry `{path}` {reason}")]
    EntryMismatch {
        /// The entry.
        path: String,
        /// How it differs.
        reason: String,
    },
    /// A hard link, device or FIFO in an archive.
    #[error(
        "archive entry `{path}` is a {kind}; releases hold only files, directories and symlinks"
    )]
    ForbiddenEntry {
        /// The entry.
        path: String,
        /// What it is.
        kind: &'static str,
    },
    /// A plain artifact (docs/SPEC.md §13.5) that cannot be installed.
    #[error("plain artifact: {what} {reason}")]
    PlainArtifact {
        /// The file or entry.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two signed documents (or a document and the host) disagree.
    #[error("{what} names {found}, expected {expected}")]
    Mismatch {
        /// Which document.
        what: &'static str,
        /// What the host or the other document expects.
        expected: String,
        /// What it says.
        found: String,
    },
    /// A bad argument to a library call (product name, version, ...).
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// Which input.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    /// An I/O error with the operation and the path it was about.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
