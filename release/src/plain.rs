//! Plain artifacts (docs/SPEC.md §13.5): releases published the way many
//! projects publish them, with no charter manifest. A tarball, a checksum
//! file (a `FILE.sha256` sidecar or a `checksums.txt`) and a cosign bundle
//! over the checksum file:
//!
//! ```text
//! v1.4.0/panel-1.4.0.tar.gz
//! v1.4.0/panel-1.4.0.tar.gz.sha256                 <hex>  panel-1.4.0.tar.gz
//! v1.4.0/panel-1.4.0.tar.gz.sha256.sigstore.json   cosign sign-blob --bundle ...
//! ```
//!
//! What the signature binds, and so what the host can trust:
//!
//! - the bundle (identity, issuer, trusted root: `[signatures.cosign]`)
//!   covers the checksum file's bytes;
//! - the checksum file names the tarball's file name, whose template must
//!   hold `{version}`: so the signed bytes name the version, and a tarball
//!   served under another version's path is refused (the version ratchet
//!   then stops rollbacks as for charter manifests);
//! - the line for that name gives the tarball's SHA-256; the download is
//!   capped at `max_size` (a checksum states no size) and checked against
//!   it before a single entry is read;
//! - the file list is then taken from the verified tarball itself
//!   ([`scan`]): every path, type and mode is checked as for signed
//!   releases, setuid/setgid bits are refused, and the tree is extracted
//!   by the same code, entry by entry against that list.
//!
//! What it cannot give: nothing signed expires, so a mirror can hide newer
//! releases (a freeze), and the `latest` file naming the newest version is
//! not signed (it can only choose among signed versions, and never one
//! below the ratchet). Charter manifests and channel pointers close both.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use charter_keys::sigstore::{self, Subject};
use jiff::Timestamp;
use semver::Version;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::digest::Sha256Digest;
use crate::manifest::{Artifact, ArtifactFormat, CosignProof, Entry, Manifest};
use crate::path::ArchivePath;
use crate::signatures::CosignCheck;
use crate::{Error, Limits, Result};

/// Largest checksum file read (goreleaser's checksums.txt for hundreds of
/// artifacts is a few tens of KiB).
pub const MAX_CHECKSUMS_BYTES: u64 = 1 << 20;

/// Largest `latest` file read.
pub const MAX_LATEST_BYTES: u64 = 256;

/// The repository paths of one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Located {
    /// The tarball.
    pub artifact: String,
    /// Its file name (what the checksum file must name).
    pub file_name: String,
    /// The checksum file.
    pub checksums: String,
    /// The bundle.
    pub bundle: String,
}

/// Reads the version a `latest` file names: one line, an optional `v`.
pub fn parse_latest(bytes: &[u8]) -> Result<Version> {
    let bad = |reason: String| Error::InvalidInput {
        what: "latest file",
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8".into()))?;
    let t = text.trim();
    let t = t.strip_prefix('v').unwrap_or(t);
    t.parse()
        .map_err(|e| bad(format!("`{}` is not a version: {e}", t.escape_debug())))
}

/// What [`checksum_for`] makes of a checksum file of one line that names
/// no file (an enum, not a boolean, so the looser reading is spelled out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamelessLine {
    /// Refused: nothing signed says which file it is for (the updater).
    Refuse,
    /// Taken as the checksum of whatever file is asked about (the CLI's
    /// `verify-blob --sha256-file`, where the operator names the file).
    MatchesAnyName,
}

