use std::path::PathBuf;

use crate::{KeyId, Role};

/// Everything that can go wrong in this crate. Attack outcomes have variants
/// of their own (`ThresholdNotMet`, `Expired`, `RootVersion`, ...) so callers
/// and tests can tell them apart. No variant ever carries secret material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "create", ...).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A private key, passphrase or secret file that group or others may access.
    #[error(
        "{} has mode {mode:04o}: a file holding a secret must not be accessible by group or others; run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A secret config value that cannot be used (never carries the value).
    #[error("secret `{field}`: {reason}")]
    Secret {
        /// The field (`repository.token`).
        field: String,
        /// What went wrong.
        reason: String,
    },
    /// A file bigger than the limit for its kind.
    #[error("{} is {size} bytes, more than the {max} allowed for {what}", path.display())]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// What kind of file it was supposed to be.
        what: &'static str,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Bytes that are not a key of the expected kind.
    #[error("invalid key{}: {reason}", source_name.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    InvalidKey {
        /// Where the key came from, when it was a file.
        source_name: Option<PathBuf>,
        /// What was wrong (never includes key bytes).
        reason: String,
    },
    /// An encrypted private key and no way to get its passphrase.
    #[error("{} is encrypted and no passphrase was given (set CHARTER_PASSPHRASE, pass --passphrase-file, or run on a terminal)", path.display())]
    PassphraseRequired {
        /// The key file.
        path: PathBuf,
    },
    /// Decryption of an encrypted private key failed.
    #[error("cannot decrypt {}: wrong passphrase or corrupted key file", path.display())]
    WrongPassphrase {
        /// The key file.
        path: PathBuf,
    },
    /// Key-file encryption parameters above what we agree to compute.
    #[error("{} asks for {what}, above the limit of {max}; refusing to spend that much work", path.display())]
    KdfTooExpensive {
        /// The key file.
        path: PathBuf,
        /// The parameter and its value.
        what: String,
        /// The limit.
        max: String,
    },
    /// A document larger than the limits allow.
    #[error("{what} is {size} bytes, more than the limit of {max}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// An envelope with more signatures than the limit.
    #[error("envelope carries {count} signatures, more than the limit of {max}")]
    TooManySignatures {
        /// How many it carried.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A document that is not valid JSON of the expected shape.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being parsed ("envelope", "root", ...).
        what: &'static str,
        /// The parser's message, with line and column.
        reason: String,
    },
    /// An envelope whose payloadType is not the one expected: one kind of
    /// signed document can never pass as another.
    #[error("wrong payload type: expected `{expected}`, found `{found}`")]
    WrongPayloadType {
        /// The payloadType wanted.
        expected: String,
        /// The payloadType in the envelope.
        found: String,
    },
    /// Fewer distinct authorized keys signed than the role's threshold.
    #[error(
        "threshold not met for role `{role}`: {valid} valid signature(s) from distinct `{role}` keys, {threshold} required"
    )]
    ThresholdNotMet {
        /// The role whose threshold applied.
        role: Role,
        /// Valid signatures from distinct keys of that role.
        valid: usize,
        /// The role's threshold.
        threshold: u32,
    },
    /// A trust root that is internally inconsistent.
    #[error("invalid trust root: {0}")]
    InvalidRoot(String),
    /// A rotated root whose version is not exactly one more than the trusted one.
    #[error(
        "root version {found} cannot follow trusted version {trusted} (must be exactly one more)"
    )]
    RootVersion {
        /// The trusted root's version.
        trusted: u64,
        /// The candidate's version.
        found: u64,
    },
    /// A root rotation whose old and new root thresholds cannot be met in
    /// one envelope: it could never be signed well enough to reach a host.
    #[error(
        "rotation from root version {from} to {to} needs at least {needed} signatures in one envelope (old root threshold {old_threshold} plus new root threshold {new_threshold}, {shared} key(s) in both), more than the {max} an envelope carries; lower a threshold or keep some of the old root keys"
    )]
    RotationCannotFit {
        /// The previous root's version.
        from: u64,
        /// The new root's version.
        to: u64,
        /// Fewest signatures that would meet both thresholds.
        needed: u64,
        /// The previous root role's threshold.
        old_threshold: u32,
        /// The new root role's threshold.
        new_threshold: u32,
        /// Root keys both versions list.
        shared: usize,
        /// `max_signatures`.
        max: usize,
    },
    /// A chain of root rotations longer than the limit.
    #[error("more than {max} root rotations in one update; refusing to walk further")]
    TooManyRotations {
        /// The limit.
        max: u32,
    },
    /// A signed document past its expiry.
    #[error("{what} expired at {expires} (now {now})")]
    Expired {
        /// What expired.
        what: String,
        /// When.
        expires: jiff::Timestamp,
        /// The clock's answer.
        now: jiff::Timestamp,
    },
    /// A role name that is not one of root, release, channel, license.
    #[error("unknown role `{0}` (expected root, release, channel or license)")]
    UnknownRole(String),
    /// A detached signature that does not verify.
    #[error("signature does not verify against key {keyid}")]
    BadSignature {
        /// The key it was checked against.
        keyid: KeyId,
    },
    /// A signature that is not 64 bytes of base64.
    #[error("malformed signature: {0}")]
    MalformedSignature(String),
    /// The key already has a signature on this envelope.
    #[error("key {keyid} has already signed this envelope")]
    AlreadySigned {
        /// The key.
        keyid: KeyId,
    },
    /// A Sigstore bundle that does not verify (which check failed).
    #[error("Sigstore bundle not verified: {0}")]
    Sigstore(String),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Rng,
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
