//! The release manifest: what a release is, byte for byte (docs/SPEC.md §6).
//!
//! A manifest travels as a DSSE envelope of type
//! [`charter_keys::dsse::PAYLOAD_MANIFEST`] signed by the `release` role.
//! The only way to a [`VerifiedManifest`] is [`VerifiedManifest::verify`]
//! (or [`VerifiedManifest::verify_with_policy`], where the host's signature
//! policy may ask for a cosign bundle instead of, or as well as, the
//! `release` threshold).

use std::collections::{BTreeMap, BTreeSet};

use charter_keys::dsse::{Envelope, PAYLOAD_MANIFEST};
use charter_keys::root::VerifiedRoot;
use charter_keys::{Clock, KeyId, Role, sigstore};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::path::ArchivePath;
use crate::signatures::{Require, SignaturePolicy};
use crate::{Error, Limits, Result};

/// What a file is for. Config files are carried over like dpkg conffiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// Executable code.
    Program,
    /// Operator-editable configuration.
    Config,
    /// Everything else.
    Data,
}

/// One entry of the release tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Entry {
    /// A directory.
    Dir {
        /// Path inside the release.
        path: ArchivePath,
        /// Permission bits (at most 0o7777).
        mode: u32,
    },
    /// A regular file.
    File {
        /// Path inside the release.
        path: ArchivePath,
        /// Permission bits (at most 0o7777; setuid/setgid only when signed so).
        mode: u32,
        /// Size in bytes.
        size: u64,
        /// SHA-256 of the content.
        sha256: Sha256Digest,
        /// What the file is for.
        kind: FileKind,
    },
    /// A symbolic link that stays inside the tree.
    Symlink {
        /// Path inside the release.
        path: ArchivePath,
        /// The link's target, relative to its directory.
        target: String,
    },
}

impl Entry {
    /// The entry's path.
    pub fn path(&self) -> &ArchivePath {
        match self {
            Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Symlink { path, .. } => {
                path
            }
        }
    }
}

/// Archive formats a release artifact may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArtifactFormat {
    /// tar compressed with zstd (the default: fastest to unpack).
    #[serde(rename = "tar.zst")]
    TarZst,
    /// tar compressed with gzip.
    #[serde(rename = "tar.gz")]
    TarGz,
}

impl ArtifactFormat {
    /// The file-name extension.
    pub fn extension(self) -> &'static str {
        match self {
            ArtifactFormat::TarZst => "tar.zst",
            ArtifactFormat::TarGz => "tar.gz",
        }
    }
}

impl std::str::FromStr for ArtifactFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tar.zst" | "zst" | "zstd" => Ok(ArtifactFormat::TarZst),
            "tar.gz" | "gz" | "gzip" => Ok(ArtifactFormat::TarGz),
            other => Err(Error::InvalidInput {
                what: "artifact format",
                reason: format!("`{other}`; expected tar.zst or tar.gz"),
            }),
        }
    }
}

/// The packed release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// File name next to manifest.json (no `/`).
    pub name: String,
    /// Archive format.
    pub format: ArtifactFormat,
    /// Exact size in bytes: downloads are capped at it.
    pub size: u64,
    /// SHA-256 of the whole file.
    pub sha256: Sha256Digest,
}

/// How the host decides that a newly started release works.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// What to probe.
    #[serde(flatten)]
    pub probe: Probe,
    /// Seconds one attempt may take.
    pub timeout_secs: u32,
    /// Attempts after the first one.
    pub retries: u32,
    /// Seconds between attempts.
    pub interval_secs: u32,
}

impl HealthCheck {
    /// Bounds every number (an hour per attempt, 100 retries, an hour
    /// between attempts) and the probe's shape.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.timeout_secs == 0 || self.timeout_secs > 3600 {
            return Err(format!(
                "health check timeout {}s is not within 1..=3600",
                self.timeout_secs
            ));
        }
        if self.retries > 100 {
            return Err(format!(
                "health check retries {} is more than 100",
                self.retries
            ));
        }
        if self.interval_secs > 3600 {
            return Err(format!(
                "health check interval {}s is more than 3600",
                self.interval_secs
            ));
        }
        match &self.probe {
            Probe::Http { url, expect_status } => {
                if !(100..=599).contains(expect_status) {
                    return Err(format!(
                        "health check status {expect_status} is not an HTTP status"
                    ));
                }
                let rest = url
                    .strip_prefix("http://")
                    .or_else(|| url.strip_prefix("https://"))
                    .ok_or_else(|| {
                        format!(
                            "health check URL `{}` is not http(s)",
                            url.chars().take(200).collect::<String>()
                        )
                    })?;
                if rest.split(['/', '?', '#']).next().is_none_or(str::is_empty)
                    || url.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(format!(
                        "health check URL `{}` has no host or holds white space",
                        url.chars().take(200).collect::<String>()
                    ));
                }
                Ok(())
            }
            Probe::Command { argv } => {
                let Some(first) = argv.first() else {
                    return Err("health check command is empty".into());
                };
                // A bare name would be looked up in PATH: a probe runs a
                // program of the release (a relative path) or one named
                // absolutely, never whatever PATH finds first.
                let inside = !first.starts_with('/')
                    && first.contains('/')
                    && ArchivePath::new(first, 4096).is_ok();
                let absolute = first.starts_with('/') && !first.contains('\0');
                if !(inside || absolute) {
                    return Err(format!(
                        "health check command `{}` must be a path inside the release \
                         (like `bin/check`) or absolute (like `/usr/bin/curl`)",
                        first.chars().take(200).collect::<String>()
                    ));
                }
                Ok(())
            }
        }
    }
}

