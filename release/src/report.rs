//! Rollout reports (docs/SPEC.md §9.8): one line of JSON a host sends after
//! an update (healthy, rolled back, failed), signed so that whoever holds
//! no host's report key cannot forge them, and read back by `charter
//! rollout watch`.
//!
//! A report is signed with HMAC-SHA256 under its license's report key,
//! `HMAC-SHA256(report secret, "charter-report-key-v1\0" || license id)`:
//! the vendor keeps the one report secret and hands each customer the key
//! of their license with the license. A host can therefore sign reports
//! for its own license only, and the vendor checks any report with the
//! secret alone.
//!
//! The line is `{"license": ID, "payload": BASE64, "sig": HEX}`: the
//! signature covers `"charter-rollout-report-v1\n"` and the payload bytes
//! exactly as sent, so no canonical JSON is needed.

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use jiff::Timestamp;
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Longest report line read (a report is some 400 bytes).
pub const MAX_REPORT_BYTES: usize = 4096;

/// Longest `reason` kept in a report (longer ones are cut on a character
/// boundary when signed).
pub const MAX_REASON_BYTES: usize = 1024;

/// Longest license id.
pub const MAX_LICENSE_ID_BYTES: usize = 128;

/// The domain of a report signature.
const SIG_DOMAIN: &[u8] = b"charter-rollout-report-v1\n";

/// The domain of a license's report key.
const KEY_DOMAIN: &[u8] = b"charter-report-key-v1\0";

/// The domain of a host's anonymous id.
const HOST_DOMAIN: &[u8] = b"charter-rollout-host-v1\0";

/// How an update ended on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Installed and its health check passed.
    Healthy,
    /// Installed, failed after the swap, and the previous release runs
    /// again.
    RolledBack,
    /// Stopped before the swap; nothing changed.
    Failed,
}

impl Outcome {
    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Healthy => "healthy",
            Outcome::RolledBack => "rolled-back",
            Outcome::Failed => "failed",
        }
    }

    /// Whether it counts as a failure of the release.
    pub fn is_failure(self) -> bool {
        !matches!(self, Outcome::Healthy)
    }
}

