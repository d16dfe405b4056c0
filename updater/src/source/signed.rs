//! A charter release (docs/SPEC.md §11.2 steps 3 to 6): the manifest the
//! channel pointer pins (or `--version` names), verified under the
//! signature policy, for this product and version.

use charter_keys::root::VerifiedRoot;
use charter_release::Error as ReleaseError;
use charter_release::digest::Sha256Digest;
use charter_release::manifest::VerifiedManifest;
use charter_release::signatures::BUNDLE_SUFFIX;

use super::{Candidate, Offered, Release, Source, Target, channel::channel, trusted_root};
use crate::Result;

/// The candidate the target names, verified.
pub(super) fn candidate(src: &Source<'_>, target: &Target) -> Result<Offered> {
    let root = trusted_root(src)?;
    let product = &src.cfg.product;
    let (manifest_rel, pin, pointer, not_modified) = match target {
        Target::Channel => {
            let (vc, not_modified) = channel(src, &root)?;
            let p = vc.pointer().clone();
            (
                p.manifest.path.to_string(),
                Some((p.manifest.sha256, p.manifest.size)),
                Some(p),
                not_modified,
            )
        }
        Target::Version(v) => (
            format!("releases/{product}/{v}/manifest.json"),
            None,
            None,
            false,
        ),
    };
    // 3-4. The manifest the pointer pins, from the copy kept at the last
    //      check when its bytes still match the pin (an unchanged pointer
    //      then costs no download), else fetched; verified either way.
    let kept = pin.and_then(|(sha, size)| {
        src.state
            .pinned_manifest(size)
            .filter(|(e, _)| pinned(&manifest_rel, e, sha, size).is_ok())
    });
    let from_kept = kept.and_then(|(envelope, bundle)| {
        let m = verify(src, &root, &envelope, bundle.as_deref()).ok()?;
        Some((m, envelope))
    });
    let (manifest, envelope) = match from_kept {
        Some(found) => found,
        None => {
            let max = match pin {
                Some((_, size)) => size,
                None => src.limits.envelope.max_envelope_bytes,
            };
            let envelope = src.body(&manifest_rel, max)?;
            // 3. The pointer pins the manifest bytes (mix-and-match).
            if let Some((sha, size)) = pin {
                pinned(&manifest_rel, &envelope, sha, size)?;
            }
            // 4. The manifest's own signatures (as the signature policy
            //    says: release keys, the cosign bundle beside it, or both),
            //    validity and expiry.
            let bundle = if src.signatures.wants_bundle() {
                src.optional_body(
                    &format!("{manifest_rel}{BUNDLE_SUFFIX}"),
                    charter_keys::sigstore::MAX_BUNDLE_BYTES,
                )?
            } else {
                None
            };
            let manifest = verify(src, &root, &envelope, bundle.as_deref())?;
            if pin.is_some() {
                src.state
                    .save_pinned_manifest(&envelope, bundle.as_deref())?;
            }
            (manifest, envelope)
        }
    };
    let m = manifest.manifest();
    // 5. It is the product (and version) the host and pointer expect.
    if &m.product != product {
        return Err(ReleaseError::Mismatch {
            what: "manifest",
            expected: product.clone(),
            found: m.product.clone(),
        }
        .into());
    }
    let want_version = match (&pointer, target) {
        (Some(p), _) => Some(&p.version),
        (None, Target::Version(v)) => Some(v),
        _ => None,
    };
    if let Some(v) = want_version
        && &m.version != v
    {
        return Err(ReleaseError::Mismatch {
            what: "manifest version",
            expected: v.to_string(),
            found: m.version.to_string(),
        }
        .into());
    }
    Ok(Offered {
        candidate: Candidate {
            release: Release::Signed {
                manifest: Box::new(manifest),
                envelope,
            },
            pointer,
        },
        not_modified,
        root: Some(root),
    })
}

/// The manifest's bytes are the ones the channel pointer pins.
fn pinned(rel: &str, envelope: &[u8], sha: Sha256Digest, size: u64) -> Result<()> {
    use sha2::Digest as _;
    if envelope.len() as u64 != size {
        return Err(ReleaseError::SizeMismatch {
            what: format!("manifest {rel} (channel pointer)"),
            expected: size,
            found: envelope.len() as u64,
        }
        .into());
    }
    let got = Sha256Digest(sha2::Sha256::digest(envelope).into());
    if got != sha {
        return Err(ReleaseError::DigestMismatch {
            what: format!("manifest {rel} (channel pointer)"),
            expected: sha.to_string(),
            found: got.to_string(),
        }
        .into());
    }
    Ok(())
}

/// The manifest's signatures under the signature policy, its validity
/// and expiry.
fn verify(
    src: &Source<'_>,
    root: &VerifiedRoot,
    envelope: &[u8],
    bundle: Option<&[u8]>,
) -> Result<VerifiedManifest> {
    Ok(VerifiedManifest::verify_with_policy(
        envelope,
        root,
        src.clock,
        src.limits,
        src.signatures,
        bundle,
    )?)
}
