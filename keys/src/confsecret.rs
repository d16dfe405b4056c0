//! Secret values in host configs, encrypted at rest (docs/SPEC.md §14).
//!
//! A secret field (a repository token, a status URL token, ...) may hold
//! `enc:v1:<base64url>` instead of the plain value: XChaCha20-Poly1305
//! under a 32-byte master key, with a fresh random 24-byte nonce per value
//! and the field's name as associated data, so a ciphertext copied into
//! another field does not decrypt. The blob is
//! `key id (4) || nonce (24) || ciphertext || tag (16)`, where the key id is
//! the first 4 bytes of SHA-256 of the key: it tells "encrypted under
//! another key" from "tampered" without revealing anything useful.
//!
//! The master key never comes from the config file. [`MasterKey::locate`]
//! looks, in order, at `$CHARTER_MASTER_KEY` (the key text), the systemd
//! credential `$CREDENTIALS_DIRECTORY/charter-master-key`
//! (`LoadCredential=`), `$CHARTER_MASTER_KEY_FILE`, and
//! `/etc/charter/master.key`; a key file must be accessible by its owner
//! only. The key's text form is `charter-master-key-v1:<base64>`.
//!
//! Errors name the field and never contain a value, a key or a plaintext.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::Digest as _;
use zeroize::Zeroizing;

use crate::{Error, Result};

/// Prefix of an encrypted value.
pub const PREFIX: &str = "enc:v1:";
/// Prefix of a master key's text form.
pub const KEY_PREFIX: &str = "charter-master-key-v1:";
/// Default key file.
pub const DEFAULT_KEY_FILE: &str = "/etc/charter/master.key";
/// Name of the systemd credential.
pub const CREDENTIAL: &str = "charter-master-key";

const AAD_PREFIX: &[u8] = b"charter config secret v1\0";
const ID_LEN: usize = 4;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Largest secret value accepted (decoded).
const MAX_VALUE: usize = 64 << 10;

/// A master key. Its bytes are zeroized on drop and never printed.
pub struct MasterKey {
    key: Zeroizing<[u8; 32]>,
    id: [u8; ID_LEN],
    source: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(id {}, from {})", self.id_hex(), self.source)
    }
}

fn secret_err(field: &str, reason: impl Into<String>) -> Error {
    Error::Secret {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

impl MasterKey {
    fn from_bytes(key: Zeroizing<[u8; 32]>, source: String) -> Self {
        let digest = sha2::Sha256::digest(key.as_ref());
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&digest[..ID_LEN]);
        MasterKey { key, id, source }
    }

    /// Parses the text form (surrounding whitespace ignored); `source`
    /// names where it came from, for messages.
    pub fn from_text(text: &str, source: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidKey {
            source_name: None,
            reason: format!("master key from {source}: {reason}"),
        };
        let body = text
            .trim()
            .strip_prefix(KEY_PREFIX)
            .ok_or_else(|| bad(&format!("does not start with `{KEY_PREFIX}`")))?;
        let raw = Zeroizing::new(
            STANDARD
                .decode(body.as_bytes())
                .map_err(|_| bad("not base64"))?,
        );
        let mut key = Zeroizing::new([0u8; 32]);
        if raw.len() != 32 {
            return Err(bad("not 32 bytes"));
        }
        key.copy_from_slice(&raw);
        Ok(Self::from_bytes(key, source.to_owned()))
    }

    /// Reads a key file, refusing one that group or others can access.
    pub fn read_file(path: &Path) -> Result<Self> {
        let bytes = Zeroizing::new(crate::fsutil::read_private(
            path,
            4096,
            "a master key file",
        )?);
        let text = std::str::from_utf8(&bytes).map_err(|_| Error::InvalidKey {
            source_name: Some(path.to_owned()),
            reason: "master key file is not text".into(),
        })?;
        Self::from_text(text, &path.display().to_string())
    }

    /// Finds the master key (see the module docs); `Ok(None)` when no
    /// source is present at all.
    pub fn locate() -> Result<Option<Self>> {
        if let Some(v) = std::env::var_os("CHARTER_MASTER_KEY") {
            let v = Zeroizing::new(v.into_string().map_err(|_| Error::InvalidKey {
                source_name: None,
                reason: "CHARTER_MASTER_KEY is not UTF-8".into(),
            })?);
            return Self::from_text(&v, "$CHARTER_MASTER_KEY").map(Some);
        }
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            let p = PathBuf::from(dir).join(CREDENTIAL);
            if p.exists() {
                return Self::read_file(&p).map(Some);
            }
        }
        let file = std::env::var_os("CHARTER_MASTER_KEY_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_KEY_FILE));
        if file.exists() {
            return Self::read_file(&file).map(Some);
        }
        Ok(None)
    }

    /// The key id (hex of the first 4 bytes of its SHA-256).
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    /// Where the key came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn aad(field: &str) -> Vec<u8> {
        let mut a = AAD_PREFIX.to_vec();
        a.extend_from_slice(field.as_bytes());
        a
    }

    /// Decrypts `value` (an `enc:v1:` string) of `field`.
    pub fn decrypt(&self, field: &str, value: &str) -> Result<Zeroizing<String>> {
        let blob = parse(field, value)?;
        let (id, rest) = blob.split_at(ID_LEN);
        if id != self.id {
            return Err(secret_err(
                field,
                format!(
                    "decryption failed (encrypted under master key {}, the current key is {})",
                    hex::encode(id),
                    self.id_hex()
                ),
            ));
        }
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new(self.key.as_ref().into());
        let plain = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: &Self::aad(field),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| {
                secret_err(
                    field,
                    "decryption failed (tampered, or moved from another field?)",
                )
            })?;
        String::from_utf8(plain.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| secret_err(field, "the decrypted value is not UTF-8"))
    }
}

