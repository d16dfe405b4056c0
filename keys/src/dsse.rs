//! DSSE envelopes (the Dead Simple Signing Envelope that in-toto and
//! Sigstore use): `{"payloadType", "payload" (base64), "signatures":
//! [{"keyid", "sig"}]}`, each signature taken over
//! `PAE(payloadType, payload)`. See docs/SPEC.md §3.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::{Error, KeyId, Limits, PublicKey, Result, Role, Signature};

/// payloadType of a trust root.
pub const PAYLOAD_ROOT: &str = "application/vnd.charter.root+json; version=1";
/// payloadType of a release manifest.
pub const PAYLOAD_MANIFEST: &str = "application/vnd.charter.manifest+json; version=1";
/// payloadType of a channel pointer.
pub const PAYLOAD_CHANNEL: &str = "application/vnd.charter.channel+json; version=1";
/// payloadType of a license.
pub const PAYLOAD_LICENSE: &str = "application/vnd.charter.license+json; version=1";
/// payloadType of a license status document.
pub const PAYLOAD_LICENSE_STATUS: &str = "application/vnd.charter.license-status+json; version=1";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// DSSE's pre-authentication encoding:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in ASCII
/// decimal. This, not the payload alone, is what every signature covers, so
/// a signature can never be moved to a payload of another type.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEnvelope {
    #[serde(rename = "payloadType")]
    payload_type: String,
    payload: String,
    signatures: Vec<EnvelopeSignature>,
}

/// One signature entry as it appears in an envelope. The key id is only a
/// hint for finding the key; what counts is that the signature verifies
/// under a key the role lists.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// The signer's key id (hint).
    #[serde(default)]
    pub keyid: String,
    /// Base64 of the 64-byte Ed25519 signature.
    pub sig: String,
}

/// A parsed DSSE envelope whose signatures have not been checked yet.
/// Its payload is only reachable through [`Envelope::verify`] (or
/// [`Envelope::unverified_payload`], whose name says what it is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    payload_type: String,
    payload: Vec<u8>,
    signatures: Vec<EnvelopeSignature>,
}

/// The payload of an envelope that met a role's threshold. Only
/// [`Envelope::verify`] makes one: its fields are private, so holding one
/// proves the check ran (rustls' `HandshakeSignatureValid`).
///
/// No other code can build one by hand:
///
/// ```compile_fail,E0451
/// use charter_keys::dsse::VerifiedPayload;
/// let forged = VerifiedPayload { payload: b"{}", signers: Vec::new() };
/// ```
#[derive(Debug, Clone)]
pub struct VerifiedPayload<'a> {
    payload: &'a [u8],
    signers: Vec<KeyId>,
}

impl<'a> VerifiedPayload<'a> {
    /// The payload bytes exactly as signed (borrowed from the envelope).
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The distinct keys whose signatures counted.
    pub fn signers(&self) -> &[KeyId] {
        &self.signers
    }

    /// The distinct keys whose signatures counted, taken.
    pub fn into_signers(self) -> Vec<KeyId> {
        self.signers
    }
}

/// The keys a role lists and its threshold, as taken from a verified root.
#[derive(Debug, Clone)]
pub struct RoleKeys {
    /// The role.
    pub role: Role,
    /// How many distinct keys must sign.
    pub threshold: u32,
    /// The keys that may sign for it.
    pub keys: BTreeMap<KeyId, PublicKey>,
}

impl Envelope {
    /// Parses an envelope from untrusted bytes, enforcing `limits` before
    /// and while parsing (docs/SPEC.md §3, steps 1 to 3).
    pub fn from_slice(bytes: &[u8], limits: &Limits) -> Result<Self> {
        // 1. The envelope is no larger than max_envelope_bytes.
        if bytes.len() as u64 > limits.max_envelope_bytes {
            return Err(Error::TooLarge {
                what: "envelope",
                size: bytes.len() as u64,
                max: limits.max_envelope_bytes,
            });
        }
        // 2. It is a JSON object with exactly payloadType, payload, signatures.
        let wire: WireEnvelope = serde_json::from_slice(bytes).map_err(|e| Error::Malformed {
            what: "envelope",
            reason: e.to_string(),
        })?;
        // 3. At most max_signatures signatures; the payload decodes from
        //    standard base64 to at most max_payload_bytes.
        if wire.signatures.len() > limits.max_signatures {
            return Err(Error::TooManySignatures {
                count: wire.signatures.len(),
                max: limits.max_signatures,
            });
        }
        let decoded_len = (wire.payload.len() as u64 / 4) * 3;
        if decoded_len > limits.max_payload_bytes + 3 {
            return Err(Error::TooLarge {
                what: "payload",
                size: decoded_len,
                max: limits.max_payload_bytes,
            });
        }
        let payload = B64
            .decode(wire.payload.as_bytes())
            .map_err(|e| Error::Malformed {
                what: "envelope",
                reason: format!("payload is not standard base64: {e}"),
            })?;
        if payload.len() as u64 > limits.max_payload_bytes {
            return Err(Error::TooLarge {
                what: "payload",
                size: payload.len() as u64,
                max: limits.max_payload_bytes,
            });
        }
        Ok(Envelope {
            payload_type: wire.payload_type,
            payload,
            signatures: wire.signatures,
        })
    }

