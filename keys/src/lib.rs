//! Keys, trust roots and signed envelopes for charter.
//!
//! This crate is the leaf every signed document goes through. It knows:
//!
//! - Ed25519 public keys ([`PublicKey`]) and their stable [`KeyId`]
//!   (`hex(sha256(SPKI DER))`, see docs/SPEC.md §1);
//! - DSSE envelopes ([`dsse::Envelope`]) with per-role thresholds;
//! - the trust root ([`root::VerifiedRoot`]) and its rotation chain;
//! - [`Limits`] on everything parsed from outside;
//! - with the `sign` feature only: private keys, key files encrypted at rest,
//!   and signing. Host binaries build without it and so carry no signing code.
//!
//! The crate holds no policy and does no network I/O.
#![deny(missing_docs)]

pub mod blob;
pub mod buildinfo;
mod clock;
pub mod confsecret;
pub mod dsse;
mod error;
pub mod fsutil;
mod key;
mod limits;
pub mod root;
#[cfg(feature = "sign")]
pub mod secret;
pub mod sigstore;

pub use clock::{Clock, FixedClock, SystemClock};
pub use error::Error;
pub use key::{KeyId, PublicKey, SIGNATURE_LEN, Signature};
pub use limits::Limits;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The roles a trust root names. Each signed document kind is signed by
/// exactly one of them (docs/SPEC.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Signs trust roots (and rotations to the next root).
    Root,
    /// Signs release manifests.
    Release,
    /// Signs channel pointers.
    Channel,
    /// Signs licenses and license status documents.
    License,
}

impl Role {
    /// All roles, in the order they appear in a root.
    pub const ALL: [Role; 4] = [Role::Root, Role::Release, Role::Channel, Role::License];

    /// The role's name as it appears in root.json.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Release => "release",
            Role::Channel => "channel",
            Role::License => "license",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| Error::UnknownRole(s.to_owned()))
    }
}