/// Whether a config value is encrypted.
pub fn is_encrypted(value: &str) -> bool {
    value.starts_with(PREFIX)
}

/// The key id an encrypted value was made under (hex), if it parses.
pub fn key_id(field: &str, value: &str) -> Result<String> {
    parse(field, value).map(|b| hex::encode(&b[..ID_LEN]))
}

fn parse(field: &str, value: &str) -> Result<Vec<u8>> {
    let body = value
        .strip_prefix(PREFIX)
        .ok_or_else(|| secret_err(field, format!("not an `{PREFIX}` value")))?;
    if body.len() > MAX_VALUE * 2 {
        return Err(secret_err(field, "encrypted value too long"));
    }
    let blob = URL_SAFE_NO_PAD
        .decode(body.trim().as_bytes())
        .map_err(|_| secret_err(field, "encrypted value is not base64url"))?;
    if blob.len() < ID_LEN + NONCE_LEN + TAG_LEN {
        return Err(secret_err(field, "encrypted value is truncated"));
    }
    Ok(blob)
}

/// Resolves a config value: decrypted when encrypted, as it is otherwise.
/// `key` is needed only for encrypted values.
pub fn resolve(field: &str, value: &str, key: Option<&MasterKey>) -> Result<Zeroizing<String>> {
    if !is_encrypted(value) {
        return Ok(Zeroizing::new(value.to_owned()));
    }
    let key = key.ok_or_else(|| {
        secret_err(
            field,
            format!(
                "it is encrypted and no master key was found (set CHARTER_MASTER_KEY, \
                 or CHARTER_MASTER_KEY_FILE, or put it in {DEFAULT_KEY_FILE}, mode 0600, \
                 or pass it as the systemd credential `{CREDENTIAL}`)"
            ),
        )
    })?;
    key.decrypt(field, value)
}

/// A secret field of a config: as written (plain or `enc:v1:`), and its
/// plaintext once resolved. Its `Debug` never shows either.
#[derive(Clone)]
pub struct SecretValue {
    raw: Zeroizing<String>,
    plain: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_encrypted() {
            "SecretValue(encrypted)"
        } else {
            "SecretValue(plain)"
        })
    }
}

impl<'de> serde::Deserialize<'de> for SecretValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let raw = Zeroizing::new(String::deserialize(d)?);
        Ok(SecretValue::new(raw))
    }
}

