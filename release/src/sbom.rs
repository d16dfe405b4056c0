//! The release's SBOM (docs/SPEC.md §6.6): a CycloneDX JSON document the
//! vendor ships beside the artifact, named and pinned (size, SHA-256) by
//! the signed manifest, so a host can hand scanners (grype, trivy) the
//! exact bill of materials of what it runs.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::digest::Sha256Digest;
use crate::{Error, Result};

/// Largest SBOM accepted.
pub const MAX_SBOM_BYTES: u64 = 32 << 20;

/// The manifest's `sbom` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sbom {
    /// File name beside the artifact (`<product>-<version>.cdx.json`).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the file.
    pub sha256: Sha256Digest,
}

impl Sbom {
    /// Checks the reference itself (the manifest's validation).
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.name.is_empty()
            || self.name.contains('/')
            || self.name.starts_with('.')
            || !self.name.ends_with(".cdx.json")
        {
            return Err(format!(
                "sbom name `{}` must be a plain file name ending in .cdx.json",
                self.name
            ));
        }
        if self.size > MAX_SBOM_BYTES {
            return Err(format!(
                "sbom is {} bytes, more than {MAX_SBOM_BYTES}",
                self.size
            ));
        }
        Ok(())
    }

    /// Checks `bytes` are this SBOM.
    pub fn matches(&self, bytes: &[u8]) -> Result<()> {
        if bytes.len() as u64 != self.size {
            return Err(Error::SizeMismatch {
                what: format!("sbom {}", self.name),
                expected: self.size,
                found: bytes.len() as u64,
            });
        }
        let got = Sha256Digest(sha2::Sha256::digest(bytes).into());
        if got != self.sha256 {
            return Err(Error::DigestMismatch {
                what: format!("sbom {}", self.name),
                expected: self.sha256.to_string(),
                found: got.to_string(),
            });
        }
        Ok(())
    }
}

/// Checks that `bytes` are a CycloneDX JSON document (`bomFormat` is
/// `CycloneDX`, `specVersion` a string); `what` names it in errors.
pub fn check_cyclonedx(bytes: &[u8], what: &str) -> Result<()> {
    let bad = |reason: String| Error::InvalidInput {
        what: "SBOM",
        reason: format!("{what}: {reason}"),
    };
    if bytes.len() as u64 > MAX_SBOM_BYTES {
        return Err(bad(format!(
            "{} bytes, more than {MAX_SBOM_BYTES}",
            bytes.len()
        )));
    }
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
    if v.get("bomFormat").and_then(|f| f.as_str()) != Some("CycloneDX") {
        return Err(bad(
            "not a CycloneDX document (bomFormat is not \"CycloneDX\")".into(),
        ));
    }
    if !v.get("specVersion").is_some_and(|s| s.is_string()) {
        return Err(bad("no specVersion".into()));
    }
    Ok(())
}

/// Reads and checks an SBOM file for a release, and the manifest entry
/// describing it.
pub fn prepare(path: &Path, product: &str, version: &semver::Version) -> Result<(Vec<u8>, Sbom)> {
    let bytes = charter_keys::fsutil::read_capped(path, MAX_SBOM_BYTES, "an SBOM")?;
    check_cyclonedx(&bytes, &path.display().to_string())?;
    let sbom = Sbom {
        name: format!("{product}-{version}.cdx.json"),
        size: bytes.len() as u64,
        sha256: Sha256Digest(sha2::Sha256::digest(&bytes).into()),
    };
    Ok((bytes, sbom))
}