/// What a host reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The product.
    pub product: String,
    /// The release the report is about.
    pub version: Version,
    /// The release the host ran before, if any.
    pub from: Option<Version>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why, for a rollback or failure (at most [`MAX_REASON_BYTES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The host's position in the rollout, `[0, 10000)`.
    pub position: u16,
    /// The wave the host's position is in (from 1), when the release came
    /// with a rollout plan.
    pub wave: Option<u32>,
    /// The host's anonymous id ([`host_tag`]): 32 hex digits.
    pub host: String,
    /// The license whose report key signed it.
    pub license: String,
    /// When the host sent it.
    pub time: Timestamp,
    /// Random, 32 hex digits: the same report delivered twice counts once.
    pub id: String,
}

/// A host's anonymous id for `product`: 16 bytes of HMAC-SHA256 keyed by
/// the product over the host id, in hex. Stable, unrelated to its rollout
/// position and between products, and the id never leaves the host.
pub fn host_tag(product: &str, host_id: &[u8]) -> String {
    let mut m = hmac(product.as_bytes());
    m.update(HOST_DOMAIN);
    m.update(host_id);
    hex::encode(&m.finalize().into_bytes()[..16])
}

/// The report key of `license_id` under the vendor's report secret.
pub fn license_key(secret: &[u8], license_id: &str) -> zeroize::Zeroizing<[u8; 32]> {
    let mut m = hmac(secret);
    m.update(KEY_DOMAIN);
    m.update(license_id.as_bytes());
    zeroize::Zeroizing::new(m.finalize().into_bytes().into())
}

fn hmac(key: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

fn is_hex32(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Report {
    /// Checks what the types do not: the id formats, the license id, the
    /// position and the reason's length.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Error::InvalidInput {
            what: "rollout report",
            reason,
        };
        if !is_hex32(&self.host) {
            return Err(bad("`host` is not 32 lowercase hex digits".into()));
        }
        if !is_hex32(&self.id) {
            return Err(bad("`id` is not 32 lowercase hex digits".into()));
        }
        if self.position >= crate::rollout::POSITIONS {
            return Err(bad(format!(
                "`position` {} is not below 10000",
                self.position
            )));
        }
        if self.license.is_empty() || self.license.len() > MAX_LICENSE_ID_BYTES {
            return Err(bad(format!(
                "`license` must be 1 to {MAX_LICENSE_ID_BYTES} bytes"
            )));
        }
        if self
            .reason
            .as_ref()
            .is_some_and(|r| r.len() > MAX_REASON_BYTES)
        {
            return Err(bad(format!("`reason` is over {MAX_REASON_BYTES} bytes")));
        }
        if self.product.is_empty() || self.product.len() > 64 {
            return Err(bad("`product` must be 1 to 64 bytes".into()));
        }
        Ok(())
    }

    /// The signed line (without a newline) under the license's report key.
    pub fn sign(&self, key: &[u8; 32]) -> Result<String> {
        self.validate()?;
        let payload = serde_json::to_vec(self).map_err(|e| Error::InvalidInput {
            what: "rollout report",
            reason: e.to_string(),
        })?;
        let mut m = hmac(key);
        m.update(SIG_DOMAIN);
        m.update(&payload);
        let line = serde_json::json!({
            "license": self.license,
            "payload": base64::engine::general_purpose::STANDARD.encode(&payload),
            "sig": hex::encode(m.finalize().into_bytes()),
        });
        Ok(line.to_string())
    }

    /// Reads one signed line: at most [`MAX_REPORT_BYTES`], the signature
    /// checked under the key `key_of` gives for its license (derive it with
    /// [`license_key`]), the payload's license the line's, and the report
    /// valid.
    pub fn verify(line: &[u8], key_of: impl Fn(&str) -> [u8; 32]) -> Result<Report> {
        let bad = |reason: String| Error::InvalidInput {
            what: "rollout report",
            reason,
        };
        if line.len() > MAX_REPORT_BYTES {
            return Err(bad(format!(
                "{} bytes, more than {MAX_REPORT_BYTES}",
                line.len()
            )));
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Line {
            license: String,
            payload: String,
            sig: String,
        }
        let l: Line = serde_json::from_slice(line).map_err(|e| bad(e.to_string()))?;
        if l.license.is_empty() || l.license.len() > MAX_LICENSE_ID_BYTES {
            return Err(bad(format!(
                "`license` must be 1 to {MAX_LICENSE_ID_BYTES} bytes"
            )));
        }
        let payload = base64::engine::general_purpose::STANDARD
            .decode(&l.payload)
            .map_err(|e| bad(format!("`payload` is not base64: {e}")))?;
        let sig = hex::decode(&l.sig).map_err(|_| bad("`sig` is not hex".into()))?;
        let key = zeroize::Zeroizing::new(key_of(&l.license));
        let mut m = hmac(&key[..]);
        m.update(SIG_DOMAIN);
        m.update(&payload);
        // Constant time.
        m.verify_slice(&sig).map_err(|_| {
            bad(format!(
                "signature does not verify under the report key of license `{}`",
                l.license
            ))
        })?;
        let r: Report = serde_json::from_slice(&payload).map_err(|e| bad(e.to_string()))?;
        if r.license != l.license {
            return Err(bad(format!(
                "signed for license `{}` but names `{}`",
                l.license, r.license
            )));
        }
        r.validate()?;
        Ok(r)
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            product: "panel".into(),
            version: "1.1.0".parse().unwrap(),
            from: Some("1.0.0".parse().unwrap()),
            outcome: Outcome::RolledBack,
            reason: Some("health check failed".into()),
            position: 42,
            wave: Some(1),
            host: host_tag("panel", b"machine"),
            license: "acme-1".into(),
            time: "2026-12-02T00:00:00Z".parse().unwrap(),
            id: "0123456789abcdef0123456789abcdef".into(),
        }
    }

    #[test]
    fn a_signed_report_verifies_under_the_secret_and_not_otherwise() {
        let secret = b"vendor report secret";
        let key = license_key(secret, "acme-1");
        let line = sample().sign(&key).unwrap();
        let got = Report::verify(line.as_bytes(), |id| *license_key(secret, id)).unwrap();
        assert_eq!(got, sample());
        let err = Report::verify(line.as_bytes(), |id| *license_key(b"other", id)).unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
    }

    #[test]
    fn a_license_cannot_sign_for_another() {
        // Acme's key over a report naming another license, relabelled.
        let secret = b"s";
        let mut r = sample();
        r.license = "other-2".into();
        let line = r.sign(&license_key(secret, "acme-1")).unwrap();
        // As sent: the line names other-2, whose key did not sign it.
        assert!(Report::verify(line.as_bytes(), |id| *license_key(secret, id)).is_err());
        // Relabelled as acme-1's: the payload names other-2.
        let relabelled = line.replace("\"license\":\"other-2\"", "\"license\":\"acme-1\"");
        let err = Report::verify(relabelled.as_bytes(), |id| *license_key(secret, id)).unwrap_err();
        assert!(err.to_string().contains("but names `other-2`"), "{err}");
    }

    #[test]
    fn oversized_and_malformed_lines_are_refused() {
        let key = |_: &str| [0u8; 32];
        assert!(Report::verify(&vec![b' '; MAX_REPORT_BYTES + 1], key).is_err());
        assert!(Report::verify(b"{}", key).is_err());
        assert!(Report::verify(b"not json", key).is_err());
        let mut r = sample();
        r.host = "XYZ".into();
        assert!(r.sign(&[0; 32]).is_err());
        let mut r = sample();
        r.position = 10_000;
        assert!(r.sign(&[0; 32]).is_err());
    }

    #[test]
    fn host_tags_differ_per_product_and_hide_the_id() {
        let a = host_tag("panel", b"m");
        assert_eq!(a.len(), 32);
        assert_ne!(a, host_tag("other", b"m"));
        assert_eq!(a, host_tag("panel", b"m"));
        assert_eq!(truncate("héllo", 2), "h");
    }
}
