//! Offline verification of Sigstore (cosign) bundles, the way
//! `cosign verify-blob --bundle B --certificate-identity[-regexp] ...
//! --certificate-oidc-issuer ...` does it, with no network: the Fulcio
//! chain, the SCT, the Rekor inclusion proof, checkpoint and SET (or
//! RFC 3161 timestamps), and the signature over the artifact, all checked
//! against a `trusted_root.json` (docs/SPEC.md §13). The cryptographic
//! checks are the Sigstore project's `sigstore-verify` crate, pinned
//! exactly; this module adds the identity policy (regular expressions are
//! anchored: they must match the whole identity) and the inputs charter
//! uses.

use std::path::Path;

use regex::Regex;
pub use sigstore_verify::trust_root::TrustedRoot;
use sigstore_verify::types::{Artifact, Bundle, DerPublicKey, Sha256Hash};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy};

use crate::{Error, Result};

/// Largest bundle or trusted root read (they are small JSON documents).
pub const MAX_BUNDLE_BYTES: u64 = 4 << 20;

/// The Sigstore public-good trusted root shipped with this build.
pub const PRODUCTION_TRUSTED_ROOT: &str =
    sigstore_verify::trust_root::SIGSTORE_PRODUCTION_TRUSTED_ROOT;

/// Which signer identities are accepted.
#[derive(Debug, Clone)]
pub enum Identity {
    /// Exactly this SAN (email or URI).
    Exact(String),
    /// A regular expression that must match the whole SAN (it is anchored
    /// here; cosign's own match is unanchored, which lets `repo` also match
    /// `evil-repo`).
    Regex(Regex),
}

impl Identity {
    /// An anchored regular expression.
    pub fn regex(pattern: &str) -> Result<Self> {
        let anchored = format!("^(?:{pattern})$");
        Regex::new(&anchored)
            .map(Identity::Regex)
            .map_err(|e| Error::Malformed {
                what: "identity regular expression",
                reason: e.to_string(),
            })
    }

    fn matches(&self, san: &str) -> bool {
        match self {
            Identity::Exact(s) => s == san,
            Identity::Regex(r) => r.is_match(san),
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Exact(s) => f.write_str(s),
            Identity::Regex(r) => write!(f, "/{}/", r.as_str()),
        }
    }
}

/// What a bundle must prove.
#[derive(Debug, Clone)]
pub enum Policy {
    /// Keyless: a Fulcio certificate for this identity from this OIDC issuer.
    Keyless {
        /// Accepted identities.
        identity: Identity,
        /// The exact OIDC issuer.
        issuer: String,
    },
    /// A managed key (the bundle carries no certificate).
    Key(Vec<u8>),
}

/// The artifact a bundle speaks of.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// Its bytes.
    Bytes(&'a [u8]),
    /// Only its SHA-256 (`sha256:<hex>` on the command line).
    Sha256([u8; 32]),
}

/// What a successful verification established. Only [`verify`] makes one:
/// its fields are private, so holding one proves the bundle verified.
///
/// No other code can build one by hand:
///
/// ```compile_fail,E0451
/// use charter_keys::sigstore::Verified;
/// let forged = Verified { identity: None, issuer: None, integrated_time: None };
/// ```
#[derive(Debug, Clone)]
pub struct Verified {
    identity: Option<String>,
    issuer: Option<String>,
    integrated_time: Option<jiff::Timestamp>,
}

impl Verified {
    /// The certificate's identity (keyless only).
    pub fn identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }

    /// Its OIDC issuer (keyless only).
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// When the transparency log integrated the entry, if it did.
    pub fn integrated_time(&self) -> Option<jiff::Timestamp> {
        self.integrated_time
    }
}

/// Parses a trusted root (`trusted_root.json`).
pub fn trusted_root(json: &[u8]) -> Result<TrustedRoot> {
    let text = std::str::from_utf8(json).map_err(|_| Error::Malformed {
        what: "trusted root",
        reason: "not UTF-8".into(),
    })?;
    TrustedRoot::from_json(text).map_err(|e| Error::Malformed {
        what: "trusted root",
        reason: e.to_string(),
    })
}

/// Reads a bundle or trusted root file, capped.
pub fn read_json_file(path: &Path, what: &'static str) -> Result<Vec<u8>> {
    crate::fsutil::read_capped(path, MAX_BUNDLE_BYTES, what)
}