/// The SHA-256 a checksum file lists for `file_name`: sha256sum's format
/// (`<hex>  <name>`, `<hex> *<name>`, one a line; `#` comments) or BSD's
/// (`SHA256 (<name>) = <hex>`), matched on the listed path's file name.
///
/// A file of one nameless line (`<hex>` alone) matches any name only
/// under [`NamelessLine::MatchesAnyName`] (the `FILE.sha256` habit; the CLI
/// allows it). The updater uses [`NamelessLine::Refuse`]: nothing signed
/// would name the version.
pub fn checksum_for(
    text: &[u8],
    file_name: &str,
    nameless: NamelessLine,
) -> std::result::Result<Sha256Digest, String> {
    let entries = checksum_lines(text)?;
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_owned();
    let named: BTreeSet<Sha256Digest> = entries
        .iter()
        .filter(|(_, l)| !l.is_empty() && base(l) == file_name)
        .map(|(d, _)| *d)
        .collect();
    let mut named = named.into_iter();
    match (named.next(), named.next()) {
        (Some(d), None) => return Ok(d),
        (None, _) => {}
        (Some(_), Some(_)) => return Err(format!("lists {file_name} with different checksums")),
    }
    match entries.as_slice() {
        [(d, "")] if nameless == NamelessLine::MatchesAnyName => Ok(*d),
        [(_, "")] => Err(format!(
            "holds a checksum but names no file, so nothing signed says it is {file_name}"
        )),
        [] => Err("lists no checksum".into()),
        _ => Err(format!("has no line for {file_name}")),
    }
}

/// Every line of a checksum file (see [`checksum_for`]): digest and the
/// name as listed (empty for a nameless line).
pub fn checksum_lines(text: &[u8]) -> std::result::Result<Vec<(Sha256Digest, &str)>, String> {
    if text.len() as u64 > MAX_CHECKSUMS_BYTES {
        return Err(format!(
            "{} bytes, more than the {MAX_CHECKSUMS_BYTES} a checksum file may have",
            text.len()
        ));
    }
    let text = std::str::from_utf8(text).map_err(|_| "not UTF-8".to_owned())?;
    let mut entries: Vec<(Sha256Digest, &str)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r').trim_end();
        if line.trim_start().is_empty() || line.starts_with('#') {
            continue;
        }
        let (hex_part, name) = if let Some(rest) = line.strip_prefix("SHA256 (") {
            let Some((name, hex_part)) = rest.rsplit_once(") = ") else {
                return Err(format!("line {}: not a checksum line", n + 1));
            };
            (hex_part, name)
        } else {
            let (h, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
            (
                h,
                rest.trim_start_matches([' ', '\t']).trim_start_matches('*'),
            )
        };
        let mut d = [0u8; 32];
        if hex_part.len() != 64 || hex::decode_to_slice(hex_part, &mut d).is_err() {
            return Err(format!(
                "line {}: not a sha256 checksum line (64 hex digits, then the file name)",
                n + 1
            ));
        }
        entries.push((Sha256Digest(d), name));
    }
    Ok(entries)
}

/// A plain release whose checksum file the cosign bundle verified, and
/// which names the version's tarball: everything `check` needs, before the
/// tarball itself is downloaded. Only [`VerifiedChecksums::verify`] makes one: its
/// fields are private, so holding one proves the bundle verified.
///
/// No other code can build one by hand:
///
/// ```compile_fail,E0451
/// use charter_release::plain::VerifiedChecksums;
/// let forged = VerifiedChecksums {
///     version: todo!(),
///     located: todo!(),
///     checksums: String::new(),
///     bundle: String::new(),
///     sha256: todo!(),
///     proof: todo!(),
/// };
/// ```
#[derive(Debug, Clone)]
pub struct VerifiedChecksums {
    version: Version,
    located: Located,
    checksums: String,
    bundle: String,
    sha256: Sha256Digest,
    proof: CosignProof,
}

impl VerifiedChecksums {
    /// The version.
    pub fn version(&self) -> &Version {
        &self.version
    }

    /// Where its files are.
    pub fn located(&self) -> &Located {
        &self.located
    }

    /// The checksum file, as verified.
    pub fn checksums(&self) -> &str {
        &self.checksums
    }

    /// The bundle, as verified.
    pub fn bundle(&self) -> &str {
        &self.bundle
    }

    /// The tarball's SHA-256, from the checksum file.
    pub fn sha256(&self) -> Sha256Digest {
        self.sha256
    }

    /// What the bundle proved.
    pub fn proof(&self) -> &CosignProof {
        &self.proof
    }

