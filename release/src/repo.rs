//! Checking a whole static repository the way hosts will see it
//! (`charter repo verify`): the root chain, every channel pointer and the
//! manifest it pins, every release's manifest and artifact.

use std::path::Path;

use charter_keys::Clock;
use charter_keys::root::VerifiedRoot;
use serde::Serialize;

use crate::channel::VerifiedChannel;
use crate::manifest::VerifiedManifest;
use crate::{Error, Limits, Result};

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The file.
    pub path: String,
    /// ok or error.
    pub ok: bool,
    /// What was checked or what failed.
    pub detail: String,
}

/// The result of a repository check.
#[derive(Debug, Clone, Serialize)]
pub struct RepoReport {
    /// Newest root version reached.
    pub root_version: u64,
    /// Every file checked.
    pub findings: Vec<Finding>,
}

impl RepoReport {
    /// True when every check passed.
    pub fn ok(&self) -> bool {
        self.findings.iter().all(|f| f.ok)
    }
}

fn read(path: &Path, limits: &Limits) -> Result<Vec<u8>> {
    Ok(charter_keys::fsutil::read_capped(
        path,
        limits.envelope.max_envelope_bytes,
        "a repository document",
    )?)
}

/// Verifies the repository at `dir`, starting from `trusted` root bytes
/// (what hosts ship), walking `<N+1>.root.json` files from there.
pub fn verify_repository(
    dir: &Path,
    trusted: &[u8],
    clock: &dyn Clock,
    limits: &Limits,
) -> Result<RepoReport> {
    let mut findings = Vec::new();
    let start = VerifiedRoot::from_trusted(trusted, &limits.envelope)?;
    let (root, rotations) = start.update_chain(
        |v| {
            let p = dir.join(format!("{v}.root.json"));
            if p.exists() {
                read(&p, limits)
                    .map(Some)
                    .map_err(|e| charter_keys::Error::Malformed {
                        what: "root",
                        reason: e.to_string(),
                    })
            } else {
                Ok(None)
            }
        },
        &limits.envelope,
        clock,
    )?;
    findings.push(Finding {
        path: "root chain".into(),
        ok: true,
        detail: format!(
            "version {} after {rotations} rotation(s), expires {}",
            root.version(),
            root.expires()
        ),
    });
    let mut push = |path: String, r: std::result::Result<String, Error>| match r {
        Ok(detail) => findings.push(Finding {
            path,
            ok: true,
            detail,
        }),
        Err(e) => findings.push(Finding {
            path,
            ok: false,
            detail: e.to_string(),
        }),
    };
    // Releases.
    let releases = dir.join("releases");
    for product in sorted_dirs(&releases) {
        for version in sorted_dirs(&releases.join(&product)) {
            let mdir = releases.join(&product).join(&version);
            let mpath = mdir.join("manifest.json");
            let rel = format!("releases/{product}/{version}/manifest.json");
            let r = read(&mpath, limits)
                .and_then(|b| VerifiedManifest::verify(&b, &root, clock, limits))
                .and_then(|vm| {
                    let m = vm.manifest();
                    if m.product != product || m.version.to_string() != version {
                        return Err(Error::Mismatch {
                            what: "manifest location",
                            expected: format!("{product} {version}"),
                            found: format!("{} {}", m.product, m.version),
                        });
                    }
                    let art = mdir.join(&m.artifact.name);
                    let mut buf = vec![0u8; crate::tree::READ_BUF];
                    let (digest, size) = crate::tree::hash_file(&art, &mut buf)?;
                    if size != m.artifact.size {
                        return Err(Error::SizeMismatch {
                            what: m.artifact.name.clone(),
                            expected: m.artifact.size,
                            found: size,
                        });
                    }
                    if digest != m.artifact.sha256 {
                        return Err(Error::DigestMismatch {
                            what: m.artifact.name.clone(),
                            expected: m.artifact.sha256.to_string(),
                            found: digest.to_string(),
                        });
                    }
                    let sbom = match &m.sbom {
                        Some(s) => {
                            let b = charter_keys::fsutil::read_capped(
                                &mdir.join(&s.name),
                                crate::sbom::MAX_SBOM_BYTES,
                                "an SBOM",
                            )?;
                            s.matches(&b)?;
                            format!(", sbom {} matches", s.name)
                        }
                        None => String::new(),
                    };
                    Ok(format!(
                        "signed by {} key(s), artifact {} matches{sbom}, expires {}",
                        vm.signers().len(),
                        m.artifact.name,
                        m.expires
                    ))
                });
            push(rel, r);
        }
    }
    // Channels.
    let channels = dir.join("channels");
    for product in sorted_dirs(&channels) {
        let Ok(rd) = std::fs::read_dir(channels.join(&product)) else {
            continue;
        };
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".json"))
            .collect();
        names.sort();
        for name in names {
            let channel = name.trim_end_matches(".json").to_owned();
            let rel = format!("channels/{product}/{name}");
            let r = read(&dir.join(&rel), limits)
                .and_then(|b| VerifiedChannel::verify(&b, &root, clock, limits, &product, &channel))
                .and_then(|vc| {
                    let p = vc.pointer();
                    let bytes = read(&dir.join(p.manifest.path.as_str()), limits)?;
                    use sha2::Digest as _;
                    let got = crate::digest::Sha256Digest(sha2::Sha256::digest(&bytes).into());
                    if got != p.manifest.sha256 || bytes.len() as u64 != p.manifest.size {
                        return Err(Error::DigestMismatch {
                            what: format!("{} (pinned by the pointer)", p.manifest.path),
                            expected: p.manifest.sha256.to_string(),
                            found: got.to_string(),
                        });
                    }
                    let vm = VerifiedManifest::verify(&bytes, &root, clock, limits)?;
                    if vm.manifest().version != p.version {
                        return Err(Error::Mismatch {
                            what: "pinned manifest",
                            expected: p.version.to_string(),
                            found: vm.manifest().version.to_string(),
                        });
                    }
                    Ok(format!(
                        "{} -> {}, expires {}",
                        channel, p.version, p.expires
                    ))
                });
            push(rel, r);
        }
    }
    Ok(RepoReport {
        root_version: root.version(),
        findings,
    })
}

fn sorted_dirs(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| {
                e.ok()
                    .filter(|e| e.path().is_dir())?
                    .file_name()
                    .into_string()
                    .ok()
            })
            .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