/// Verifies `bundle_json` for `subject` under `policy` against `root`.
pub fn verify(
    bundle_json: &[u8],
    subject: Subject<'_>,
    policy: &Policy,
    root: &TrustedRoot,
) -> Result<Verified> {
    if bundle_json.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(Error::TooLarge {
            what: "Sigstore bundle",
            size: bundle_json.len() as u64,
            max: MAX_BUNDLE_BYTES,
        });
    }
    let text = std::str::from_utf8(bundle_json).map_err(|_| Error::Malformed {
        what: "Sigstore bundle",
        reason: "not UTF-8".into(),
    })?;
    let converted;
    let text = match legacy_to_bundle(text)? {
        Some(json) => {
            converted = json;
            converted.as_str()
        }
        None => text,
    };
    let bundle = Bundle::from_json(text).map_err(|e| Error::Malformed {
        what: "Sigstore bundle",
        reason: e.to_string(),
    })?;
    let artifact = match subject {
        Subject::Bytes(b) => Artifact::from_blob(b),
        Subject::Sha256(d) => Artifact::from_digest(Sha256Hash::from(d)),
    };
    let failed = |e: sigstore_verify::Error| Error::Sigstore(e.to_string());
    match policy {
        Policy::Key(pem) => {
            let text = std::str::from_utf8(pem).map_err(|_| Error::InvalidKey {
                source_name: None,
                reason: "public key is not UTF-8 PEM".into(),
            })?;
            let key = DerPublicKey::from_pem(text).map_err(|e| Error::InvalidKey {
                source_name: None,
                reason: e.to_string(),
            })?;
            let r = sigstore_verify::verify(
                artifact,
                &bundle,
                &PublicKeyVerificationPolicy::new(key),
                root,
            )
            .map_err(failed)?;
            Ok(Verified {
                identity: None,
                issuer: None,
                integrated_time: r.integrated_time(),
            })
        }
        Policy::Keyless { identity, issuer } => {
            // The library checks the issuer exactly; the identity (exact or
            // anchored regex) is checked on the verified certificate.
            let base = VerificationPolicy::any_identity().require_issuer(issuer.clone());
            let r = match identity {
                Identity::Exact(s) => sigstore_verify::verify(
                    artifact,
                    &bundle,
                    &base.require_identity(s.as_str()),
                    root,
                ),
                Identity::Regex(_) => sigstore_verify::verify(artifact, &bundle, &base, root),
            }
            .map_err(failed)?;
            let san = r.identity().map(|s| s.as_str().to_owned());
            match &san {
                Some(s) if identity.matches(s) => {}
                Some(s) => {
                    return Err(Error::Sigstore(format!(
                        "certificate identity `{s}` does not match {identity}"
                    )));
                }
                None => {
                    return Err(Error::Sigstore(
                        "the bundle's certificate has no identity".into(),
                    ));
                }
            }
            Ok(Verified {
                identity: san,
                issuer: r.issuer().map(str::to_owned),
                integrated_time: r.integrated_time(),
            })
        }
    }
}

/// Verifies a plain `cosign sign-blob --key` signature made with an ECDSA
/// key (P-256 or P-384, DER signature, SHA-256 of the file): the key is an
/// SPKI PEM, the signature the decoded base64 cosign prints. Ed25519
/// signatures go through [`crate::blob`] instead (pure Ed25519 over the
/// bytes, which is what cosign does for Ed25519 keys).
pub fn verify_ecdsa_blob(public_pem: &[u8], sha256: &[u8; 32], signature: &[u8]) -> Result<()> {
    use sigstore_verify::crypto::VerificationKey;
    use sigstore_verify::types::SignatureBytes;
    let text = std::str::from_utf8(public_pem).map_err(|_| Error::InvalidKey {
        source_name: None,
        reason: "public key is not UTF-8 PEM".into(),
    })?;
    let der = DerPublicKey::from_pem(text).map_err(|e| Error::InvalidKey {
        source_name: None,
        reason: e.to_string(),
    })?;
    let key = VerificationKey::from_spki(&der).map_err(|e| Error::InvalidKey {
        source_name: None,
        reason: e.to_string(),
    })?;
    if signature.len() > 512 {
        return Err(Error::MalformedSignature(format!(
            "{} bytes is too long for ECDSA",
            signature.len()
        )));
    }
    key.verify_prehashed(sha256, &SignatureBytes::from(signature))
        .map_err(|e| Error::Sigstore(format!("signature does not verify: {e}")))
}

/// The bundle cosign 2.x writes with `sign-blob --bundle` (without
/// `--new-bundle-format`): the signature, the signing certificate as
/// base64 of its PEM, and Rekor's answer (SET plus the entry it signed).
#[derive(serde::Deserialize)]
struct LegacyBundle {
    #[serde(rename = "base64Signature")]
    base64_signature: String,
    #[serde(default)]
    cert: Option<String>,
    #[serde(rename = "rekorBundle")]
    rekor_bundle: Option<LegacyRekorBundle>,
}