    /// A `VerifiedChecksums` with no signature behind it, for the fuzz target
    /// `plain_tarball`, which exercises what comes after verification.
    /// Compiled only under `cargo fuzz` (`--cfg fuzzing`), never into a
    /// binary that installs anything.
    #[cfg(fuzzing)]
    #[doc(hidden)]
    pub fn unverified_for_fuzzing(
        version: Version,
        located: Located,
        sha256: Sha256Digest,
    ) -> Self {
        VerifiedChecksums {
            version,
            located,
            checksums: String::new(),
            bundle: String::new(),
            sha256,
            proof: CosignProof {
                identity: None,
                issuer: None,
                integrated_time: None,
            },
        }
    }

    /// Verifies `bundle` over `checksums` under the cosign requirement and
    /// finds the tarball's line (the version's binding to signed bytes).
    pub fn verify(
        version: Version,
        located: Located,
        checksums: &[u8],
        bundle: &[u8],
        cosign: &CosignCheck,
    ) -> Result<Self> {
        let v = sigstore::verify(
            bundle,
            Subject::Bytes(checksums),
            &cosign.policy,
            &cosign.root,
        )
        .map_err(|e| Error::SignaturePolicy(format!("cosign bundle {}: {e}", located.bundle)))?;
        let sha256 = checksum_for(checksums, &located.file_name, NamelessLine::Refuse).map_err(
            |reason| Error::PlainArtifact {
                what: located.checksums.clone(),
                reason,
            },
        )?;
        // Both were checked as UTF-8 above (the verifier and the parser).
        Ok(VerifiedChecksums {
            version,
            sha256,
            checksums: String::from_utf8_lossy(checksums).into_owned(),
            bundle: String::from_utf8_lossy(bundle).into_owned(),
            located,
            proof: CosignProof {
                identity: v.identity().map(str::to_owned),
                issuer: v.issuer().map(str::to_owned),
                integrated_time: v.integrated_time(),
            },
        })
    }

    /// When the release was signed: the transparency log's time, which the
    /// license's updates-until date is compared with.
    pub fn released_at(&self) -> Option<Timestamp> {
        self.proof.integrated_time
    }
}

/// Turns a tar entry's raw path into a path inside the release: drops
/// leading `./`, then `strip` components. `None` for the entries that
/// vanish (`./`, and the stripped top directories themselves).
pub fn normalize(
    raw: &str,
    is_dir: bool,
    strip: usize,
    limits: &Limits,
) -> Result<Option<ArchivePath>> {
    let mut s = raw;
    if is_dir {
        s = s.strip_suffix('/').unwrap_or(s);
    }
    while let Some(rest) = s.strip_prefix("./") {
        s = rest;
    }
    if s == "." || s.is_empty() {
        return if is_dir {
            Ok(None)
        } else {
            Err(Error::UnsafePath {
                path: raw.chars().take(300).collect(),
                reason: "empty path",
            })
        };
    }
    // The whole path first: a `..` is refused even where it would be
    // stripped away.
    ArchivePath::new(s, limits.max_path_bytes)?;
    let mut parts = s.splitn(strip + 1, '/');
    let mut dropped = 0;
    while dropped < strip {
        if parts.next().is_none() {
            break;
        }
        dropped += 1;
    }
    match parts.next() {
        Some(rest) if dropped == strip && !rest.is_empty() => {
            ArchivePath::new(rest, limits.max_path_bytes).map(Some)
        }
        // The top directory being stripped (`panel-1.4.0/`).
        None if is_dir && dropped == strip => Ok(None),
        _ => Err(Error::PlainArtifact {
            what: raw.chars().take(300).collect(),
            reason: format!(
                "has fewer than the {strip} leading component(s) plain.strip_components drops"
            ),
        }),
    }
}

