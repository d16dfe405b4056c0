use std::fmt;
use std::path::Path;

use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Length of an Ed25519 signature in bytes.
pub const SIGNATURE_LEN: usize = 64;

/// Largest public key file read (a PEM public key is about 110 bytes).
pub const MAX_PUBLIC_KEY_BYTES: u64 = 64 << 10;

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410):
/// `SEQUENCE { SEQUENCE { OID 1.3.101.112 } BIT STRING (0 unused) <32 bytes> }`.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// A key id: `sha256(SPKI DER of the public key)`, written as 64 lowercase
/// hex digits. It depends on the public key alone, so anyone can recompute it
/// (`openssl pkey -pubin -in key.pub -outform DER | sha256sum`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 32]);

impl KeyId {
    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl std::str::FromStr for KeyId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let mut out = [0u8; 32];
        if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(Error::Malformed {
                what: "key id",
                reason: "expected 64 lowercase hex digits".into(),
            });
        }
        hex::decode_to_slice(s, &mut out).map_err(|e| Error::Malformed {
            what: "key id",
            reason: e.to_string(),
        })?;
        Ok(KeyId(out))
    }
}

impl serde::Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An Ed25519 signature: exactly 64 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; SIGNATURE_LEN]);

impl Signature {
    /// Parses a signature from exactly 64 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; SIGNATURE_LEN] = bytes.try_into().map_err(|_| {
            Error::MalformedSignature(format!("{} bytes, expected {SIGNATURE_LEN}", bytes.len()))
        })?;
        Ok(Signature(arr))
    }

    /// Parses standard base64 (as `cosign sign-blob` and DSSE write it);
    /// surrounding whitespace is ignored.
    pub fn from_base64(text: &str) -> Result<Self> {
        use base64::Engine as _;
        let text = text.trim();
        if text.len() > 128 {
            return Err(Error::MalformedSignature(format!(
                "{} characters of base64, expected 88",
                text.len()
            )));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| Error::MalformedSignature(format!("not base64: {e}")))?;
        Self::from_slice(&bytes)
    }

    /// Standard base64 with padding.
    pub fn to_base64(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", self.to_base64())
    }
}

/// An Ed25519 public key that is not of small order, with its key id.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    id: KeyId,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id)
    }
}

impl PublicKey {
    /// Builds a key from its 32 raw bytes. Refuses encodings that are not a
    /// curve point and small-order ("weak") keys, which would let one
    /// signature verify for many messages.
    pub fn from_raw(bytes: &[u8; 32]) -> Result<Self> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| Error::InvalidKey {
            source_name: None,
            reason: "not a valid Ed25519 point".into(),
        })?;
        Self::from_verifying_key(key)
    }

    pub(crate) fn from_verifying_key(key: VerifyingKey) -> Result<Self> {
        if key.is_weak() {
            return Err(Error::InvalidKey {
                source_name: None,
                reason: "small-order Ed25519 key".into(),
            });
        }
        let mut h = Sha256::new();
        h.update(ED25519_SPKI_PREFIX);
        h.update(key.as_bytes());
        let id = KeyId(h.finalize().into());
        Ok(PublicKey { key, id })
    }

    /// Parses an SPKI PEM (`-----BEGIN PUBLIC KEY-----`), as written by
    /// `openssl pkey -pubout` and `charter key public`.
    pub fn from_pem(text: &str) -> Result<Self> {
        let key =
            VerifyingKey::from_public_key_pem(text.trim()).map_err(|e| Error::InvalidKey {
                source_name: None,
                reason: format!("not an Ed25519 SPKI public key PEM ({e})"),
            })?;
        Self::from_verifying_key(key)
    }

    /// Reads a public key PEM file (size-capped at 64 KiB).
    pub fn read_pem_file(path: &Path) -> Result<Self> {
        let bytes = crate::fsutil::read_capped(path, MAX_PUBLIC_KEY_BYTES, "a public key file")?;
        let text = std::str::from_utf8(&bytes).map_err(|_| Error::InvalidKey {
            source_name: Some(path.to_owned()),
            reason: "not UTF-8 text".into(),
        })?;
        Self::from_pem(text).map_err(|e| match e {
            Error::InvalidKey { reason, .. } => Error::InvalidKey {
                source_name: Some(path.to_owned()),
                reason,
            },
            other => other,
        })
    }

    /// The SPKI DER encoding (44 bytes).
    pub fn to_spki_der(&self) -> [u8; 44] {
        let mut out = [0u8; 44];
        out[..12].copy_from_slice(&ED25519_SPKI_PREFIX);
        out[12..].copy_from_slice(self.key.as_bytes());
        out
    }

    /// The SPKI PEM encoding, ending in a newline.
    pub fn to_pem(&self) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(self.to_spki_der());
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
    }

    /// The 32 raw bytes.
    pub fn as_raw(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// The key id.
    pub fn key_id(&self) -> KeyId {
        self.id
    }

    /// Strict Ed25519 verification (RFC 8032 §5.1.7 with the extra checks
    /// of `verify_strict`): the signature's `S` must be canonical (below the
    /// group order) and its `R` must not be of small order, so signatures are
    /// not malleable.
    pub fn verify_strict(&self, message: &[u8], signature: &Signature) -> Result<()> {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.key
            .verify_strict(message, &sig)
            .map_err(|_| Error::BadSignature { keyid: self.id })
    }

    /// Strict Ed25519ph verification (RFC 8032 §5.1, prehashed variant) of
    /// a SHA-512 state fed with the message; `context` is at most 255 bytes.
    pub fn verify_prehashed_strict(
        &self,
        prehashed: sha2::Sha512,
        context: Option<&[u8]>,
        signature: &Signature,
    ) -> Result<()> {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.key
            .verify_prehashed_strict(prehashed, context, &sig)
            .map_err(|_| Error::BadSignature { keyid: self.id })
    }
}
