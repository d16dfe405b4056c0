//! Private keys (only with the `sign` feature): generation, PKCS#8 PEM key
//! files encrypted at rest, and signing. See docs/SPEC.md §2.
//!
//! Key files are PKCS#8, so `openssl genpkey -algorithm ed25519` keys work
//! here and charter keys work with `openssl pkeyutl`. Encrypted files use
//! PBES2 with scrypt (log2 N = 14, r = 8, p = 1) and AES-256-CBC, which
//! OpenSSL 1.1+ reads and writes.

use std::path::Path;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use pkcs8::EncryptedPrivateKeyInfoRef;
use pkcs8::LineEnding;
use pkcs8::pkcs5::EncryptionScheme;
use zeroize::Zeroizing;

use crate::{Error, Limits, PublicKey, Result, Signature};

/// DER prefix of an Ed25519 PKCS#8 v1 PrivateKeyInfo (RFC 8410 §7):
/// `SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING <32-byte seed> } }`.
const PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Something that signs: a key in memory today, a KMS or HSM later.
pub trait Signer {
    /// The public half.
    fn public_key(&self) -> &PublicKey;
    /// A pure Ed25519 signature over `message`.
    fn sign(&self, message: &[u8]) -> Result<Signature>;
    /// An Ed25519ph signature (RFC 8032) over a SHA-512 state fed with the
    /// message, for inputs too large to hold in memory.
    fn sign_prehashed(&self, prehashed: sha2::Sha512, context: Option<&[u8]>) -> Result<Signature>;
}

/// A passphrase, wiped from memory when dropped.
pub type Passphrase = Zeroizing<Vec<u8>>;

/// How a private key is written to disk.
pub enum Protection<'a> {
    /// Encrypted PKCS#8 under this passphrase (the default everywhere).
    Passphrase(&'a [u8]),
    /// Plain PKCS#8. Only when the user asked for it by name.
    InsecureUnencrypted,
}

/// An Ed25519 private key. It has no `Debug`, is never printed, and its
/// bytes are zeroized when it is dropped.
pub struct SecretKey {
    inner: SigningKey,
    public: PublicKey,
}

/// A key read from a file, with whether the file was encrypted (callers warn
/// about unencrypted ones).
pub struct LoadedKey {
    /// The key.
    pub key: SecretKey,
    /// False when the file held a plain PKCS#8 key.
    pub was_encrypted: bool,
}

impl SecretKey {
    /// A new key from the operating system's random number generator.
    pub fn generate() -> Result<Self> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|_| Error::Rng)?;
        Self::from_signing_key(SigningKey::from_bytes(&seed))
    }

    /// A key from its 32-byte seed (test vectors).
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self> {
        Self::from_signing_key(SigningKey::from_bytes(seed))
    }

    fn from_signing_key(inner: SigningKey) -> Result<Self> {
        let public = PublicKey::from_verifying_key(inner.verifying_key())?;
        Ok(SecretKey { inner, public })
    }

    /// Serializes as PKCS#8 PEM, encrypted unless asked otherwise. The
    /// PKCS#8 structure is version 1 (seed only, RFC 8410 §7), exactly what
    /// `openssl genpkey` writes: OpenSSL 3.0 cannot read the version 2 form
    /// with the public key attached.
    pub fn to_pem(&self, protection: Protection<'_>) -> Result<Zeroizing<String>> {
        let failed = |e: &dyn std::fmt::Display| Error::InvalidKey {
            source_name: None,
            reason: format!("cannot encode the private key: {e}"),
        };
        let mut der = Zeroizing::new(Vec::with_capacity(48));
        der.extend_from_slice(&PKCS8_V1_PREFIX);
        der.extend_from_slice(self.inner.as_bytes());
        match protection {
            Protection::Passphrase(pass) => {
                if pass.is_empty() {
                    return Err(Error::InvalidKey {
                        source_name: None,
                        reason: "refusing to encrypt a key under an empty passphrase".into(),
                    });
                }
                let info =
                    pkcs8::PrivateKeyInfoRef::try_from(der.as_slice()).map_err(|e| failed(&e))?;
                let doc = info.encrypt(pass).map_err(|e| failed(&e))?;
                doc.to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
                    .map_err(|e| failed(&e))
            }
            Protection::InsecureUnencrypted => {
                let pem = pkcs8::der::pem::encode_string("PRIVATE KEY", LineEnding::LF, &der)
                    .map_err(|e| failed(&e))?;
                Ok(Zeroizing::new(pem))
            }
        }
    }

    /// Writes the key to a new file created with mode 0600 (never over an
    /// existing file).
    pub fn write_file(&self, path: &Path, protection: Protection<'_>) -> Result<()> {
        let pem = self.to_pem(protection)?;
        crate::fsutil::create_private(path, pem.as_bytes())
    }

    /// Reads a PKCS#8 PEM key file. The file is refused when group or others
    /// can access it (the error names the file, its mode and the fix). For an
    /// encrypted file `passphrase` is called once; its KDF parameters are
    /// checked against `limits` before any work is done.
    pub fn read_file(
        path: &Path,
        limits: &Limits,
        passphrase: impl FnOnce() -> Result<Passphrase>,
    ) -> Result<LoadedKey> {
        let bytes = Zeroizing::new(crate::fsutil::read_private(
            path,
            limits.max_key_file_bytes,
            "a private key file",
        )?);
        let text = std::str::from_utf8(&bytes).map_err(|_| invalid(path, "not UTF-8 text"))?;
        Self::from_pem(text, path, limits, passphrase)
    }

    /// Parses a PKCS#8 PEM private key; `name` is used in errors only.
    pub fn from_pem(
        text: &str,
        name: &Path,
        limits: &Limits,
        passphrase: impl FnOnce() -> Result<Passphrase>,
    ) -> Result<LoadedKey> {
        let text = text.trim();
        let (label, der) = pkcs8::der::pem::decode_vec(text.as_bytes())
            .map_err(|_| invalid(name, "not a PEM file"))?;
        let der = Zeroizing::new(der);
        match label {
            "PRIVATE KEY" => {
                let inner = SigningKey::from_pkcs8_der(&der)
                    .map_err(|_| invalid(name, "not an Ed25519 PKCS#8 private key"))?;
                Ok(LoadedKey {
                    key: Self::from_signing_key(inner)?,
                    was_encrypted: false,
                })
            }
            "ENCRYPTED PRIVATE KEY" => {
                let info = EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
                    .map_err(|_| invalid(name, "malformed encrypted PKCS#8"))?;
                check_kdf_cost(&info.encryption_algorithm, name, limits)?;
                let pass = passphrase()?;
                let inner =
                    SigningKey::from_pkcs8_encrypted_der(&der, pass.as_slice()).map_err(|_| {
                        Error::WrongPassphrase {
                            path: name.to_owned(),
                        }
                    })?;
                Ok(LoadedKey {
                    key: Self::from_signing_key(inner)?,
                    was_encrypted: true,
                })
            }
            "PUBLIC KEY" => Err(invalid(
                name,
                "this is a public key; a private key is needed here",
            )),
            other => Err(invalid(
                name,
                &format!("PEM label `{other}`, expected `PRIVATE KEY` or `ENCRYPTED PRIVATE KEY`"),
            )),
        }
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }
}

