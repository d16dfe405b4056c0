//! Detached signatures over whole files, compatible with
//! `cosign sign-blob`'s output format (base64 of the signature) and with
//! `openssl pkeyutl -rawin`: pure Ed25519 over the file's bytes by default,
//! Ed25519ph (RFC 8032, empty context) for files of any size.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha512};

use crate::{Error, Limits, PublicKey, Result, Signature};

/// Which Ed25519 variant a blob signature uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobMode {
    /// Pure Ed25519 over the file's bytes; the file is held in memory, so it
    /// is capped at `Limits::max_pure_blob_bytes`.
    Pure,
    /// Ed25519ph over SHA-512 of the file, streamed.
    Prehash,
}

/// The file's bytes for a pure signature, refused above the limit with an
/// error naming the cap.
pub fn read_for_pure(path: &Path, limits: &Limits) -> Result<Vec<u8>> {
    crate::fsutil::read_capped(
        path,
        limits.max_pure_blob_bytes,
        "a pure Ed25519 blob signature (use --prehash for larger files)",
    )
}

/// SHA-512 of a file, streamed in 256 KiB reads.
pub fn prehash_file(path: &Path) -> Result<Sha512> {
    let mut file = File::open(path).map_err(|e| Error::io("read", path, e))?;
    let mut hasher = Sha512::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher)
}

/// Verifies a blob signature over a file.
pub fn verify_file(
    key: &PublicKey,
    path: &Path,
    signature: &Signature,
    mode: BlobMode,
    limits: &Limits,
) -> Result<()> {
    match mode {
        BlobMode::Pure => key.verify_strict(&read_for_pure(path, limits)?, signature),
        BlobMode::Prehash => key.verify_prehashed_strict(prehash_file(path)?, None, signature),
    }
}

/// Signs a file.
#[cfg(feature = "sign")]
pub fn sign_file(
    signer: &dyn crate::secret::Signer,
    path: &Path,
    mode: BlobMode,
    limits: &Limits,
) -> Result<Signature> {
    match mode {
        BlobMode::Pure => signer.sign(&read_for_pure(path, limits)?),
        BlobMode::Prehash => signer.sign_prehashed(prehash_file(path)?, None),
    }
}
