//! A plain release (docs/SPEC.md §13.5): the version (`--version`, or the
//! unsigned `latest` file), its checksum file and the cosign bundle over
//! it, verified; then, to install it, the tarball downloaded against the
//! signed checksum and its tree read into a manifest.

use charter_release::Error as ReleaseError;
use charter_release::manifest::compile_globs;
use charter_release::plain::{InstallRecord, VerifiedChecksums};

use super::{Candidate, Evidence, Release, Source, Target, ToInstall};
use crate::config::plain::PlainConfig;
use crate::host::layout::InstallRoot;
use crate::{Error, Result};

/// The plain candidate the target names; the tarball is not downloaded
/// yet.
pub(super) fn candidate(src: &Source<'_>, p: &PlainConfig, target: &Target) -> Result<Candidate> {
    let version = match target {
        Target::Version(v) => v.clone(),
        Target::Channel => {
            let rel = p
                .latest
                .as_deref()
                .ok_or_else(|| ReleaseError::PlainArtifact {
                    what: "[plain]".into(),
                    reason: "names no `latest` file, so there is no newest version to look \
                         up: pass --version"
                        .into(),
                })?;
            charter_release::plain::parse_latest(
                &src.body(rel, charter_release::plain::MAX_LATEST_BYTES)?,
            )
            .map_err(|e| ReleaseError::PlainArtifact {
                what: src.fetcher.url_of(rel),
                reason: e.to_string(),
            })?
        }
    };
    p.admit_version(&version)?;
    let located = p.locate(&version);
    let cosign = src.signatures.cosign.as_ref().ok_or_else(|| {
        ReleaseError::SignaturePolicy("plain artifacts need a [signatures.cosign] table".into())
    })?;
    let checksums = src.body(
        &located.checksums,
        charter_release::plain::MAX_CHECKSUMS_BYTES,
    )?;
    let Some(bundle) =
        src.optional_body(&located.bundle, charter_keys::sigstore::MAX_BUNDLE_BYTES)?
    else {
        return Err(ReleaseError::SignaturePolicy(format!(
            "a {} is required and {} has none at {}",
            cosign.describe(),
            version,
            src.fetcher.url_of(&located.bundle)
        ))
        .into());
    };
    let checked = VerifiedChecksums::verify(version, located, &checksums, &bundle, cosign)?;
    p.unambiguous(checked.version(), &checksums)?;
    Ok(Candidate {
        release: Release::Plain(Box::new(checked)),
        pointer: None,
    })
}

/// The tarball of `checked`, downloaded (capped) into an unlinked file
/// that only this process holds, checked against the signed checksum,
/// and its tree read into a manifest.
pub(super) fn download(
    src: &Source<'_>,
    root: InstallRoot<'_>,
    checked: &VerifiedChecksums,
) -> Result<ToInstall> {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    let p = src
        .cfg
        .plain
        .as_ref()
        .ok_or_else(|| ReleaseError::PlainArtifact {
            what: "[plain]".into(),
            reason: "is not configured".into(),
        })?;
    let staging = root.prepare_staging()?;
    let dl = root.download(checked.version());
    let _ = std::fs::remove_file(&dl);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&dl)
        .map_err(|e| Error::io("create", &dl, e))?;
    // Unlinked at once: nothing is left behind by a crash, and nothing can
    // reach the bytes by name between the digest check and the
    // extraction.
    std::fs::remove_file(&dl).map_err(|e| Error::io("remove", &dl, e))?;
    (src.notes)(&format!(
        "downloading {} (at most {} bytes)",
        checked.located().file_name,
        p.max_size
    ));
    let (digest, size) =
        src.fetcher
            .download(&checked.located().artifact, p.max_size, &mut file, &staging)?;
    if digest != checked.sha256() {
        return Err(ReleaseError::DigestMismatch {
            what: format!(
                "{} (signed checksum in {})",
                checked.located().file_name,
                checked.located().checksums
            ),
            expected: checked.sha256().to_string(),
            found: digest.to_string(),
        }
        .into());
    }
    let format = p.format()?;
    let rewind = |f: &mut std::fs::File| {
        f.seek(SeekFrom::Start(0))
            .map(|_| ())
            .map_err(|e| Error::io("seek", &dl, e))
    };
    rewind(&mut file)?;
    let files = charter_release::plain::scan(
        &mut std::io::BufReader::with_capacity(1 << 20, &mut file),
        &checked.located().file_name,
        format,
        usize::from(p.strip_components),
        &compile_globs(&p.config)?,
        p.max_unpacked_size,
        src.limits,
    )?;
    let m = charter_release::plain::synthesize(
        &src.cfg.product,
        checked,
        format,
        size,
        &p.config,
        files,
        src.limits,
    )?;
    let record = InstallRecord {
        located: checked.located().clone(),
        checksums: checked.checksums().to_owned(),
        bundle: checked.bundle().to_owned(),
        proof: checked.proof().clone(),
        manifest: m.clone(),
    };
    // Read back (rollback, verify, carry-over) with the cap a signed
    // manifest has: a tree too large for it is refused now.
    let bytes = record.encode(src.limits.envelope.max_envelope_bytes)?;
    rewind(&mut file)?;
    Ok(ToInstall {
        manifest: m,
        evidence: Evidence::PlainRecord(bytes),
        download: Some(file),
    })
}
