//! Which signatures a release manifest needs (docs/SPEC.md §13.4): a
//! threshold of the root's `release` keys (ed25519, DSSE), a cosign
//! bundle over the signed manifest file's bytes, both, or either. The
//! host's `[signatures]` table chooses, and loads the cosign half.
//!
//! The cosign bundle of `releases/<p>/<v>/manifest.json` is
//! `releases/<p>/<v>/manifest.json.sigstore.json`, exactly what
//! `cosign sign-blob --bundle manifest.json.sigstore.json manifest.json`
//! writes (Sigstore bundle, any version, or cosign 2.x's own format). It is
//! checked offline against a `trusted_root.json`.

use charter_keys::sigstore::{Policy, TrustedRoot};
use serde::Deserialize;

/// Suffix of a manifest's cosign bundle.
pub const BUNDLE_SUFFIX: &str = ".sigstore.json";

/// `[signatures] require`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Require {
    /// A threshold of `release` keys (the default).
    #[default]
    Ed25519,
    /// The cosign bundle alone.
    Cosign,
    /// Both.
    All,
    /// Either one.
    Any,
}

impl Require {
    /// How `[signatures] require` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Require::Ed25519 => "ed25519",
            Require::Cosign => "cosign",
            Require::All => "all",
            Require::Any => "any",
        }
    }
}

/// The cosign requirement, loaded.
pub struct CosignCheck {
    /// Identity and issuer, or key.
    pub policy: Policy,
    /// The trusted root.
    pub root: TrustedRoot,
    /// Where the trusted root came from (for `status` and messages).
    pub root_source: String,
}

impl std::fmt::Debug for CosignCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CosignCheck({})", self.describe())
    }
}

impl CosignCheck {
    /// One line: who must have signed, against which root.
    pub fn describe(&self) -> String {
        match &self.policy {
            Policy::Keyless { identity, issuer } => format!(
                "cosign bundle from {identity} issued by {issuer} (trusted root: {})",
                self.root_source
            ),
            Policy::Key(_) => format!(
                "cosign bundle from the managed key (trusted root: {})",
                self.root_source
            ),
        }
    }
}

/// The loaded signature policy.
#[derive(Debug)]
pub struct SignaturePolicy {
    /// What is required.
    pub require: Require,
    /// The cosign half, when `require` is not `ed25519`.
    pub cosign: Option<CosignCheck>,
}

impl SignaturePolicy {
    /// Release keys only (the default, and what tools that hold no host
    /// config use).
    pub fn ed25519() -> Self {
        SignaturePolicy {
            require: Require::Ed25519,
            cosign: None,
        }
    }
    /// Whether the manifest's cosign bundle is fetched.
    pub fn wants_bundle(&self) -> bool {
        self.require != Require::Ed25519 && self.cosign.is_some()
    }

    /// One line for `status`.
    pub fn describe(&self) -> String {
        let ed = "a threshold of the root's release keys";
        match (&self.require, &self.cosign) {
            (Require::Ed25519, _) | (_, None) => ed.into(),
            (Require::Cosign, Some(c)) => c.describe(),
            (Require::All, Some(c)) => format!("{ed} AND a {}", c.describe()),
            (Require::Any, Some(c)) => format!("{ed} OR a {}", c.describe()),
        }
    }
}