/// What a tar entry of a plain artifact is: `Ok(None)` for entries that
/// carry no file (pax global headers, which `git archive` writes).
fn kind_of(kind: tar::EntryType, path: &str) -> Result<Option<tar::EntryType>> {
    match kind {
        tar::EntryType::XGlobalHeader => Ok(None),
        k @ (tar::EntryType::Regular
        | tar::EntryType::Continuous
        | tar::EntryType::Directory
        | tar::EntryType::Symlink) => Ok(Some(k)),
        other => Err(Error::ForbiddenEntry {
            path: path.chars().take(300).collect(),
            kind: crate::archive::forbidden_kind(other),
        }),
    }
}

/// Reads a (verified) tarball and lists its tree as manifest entries,
/// sorted, with the directories it implies but does not hold (mode 0755).
/// Refuses what extraction would refuse (unsafe paths, hard links,
/// devices, duplicates) and, since no signature vouches for them here,
/// setuid, setgid and sticky bits. The decompressed stream is capped at
/// `max_unpacked`.
pub fn scan(
    artifact: &mut dyn Read,
    what: &str,
    format: ArtifactFormat,
    strip: usize,
    config: &globset::GlobSet,
    max_unpacked: u64,
    limits: &Limits,
) -> Result<Vec<Entry>> {
    let decoder: Box<dyn Read + '_> = match format {
        ArtifactFormat::TarZst => {
            Box::new(zstd::stream::read::Decoder::new(artifact).map_err(|e| {
                Error::PlainArtifact {
                    what: what.into(),
                    reason: format!("zstd: {e}"),
                }
            })?)
        }
        ArtifactFormat::TarGz => Box::new(flate2::read::GzDecoder::new(artifact)),
    };
    let mut bounded = crate::archive::bounded(decoder, max_unpacked);
    let corrupt = |e: std::io::Error| match crate::archive::bound_exceeded(&e) {
        Some(max) => Error::PlainArtifact {
            what: what.into(),
            reason: format!(
                "unpacks to more than the {max} bytes plain.max_unpacked_size allows \
                 (decompression bomb?)"
            ),
        },
        None => Error::PlainArtifact {
            what: what.into(),
            reason: format!("does not unpack: {e}"),
        },
    };
    let mut archive = tar::Archive::new(&mut bounded);
    let mut found: BTreeMap<ArchivePath, Entry> = BTreeMap::new();
    let mut buf = vec![0u8; 256 << 10];
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let raw_bytes = entry.path_bytes().into_owned();
        let raw = std::str::from_utf8(&raw_bytes).map_err(|_| Error::UnsafePath {
            path: String::from_utf8_lossy(&raw_bytes)
                .chars()
                .take(300)
                .collect(),
            reason: "not valid UTF-8",
        })?;
        let Some(kind) = kind_of(entry.header().entry_type(), raw)? else {
            continue;
        };
        let Some(path) = normalize(raw, kind.is_dir(), strip, limits)? else {
            continue;
        };
        if found.len() >= limits.max_files {
            return Err(Error::PlainArtifact {
                what: what.into(),
                reason: format!("has more than {} entries", limits.max_files),
            });
        }
        let mode = entry.header().mode().map_err(corrupt)? & 0o7777;
        if mode & 0o7000 != 0 {
            return Err(Error::PlainArtifact {
                what: path.to_string(),
                reason: format!(
                    "has mode {mode:o}: setuid, setgid and sticky bits need a signed charter \
                     manifest"
                ),
            });
        }
        let e = match kind {
            tar::EntryType::Directory => Entry::Dir {
                path: path.clone(),
                mode,
            },
            tar::EntryType::Symlink => {
                let target = crate::archive::link_target(&entry, path.as_str())?;
                Entry::Symlink {
                    path: path.clone(),
                    target,
                }
            }
            _ => {
                let mut h = Sha256::new();
                let mut size = 0u64;
                loop {
                    let n = entry.read(&mut buf).map_err(corrupt)?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                    size += n as u64;
                }
                Entry::File {
                    kind: crate::tree::classify(&path, mode, config),
                    path: path.clone(),
                    mode,
                    size,
                    sha256: Sha256Digest(h.finalize().into()),
                }
            }
        };
        if found.insert(path.clone(), e).is_some() {
            return Err(Error::EntryMismatch {
                path: path.to_string(),
                reason: "appears twice in the archive".into(),
            });
        }
    }
    // The rest of the stream, so a truncated or corrupt frame is caught
    // here and not half-way through staging.
    std::io::copy(&mut bounded, &mut std::io::sink()).map_err(corrupt)?;
    // Directories the archive implies.
    let implied: Vec<ArchivePath> = found
        .keys()
        .flat_map(|p| {
            let mut out = Vec::new();
            let mut cur = p.parent();
            while let Some(parent) = cur {
                out.push(parent.to_owned());
                cur = Path::new(parent)
                    .parent()
                    .and_then(|q| q.to_str())
                    .filter(|q| !q.is_empty());
            }
            out
        })
        .collect::<BTreeSet<String>>()
        .into_iter()
        .map(|p| ArchivePath::new(&p, limits.max_path_bytes))
        .collect::<Result<_>>()?;
    for p in implied {
        match found.get(&p) {
            None => {
                found.insert(
                    p.clone(),
                    Entry::Dir {
                        path: p,
                        mode: 0o755,
                    },
                );
            }
            Some(Entry::Dir { .. }) => {}
            Some(_) => {
                return Err(Error::EntryMismatch {
                    path: p.to_string(),
                    reason: "is a directory of other entries and not a directory".into(),
                });
            }
        }
    }
    if found.is_empty() {
        return Err(Error::PlainArtifact {
            what: what.into(),
            reason: "holds no files".into(),
        });
    }
    Ok(found.into_values().collect())
}