impl SecretValue {
    /// A value as written in a config.
    pub fn new(raw: Zeroizing<String>) -> Self {
        let plain = (!is_encrypted(&raw)).then(|| raw.clone());
        SecretValue { raw, plain }
    }

    /// Whether it is written encrypted.
    pub fn is_encrypted(&self) -> bool {
        is_encrypted(&self.raw)
    }

    /// Decrypts it (when encrypted) with `key`.
    pub fn resolve(&mut self, field: &str, key: Option<&MasterKey>) -> Result<()> {
        if self.plain.is_none() {
            self.plain = Some(resolve(field, &self.raw, key)?);
        }
        Ok(())
    }

    /// The plaintext; `None` while an encrypted value is unresolved.
    pub fn expose(&self) -> Option<&str> {
        self.plain.as_deref().map(String::as_str)
    }
}

#[cfg(feature = "sign")]
impl MasterKey {
    /// A new random key.
    pub fn generate() -> Result<Self> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut()).map_err(|_| Error::Rng)?;
        Ok(Self::from_bytes(key, "a new key".into()))
    }

    /// The text form (a secret: write it to a 0600 file).
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "{KEY_PREFIX}{}\n",
            STANDARD.encode(self.key.as_ref())
        ))
    }

    /// Encrypts `plain` for `field`.
    pub fn encrypt(&self, field: &str, plain: &str) -> Result<String> {
        if plain.len() > MAX_VALUE {
            return Err(secret_err(field, "value too long"));
        }
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| Error::Rng)?;
        let cipher = XChaCha20Poly1305::new(self.key.as_ref().into());
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: &Self::aad(field),
                },
            )
            .map_err(|_| secret_err(field, "encryption failed"))?;
        let mut blob = Vec::with_capacity(ID_LEN + NONCE_LEN + ct.len());
        blob.extend_from_slice(&self.id);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(blob)))
    }
}

#[cfg(all(test, feature = "sign"))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trip_and_every_refusal() {
        let k = MasterKey::generate().unwrap();
        let v = k.encrypt("repository.token", "s3cret-token").unwrap();
        assert!(is_encrypted(&v));
        assert!(!v.contains("s3cret"));
        assert_eq!(&*k.decrypt("repository.token", &v).unwrap(), "s3cret-token");
        // Same plaintext twice: different ciphertexts (fresh nonces).
        assert_ne!(v, k.encrypt("repository.token", "s3cret-token").unwrap());
        // Moved to another field.
        let e = k.decrypt("status.token", &v).unwrap_err().to_string();
        assert!(e.contains("`status.token`") && e.contains("moved"), "{e}");
        // Another key.
        let other = MasterKey::generate().unwrap();
        let e = other
            .decrypt("repository.token", &v)
            .unwrap_err()
            .to_string();
        assert!(e.contains("encrypted under master key"), "{e}");
        // One flipped byte anywhere after the key id.
        let blob = URL_SAFE_NO_PAD.decode(&v[PREFIX.len()..]).unwrap();
        for i in ID_LEN..blob.len() {
            let mut b = blob.clone();
            b[i] ^= 1;
            let t = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&b));
            assert!(k.decrypt("repository.token", &t).is_err(), "byte {i}");
        }
        // Truncated, not base64, no prefix.
        for bad in ["enc:v1:AAAA", "enc:v1:***", "plain"] {
            assert!(k.decrypt("repository.token", bad).is_err());
        }
        // Text form round trip; no error or Debug output shows the key.
        let text = k.to_text();
        let k2 = MasterKey::from_text(&text, "test").unwrap();
        assert_eq!(k2.id_hex(), k.id_hex());
        let body = text.trim().strip_prefix(KEY_PREFIX).unwrap().to_owned();
        assert!(!format!("{k2:?}").contains(&body));
        assert!(MasterKey::from_text("charter-master-key-v1:AAAA", "x").is_err());
        // Resolving: plain passes through, encrypted needs the key.
        assert_eq!(&*resolve("f", "plain", None).unwrap(), "plain");
        let e = resolve("repository.token", &v, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no master key"), "{e}");
    }
}
