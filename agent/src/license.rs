//! Licenses and license status documents (docs/SPEC.md §10).
//!
//! A license is a DSSE envelope of type
//! [`charter_keys::dsse::PAYLOAD_LICENSE`], a status document one of type
//! [`charter_keys::dsse::PAYLOAD_LICENSE_STATUS`], both signed by the
//! trust root's `license` role. Their payloads are parsed only after the
//! signatures hold; the only ways to the verified types are the `verify`
//! functions.

use std::collections::BTreeMap;

use charter_keys::dsse::{Envelope, PAYLOAD_LICENSE, PAYLOAD_LICENSE_STATUS};
use charter_keys::root::VerifiedRoot;
use charter_keys::{KeyId, Limits, Role};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest license or status envelope accepted.
pub const MAX_DOCUMENT_BYTES: u64 = 256 << 10;

/// The license payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct License {
    /// Stable id of the license (the same across reissues).
    pub license_id: String,
    /// Rises with every reissue; a host refuses a serial below the highest
    /// it has seen.
    pub serial: u64,
    /// Who it is for.
    pub customer: String,
    /// Product it licenses.
    pub product: String,
    /// When it was signed.
    pub issued_at: Timestamp,
    /// Not valid before this.
    pub not_before: Timestamp,
    /// Valid until this; then the grace period runs.
    pub expires_at: Timestamp,
    /// Seconds the product keeps working (with warnings) after expiry or
    /// after going offline too long.
    pub grace_period_secs: u64,
    /// Releases dated after this are not entitled.
    pub updates_until: Timestamp,
    /// After `updates_until`, releases the manifest marks as security fixes
    /// are still entitled.
    #[serde(default)]
    pub security_updates_after: bool,
    /// Feature names.
    #[serde(default)]
    pub features: Vec<String>,
    /// Numeric limits (`max_nodes = 10`).
    #[serde(default)]
    pub limits: BTreeMap<String, i64>,
    /// Host fingerprints this license is bound to, each v1 (64 hex digits)
    /// or v2 (`v2:` and 64 hex digits); empty: floating.
    #[serde(default)]
    pub machines: Vec<String>,
    /// Longest the host may go without a fresh signed status (seconds);
    /// none: no status required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_offline_secs: Option<u64>,
    /// Where the signed status document is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_url: Option<String>,
}

/// What a status document says about a license.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusState {
    /// In good standing.
    Active,
    /// Temporarily switched off (unpaid invoice, abuse): reversible.
    Suspended,
    /// Permanently withdrawn.
    Revoked,
}

/// The status payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenseStatus {
    /// The license it speaks of.
    pub license_id: String,
    /// Its standing.
    pub state: StatusState,
    /// Why (shown to the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was signed.
    pub issued_at: Timestamp,
    /// Hosts stop relying on an `active` status after this (suspension and
    /// revocation stay in force until a newer status replaces them).
    pub valid_until: Timestamp,
    /// The license's current serial, as the vendor knows it: a host holding
    /// an older serial is told its license was superseded (this is what
    /// stops an older license being replayed after the host's state was
    /// reset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_serial: Option<u64>,
}

fn check_name(what: &'static str, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid {
            what,
            reason: format!("`{s}`: use 1 to 128 of A-Z a-z 0-9 . _ - :"),
        })
    }
}