/// The manifest the host writes for a verified plain release: the scanned
/// tree, the host's config globs, and a name of charter's shape for the
/// artifact (the real name is in the record). It never expires: nothing
/// signed said it would.
pub fn synthesize(
    product: &str,
    c: &VerifiedChecksums,
    format: ArtifactFormat,
    size: u64,
    config: &[String],
    files: Vec<Entry>,
    limits: &Limits,
) -> Result<Manifest> {
    let released_at = c.released_at().unwrap_or(Timestamp::UNIX_EPOCH);
    let m = Manifest {
        product: product.to_owned(),
        version: c.version.clone(),
        released_at,
        expires: Timestamp::MAX,
        security_fix: false,
        artifact: Artifact {
            name: format!("{product}-{}.{}", c.version, format.extension()),
            format,
            size,
            sha256: c.sha256,
        },
        preserve: Vec::new(),
        config: config.to_vec(),
        health_check: None,
        scripts: Default::default(),
        sbom: None,
        files,
    };
    m.validate(limits)?;
    Ok(m)
}

/// What the host keeps of an installed plain release
/// (`state/manifests/<v>.plain.json`): the signed inputs, so `verify` can
/// check them again, and the file list taken from the verified tarball.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallRecord {
    /// Where the files came from.
    pub located: Located,
    /// The checksum file's text.
    pub checksums: String,
    /// The bundle's text.
    pub bundle: String,
    /// What the bundle proved at install time.
    pub proof: CosignProof,
    /// The synthesized manifest.
    pub manifest: Manifest,
}