#[derive(serde::Deserialize)]
struct LegacyRekorBundle {
    #[serde(rename = "SignedEntryTimestamp")]
    signed_entry_timestamp: String,
    #[serde(rename = "Payload")]
    payload: LegacyPayload,
}

#[derive(serde::Deserialize)]
struct LegacyPayload {
    body: String,
    #[serde(rename = "integratedTime")]
    integrated_time: i64,
    #[serde(rename = "logIndex")]
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

/// The part of a Rekor `hashedrekord` entry the conversion reads.
#[derive(serde::Deserialize)]
struct RekorBody {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    spec: serde_json::Value,
}

/// Recognises the cosign 2.x bundle by its shape (a JSON object with
/// `base64Signature` and no `mediaType`) and rewrites it as the v0.1
/// Sigstore bundle carrying the same evidence, which is then verified like
/// any other: the SET against the Rekor key of the trusted root, the
/// certificate against Fulcio at the integrated time, the entry's body
/// against the signature, certificate and artifact. Nothing is taken on
/// trust from the conversion itself: every field it moves is one the
/// verifier checks. `Ok(None)`: not this format.
pub fn legacy_to_bundle(text: &str) -> Result<Option<String>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    let bad = |reason: String| Error::Malformed {
        what: "cosign bundle (cosign 2.x format)",
        reason,
    };
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        // Not JSON at all: let the bundle parser say so.
        Err(_) => return Ok(None),
    };
    let Some(obj) = value.as_object() else {
        return Ok(None);
    };
    if obj.contains_key("mediaType") || !obj.contains_key("base64Signature") {
        return Ok(None);
    }
    let legacy: LegacyBundle = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
    let rekor = legacy.rekor_bundle.ok_or_else(|| {
        bad(
            "no `rekorBundle`: it was signed without the transparency log, \
             and a keyless or logged signature is required"
                .into(),
        )
    })?;
    let p = &rekor.payload;
    if p.log_index < 0 || p.integrated_time < 0 {
        return Err(bad("negative `logIndex` or `integratedTime`".into()));
    }
    let log_id = hex::decode(&p.log_id)
        .ok()
        .filter(|id| id.len() == 32)
        .ok_or_else(|| bad("`logID` is not 32 bytes of hex".into()))?;
    let body_bytes = STANDARD
        .decode(p.body.as_bytes())
        .map_err(|_| bad("`Payload.body` is not base64".into()))?;
    let body: RekorBody = serde_json::from_slice(&body_bytes)
        .map_err(|e| bad(format!("`Payload.body` is not a Rekor entry: {e}")))?;
    if body.kind != "hashedrekord" {
        return Err(bad(format!(
            "Rekor entry kind `{}` (only `hashedrekord`, what `cosign sign-blob` logs)",
            body.kind
        )));
    }
    let digest = body
        .spec
        .pointer("/data/hash")
        .and_then(|h| {
            let alg = h.get("algorithm")?.as_str()?;
            let value = h.get("value")?.as_str()?;
            (alg == "sha256").then(|| hex::decode(value).ok()).flatten()
        })
        .filter(|d| d.len() == 32)
        .ok_or_else(|| bad("the Rekor entry has no sha256 artifact digest".into()))?;
    let material = match legacy.cert.as_deref().filter(|c| !c.is_empty()) {
        Some(cert) => {
            let pem = STANDARD
                .decode(cert.as_bytes())
                .map_err(|_| bad("`cert` is not base64".into()))?;
            let pem = String::from_utf8(pem).map_err(|_| bad("`cert` is not a PEM".into()))?;
            let der = sigstore_verify::types::DerCertificate::from_pem(&pem)
                .map_err(|e| bad(format!("`cert`: {e}")))?;
            serde_json::json!({
                "x509CertificateChain": {"certificates": [{"rawBytes": STANDARD.encode(der.as_bytes())}]}
            })
        }
        None => serde_json::json!({"publicKey": {"hint": ""}}),
    };
    let mut material = material;
    material["tlogEntries"] = serde_json::json!([{
        "logIndex": p.log_index.to_string(),
        "logId": {"keyId": STANDARD.encode(&log_id)},
        "kindVersion": {"kind": body.kind, "version": body.api_version},
        "integratedTime": p.integrated_time.to_string(),
        "inclusionPromise": {"signedEntryTimestamp": rekor.signed_entry_timestamp},
        "canonicalizedBody": p.body,
    }]);
    let bundle = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "verificationMaterial": material,
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": STANDARD.encode(&digest)},
            "signature": legacy.base64_signature,
        },
    });
    Ok(Some(bundle.to_string()))
}
