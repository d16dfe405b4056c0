//! Which signatures a release manifest needs (docs/SPEC.md §13.4): a
//! threshold of the root's `release` keys (ed25519, DSSE), a cosign
//! bundle over the signed manifest file's bytes, both, or either.
//!
//! The cosign bundle of `releases/<p>/<v>/manifest.json` is
//! `releases/<p>/<v>/manifest.json.sigstore.json`, exactly what
//! `cosign sign-blob --bundle manifest.json.sigstore.json manifest.json`
//! writes (Sigstore bundle, any version, or cosign 2.x's own format). It is
//! checked offline against a `trusted_root.json`.

use std::path::{Path, PathBuf};

use charter_keys::sigstore::TrustedRoot;
use charter_keys::sigstore::{self, Identity, Policy};
use serde::Deserialize;

use crate::Result;

/// Where an operator's trusted root is looked for first, then the one the
/// package ships; without either, the Sigstore public-good root built in.
pub const TRUSTED_ROOT_PATHS: [&str; 2] = [
    "/etc/charter/trust/trusted_root.json",
    "/usr/share/charter/trusted_root.json",
];

/// Suffix of a manifest's cosign bundle.
pub const BUNDLE_SUFFIX: &str = ".sigstore.json";

/// Largest cosign public key file read.
const MAX_KEY_BYTES: u64 = 64 << 10;

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
    fn name(self) -> &'static str {
        match self {
            Require::Ed25519 => "ed25519",
            Require::Cosign => "cosign",
            Require::All => "all",
            Require::Any => "any",
        }
    }
}

/// `[signatures]` in charter.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignaturesConfig {
    /// Which signatures a release needs.
    #[serde(default)]
    pub require: Require,
    /// The cosign requirement.
    #[serde(default)]
    pub cosign: Option<CosignConfig>,
}

/// `[signatures.cosign]`: the flags of `cosign verify-blob`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosignConfig {
    /// The exact certificate identity (SAN).
    #[serde(default)]
    pub certificate_identity: Option<String>,
    /// A regular expression the whole identity must match (anchored).
    #[serde(default)]
    pub certificate_identity_regexp: Option<String>,
    /// The exact OIDC issuer (keyless).
    #[serde(default)]
    pub certificate_oidc_issuer: Option<String>,
    /// A managed key (PEM) instead of a keyless identity.
    #[serde(default)]
    pub public_key: Option<PathBuf>,
    /// The trusted root; default: the first of [`TRUSTED_ROOT_PATHS`]
    /// that exists, else the built-in public-good root.
    #[serde(default)]
    pub trusted_root: Option<PathBuf>,
}

impl SignaturesConfig {
    /// Checks the combination; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        match (self.require, &self.cosign) {
            (Require::Ed25519, None) => Ok(()),
            (Require::Ed25519, Some(_)) => Err(
                "[signatures.cosign] is set but signatures.require = \"ed25519\" ignores it; \
                 set require to \"all\", \"any\" or \"cosign\""
                    .into(),
            ),
            (r, None) => Err(format!(
                "signatures.require = \"{}\" needs a [signatures.cosign] table",
                r.name()
            )),
            (_, Some(c)) => c.validate(),
        }
    }
}

impl CosignConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        let given = [
            self.certificate_identity.is_some(),
            self.certificate_identity_regexp.is_some(),
            self.public_key.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given != 1 {
            return Err(
                "signatures.cosign needs exactly one of certificate_identity, \
                 certificate_identity_regexp and public_key"
                    .into(),
            );
        }
        match (&self.public_key, &self.certificate_oidc_issuer) {
            (None, None) => {
                return Err(
                    "signatures.cosign.certificate_oidc_issuer is required with a certificate identity"
                        .into(),
                );
            }
            (Some(_), Some(_)) => {
                return Err(
                    "signatures.cosign.certificate_oidc_issuer does not apply to public_key".into(),
                );
            }
            _ => {}
        }
        if let Some(r) = &self.certificate_identity_regexp {
            Identity::regex(r)
                .map_err(|e| format!("signatures.cosign.certificate_identity_regexp: {e}"))?;
        }
        for (name, p) in [
            ("public_key", &self.public_key),
            ("trusted_root", &self.trusted_root),
        ] {
            if let Some(p) = p
                && !p.is_absolute()
            {
                return Err(format!(
                    "signatures.cosign.{name} `{}` must be an absolute path",
                    p.display()
                ));
            }
        }
        Ok(())
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

    /// Loads the key file and trusted root a (validated) config names.
    pub fn load(cfg: &SignaturesConfig) -> Result<Self> {
        let Some(c) = &cfg.cosign else {
            return Ok(Self::ed25519());
        };
        let issuer = c.certificate_oidc_issuer.clone().unwrap_or_default();
        let policy = if let Some(k) = &c.public_key {
            Policy::Key(charter_keys::fsutil::read_capped(
                k,
                MAX_KEY_BYTES,
                "cosign public key",
            )?)
        } else if let Some(id) = &c.certificate_identity {
            Policy::Keyless {
                identity: Identity::Exact(id.clone()),
                issuer,
            }
        } else {
            // Validation made sure one of the three is there; an empty
            // anchored expression matches no real identity.
            let r = c.certificate_identity_regexp.as_deref().unwrap_or("");
            Policy::Keyless {
                identity: Identity::regex(r)?,
                issuer,
            }
        };
        let (json, root_source) = match &c.trusted_root {
            Some(p) => (
                sigstore::read_json_file(p, "trusted root")?,
                p.display().to_string(),
            ),
            None => match TRUSTED_ROOT_PATHS
                .iter()
                .map(Path::new)
                .find(|p| p.exists())
            {
                Some(p) => (
                    sigstore::read_json_file(p, "trusted root")?,
                    p.display().to_string(),
                ),
                None => (
                    sigstore::PRODUCTION_TRUSTED_ROOT.as_bytes().to_vec(),
                    "built-in Sigstore public-good root".into(),
                ),
            },
        };
        let root = sigstore::trusted_root(&json)?;
        Ok(SignaturePolicy {
            require: cfg.require,
            cosign: Some(CosignCheck {
                policy,
                root,
                root_source,
            }),
        })
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
