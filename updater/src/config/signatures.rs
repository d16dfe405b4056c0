//! `[signatures]` in charter.toml: which signatures this host requires of
//! a release manifest, and loading the cosign half (its key or identity,
//! and the trusted root from the host's paths) into a
//! [`SignaturePolicy`] (charter_release::signatures, docs/SPEC.md §13.4).

use std::path::{Path, PathBuf};

use charter_keys::sigstore::{self, Identity, Policy};
use charter_release::signatures::{CosignCheck, Require, SignaturePolicy};
use serde::Deserialize;

use crate::Result;

/// Where an operator's trusted root is looked for first, then the one the
/// package ships; without either, the Sigstore public-good root built in.
pub const TRUSTED_ROOT_PATHS: [&str; 2] = [
    "/etc/charter/trust/trusted_root.json",
    "/usr/share/charter/trusted_root.json",
];

/// Largest cosign public key file read.
const MAX_KEY_BYTES: u64 = 64 << 10;

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

impl SignaturesConfig {
    /// Loads the key file and trusted root a (validated) config names.
    pub fn load(&self) -> Result<SignaturePolicy> {
        let Some(c) = &self.cosign else {
            return Ok(SignaturePolicy::ed25519());
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
            require: self.require,
            cosign: Some(CosignCheck {
                policy,
                root,
                root_source,
            }),
        })
    }
}