    /// An envelope with no signatures yet.
    pub fn new_unsigned(payload_type: &str, payload: Vec<u8>) -> Self {
        Envelope {
            payload_type: payload_type.to_owned(),
            payload,
            signatures: Vec::new(),
        }
    }

    /// The declared payloadType (unauthenticated until verified).
    pub fn payload_type(&self) -> &str {
        &self.payload_type
    }

    /// The signature entries, unverified.
    pub fn signatures(&self) -> &[EnvelopeSignature] {
        &self.signatures
    }

    /// The payload before any signature is checked. Only for tools that
    /// must read an envelope to sign it or to show what it claims; never
    /// for a decision.
    pub fn unverified_payload(&self) -> &[u8] {
        &self.payload
    }

    /// Checks the envelope against a role (docs/SPEC.md §3, steps 4 to 7):
    ///
    /// 4. the payloadType is exactly `expected_type`;
    /// 5. each signature whose key id names a key of the role, not counted
    ///    before, is verified strictly over PAE(payloadType, payload);
    ///    signatures by unknown keys and invalid signatures are ignored;
    /// 6. a key counts once, however many times it signed;
    /// 7. at least `threshold` distinct keys verified.
    pub fn verify(&self, expected_type: &str, role: &RoleKeys) -> Result<VerifiedPayload<'_>> {
        if self.payload_type != expected_type {
            return Err(Error::WrongPayloadType {
                expected: expected_type.to_owned(),
                found: self.payload_type.clone(),
            });
        }
        let message = pae(&self.payload_type, &self.payload);
        let mut counted = BTreeSet::new();
        for entry in &self.signatures {
            let Ok(keyid) = entry.keyid.parse::<KeyId>() else {
                continue;
            };
            let Some(key) = role.keys.get(&keyid) else {
                continue;
            };
            if counted.contains(&keyid) {
                continue;
            }
            let Ok(sig) = Signature::from_base64(&entry.sig) else {
                continue;
            };
            if key.verify_strict(&message, &sig).is_ok() {
                counted.insert(keyid);
            }
        }
        if (counted.len() as u64) < u64::from(role.threshold) {
            return Err(Error::ThresholdNotMet {
                role: role.role,
                valid: counted.len(),
                threshold: role.threshold,
            });
        }
        Ok(VerifiedPayload {
            payload: &self.payload,
            signers: counted.into_iter().collect(),
        })
    }

    /// Adds one signature by `signer` over PAE(payloadType, payload).
    /// Refuses a second signature by the same key.
    #[cfg(feature = "sign")]
    pub fn sign(&mut self, signer: &dyn crate::secret::Signer) -> Result<()> {
        let keyid = signer.public_key().key_id();
        let id = keyid.to_string();
        if self.signatures.iter().any(|s| s.keyid == id) {
            return Err(Error::AlreadySigned { keyid });
        }
        let sig = signer.sign(&pae(&self.payload_type, &self.payload))?;
        self.signatures.push(EnvelopeSignature {
            keyid: id,
            sig: sig.to_base64(),
        });
        Ok(())
    }

    /// Serializes as pretty-printed JSON with a final newline.
    pub fn to_json(&self) -> Vec<u8> {
        let wire = WireEnvelope {
            payload_type: self.payload_type.clone(),
            payload: B64.encode(&self.payload),
            signatures: self.signatures.clone(),
        };
        let mut out = serde_json::to_vec_pretty(&wire).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PAE example from the DSSE protocol document.
    #[test]
    fn pae_matches_spec_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn pae_of_empty_type_and_payload() {
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn oversized_envelope_refused_before_parsing() {
        let limits = Limits {
            max_envelope_bytes: 10,
            ..Limits::default()
        };
        let err = Envelope::from_slice(b"{\"payloadType\":\"x\"}", &limits).unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooLarge {
                    what: "envelope",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn too_many_signatures_refused() {
        let limits = Limits {
            max_signatures: 1,
            ..Limits::default()
        };
        let doc = br#"{"payloadType":"t","payload":"","signatures":[{"keyid":"a","sig":"b"},{"keyid":"a","sig":"b"}]}"#;
        let err = Envelope::from_slice(doc, &limits).unwrap_err();
        assert!(
            matches!(err, Error::TooManySignatures { count: 2, max: 1 }),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_and_bad_base64_refused() {
        let limits = Limits::default();
        let extra = br#"{"payloadType":"t","payload":"","signatures":[],"x":1}"#;
        assert!(matches!(
            Envelope::from_slice(extra, &limits),
            Err(Error::Malformed {
                what: "envelope",
                ..
            })
        ));
        let bad = br#"{"payloadType":"t","payload":"!!!","signatures":[]}"#;
        assert!(matches!(
            Envelope::from_slice(bad, &limits),
            Err(Error::Malformed {
                what: "envelope",
                ..
            })
        ));
    }
}