/// One health probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Probe {
    /// An HTTP GET that must answer `expect_status`.
    Http {
        /// The URL (http or https).
        url: String,
        /// The status that means healthy.
        expect_status: u16,
    },
    /// A command that must exit 0; argv[0] is relative to the release root
    /// or absolute.
    Command {
        /// Program and arguments, no shell.
        argv: Vec<String>,
    },
}

/// Scripts a release may run during its own update, each a path of a
/// regular file listed in the manifest (so its digest is signed). Only these
/// run, with a timeout, a fixed environment and the configured user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scripts {
    /// Runs from the staged release before `current` is swapped (e.g. a
    /// database migration). Failure stops the update; nothing was swapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_swap: Option<ArchivePath>,
    /// Runs after the swap and restart, before the health check. Failure
    /// rolls the update back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_swap: Option<ArchivePath>,
    /// Runs from the failed release while rolling back from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_rollback: Option<ArchivePath>,
}

impl Scripts {
    /// True when no script is named.
    pub fn is_empty(&self) -> bool {
        self.pre_swap.is_none() && self.post_swap.is_none() && self.on_rollback.is_none()
    }

    /// The named scripts with their stage names.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, &ArchivePath)> {
        [
            ("pre_swap", self.pre_swap.as_ref()),
            ("post_swap", self.post_swap.as_ref()),
            ("on_rollback", self.on_rollback.as_ref()),
        ]
        .into_iter()
        .filter_map(|(n, p)| p.map(|p| (n, p)))
    }
}

/// The manifest payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Product name: `[a-z0-9][a-z0-9._-]*`, at most 64 bytes.
    pub product: String,
    /// The release's semantic version.
    pub version: semver::Version,
    /// When the release was made (also the mtime of every archived entry).
    pub released_at: Timestamp,
    /// After this instant hosts refuse the manifest (freeze attacks).
    pub expires: Timestamp,
    /// True for releases that only fix security issues (a license past its
    /// updates-until date may still be entitled to them).
    #[serde(default)]
    pub security_fix: bool,
    /// The packed tree.
    pub artifact: Artifact,
    /// Globs of paths kept from the running release (data, state).
    #[serde(default)]
    pub preserve: Vec<String>,
    /// Globs of config paths (operator edits are kept, like dpkg conffiles).
    #[serde(default)]
    pub config: Vec<String>,
    /// How to tell the new release works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Update scripts shipped in the release (paths of files it lists).
    #[serde(default, skip_serializing_if = "Scripts::is_empty")]
    pub scripts: Scripts,
    /// The release's CycloneDX SBOM, beside the artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<crate::sbom::Sbom>,
    /// Every entry of the tree, sorted by path.
    pub files: Vec<Entry>,
}

/// Checks a product name.
pub fn validate_product(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || (i > 0 && matches!(b, b'.' | b'_' | b'-'))
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput {
            what: "product name",
            reason: format!(
                "`{name}`: use 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit"
            ),
        })
    }
}

/// Compiles globs, naming the first bad one.
pub fn compile_globs(patterns: &[String]) -> Result<globset::GlobSet> {
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns {
        let glob = globset::GlobBuilder::new(p)
            .literal_separator(true)
            .build()
            .map_err(|e| Error::InvalidGlob {
                pattern: p.clone(),
                reason: e.kind().to_string(),
            })?;
        b.add(glob);
    }
    b.build().map_err(|e| Error::InvalidGlob {
        pattern: patterns.join(" "),
        reason: e.to_string(),
    })
}