impl InstallRecord {
    /// The bytes kept in `state/manifests/<v>.plain.json`, refused above
    /// `max` (what the host reads back, the cap of a signed manifest) with
    /// the entry count in the message.
    pub fn encode(&self, max: u64) -> Result<Vec<u8>> {
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::InvalidInput {
            what: "plain release record",
            reason: e.to_string(),
        })?;
        bytes.push(b'\n');
        if bytes.len() as u64 > max {
            return Err(Error::PlainArtifact {
                what: self.located.file_name.clone(),
                reason: format!(
                    "lists {} entries, whose record ({} bytes) is more than the {max} bytes a \
                     host keeps per release; publish it with a charter manifest",
                    self.manifest.files.len(),
                    bytes.len()
                ),
            });
        }
        Ok(bytes)
    }

    /// Checks the record again under today's cosign requirement: the
    /// bundle over the checksum file, its line for the tarball, and that
    /// the manifest pins that digest. Returns the manifest.
    pub fn verify(&self, cosign: &CosignCheck, limits: &Limits) -> Result<&Manifest> {
        let c = VerifiedChecksums::verify(
            self.manifest.version.clone(),
            self.located.clone(),
            self.checksums.as_bytes(),
            self.bundle.as_bytes(),
            cosign,
        )?;
        if c.sha256 != self.manifest.artifact.sha256 {
            return Err(Error::DigestMismatch {
                what: format!("recorded artifact {}", self.located.file_name),
                expected: c.sha256.to_string(),
                found: self.manifest.artifact.sha256.to_string(),
            });
        }
        self.manifest.validate(limits)?;
        Ok(&self.manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::compile_globs;

    const H: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const H2: &str = "1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn checksum_lines_in_every_common_shape() {
        let name = "panel-1.4.0.tar.gz";
        for text in [
            format!("{H}  panel-1.4.0.tar.gz\n"),
            format!("{H} *panel-1.4.0.tar.gz\r\n"),
            format!(
                "# made by goreleaser\n{H2}  panel-1.4.0-arm64.tar.gz\n{H}  panel-1.4.0.tar.gz\n"
            ),
            format!("{H}  ./dist/panel-1.4.0.tar.gz\n"),
            format!("SHA256 (panel-1.4.0.tar.gz) = {H}\n"),
        ] {
            assert_eq!(
                checksum_for(text.as_bytes(), name, NamelessLine::Refuse)
                    .unwrap()
                    .to_string(),
                H,
                "{text}"
            );
        }
    }

    #[test]
    fn checksum_files_that_do_not_name_the_file_are_refused() {
        let name = "panel-1.4.0.tar.gz";
        let e = checksum_for(format!("{H}\n").as_bytes(), name, NamelessLine::Refuse).unwrap_err();
        assert!(e.contains("names no file"), "{e}");
        assert_eq!(
            checksum_for(
                format!("{H}\n").as_bytes(),
                name,
                NamelessLine::MatchesAnyName
            )
            .unwrap()
            .to_string(),
            H
        );
        let e = checksum_for(
            format!("{H}  panel-1.3.0.tar.gz\n").as_bytes(),
            name,
            NamelessLine::Refuse,
        )
        .unwrap_err();
        assert!(e.contains("no line for panel-1.4.0.tar.gz"), "{e}");
        let e = checksum_for(
            format!("{H}  panel-1.4.0.tar.gz\n{H2}  panel-1.4.0.tar.gz\n").as_bytes(),
            name,
            NamelessLine::Refuse,
        )
        .unwrap_err();
        assert!(e.contains("different checksums"), "{e}");
        let e = checksum_for(b"xyz  panel-1.4.0.tar.gz\n", name, NamelessLine::Refuse).unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        assert!(
            checksum_for(b"", name, NamelessLine::Refuse)
                .unwrap_err()
                .contains("no checksum")
        );
        assert!(
            checksum_for(&[0xff, 0xfe], name, NamelessLine::Refuse)
                .unwrap_err()
                .contains("UTF-8")
        );
        let big = vec![b'#'; MAX_CHECKSUMS_BYTES as usize + 1];
        assert!(
            checksum_for(&big, name, NamelessLine::Refuse)
                .unwrap_err()
                .contains("more than")
        );
    }

    #[test]
    fn latest_files() {
        assert_eq!(parse_latest(b"v1.4.0\n").unwrap(), Version::new(1, 4, 0));
        assert_eq!(parse_latest(b"  2.0.1 ").unwrap(), Version::new(2, 0, 1));
        assert!(parse_latest(b"latest").is_err());
        assert!(parse_latest(&[0xff]).is_err());
    }

    #[test]
    fn normalize_strips_dot_slash_and_components() {
        let l = Limits::default();
        let n = |raw: &str, dir: bool, strip: usize| {
            normalize(raw, dir, strip, &l).map(|p| p.map(|p| p.to_string()))
        };
        assert_eq!(
            n("./bin/app", false, 0).unwrap().as_deref(),
            Some("bin/app")
        );
        assert_eq!(n("./", true, 0).unwrap(), None);
        assert_eq!(n("panel-1.4.0/", true, 1).unwrap(), None);
        assert_eq!(
            n("panel-1.4.0/bin/app", false, 1).unwrap().as_deref(),
            Some("bin/app")
        );
        assert_eq!(n("./panel/bin/", true, 1).unwrap().as_deref(), Some("bin"));
        assert!(n("app", false, 1).is_err());
        assert!(n("panel/../../etc/passwd", false, 1).is_err());
        assert!(n("../evil", false, 1).is_err());
        assert!(n("/etc/passwd", false, 0).is_err());
    }

    /// `(path, type, mode, body)`; a symlink's body is its target.
    type TarEntry<'a> = (&'a str, tar::EntryType, u32, &'a [u8]);

    /// A gzip'd tar of entries with raw paths.
    fn tgz(entries: &[TarEntry]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (path, kind, mode, body) in entries {
            let mut h = tar::Header::new_gnu();
            let name = path.as_bytes();
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_entry_type(*kind);
            h.set_mode(*mode);
            h.set_size(body.len() as u64);
            if *kind == tar::EntryType::Symlink {
                h.set_link_name(std::str::from_utf8(body).unwrap()).unwrap();
                h.set_size(0);
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            } else {
                h.set_cksum();
                b.append(&h, *body).unwrap();
            }
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    fn scan_tgz(bytes: &[u8], strip: usize, max: u64) -> Result<Vec<Entry>> {
        scan(
            &mut &bytes[..],
            "t.tar.gz",
            ArtifactFormat::TarGz,
            strip,
            &compile_globs(&["etc/*".to_owned()]).unwrap(),
            max,
            &Limits::default(),
        )
    }

    /// A `VerifiedChecksums` for tarball bytes `t`, with no signature behind it
    /// (unit tests of what happens after verification).
    fn checked_for(t: &[u8]) -> VerifiedChecksums {
        let v = Version::new(1, 0, 0);
        VerifiedChecksums {
            located: Located {
                artifact: "p-1.0.0.tar.gz".into(),
                file_name: "p-1.0.0.tar.gz".into(),
                checksums: "p-1.0.0.tar.gz.sha256".into(),
                bundle: "p-1.0.0.tar.gz.sha256.sigstore.json".into(),
            },
            version: v,
            checksums: String::new(),
            bundle: String::new(),
            sha256: Sha256Digest(Sha256::digest(t).into()),
            proof: CosignProof {
                identity: None,
                issuer: None,
                integrated_time: None,
            },
        }
    }

    #[test]
    fn scan_implies_directories_and_skips_global_headers() {
        use tar::EntryType as T;
        let t = tgz(&[
            (
                "pax_global_header",
                T::XGlobalHeader,
                0o666,
                b"52 comment=0123\n",
            ),
            ("p-1/", T::Directory, 0o755, b""),
            ("p-1/etc/app.conf", T::Regular, 0o640, b"a=1\n"),
            ("p-1/bin/app", T::Regular, 0o755, b"#!/bin/sh\n"),
            ("p-1/bin/", T::Directory, 0o750, b""),
            ("p-1/lib/x/y", T::Symlink, 0o777, b"../../bin/app"),
        ]);
        let files = scan_tgz(&t, 1, 1 << 20).unwrap();
        let got: Vec<String> = files
            .iter()
            .map(|e| match e {
                Entry::Dir { path, mode } => format!("d {path} {mode:o}"),
                Entry::File {
                    path,
                    mode,
                    kind,
                    size,
                    ..
                } => {
                    format!("f {path} {mode:o} {kind:?} {size}")
                }
                Entry::Symlink { path, target } => format!("l {path} {target}"),
            })
            .collect();
        assert_eq!(
            got,
            [
                "d bin 750",
                "f bin/app 755 Program 10",
                "d etc 755",
                "f etc/app.conf 640 Config 4",
                "d lib 755",
                "d lib/x 755",
                "l lib/x/y ../../bin/app",
            ]
        );
    }

    #[test]
    fn scan_refuses_duplicates_special_bits_and_bombs() {
        use tar::EntryType as T;
        let big = vec![0u8; 1 << 20];
        let cases: &[(&[TarEntry], usize, u64, &str)] = &[
            (
                &[
                    ("a", T::Regular, 0o644, b"1"),
                    ("./a", T::Regular, 0o644, b"2"),
                ],
                0,
                1 << 20,
                "twice",
            ),
            (&[("a", T::Regular, 0o4755, b"1")], 0, 1 << 20, "setuid"),
            (&[("d/", T::Directory, 0o1777, b"")], 0, 1 << 20, "sticky"),
            (
                &[("null", T::Char, 0o666, b"")],
                0,
                1 << 20,
                "character device",
            ),
            (
                &[
                    ("a", T::Regular, 0o644, b"1"),
                    ("a/b", T::Regular, 0o644, b"2"),
                ],
                0,
                1 << 20,
                "not a directory",
            ),
            (
                &[("zeros", T::Regular, 0o644, &big)],
                0,
                64 << 10,
                "65536 bytes plain.max_unpacked_size allows",
            ),
            (
                &[("p-1/", T::Directory, 0o755, b"")],
                1,
                1 << 20,
                "no files",
            ),
            (
                &[("README", T::Regular, 0o644, b"x")],
                1,
                1 << 20,
                "fewer than",
            ),
        ];
        for (entries, strip, max, needle) in cases {
            let e = scan_tgz(&tgz(entries), *strip, *max)
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
        // The bomb really is one: a small download.
        assert!(tgz(&[("zeros", T::Regular, 0o644, &big)]).len() < big.len() / 16);
        let e = scan_tgz(b"not gzip at all", 0, 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not unpack"), "{e}");
    }

    #[test]
    fn records_above_the_cap_are_refused_with_the_entry_count() {
        use tar::EntryType as T;
        let t = tgz(&[
            ("a", T::Regular, 0o644, b"1"),
            ("b", T::Regular, 0o644, b"2"),
        ]);
        let files = scan_tgz(&t, 0, 1 << 20).unwrap();
        let c = checked_for(&t);
        let m = synthesize(
            "p",
            &c,
            ArtifactFormat::TarGz,
            1,
            &[],
            files,
            &Limits::default(),
        )
        .unwrap();
        let r = InstallRecord {
            located: c.located.clone(),
            checksums: String::new(),
            bundle: String::new(),
            proof: c.proof.clone(),
            manifest: m,
        };
        let bytes = r.encode(1 << 20).unwrap();
        let back: InstallRecord = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.manifest, r.manifest);
        let e = r.encode(bytes.len() as u64 - 1).unwrap_err().to_string();
        assert!(e.contains("lists 2 entries"), "{e}");
    }

    #[test]
    fn symlink_targets_must_be_utf8_and_pax_sizes_count() {
        use tar::EntryType as T;
        // A raw, non-UTF-8 link target.
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..4].copy_from_slice(b"link");
        h.as_old_mut().linkname[..2].copy_from_slice(b"\xffa");
        h.set_entry_type(T::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        h.set_cksum();
        b.append(&h, std::io::empty()).unwrap();
        let t = b.into_inner().unwrap().finish().unwrap();
        let e = scan_tgz(&t, 0, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("symlink target not valid UTF-8"), "{e}");

        // A file whose size only a pax record gives: scanned and extracted
        // by the same size.
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        b.append_pax_extensions([("size", &b"5"[..])]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_path("f").unwrap();
        h.set_entry_type(T::Regular);
        h.set_mode(0o644);
        h.set_size(0);
        h.set_cksum();
        b.append(&h, &b"hello"[..]).unwrap();
        let t = b.into_inner().unwrap().finish().unwrap();
        let files = scan_tgz(&t, 0, 1 << 20).unwrap();
        assert!(
            matches!(files.as_slice(), [Entry::File { size: 5, .. }]),
            "{files:?}"
        );
    }
}