impl Signer for SecretKey {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign(&self, message: &[u8]) -> Result<Signature> {
        use ed25519_dalek::Signer as _;
        Ok(Signature(self.inner.sign(message).to_bytes()))
    }

    fn sign_prehashed(&self, prehashed: sha2::Sha512, context: Option<&[u8]>) -> Result<Signature> {
        self.inner
            .sign_prehashed(prehashed, context)
            .map(|s| Signature(s.to_bytes()))
            .map_err(|_| Error::InvalidKey {
                source_name: None,
                reason: "Ed25519ph context longer than 255 bytes".into(),
            })
    }
}

fn invalid(name: &Path, reason: &str) -> Error {
    Error::InvalidKey {
        source_name: Some(name.to_owned()),
        reason: reason.to_owned(),
    }
}

/// An attacker who hands us a key file chooses its KDF parameters; refuse
/// ones that would take unbounded memory or time before running the KDF.
fn check_kdf_cost(scheme: &EncryptionScheme, name: &Path, limits: &Limits) -> Result<()> {
    let EncryptionScheme::Pbes2(params) = scheme else {
        return Err(invalid(
            name,
            "legacy PBES1 key encryption is not supported; re-encrypt with `openssl pkcs8 -topk8 -v2 aes-256-cbc`",
        ));
    };
    if let Some(s) = params.kdf.scrypt() {
        // N must be a power of two >= 2 (the KDF library panics on N = 0),
        // r and p at least 1.
        if s.cost_parameter < 2
            || !s.cost_parameter.is_power_of_two()
            || s.block_size == 0
            || s.parallelization == 0
        {
            return Err(invalid(
                name,
                &format!(
                    "invalid scrypt parameters N={} r={} p={}",
                    s.cost_parameter, s.block_size, s.parallelization
                ),
            ));
        }
        let memory = 128u64
            .saturating_mul(s.cost_parameter)
            .saturating_mul(u64::from(s.block_size));
        if memory > limits.max_scrypt_memory || s.parallelization > 16 {
            return Err(Error::KdfTooExpensive {
                path: name.to_owned(),
                what: format!(
                    "scrypt N={} r={} p={}",
                    s.cost_parameter, s.block_size, s.parallelization
                ),
                max: format!("{} MiB of memory and p=16", limits.max_scrypt_memory >> 20),
            });
        }
    } else if let Some(p) = params.kdf.pbkdf2() {
        if p.iteration_count == 0 {
            return Err(invalid(name, "PBKDF2 with zero iterations"));
        }
        if p.iteration_count > limits.max_pbkdf2_iterations {
            return Err(Error::KdfTooExpensive {
                path: name.to_owned(),
                what: format!("{} PBKDF2 iterations", p.iteration_count),
                max: limits.max_pbkdf2_iterations.to_string(),
            });
        }
    }
    Ok(())
}