impl License {
    /// Checks shape and bounds (docs/SPEC.md §10.1).
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(Error::Invalid {
                what: "license",
                reason,
            })
        };
        check_name("license id", &self.license_id)?;
        if self.customer.len() > 256 || self.customer.chars().any(char::is_control) {
            return bad(
                "customer name is longer than 256 bytes or holds control characters".into(),
            );
        }
        if self.expires_at <= self.not_before {
            return bad("expires_at is not after not_before".into());
        }
        if self.features.len() > 256 || self.limits.len() > 256 || self.machines.len() > 1024 {
            return bad("more than 256 features or limits, or 1024 machines".into());
        }
        for f in &self.features {
            check_name("feature name", f)?;
        }
        for l in self.limits.keys() {
            check_name("limit name", l)?;
        }
        for m in &self.machines {
            if crate::fingerprint::Form::of_entry(m).is_none() {
                return bad(format!(
                    "machine fingerprint `{m}` is neither 64 lowercase hex digits (v1) \
                     nor `v2:` and 64 lowercase hex digits (v2)"
                ));
            }
        }
        if let Some(u) = &self.status_url
            && !(u.starts_with("https://") || u.starts_with("http://") || u.starts_with("file:///"))
        {
            return bad(format!("status_url `{u}` is not http(s) or file"));
        }
        if self.max_offline_secs.is_some() && self.status_url.is_none() {
            return bad("max_offline_secs without a status_url".into());
        }
        Ok(())
    }

    /// The payload bytes.
    pub fn to_payload(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

impl LicenseStatus {
    /// Checks shape.
    pub fn validate(&self) -> Result<()> {
        check_name("license id", &self.license_id)?;
        if self.valid_until <= self.issued_at {
            return Err(Error::Invalid {
                what: "license status",
                reason: "valid_until is not after issued_at".into(),
            });
        }
        if self.reason.as_ref().is_some_and(|r| r.len() > 1024) {
            return Err(Error::Invalid {
                what: "license status",
                reason: "reason longer than 1024 bytes".into(),
            });
        }
        Ok(())
    }

    /// The payload bytes.
    pub fn to_payload(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// A license whose envelope met the `license` role's threshold and whose
/// payload is valid. Binding, product and time are judged by the
/// evaluation (docs/SPEC.md §10.5), which reports them as reasons rather
/// than errors.
///
/// Its fields are private: [`VerifiedLicense::verify`] is the only way to
/// get one, so holding one is proof the signatures were checked.
///
/// ```compile_fail
/// use charter_agent::license::VerifiedLicense;
/// fn forge(license: charter_agent::license::License) -> VerifiedLicense {
///     VerifiedLicense { license, signers: Vec::new(), digest: String::new() }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct VerifiedLicense {
    license: License,
    signers: Vec<KeyId>,
    digest: String,
}

/// A verified status document.
///
/// Its fields are private: [`VerifiedStatus::verify`] is the only way to
/// get one.
///
/// ```compile_fail
/// use charter_agent::license::VerifiedStatus;
/// fn forge(status: charter_agent::license::LicenseStatus) -> VerifiedStatus {
///     VerifiedStatus { status, envelope: Vec::new() }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct VerifiedStatus {
    status: LicenseStatus,
    envelope: Vec<u8>,
}

fn parse_envelope(bytes: &[u8]) -> Result<Envelope> {
    if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(Error::Invalid {
            what: "license document",
            reason: format!("{} bytes, more than {MAX_DOCUMENT_BYTES}", bytes.len()),
        });
    }
    Ok(Envelope::from_slice(bytes, &Limits::default())?)
}

impl VerifiedLicense {
    /// Verifies license bytes: envelope within limits; payloadType is the
    /// license type; a threshold of `license` keys signed it; only then the
    /// payload is parsed and validated.
    pub fn verify(bytes: &[u8], root: &VerifiedRoot) -> Result<Self> {
        use sha2::Digest as _;
        let env = parse_envelope(bytes)?;
        let v = root.verify_envelope(&env, PAYLOAD_LICENSE, Role::License)?;
        let license: License = serde_json::from_slice(v.payload()).map_err(|e| Error::Invalid {
            what: "license",
            reason: e.to_string(),
        })?;
        license.validate()?;
        Ok(VerifiedLicense {
            license,
            signers: v.into_signers(),
            digest: hex::encode(sha2::Sha256::digest(bytes)),
        })
    }

    /// The license.
    pub fn license(&self) -> &License {
        &self.license
    }

    /// Keys whose signatures counted.
    pub fn signers(&self) -> &[KeyId] {
        &self.signers
    }

    /// SHA-256 of the envelope bytes (hex).
    pub fn digest(&self) -> &str {
        &self.digest
    }
}

impl VerifiedStatus {
    /// Verifies status bytes the same way (payloadType status, `license`
    /// role).
    pub fn verify(bytes: &[u8], root: &VerifiedRoot) -> Result<Self> {
        let env = parse_envelope(bytes)?;
        let v = root.verify_envelope(&env, PAYLOAD_LICENSE_STATUS, Role::License)?;
        let status: LicenseStatus =
            serde_json::from_slice(v.payload()).map_err(|e| Error::Invalid {
                what: "license status",
                reason: e.to_string(),
            })?;
        status.validate()?;
        Ok(VerifiedStatus {
            status,
            envelope: bytes.to_vec(),
        })
    }

    /// The status.
    pub fn status(&self) -> &LicenseStatus {
        &self.status
    }

    /// The envelope bytes, as verified (kept in the runtime state).
    pub fn envelope(&self) -> &[u8] {
        &self.envelope
    }
}