impl Manifest {
    /// Checks everything a signature cannot: shape, uniqueness, safety of
    /// every path and link (docs/SPEC.md §6.3, step 4).
    pub fn validate(&self, limits: &Limits) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidManifest(m));
        validate_product(&self.product)?;
        let a = &self.artifact;
        if a.name.is_empty()
            || a.name.contains('/')
            || a.name.starts_with('.')
            || !a.name.ends_with(a.format.extension())
        {
            return bad(format!(
                "artifact name `{}` must be a plain file name ending in .{}",
                a.name,
                a.format.extension()
            ));
        }
        if self.files.len() > limits.max_files {
            return bad(format!(
                "{} entries, more than the limit of {}",
                self.files.len(),
                limits.max_files
            ));
        }
        if self.expires <= self.released_at {
            return bad("expires is not after released_at".into());
        }
        if let Some(s) = &self.sbom {
            s.validate().map_err(Error::InvalidManifest)?;
            if s.name == a.name {
                return bad("the sbom and the artifact have the same name".into());
            }
        }
        compile_globs(&self.preserve)?;
        compile_globs(&self.config)?;
        if let Some(hc) = &self.health_check {
            // Also refuses an empty command and a URL that is not http(s).
            hc.validate().map_err(Error::InvalidManifest)?;
        }
        let expected_name = format!("{}-{}.{}", self.product, self.version, a.format.extension());
        if a.name != expected_name {
            return bad(format!(
                "artifact name `{}` should be `{expected_name}`",
                a.name
            ));
        }
        let links: BTreeMap<&str, &str> = self
            .files
            .iter()
            .filter_map(|e| match e {
                Entry::Symlink { path, target } => Some((path.as_str(), target.as_str())),
                _ => None,
            })
            .collect();
        let config_globs = compile_globs(&self.config)?;
        let mut dirs = BTreeSet::new();
        let mut prev: Option<&ArchivePath> = None;
        for e in &self.files {
            let path = e.path();
            if path.as_str().len() > limits.max_path_bytes {
                return bad(format!(
                    "path `{path}` longer than {} bytes",
                    limits.max_path_bytes
                ));
            }
            if prev.is_some_and(|p| p >= path) {
                return bad(format!("entries not sorted or `{path}` listed twice"));
            }
            prev = Some(path);
            if let Some(parent) = path.parent()
                && !dirs.contains(parent)
            {
                return bad(format!(
                    "`{path}` has no directory entry for `{parent}` before it"
                ));
            }
            match e {
                Entry::Dir { mode, .. } => {
                    check_mode(path, *mode)?;
                    dirs.insert(path.as_str());
                }
                Entry::File { mode, kind, .. } => {
                    check_mode(path, *mode)?;
                    if mode & 0o1000 != 0 {
                        return bad(format!(
                            "`{path}` has the sticky bit (mode {mode:o}), which means nothing on a file"
                        ));
                    }
                    if (*kind == FileKind::Config) != config_globs.is_match(path.as_str()) {
                        return bad(format!(
                            "`{path}` has kind {kind:?}, which disagrees with the config globs"
                        ));
                    }
                }
                Entry::Symlink { target, .. } => {
                    if target.len() > limits.max_path_bytes
                        || crate::path::resolve_in_tree(path, target, &links).is_none()
                    {
                        return Err(Error::SymlinkEscape {
                            path: path.as_str().into(),
                            target: target.chars().take(300).collect(),
                        });
                    }
                }
            }
        }
        // Sorted order puts every parent before its children (a prefix sorts
        // first), so one pass sees each directory before its contents.
        for (stage, script) in self.scripts.named() {
            let listed = self
                .files
                .binary_search_by(|e| e.path().cmp(script))
                .ok()
                .map(|i| &self.files[i]);
            if !matches!(listed, Some(Entry::File { .. })) {
                return bad(format!(
                    "{stage} script `{script}` is not a regular file listed in the manifest"
                ));
            }
        }
        Ok(())
    }

    /// The payload bytes: pretty-printed JSON with a final newline.
    pub fn to_payload(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses a payload (after its signature was checked, or in tools that
    /// show an unsigned manifest).
    pub fn from_payload(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::InvalidManifest(e.to_string()))
    }

    /// The entries as a map from path.
    pub fn entries_by_path(&self) -> BTreeMap<&str, &Entry> {
        self.files.iter().map(|e| (e.path().as_str(), e)).collect()
    }
}

fn check_mode(path: &ArchivePath, mode: u32) -> Result<()> {
    if mode > 0o7777 {
        return Err(Error::InvalidManifest(format!(
            "`{path}` has mode {mode:o}, more than permission bits"
        )));
    }
    Ok(())
}

/// What a verified cosign bundle established about a manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CosignProof {
    /// The certificate identity (keyless).
    pub identity: Option<String>,
    /// Its OIDC issuer (keyless).
    pub issuer: Option<String>,
    /// When Rekor integrated the entry.
    pub integrated_time: Option<jiff::Timestamp>,
}

/// The payload of a manifest envelope accepted on its cosign bundle
/// alone: its type must still be the manifest type.
fn manifest_payload(env: &Envelope) -> Result<&[u8]> {
    if env.payload_type() != PAYLOAD_MANIFEST {
        return Err(Error::InvalidManifest(format!(
            "payloadType `{}`, expected `{PAYLOAD_MANIFEST}`",
            env.payload_type()
        )));
    }
    Ok(env.unverified_payload())
}

/// A manifest whose envelope met the `release` role's threshold, whose
/// payload is valid and which has not expired.
#[derive(Debug, Clone)]
pub struct VerifiedManifest {
    manifest: Manifest,
    signers: Vec<KeyId>,
    cosign: Option<CosignProof>,
    envelope_sha256: Sha256Digest,
}

impl VerifiedManifest {
    /// Verifies manifest envelope bytes (docs/SPEC.md §6.3):
    ///
    /// 1. the envelope parses within limits;
    /// 2. its payloadType is the manifest type and a threshold of distinct
    ///    `release` keys of `root` signed it (strictly);
    /// 3. only then the payload is parsed;
    /// 4. the manifest is valid ([`Manifest::validate`]);
    /// 5. it has not expired by `clock`.
    pub fn verify(
        bytes: &[u8],
        root: &VerifiedRoot,
        clock: &dyn Clock,
        limits: &Limits,
    ) -> Result<Self> {
        Self::verify_with_policy(
            bytes,
            root,
            clock,
            limits,
            &SignaturePolicy::ed25519(),
            None,
        )
    }

    /// As [`VerifiedManifest::verify`], with the host's signature policy
    /// deciding step 2 (docs/SPEC.md §13.4): the `release` threshold, the
    /// cosign `bundle` over `bytes` (the signed manifest file), both, or
    /// either. The payload is parsed only once the policy holds.
    pub fn verify_with_policy(
        bytes: &[u8],
        root: &VerifiedRoot,
        clock: &dyn Clock,
        limits: &Limits,
        policy: &SignaturePolicy,
        bundle: Option<&[u8]>,
    ) -> Result<Self> {
        use sha2::Digest as _;
        let env = Envelope::from_slice(bytes, &limits.envelope)?;
        let cosign = || -> Result<CosignProof> {
            let c = policy.cosign.as_ref().ok_or_else(|| {
                Error::SignaturePolicy("no cosign requirement is configured".into())
            })?;
            let b = bundle.ok_or_else(|| {
                Error::SignaturePolicy(format!(
                    "a {} is required and the release has none",
                    c.describe()
                ))
            })?;
            let v = sigstore::verify(b, sigstore::Subject::Bytes(bytes), &c.policy, &c.root)
                .map_err(|e| Error::SignaturePolicy(format!("cosign bundle: {e}")))?;
            Ok(CosignProof {
                identity: v.identity().map(str::to_owned),
                issuer: v.issuer().map(str::to_owned),
                integrated_time: v.integrated_time(),
            })
        };
        let (payload, signers, proof) = match policy.require {
            Require::Ed25519 => {
                let v = root.verify_envelope(&env, PAYLOAD_MANIFEST, Role::Release)?;
                (v.payload(), v.into_signers(), None)
            }
            Require::All => {
                let v = root.verify_envelope(&env, PAYLOAD_MANIFEST, Role::Release)?;
                let p = cosign()?;
                (v.payload(), v.into_signers(), Some(p))
            }
            Require::Cosign => {
                let p = cosign()?;
                (manifest_payload(&env)?, Vec::new(), Some(p))
            }
            Require::Any => match root.verify_envelope(&env, PAYLOAD_MANIFEST, Role::Release) {
                Ok(v) => (v.payload(), v.into_signers(), None),
                Err(ed) => match cosign() {
                    Ok(p) => (manifest_payload(&env)?, Vec::new(), Some(p)),
                    Err(cos) => {
                        return Err(Error::SignaturePolicy(format!(
                            "neither signature holds: release keys: {ed}; {cos}"
                        )));
                    }
                },
            },
        };
        let manifest = Manifest::from_payload(payload)?;
        manifest.validate(limits)?;
        let now = clock.now();
        if now >= manifest.expires {
            return Err(Error::Expired {
                what: format!("manifest for {} {}", manifest.product, manifest.version),
                expires: manifest.expires,
                now,
            });
        }
        Ok(VerifiedManifest {
            signers,
            cosign: proof,
            envelope_sha256: Sha256Digest(sha2::Sha256::digest(bytes).into()),
            manifest,
        })
    }

    /// What the cosign bundle proved, when the policy checked one.
    pub fn cosign(&self) -> Option<&CosignProof> {
        self.cosign.as_ref()
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The keys whose signatures counted.
    pub fn signers(&self) -> &[KeyId] {
        &self.signers
    }

    /// SHA-256 of the envelope bytes (what a channel pointer pins).
    pub fn envelope_sha256(&self) -> Sha256Digest {
        self.envelope_sha256
    }
}
