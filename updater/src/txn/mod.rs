//! The update transaction (docs/SPEC.md §11): check, fetch, verify, stage,
//! swap, restart, health-check, commit or roll back, each step journaled
//! before it is taken, and recovery of an interrupted transaction on start.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use charter_keys::Clock;
use charter_keys::root::VerifiedRoot;
use jiff::Timestamp;
use semver::Version;
use serde::Serialize;

use crate::config::Config;
use crate::failpoint;
use crate::host::run::{self, RunAs};
use crate::host::state::{
    BadCause, ChannelCache, HistoryEntry, HostState, Journal, Op, StateDir, Step,
};
use crate::net::fetch::{Fetched, Fetcher};
use crate::{Error, Result};
use charter_release::Error as ReleaseError;
use charter_release::Limits;
use charter_release::archive::{Layout, SetuidPolicy};
use charter_release::channel::{ChannelPointer, VerifiedChannel};
use charter_release::manifest::{
    CosignProof, Entry, FileKind, Manifest, VerifiedManifest, compile_globs,
};
use charter_release::signatures::{BUNDLE_SUFFIX, SignaturePolicy};

/// What to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The version the channel pointer names.
    Channel,
    /// A specific version from `releases/<product>/<version>/`.
    Version(Version),
}

/// What a candidate is and what vouched for it.
#[derive(Debug, Clone)]
pub enum Release {
    /// A charter manifest, verified under the signature policy.
    Signed {
        /// The verified manifest.
        manifest: Box<VerifiedManifest>,
        /// Its envelope bytes.
        envelope: Vec<u8>,
    },
    /// A plain artifact whose checksum file the cosign bundle verified
    /// (docs/SPEC.md §13.5); its file list is read from the tarball once
    /// it is downloaded.
    Plain(Box<charter_release::plain::VerifiedChecksums>),
}

/// A verified candidate release.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// What it is.
    pub release: Release,
    /// The channel pointer that named it, when it came through one.
    pub pointer: Option<ChannelPointer>,
}

impl Candidate {
    /// Its version.
    pub fn version(&self) -> &Version {
        match &self.release {
            Release::Signed { manifest, .. } => &manifest.manifest().version,
            Release::Plain(c) => c.version(),
        }
    }

    /// The release keys whose signatures counted.
    pub fn release_keys(&self) -> Vec<String> {
        match &self.release {
            Release::Signed { manifest, .. } => {
                manifest.signers().iter().map(|k| k.to_string()).collect()
            }
            Release::Plain(_) => Vec::new(),
        }
    }

    /// What the cosign bundle proved, when one was checked.
    pub fn cosign(&self) -> Option<&CosignProof> {
        match &self.release {
            Release::Signed { manifest, .. } => manifest.cosign(),
            Release::Plain(c) => Some(c.proof()),
        }
    }
}

/// What the host keeps of an installed release's verification: the
/// manifest envelope, or a plain release's encoded record.
enum Stored {
    Envelope(Vec<u8>),
    Plain(Vec<u8>),
}

/// The answer of `check`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Installed version.
    pub current: Option<Version>,
    /// The version the target names.
    pub candidate: Version,
    /// Whether `apply` would install it.
    pub update_available: bool,
    /// Why (not).
    pub reason: String,
    /// Whether the channel pointer was unchanged since the last check (304).
    pub not_modified: bool,
    /// Trust root version in force (none for plain artifacts).
    pub root_version: Option<u64>,
    /// The release keys whose signatures counted (empty when the
    /// signature policy accepted the cosign bundle alone).
    pub release_keys: Vec<String>,
    /// What the cosign bundle proved, when the policy checked one.
    pub cosign: Option<CosignProof>,
}

/// One kept backup for `backups`.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    /// The backup.
    #[serde(flatten)]
    pub backup: crate::host::backup::Backup,
    /// Per file: whether its current bytes still match the backup.
    pub unchanged: Vec<bool>,
}

/// How an `apply` ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum ApplyOutcome {
    /// The target is already installed.
    UpToDate {
        /// The version.
        version: Version,
    },
    /// Installed and healthy.
    Installed {
        /// Before.
        from: Option<Version>,
        /// After.
        to: Version,
    },
    /// `auto` may not install the candidate by itself now.
    Deferred {
        /// What the channel offers.
        candidate: Version,
        /// Why not now.
        reason: String,
        /// When it could be, if that is known.
        until: Option<Timestamp>,
    },
    /// The new release failed and the old one runs again.
    RolledBack {
        /// The failed release (now marked bad).
        failed: Version,
        /// The release running again.
        to: Option<Version>,
        /// Why.
        reason: String,
    },
}

/// Options for `apply`.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Install a version even though it was marked bad.
    pub retry_bad: bool,
}

/// Status for `status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Product.
    pub product: String,
    /// Channel.
    pub channel: String,
    /// The state file.
    #[serde(flatten)]
    pub state: HostState,
    /// An unfinished transaction (only when recovery itself failed).
    pub pending: Option<Journal>,
    /// Releases on disk.
    pub releases_on_disk: Vec<Version>,
    /// What recovery did at this start, if anything.
    pub recovered: Option<HistoryEntry>,
    /// Where releases come from: charter manifests through the channel
    /// pointer, or plain artifacts (`[plain]`).
    pub releases_from: String,
    /// What `auto` (the timer) installs by itself, and when.
    pub automatic: String,
    /// The signatures a release needs (`[signatures]`).
    pub signature_policy: String,
    /// Secret config fields written in plain text (each one a warning).
    pub plain_secrets: Vec<String>,
}

/// The updater for one host configuration, holding the state lock.
pub struct Updater {
    cfg: Config,
    state: StateDir,
    fetcher: Fetcher,
    clock: std::sync::Arc<dyn Clock>,
    limits: Limits,
    notes: Box<dyn Fn(&str)>,
    signatures: SignaturePolicy,
    notifier: Option<crate::net::notify::Notifier>,
}

impl std::fmt::Debug for Updater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Updater({})", self.cfg.product)
    }
}

fn now_id(clock: &dyn Clock) -> String {
    clock.now().as_millisecond().to_string()
}

impl Updater {
    /// Takes the state lock and prepares the repository client. `notes`
    /// receives progress lines (the binary prints them on stderr).
    pub fn open(cfg: Config, clock: Box<dyn Clock>, notes: Box<dyn Fn(&str)>) -> Result<Self> {
        let state = StateDir::lock(&cfg.paths.state_dir)?;
        let fetcher = Fetcher::new(&cfg.repository, &*notes)?;
        let signatures = cfg.signatures.load()?;
        for field in cfg.plain_secrets() {
            notes(&format!(
                "WARNING: {field} is in plain text in the config; encrypt it with `charter secrets encrypt`"
            ));
        }
        // A webhook that cannot be set up (its CA file is gone, say) must
        // not stop `rollback` or `status`: said, and no events are sent.
        let notifier = match cfg.notify.as_ref().map(crate::net::notify::Notifier::new) {
            Some(Ok(n)) => Some(n),
            Some(Err(e)) => {
                notes(&format!(
                    "WARNING: [notify] cannot be used ({e}); no update events are sent"
                ));
                None
            }
            None => None,
        };
        Ok(Updater {
            cfg,
            state,
            fetcher,
            clock: clock.into(),
            limits: Limits::default(),
            notes,
            signatures,
            notifier,
        })
    }

    /// Sets the first retry backoff (tests).
    pub fn with_backoff(mut self, d: Duration) -> Self {
        self.fetcher = Fetcher::new(&self.cfg.repository, &|_| {})
            .map(|f| f.with_backoff(d))
            .unwrap_or(self.fetcher);
        self
    }

    fn releases_dir(&self) -> PathBuf {
        self.cfg.paths.install_root.join("releases")
    }

    fn release_dir(&self, v: &Version) -> PathBuf {
        self.releases_dir().join(v.to_string())
    }

    fn history(
        &self,
        op: &str,
        from: Option<Version>,
        to: Option<Version>,
        result: &str,
        reason: Option<String>,
    ) -> Result<HistoryEntry> {
        let h = HistoryEntry {
            time: self.clock.now(),
            op: op.into(),
            from,
            to,
            result: result.into(),
            reason,
        };
        self.state.append_history(&h)?;
        Ok(h)
    }

    // ---- trust -------------------------------------------------------

    /// The trust root in force: the newer of the shipped root and the one
    /// kept in the state directory, then every rotation the repository
    /// offers (`<N+1>.root.json`, ...), which is kept for next time.
    pub fn trusted_root(&self) -> Result<VerifiedRoot> {
        let env_limits = &self.limits.envelope;
        let read = |p: &Path| {
            charter_keys::fsutil::read_capped(p, env_limits.max_envelope_bytes, "a trust root")
        };
        let shipped = VerifiedRoot::from_trusted(&read(self.trust_root_path()?)?, env_limits)?;
        let kept_path = self.state.root_path();
        let start = if kept_path.exists() {
            let kept = VerifiedRoot::from_trusted(&read(&kept_path)?, env_limits)?;
            if kept.version() >= shipped.version() {
                kept
            } else {
                shipped
            }
        } else {
            shipped
        };
        let before = start.version();
        let (root, rotations) = start.update_chain(
            |v| {
                self.fetcher
                    .get_optional(&format!("{v}.root.json"), env_limits.max_envelope_bytes)
                    .map_err(|e| charter_keys::Error::Malformed {
                        what: "root chain",
                        reason: e.to_string(),
                    })
            },
            env_limits,
            self.clock.as_ref(),
        )?;
        if rotations > 0 || !kept_path.exists() {
            charter_keys::fsutil::write_atomic(&kept_path, root.envelope_bytes(), 0o644)?;
        }
        if rotations > 0 {
            (self.notes)(&format!(
                "trust root rotated from version {before} to {}",
                root.version()
            ));
        }
        Ok(root)
    }

    fn trust_root_path(&self) -> Result<&Path> {
        self.cfg.paths.trust_root.as_deref().ok_or(
            ReleaseError::InvalidInput {
                what: "paths.trust_root",
                reason: "not set: this host installs plain artifacts, which no charter root signs"
                    .into(),
            }
            .into(),
        )
    }

    /// GETs a small document that must exist.
    fn fetch_body(&self, rel: &str, max: u64) -> Result<Vec<u8>> {
        match self.fetcher.get(rel, max, None)? {
            Fetched::Body(b, _) => Ok(b),
            Fetched::NotModified => Err(Error::NotFound {
                url: self.fetcher.url_of(rel),
            }),
        }
    }

    // ---- check -------------------------------------------------------

    /// Fetches and verifies the target's metadata (docs/SPEC.md §11.2,
    /// steps 1 to 6). Nothing on disk changes except the channel cache and
    /// the kept trust root.
    pub fn candidate(&self, target: &Target) -> Result<(Candidate, bool, Option<VerifiedRoot>)> {
        if let Some(p) = &self.cfg.plain {
            return Ok((self.candidate_plain(p, target)?, false, None));
        }
        let root = self.trusted_root()?;
        let product = &self.cfg.product;
        let (manifest_rel, pin, pointer, not_modified) = match target {
            Target::Channel => {
                let (vc, not_modified) = self.channel(&root)?;
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
        let max = match pin {
            Some((_, size)) => size,
            None => self.limits.envelope.max_envelope_bytes,
        };
        let envelope = self.fetch_body(&manifest_rel, max)?;
        // 3. The pointer pins the manifest bytes (mix-and-match).
        if let Some((sha, size)) = pin {
            use sha2::Digest as _;
            let got = charter_release::digest::Sha256Digest(sha2::Sha256::digest(&envelope).into());
            if envelope.len() as u64 != size {
                return Err(ReleaseError::SizeMismatch {
                    what: format!("manifest {manifest_rel} (channel pointer)"),
                    expected: size,
                    found: envelope.len() as u64,
                }
                .into());
            }
            if got != sha {
                return Err(ReleaseError::DigestMismatch {
                    what: format!("manifest {manifest_rel} (channel pointer)"),
                    expected: sha.to_string(),
                    found: got.to_string(),
                }
                .into());
            }
        }
        // 4. The manifest's own signatures (as the signature policy
        //    says: release keys, the cosign bundle beside it, or both),
        //    validity and expiry.
        let bundle = if self.signatures.wants_bundle() {
            self.cosign_bundle(&manifest_rel)?
        } else {
            None
        };
        let manifest = VerifiedManifest::verify_with_policy(
            &envelope,
            &root,
            self.clock.as_ref(),
            &self.limits,
            &self.signatures,
            bundle.as_deref(),
        )?;
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
        Ok((
            Candidate {
                release: Release::Signed {
                    manifest: Box::new(manifest),
                    envelope,
                },
                pointer,
            },
            not_modified,
            Some(root),
        ))
    }

    /// A plain release (docs/SPEC.md §13.5): the version (`--version`, or
    /// the unsigned `latest` file), its checksum file and the cosign bundle
    /// over it, verified; the tarball is not downloaded yet.
    fn candidate_plain(
        &self,
        p: &crate::config::plain::PlainConfig,
        target: &Target,
    ) -> Result<Candidate> {
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
                    &self.fetch_body(rel, charter_release::plain::MAX_LATEST_BYTES)?,
                )
                .map_err(|e| ReleaseError::PlainArtifact {
                    what: self.fetcher.url_of(rel),
                    reason: e.to_string(),
                })?
            }
        };
        p.admit_version(&version)?;
        let located = p.locate(&version);
        let cosign = self.signatures.cosign.as_ref().ok_or_else(|| {
            ReleaseError::SignaturePolicy("plain artifacts need a [signatures.cosign] table".into())
        })?;
        let checksums = self.fetch_body(
            &located.checksums,
            charter_release::plain::MAX_CHECKSUMS_BYTES,
        )?;
        let bundle = match self.fetcher.get(
            &located.bundle,
            charter_keys::sigstore::MAX_BUNDLE_BYTES,
            None,
        ) {
            Ok(Fetched::Body(b, _)) => b,
            Ok(Fetched::NotModified) | Err(Error::NotFound { .. }) => {
                return Err(ReleaseError::SignaturePolicy(format!(
                    "a {} is required and {} has none at {}",
                    cosign.describe(),
                    version,
                    self.fetcher.url_of(&located.bundle)
                ))
                .into());
            }
            Err(e) => return Err(e),
        };
        let checked = charter_release::plain::VerifiedChecksums::verify(
            version, located, &checksums, &bundle, cosign,
        )?;
        p.unambiguous(checked.version(), &checksums)?;
        Ok(Candidate {
            release: Release::Plain(Box::new(checked)),
            pointer: None,
        })
    }

    /// Where a plain artifact is downloaded before it is scanned and
    /// staged: beside the staging directory.
    fn download_path(&self, v: &Version) -> PathBuf {
        self.cfg
            .paths
            .install_root
            .join(".staging")
            .join(format!("{v}.download"))
    }

    /// `<install_root>/.staging`, where releases are staged and plain
    /// artifacts downloaded ([`private_dir`]).
    fn staging_root(&self) -> Result<PathBuf> {
        let dir = self.cfg.paths.install_root.join(".staging");
        private_dir(&dir)?;
        Ok(dir)
    }

    /// The manifest to install, what to keep of its verification and, for
    /// a plain artifact, the downloaded tarball. A plain artifact is
    /// downloaded (capped) into an unlinked file that only this process
    /// holds, checked against the signed checksum, and its tree read into
    /// a manifest here.
    fn materialize(&self, c: &Candidate) -> Result<(Manifest, Stored, Option<std::fs::File>)> {
        use std::io::{Seek, SeekFrom};
        use std::os::unix::fs::OpenOptionsExt;
        let checked = match &c.release {
            Release::Signed { manifest, envelope } => {
                return Ok((
                    manifest.manifest().clone(),
                    Stored::Envelope(envelope.clone()),
                    None,
                ));
            }
            Release::Plain(checked) => checked,
        };
        let p = self
            .cfg
            .plain
            .as_ref()
            .ok_or_else(|| ReleaseError::PlainArtifact {
                what: "[plain]".into(),
                reason: "is not configured".into(),
            })?;
        let staging = self.staging_root()?;
        let dl = self.download_path(checked.version());
        let _ = std::fs::remove_file(&dl);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&dl)
            .map_err(|e| Error::io("create", &dl, e))?;
        // Unlinked at once: nothing is left behind by a crash, and nothing
        // can reach the bytes by name between the digest check and the
        // extraction.
        std::fs::remove_file(&dl).map_err(|e| Error::io("remove", &dl, e))?;
        (self.notes)(&format!(
            "downloading {} (at most {} bytes)",
            checked.located().file_name,
            p.max_size
        ));
        let (digest, size) =
            self.fetcher
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
            &self.limits,
        )?;
        let m = charter_release::plain::synthesize(
            &self.cfg.product,
            checked,
            format,
            size,
            &p.config,
            files,
            &self.limits,
        )?;
        let record = charter_release::plain::InstallRecord {
            located: checked.located().clone(),
            checksums: checked.checksums().to_owned(),
            bundle: checked.bundle().to_owned(),
            proof: checked.proof().clone(),
            manifest: m.clone(),
        };
        // Read back (rollback, verify, carry-over) with the cap a signed
        // manifest has: a tree too large for it is refused now.
        let bytes = record.encode(self.limits.envelope.max_envelope_bytes)?;
        rewind(&mut file)?;
        Ok((m, Stored::Plain(bytes), Some(file)))
    }

    /// The channel pointer, conditionally fetched, always re-verified.
    fn channel(&self, root: &VerifiedRoot) -> Result<(VerifiedChannel, bool)> {
        let rel = ChannelPointer::repo_path(&self.cfg.product, &self.cfg.channel);
        let cache = self.state.channel_cache()?;
        let max = 1 << 20;
        let (bytes, validator, not_modified) =
            match self
                .fetcher
                .get(&rel, max, cache.as_ref().map(|c| &c.validator))?
            {
                Fetched::NotModified => {
                    let c = cache.ok_or_else(|| Error::NotFound {
                        url: self.fetcher.url_of(&rel),
                    })?;
                    (c.envelope.into_bytes(), c.validator, true)
                }
                Fetched::Body(b, v) => (b, v, false),
            };
        // 1-2. Signatures (channel role), expiry, product and channel.
        let vc = VerifiedChannel::verify(
            &bytes,
            root,
            self.clock.as_ref(),
            &self.limits,
            &self.cfg.product,
            &self.cfg.channel,
        )?;
        // A pointer older than one already accepted is a replay.
        let published = vc.pointer().published_at;
        let mut st = self.state.state()?;
        if let Some(seen) = st.pointer_published {
            if published < seen {
                return Err(Error::ReplayedPointer { published, seen });
            }
        }
        if st.pointer_published != Some(published) {
            st.pointer_published = Some(published);
            self.state.save_state(&st)?;
        }
        if !not_modified {
            self.state.save_channel_cache(&ChannelCache {
                envelope: String::from_utf8_lossy(&bytes).into_owned(),
                validator,
            })?;
        }
        Ok((vc, not_modified))
    }

    /// Decides whether a candidate may be installed: not already current,
    /// above the ratchet (unless the signed pointer allows a downgrade),
    /// not marked bad (unless asked).
    fn admissible(
        &self,
        c: &Candidate,
        st: &HostState,
        opts: &ApplyOptions,
    ) -> Result<Option<String>> {
        let v = c.version();
        if st.current.as_ref() == Some(v) {
            return Ok(Some(format!("{v} is already installed")));
        }
        let downgrade_ok = c.pointer.as_ref().is_some_and(|p| p.allow_downgrade);
        if let Some(r) = &st.ratchet
            && v < r
            && !downgrade_ok
        {
            return Err(Error::Rollback {
                candidate: v.clone(),
                ratchet: r.clone(),
            });
        }
        if st.bad.contains(v) && !opts.retry_bad {
            return Err(Error::BadVersion {
                version: v.clone(),
                cause: st.bad_causes.get(v).copied(),
            });
        }
        match &c.release {
            Release::Signed { manifest, .. } => {
                let m = manifest.manifest();
                self.entitlement(&m.version, m.released_at, m.security_fix)?;
            }
            // The transparency log's time is when it was signed; without
            // one, now (the strictest reading of updates-until).
            Release::Plain(p) => self.entitlement(
                p.version(),
                p.released_at().unwrap_or_else(|| self.clock.now()),
                false,
            )?,
        }
        Ok(None)
    }

    /// The license check (docs/SPEC.md §10.6), from the same license and
    /// state files the agent uses, whoever started the update.
    fn entitlement(
        &self,
        version: &Version,
        released_at: Timestamp,
        security_fix: bool,
    ) -> Result<()> {
        let Some(lc) = &self.cfg.license else {
            return Ok(());
        };
        let not = |reason: String| Error::NotEntitled {
            version: version.clone(),
            reason,
        };
        let acfg = charter_agent::config::Config::load(&lc.agent_config)
            .map_err(|e| not(e.to_string()))?;
        // The updater's clock, so the license is judged at the same "now"
        // as the release it would admit. Root reads the DMI UUID itself.
        let dmi = charter_agent::fingerprint::DmiRead::Direct;
        charter_agent::entitlement::read(&acfg, &*self.clock, dmi)
            .map_err(|e| not(e.to_string()))?
            .admits(released_at, security_fix)
            .map_err(not)
    }

    /// The cosign bundle beside a manifest (`<manifest>.sigstore.json`),
    /// capped; `None` when the repository has none.
    fn cosign_bundle(&self, manifest_rel: &str) -> Result<Option<Vec<u8>>> {
        let rel = format!("{manifest_rel}{BUNDLE_SUFFIX}");
        match self
            .fetcher
            .get(&rel, charter_keys::sigstore::MAX_BUNDLE_BYTES, None)
        {
            Ok(Fetched::Body(b, _)) => Ok(Some(b)),
            Ok(Fetched::NotModified) | Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The files backed up when leaving `from`: its config files and the
    /// license (when `[license]` names the agent's config).
    fn backup_sources(&self, from: &Version) -> Vec<crate::host::backup::Source> {
        let mut out = Vec::new();
        if let Some(m) = self.stored_manifest(from) {
            let dir = self.release_dir(from);
            for e in &m.files {
                if let Entry::File {
                    path,
                    kind: FileKind::Config,
                    ..
                } = e
                {
                    out.push(crate::host::backup::Source {
                        kind: "config",
                        path: dir.join(path.as_str()),
                    });
                }
            }
        }
        if let Some(lc) = &self.cfg.license {
            match charter_agent::config::Config::load(&lc.agent_config) {
                Ok(acfg) => out.push(crate::host::backup::Source {
                    kind: "license",
                    path: acfg.paths.license,
                }),
                Err(e) => (self.notes)(&format!("license not backed up: {e}")),
            }
        }
        out
    }

    fn take_backup(&self, from: &Version, to: &Version, txn: &str) -> Result<()> {
        let sources = self.backup_sources(from);
        crate::host::backup::take(self.state.path(), from, to, txn, &sources, self.clock.now())?;
        Ok(())
    }

    /// Restores the backup taken when `release` was left for `to`, if
    /// that is the one kept. Failures are reported, not fatal: the
    /// rollback itself must go on.
    fn restore_backup(&self, release: Option<&Version>, to: &Version, license: bool) {
        let Some(release) = release else {
            return;
        };
        let Some(b) = crate::host::backup::load(self.state.path(), release) else {
            return;
        };
        if &b.to != to {
            return;
        }
        match crate::host::backup::restore(self.state.path(), &b, license) {
            Ok(r) if r.is_empty() => {}
            Ok(r) => (self.notes)(&format!(
                "restored from the backup: {}",
                r.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Err(e) => (self.notes)(&format!("restoring the backup of {release} failed: {e}")),
        }
    }

    /// `sbom`: the kept SBOM of `v` (default: the installed release).
    pub fn sbom(&self, v: Option<&Version>) -> Result<Vec<u8>> {
        let st = self.state.state()?;
        let v = match v.or(st.current.as_ref()) {
            Some(v) => v.clone(),
            None => {
                return Err(ReleaseError::InvalidInput {
                    what: "sbom",
                    reason: "nothing is installed".into(),
                }
                .into());
            }
        };
        let p = self.state.sbom_path(&v);
        if !p.exists() {
            return Err(ReleaseError::InvalidInput {
                what: "sbom",
                reason: format!(
                    "release {v} has no SBOM here (its manifest names none, or it is not installed)"
                ),
            }
            .into());
        }
        let bytes = charter_keys::fsutil::read_capped(
            &p,
            charter_release::sbom::MAX_SBOM_BYTES,
            "an SBOM",
        )?;
        // It was verified when installed; check it still is what the
        // signed manifest pins.
        if let Some(s) = self.stored_manifest(&v).and_then(|m| m.sbom) {
            s.matches(&bytes)?;
        }
        Ok(bytes)
    }

    /// `backups`: the kept backups, each file with whether it still
    /// matches.
    pub fn backups(&self) -> Vec<BackupReport> {
        crate::host::backup::list(self.state.path())
            .into_iter()
            .map(|b| BackupReport {
                unchanged: b
                    .files
                    .iter()
                    .map(|f| !crate::host::backup::differs(f))
                    .collect(),
                backup: b,
            })
            .collect()
    }

    /// `check`: what `apply` would do, without doing it.
    pub fn check(&self, target: &Target) -> Result<CheckReport> {
        self.recover()?;
        let (c, not_modified, root) = self.candidate(target)?;
        let mut st = self.state.state()?;
        st.last_check = Some(self.clock.now());
        self.state.save_state(&st)?;
        let candidate = c.version().clone();
        let (update_available, reason) = match self.admissible(&c, &st, &ApplyOptions::default()) {
            Ok(None) => (true, format!("{candidate} can be installed")),
            Ok(Some(why)) => (false, why),
            Err(e) => (false, e.to_string()),
        };
        Ok(CheckReport {
            current: st.current,
            candidate,
            update_available,
            reason,
            not_modified,
            root_version: root.map(|r| r.version()),
            release_keys: c.release_keys(),
            cosign: c.cosign().cloned(),
        })
    }

    // ---- apply -------------------------------------------------------

    /// The install root and the state directory are ours alone
    /// ([`trusted_dir`]).
    pub fn check_paths(&self) -> Result<()> {
        trusted_dir(&self.cfg.paths.install_root, "paths.install_root")?;
        trusted_dir(&self.cfg.paths.state_dir, "paths.state_dir")
    }

    /// Recovery, a clean staging area, the verified candidate, and the
    /// host state with the check time recorded.
    fn prepare(&self, target: &Target) -> Result<(Candidate, HostState)> {
        self.check_paths()?;
        self.recover()?;
        // No transaction is open: whatever is under .staging is left over
        // from one that was interrupted before its journal was written.
        let _ = remove_tree(&self.cfg.paths.install_root.join(".staging"));
        let (c, _, _) = self.candidate(target)?;
        let mut st = self.state.state()?;
        st.last_check = Some(self.clock.now());
        self.state.save_state(&st)?;
        Ok((c, st))
    }

    /// `apply`: the whole transaction.
    pub fn apply(&self, target: &Target, opts: &ApplyOptions) -> Result<ApplyOutcome> {
        let (c, st) = self
            .prepare(target)
            .inspect_err(|e| self.announce_failure(None, e))?;
        match self.admissible(&c, &st, opts) {
            Ok(Some(_)) => {
                return Ok(ApplyOutcome::UpToDate {
                    version: c.version().clone(),
                });
            }
            Ok(None) => {}
            Err(e) => {
                self.announce_failure(Some(c.version().clone()), &e);
                return Err(e);
            }
        }
        self.install(&c, st.current)
    }

    /// Sends an event to the `[notify]` webhook, if any; a delivery
    /// failure is noted, never returned.
    fn announce(
        &self,
        kind: crate::net::notify::EventKind,
        release: Option<Version>,
        running: Option<Version>,
        reason: Option<String>,
    ) {
        let Some(n) = &self.notifier else { return };
        if !n.wants(kind) {
            return;
        }
        let ev = crate::net::notify::Event::new(
            kind,
            &self.cfg.product,
            release,
            running,
            reason,
            self.clock.now(),
        );
        if let Err(e) = n.send(&ev) {
            (self.notes)(&format!("the {} event was not delivered: {e}", kind.name()));
        }
    }

    /// A `failed` event for an update that stopped before installing.
    fn announce_failure(&self, release: Option<Version>, e: &Error) {
        let running = self.state.state().ok().and_then(|s| s.current);
        self.announce(
            crate::net::notify::EventKind::Failed,
            release,
            running,
            Some(e.to_string()),
        );
    }

    /// The event an outcome makes.
    fn announce_outcome(&self, o: &ApplyOutcome) {
        use crate::net::notify::EventKind;
        match o {
            ApplyOutcome::UpToDate { .. } => {}
            ApplyOutcome::Installed { to, .. } => self.announce(
                EventKind::Installed,
                Some(to.clone()),
                Some(to.clone()),
                None,
            ),
            ApplyOutcome::Deferred {
                candidate, reason, ..
            } => {
                let running = self.state.state().ok().and_then(|s| s.current);
                self.announce(
                    EventKind::Deferred,
                    Some(candidate.clone()),
                    running,
                    Some(reason.clone()),
                )
            }
            ApplyOutcome::RolledBack { failed, to, reason } => self.announce(
                EventKind::RolledBack,
                Some(failed.clone()),
                to.clone(),
                Some(reason.clone()),
            ),
        }
    }

    /// `auto` (docs/SPEC.md §11.12): what the channel offers, installed
    /// when `[update]` lets the host install it by itself now, else
    /// deferred with the reason. A release marked bad is deferred too
    /// (`apply --retry-bad` is the operator's call); a rollback attack or a
    /// missing entitlement is an error, as for `apply`.
    pub fn auto(&self) -> Result<ApplyOutcome> {
        let policy = self
            .cfg
            .auto_policy()
            .map_err(|reason| ReleaseError::InvalidInput {
                what: "[update]",
                reason,
            })?;
        let (c, mut st) = self
            .prepare(&Target::Channel)
            .inspect_err(|e| self.announce_failure(None, e))?;
        let candidate = c.version().clone();
        let check_only = policy.automatic == crate::policy::auto::Automatic::Check;
        let defer = |reason: String| {
            let o = ApplyOutcome::Deferred {
                candidate: candidate.clone(),
                reason,
                until: None,
            };
            self.announce_outcome(&o);
            Ok(o)
        };
        match self.admissible(&c, &st, &ApplyOptions::default()) {
            Ok(None) => {}
            Ok(Some(_)) => return Ok(ApplyOutcome::UpToDate { version: candidate }),
            // What `check` reports without failing, `auto` does not fail
            // on either while it only checks.
            Err(e) if check_only => return defer(e.to_string()),
            Err(Error::BadVersion { .. }) => {
                return defer(format!(
                    "{candidate} failed here before and is marked bad; \
                     `charter-update apply --retry-bad` installs it"
                ));
            }
            // A license matter, not an attack: the timer keeps waiting.
            Err(e @ Error::NotEntitled { .. }) => return defer(e.to_string()),
            Err(e) => {
                self.announce_failure(Some(candidate), &e);
                return Err(e);
            }
        }
        // When this host first saw the candidate on offer: re-signed
        // channel pointers must not restart min_age.
        let now = self.clock.now();
        let first_seen = match &st.offered {
            Some(o) if o.version == candidate => o.since,
            _ => {
                st.offered = Some(crate::host::state::Offered {
                    version: candidate.clone(),
                    since: now,
                });
                self.state.save_state(&st)?;
                now
            }
        };
        let offer = match &c.release {
            Release::Signed { manifest, .. } => {
                let m = manifest.manifest();
                let published = c
                    .pointer
                    .as_ref()
                    .map_or(first_seen, |p| p.published_at.min(first_seen));
                crate::policy::auto::Offer {
                    security_fix: m.security_fix,
                    out_since: published.max(m.released_at),
                }
            }
            Release::Plain(p) => crate::policy::auto::Offer {
                security_fix: false,
                out_since: p.released_at().unwrap_or(first_seen),
            },
        };
        match crate::policy::auto::decide(&policy, &offer, self.clock.now()) {
            crate::policy::auto::Decision::Install => {
                (self.notes)(&format!(
                    "installing {candidate} by itself (update.automatic = \"{}\")",
                    policy.automatic.name()
                ));
                self.install(&c, st.current)
            }
            crate::policy::auto::Decision::Defer { reason, until } => {
                let o = ApplyOutcome::Deferred {
                    candidate,
                    reason,
                    until,
                };
                self.announce_outcome(&o);
                Ok(o)
            }
        }
    }

    /// Installs an admitted candidate: download, stage, swap, restart,
    /// health check, then commit or roll back.
    fn install(&self, c: &Candidate, from: Option<Version>) -> Result<ApplyOutcome> {
        let r = self.install_inner(c, from);
        match &r {
            Ok(o) => self.announce_outcome(o),
            Err(e) => self.announce_failure(Some(c.version().clone()), e),
        }
        r
    }

    fn install_inner(&self, c: &Candidate, from: Option<Version>) -> Result<ApplyOutcome> {
        let (m, stored, download) = self.materialize(c)?;
        let to = m.version.clone();
        self.check_space(&m)?;

        let mut j = Journal {
            id: now_id(self.clock.as_ref()),
            op: Op::Apply,
            from: from.clone(),
            to: Some(to.clone()),
            step: Step::Begin,
            reason: None,
            mark_bad: false,
            bad_cause: None,
            restore_license: false,
            started: self.clock.now(),
        };
        self.state.save_journal(&j)?;
        failpoint::hit("apply:after-begin");

        // Back up the config and license files of the release being left.
        if let Some(f) = &from
            && let Err(e) = self.take_backup(f, &to, &j.id)
        {
            self.state.clear_journal()?;
            self.history("apply", from, Some(to), "failed", Some(e.to_string()))?;
            return Err(e);
        }

        // Stage: releases/<to>.partial, checked entry by entry, then renamed.
        if let Err(e) = self.stage(&m, download, from.as_ref()) {
            self.abort_staging(&to);
            self.state.clear_journal()?;
            self.history("apply", from, Some(to), "failed", Some(e.to_string()))?;
            return Err(e);
        }
        match &stored {
            Stored::Envelope(e) => self.state.save_manifest(&to, e)?,
            Stored::Plain(r) => self.state.save_plain_record(&to, r)?,
        }
        j.step = Step::Staged;
        self.state.save_journal(&j)?;
        failpoint::hit("apply:after-staged");

        // Pre-swap script: failure stops the update; nothing was swapped.
        if let Some(script) = &m.scripts.pre_swap
            && let Err(e) = self.run_script(
                "pre_swap",
                script.as_str(),
                &self.release_dir(&to),
                from.as_ref(),
                &to,
            )
        {
            // The script may have changed what it should not have.
            self.restore_backup(from.as_ref(), &to, true);
            self.state.clear_journal()?;
            self.history("apply", from, Some(to), "failed", Some(e.to_string()))?;
            return Err(e);
        }
        j.step = Step::PreSwapDone;
        self.state.save_journal(&j)?;
        failpoint::hit("apply:after-pre-swap");

        self.point_current(Some(&to))?;
        failpoint::hit("apply:after-swap");
        j.step = Step::Swapped;
        self.state.save_journal(&j)?;
        failpoint::hit("apply:after-swapped");

        let outcome = self.restart().and_then(|()| {
            j.step = Step::Restarted;
            self.state.save_journal(&j)?;
            failpoint::hit("apply:after-restart");
            if let Some(script) = &m.scripts.post_swap {
                self.run_script(
                    "post_swap",
                    script.as_str(),
                    &self.release_dir(&to),
                    from.as_ref(),
                    &to,
                )?;
            }
            j.step = Step::PostSwapDone;
            self.state.save_journal(&j)?;
            failpoint::hit("apply:after-post-swap");
            self.health(&m, &to)
        });
        if let Err(e) = outcome {
            let reason = e.to_string();
            (self.notes)(&format!("{to} failed: {reason}; rolling back"));
            // The health check runs once the post-swap step is journaled;
            // before that, the restart or the script failed.
            let cause = if j.step == Step::PostSwapDone {
                BadCause::HealthCheck
            } else {
                BadCause::Start
            };
            self.rollback_inner(&to, from.clone(), &reason, Some(cause), true)?;
            return Ok(ApplyOutcome::RolledBack {
                failed: to,
                to: from,
                reason,
            });
        }
        j.step = Step::Healthy;
        self.state.save_journal(&j)?;
        failpoint::hit("apply:after-healthy");
        self.commit(&j)?;
        Ok(ApplyOutcome::Installed { from, to })
    }

    fn check_space(&self, m: &Manifest) -> Result<()> {
        let need: u64 = m
            .files
            .iter()
            .map(|e| match e {
                Entry::File { size, .. } => size.div_ceil(4096) * 4096 + 4096,
                _ => 4096,
            })
            .sum::<u64>()
            .saturating_add(64 << 20);
        std::fs::create_dir_all(self.releases_dir())
            .map_err(|e| Error::io("create", self.releases_dir(), e))?;
        let vfs = rustix::fs::statvfs(self.releases_dir())
            .map_err(|e| Error::io("statvfs", self.releases_dir(), e.into()))?;
        let avail = vfs.f_bavail.saturating_mul(vfs.f_frsize);
        if avail < need {
            return Err(Error::NoSpace {
                path: self.releases_dir(),
                needed: need,
                available: avail,
            });
        }
        Ok(())
    }

    /// Stages `m` from the repository, or, for a plain artifact, from the
    /// `download` [`Updater::materialize`] verified.
    fn stage(
        &self,
        m: &Manifest,
        download: Option<std::fs::File>,
        from: Option<&Version>,
    ) -> Result<()> {
        let to = &m.version;
        let partial = self.staging_dir(to);
        self.staging_root()?;
        remove_tree(&partial)?;
        (self.notes)(&format!("downloading and staging {} {to}", m.product));
        // The SBOM the manifest pins, first: small, and a mismatch stops
        // the update before the download.
        if let Some(s) = &m.sbom {
            let rel = format!("releases/{}/{to}/{}", m.product, s.name);
            let bytes = match self.fetcher.get(&rel, s.size, None)? {
                Fetched::Body(b, _) => b,
                Fetched::NotModified => {
                    return Err(Error::NotFound {
                        url: self.fetcher.url_of(&rel),
                    });
                }
            };
            s.matches(&bytes)?;
            self.state.save_sbom(to, &bytes)?;
        }
        let (mut stream, layout): (Box<dyn std::io::Read + Send + '_>, _) = match download {
            None => {
                let rel = format!("releases/{}/{to}/{}", m.product, m.artifact.name);
                (self.fetcher.stream(&rel, m.artifact.size)?, Layout::Charter)
            }
            // Verified and scanned already; extracted from that same file
            // (whose digest extraction checks once more), under the plain
            // layout and the scan's decompression cap.
            Some(f) => {
                let layout = match self.cfg.plain.as_ref() {
                    Some(p) => Layout::Plain {
                        strip_components: usize::from(p.strip_components),
                        max_unpacked: p.max_unpacked_size,
                    },
                    None => Layout::Plain {
                        strip_components: 0,
                        max_unpacked: charter_release::archive::tar_bound(m),
                    },
                };
                (Box::new(f), layout)
            }
        };
        crate::host::extract::extract_with(&mut stream, m, &partial, &self.limits, layout)?;
        drop(stream);
        // The host's rule for setuid/setgid bits, before anything can run
        // the tree (docs/SPEC.md §11.3 step 6).
        let setuid = self.setuid_policy()?;
        for p in crate::host::extract::apply_setuid_policy(&partial, m, &setuid)? {
            (self.notes)(&format!(
                "{p}: setuid/setgid bits not installed (update.allow_setuid does not name it)"
            ));
        }
        failpoint::hit("apply:after-extract");
        // Carry config and preserved paths over from the running release.
        if let Some(old) = from {
            let old_dir = self.release_dir(old);
            let old_manifest = self.stored_manifest(old);
            for note in carry_over(
                &old_dir,
                old_manifest.as_ref(),
                &partial,
                m,
                &self.cfg.update.preserve,
            )? {
                (self.notes)(&note);
            }
        }
        sync_tree(&partial)?;
        let dest = self.release_dir(to);
        remove_tree(&dest)?;
        std::fs::rename(&partial, &dest).map_err(|e| Error::io("rename into place", &dest, e))?;
        charter_keys::fsutil::sync_dir(&self.releases_dir())?;
        failpoint::hit("apply:after-stage-rename");
        Ok(())
    }

    /// Where a release is staged: `<install_root>/.staging/<v>.partial`,
    /// on the same file system as `releases/` so the final move is one
    /// rename, and apart from it so a refused release leaves `releases/`
    /// untouched.
    fn staging_dir(&self, v: &Version) -> PathBuf {
        self.cfg
            .paths
            .install_root
            .join(".staging")
            .join(format!("{v}.partial"))
    }

    fn abort_staging(&self, to: &Version) {
        let _ = remove_tree(&self.staging_dir(to));
        let _ = std::fs::remove_file(self.download_path(to));
        let st = self.state.state().unwrap_or_default();
        if st.current.as_ref() != Some(to) && st.previous.as_ref() != Some(to) {
            let _ = remove_tree(&self.release_dir(to));
        }
    }

    /// Points `current` at `releases/<v>` with one rename(2) of a fresh
    /// symlink over it, or removes it (first install undone).
    fn point_current(&self, v: Option<&Version>) -> Result<()> {
        let root = &self.cfg.paths.install_root;
        let current = root.join("current");
        match v {
            Some(v) => {
                let tmp = root.join(".current.tmp");
                let _ = std::fs::remove_file(&tmp);
                std::os::unix::fs::symlink(format!("releases/{v}"), &tmp)
                    .map_err(|e| Error::io("create symlink", &tmp, e))?;
                std::fs::rename(&tmp, &current)
                    .map_err(|e| Error::io("rename into place", &current, e))?;
            }
            None => match std::fs::remove_file(&current) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", &current, e)),
            },
        }
        charter_keys::fsutil::sync_dir(root)?;
        Ok(())
    }

    /// The version `current` points at, read from the file system.
    pub fn current_link(&self) -> Option<Version> {
        let link = std::fs::read_link(self.cfg.paths.install_root.join("current")).ok()?;
        link.to_str()?.strip_prefix("releases/")?.parse().ok()
    }

    fn restart(&self) -> Result<()> {
        let Some(argv) = &self.cfg.service.restart else {
            return Ok(());
        };
        let timeout = Duration::from_secs(u64::from(self.cfg.service.restart_timeout_secs));
        run::run_command(
            "service restart",
            argv,
            &self.cfg.paths.install_root,
            &[],
            None,
            timeout,
        )
    }

    fn health(&self, m: &Manifest, v: &Version) -> Result<()> {
        let check = self.cfg.health.as_ref().or(m.health_check.as_ref());
        match check {
            Some(c) => run::health_check(c, &self.release_dir(v), self.script_user()?),
            None => {
                (self.notes)("no health check configured: the release is taken as healthy");
                Ok(())
            }
        }
    }

    fn script_user(&self) -> Result<Option<RunAs>> {
        self.cfg
            .service
            .scripts_user
            .as_deref()
            .map(run::lookup_user)
            .transpose()
    }

    fn run_script(
        &self,
        stage: &str,
        script: &str,
        dir: &Path,
        from: Option<&Version>,
        to: &Version,
    ) -> Result<()> {
        (self.notes)(&format!("running {stage} script {script}"));
        let env = [
            ("CHARTER_STAGE", stage.to_owned()),
            ("CHARTER_PRODUCT", self.cfg.product.clone()),
            ("CHARTER_VERSION", to.to_string()),
            (
                "CHARTER_PREVIOUS_VERSION",
                from.map(ToString::to_string).unwrap_or_default(),
            ),
            ("CHARTER_RELEASE_DIR", dir.to_string_lossy().into_owned()),
            (
                "CHARTER_INSTALL_ROOT",
                self.cfg.paths.install_root.to_string_lossy().into_owned(),
            ),
        ];
        let timeout = Duration::from_secs(u64::from(self.cfg.service.script_timeout_secs));
        let argv = [dir.join(script).to_string_lossy().into_owned()];
        run::run_command(
            &format!("{stage} script {script}"),
            &argv,
            dir,
            &env,
            self.script_user()?,
            timeout,
        )
    }

    fn commit(&self, j: &Journal) -> Result<()> {
        let to = j.to.clone().ok_or_else(|| ReleaseError::InvalidInput {
            what: "journal",
            reason: "apply without target".into(),
        })?;
        let mut st = self.state.state()?;
        if st.current.as_ref() != Some(&to) {
            st.previous = st.current.take().or(j.from.clone());
        }
        st.current = Some(to.clone());
        if st.ratchet.as_ref().is_none_or(|r| &to > r) {
            st.ratchet = Some(to.clone());
        }
        st.clear_bad(&to);
        self.state.save_state(&st)?;
        failpoint::hit("apply:after-commit-state");
        self.history("apply", j.from.clone(), Some(to.clone()), "committed", None)?;
        self.state.clear_journal()?;
        self.prune(&st)?;
        (self.notes)(&format!("{} {to} installed", self.cfg.product));
        self.self_update(&to);
        Ok(())
    }

    /// Replaces the running `charter-update` with the one the committed
    /// release ships (self-replace: a copy next to the running executable,
    /// then one rename over it). Only after the release was found healthy;
    /// a failure is reported and leaves the old binary in place.
    fn self_update(&self, v: &Version) {
        let Some(su) = &self.cfg.self_update else {
            return;
        };
        let new = self.release_dir(v).join(&su.binary);
        let result = match std::fs::symlink_metadata(&new) {
            Ok(md) if md.is_file() => self_replace::self_replace(&new).map_err(|e| e.to_string()),
            Ok(_) => Err("not a regular file".into()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(()) => (self.notes)(&format!("charter-update replaced by {}", new.display())),
            Err(e) => (self.notes)(&format!(
                "self-update from {} failed (old binary kept): {e}",
                new.display()
            )),
        }
    }

    // ---- rollback ----------------------------------------------------

    /// `rollback`: returns to the previous release on disk (the current one
    /// is marked bad so it is not installed again automatically).
    pub fn rollback(&self) -> Result<ApplyOutcome> {
        self.check_paths()?;
        self.recover()?;
        let st = self.state.state()?;
        let current = st.current.clone().ok_or(Error::NothingToRollBack {
            reason: "nothing is installed".into(),
        })?;
        let prev = st.previous.clone().ok_or(Error::NothingToRollBack {
            reason: format!("no release before {current} is kept"),
        })?;
        if !self.release_dir(&prev).is_dir() {
            return Err(Error::NothingToRollBack {
                reason: format!("{} is gone", self.release_dir(&prev).display()),
            });
        }
        let reason = "rollback requested".to_string();
        self.rollback_inner(
            &current,
            Some(prev.clone()),
            &reason,
            Some(BadCause::Requested),
            false,
        )?;
        let o = ApplyOutcome::RolledBack {
            failed: current,
            to: Some(prev),
            reason,
        };
        self.announce_outcome(&o);
        Ok(o)
    }

    fn rollback_inner(
        &self,
        failed: &Version,
        to: Option<Version>,
        reason: &str,
        mark_bad: Option<BadCause>,
        automatic: bool,
    ) -> Result<()> {
        let mut j = Journal {
            id: now_id(self.clock.as_ref()),
            op: Op::Rollback,
            from: Some(failed.clone()),
            to: to.clone(),
            step: Step::Begin,
            reason: Some(reason.to_owned()),
            mark_bad: mark_bad.is_some(),
            bad_cause: mark_bad,
            restore_license: automatic,
            started: self.clock.now(),
        };
        self.state.save_journal(&j)?;
        failpoint::hit("rollback:after-begin");
        self.finish_rollback(&mut j)
    }

    /// Completes a rollback journal from whatever step it reached; every
    /// action is idempotent, so recovery can call it again.
    fn finish_rollback(&self, j: &mut Journal) -> Result<()> {
        let failed = j.from.clone();
        let to = j.to.clone();
        if j.step < Step::Swapped {
            if let (Some(f), Some(manifest)) = (
                &failed,
                failed.as_ref().and_then(|f| self.stored_manifest(f)),
            ) && let Some(script) = &manifest.scripts.on_rollback
                && self.release_dir(f).is_dir()
                && let Err(e) = self.run_script(
                    "on_rollback",
                    script.as_str(),
                    &self.release_dir(f),
                    Some(f),
                    to.as_ref().unwrap_or(f),
                )
            {
                (self.notes)(&format!(
                    "on_rollback script failed (rolling back anyway): {e}"
                ));
            }
            self.point_current(to.as_ref())?;
            failpoint::hit("rollback:after-swap");
            j.step = Step::Swapped;
            self.state.save_journal(j)?;
            failpoint::hit("rollback:after-swapped");
        }
        // The backup taken when `to` was left for `failed` (idempotent:
        // only files that differ are written).
        if let (Some(t), Some(f)) = (&to, &failed) {
            self.restore_backup(Some(t), f, j.restore_license);
        }
        let mut health_note = None;
        if let Some(v) = &to {
            if let Err(e) = self.restart() {
                health_note = Some(format!("restarting {v} failed too: {e}"));
            } else {
                failpoint::hit("rollback:after-restart");
                let m = self.stored_manifest(v);
                if let Some(m) = m
                    && let Err(e) = self.health(&m, v)
                {
                    health_note = Some(format!("{v} is unhealthy after the rollback too: {e}"));
                }
            }
        }
        if let Some(n) = &health_note {
            (self.notes)(n);
        }
        let mut st = self.state.state()?;
        if let Some(f) = &failed
            && j.mark_bad
        {
            st.mark_bad(f, j.bad_cause);
        }
        st.current = to.clone();
        if st.previous.as_ref() == to.as_ref() {
            st.previous = None;
        }
        self.state.save_state(&st)?;
        failpoint::hit("rollback:after-state");
        let reason = match (&j.reason, &health_note) {
            (Some(r), Some(n)) => Some(format!("{r}; {n}")),
            (r, n) => r.clone().or(n.clone()),
        };
        self.history("rollback", failed, to, "rolled-back", reason)?;
        self.state.clear_journal()?;
        Ok(())
    }

    /// The manifest `v` was installed from, unverified (what was checked
    /// when it was installed). A record that exists but cannot be read is
    /// said, not passed over in silence.
    fn stored_manifest(&self, v: &Version) -> Option<Manifest> {
        match self.state.plain_record(v) {
            Ok(Some(r)) => return Some(r.manifest),
            Ok(None) => {}
            Err(e) => {
                (self.notes)(&format!("the stored record of {v} cannot be read: {e}"));
                return None;
            }
        }
        if !self.state.manifest_path(v).exists() {
            return None;
        }
        let bytes = self
            .state
            .manifest(v)
            .map_err(|e| (self.notes)(&format!("the stored manifest of {v} cannot be read: {e}")))
            .ok()?;
        let env = charter_keys::dsse::Envelope::from_slice(&bytes, &self.limits.envelope).ok()?;
        Manifest::from_payload(env.unverified_payload()).ok()
    }

    // ---- recovery ----------------------------------------------------

    /// Finishes or undoes an interrupted transaction (docs/SPEC.md §11.4).
    /// Runs first in every command. Returns what it did.
    pub fn recover(&self) -> Result<Option<HistoryEntry>> {
        let _ = std::fs::remove_file(self.cfg.paths.install_root.join(".current.tmp"));
        let Some(mut j) = self.state.journal()? else {
            return Ok(None);
        };
        (self.notes)(&format!(
            "recovering an interrupted {:?} (step {:?})",
            j.op, j.step
        ));
        match j.op {
            Op::Rollback => {
                self.finish_rollback(&mut j)?;
                Ok(self.state.history()?.pop())
            }
            Op::Apply => {
                let to = j.to.clone();
                let link = self.current_link();
                // The swap may have happened after the last journal write.
                let swapped =
                    j.step >= Step::Swapped || (link.is_some() && link == to && link != j.from);
                if j.step == Step::Healthy {
                    self.commit(&j)?;
                    return Ok(self.state.history()?.pop());
                }
                if swapped {
                    // Swapped but not known healthy: return to the old release.
                    let failed = to.clone().ok_or_else(|| ReleaseError::InvalidInput {
                        what: "journal",
                        reason: "apply without target".into(),
                    })?;
                    let reason = "interrupted after the swap; returned to the previous release";
                    self.rollback_inner(&failed, j.from.clone(), reason, None, true)?;
                    self.announce_outcome(&ApplyOutcome::RolledBack {
                        failed,
                        to: j.from.clone(),
                        reason: reason.into(),
                    });
                    return Ok(self.state.history()?.pop());
                }
                // Not swapped: the old release is intact; drop the staging
                // and undo what a pre_swap script may have changed.
                if let Some(to) = &to {
                    self.restore_backup(j.from.as_ref(), to, true);
                    let st = self.state.state()?;
                    let _ = remove_tree(&self.staging_dir(to));
                    let _ = std::fs::remove_file(self.download_path(to));
                    if st.current.as_ref() != Some(to) && st.previous.as_ref() != Some(to) {
                        let _ = remove_tree(&self.release_dir(to));
                    }
                }
                self.state.clear_journal()?;
                let h = self.history(
                    "recover",
                    j.from.clone(),
                    to,
                    "aborted",
                    Some(format!(
                        "interrupted at step {:?}; nothing was swapped",
                        j.step
                    )),
                )?;
                Ok(Some(h))
            }
        }
    }

    // ---- status, history, verify --------------------------------------

    /// `status`.
    pub fn status(&self) -> Result<Status> {
        let recovered = self.recover()?;
        let mut releases_on_disk: Vec<Version> = std::fs::read_dir(self.releases_dir())
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        releases_on_disk.sort();
        Ok(Status {
            product: self.cfg.product.clone(),
            channel: self.cfg.channel.clone(),
            state: self.state.state()?,
            pending: self.state.journal()?,
            releases_on_disk,
            recovered,
            releases_from: match &self.cfg.plain {
                Some(p) => format!(
                    "plain artifacts {} (a checksum file and a cosign bundle over it; \
                     newest version from {})",
                    p.artifact,
                    p.latest.as_deref().unwrap_or("--version only")
                ),
                None => format!("charter manifests, channel {}", self.cfg.channel),
            },
            automatic: self
                .cfg
                .auto_policy()
                .map_or_else(|e| e, |p| p.describe(&self.cfg.update.windows)),
            signature_policy: self.signatures.describe(),
            plain_secrets: self
                .cfg
                .plain_secrets()
                .into_iter()
                .map(str::to_owned)
                .collect(),
        })
    }

    /// `history`.
    pub fn history_entries(&self) -> Result<Vec<HistoryEntry>> {
        self.state.history()
    }

    /// `verify`: the installed tree against its signed manifest.
    pub fn verify_installed(&self) -> Result<crate::host::verify::Report> {
        self.recover()?;
        let st = self.state.state()?;
        let v = st.current.ok_or_else(|| Error::NothingInstalled {
            install_root: self.cfg.paths.install_root.clone(),
        })?;
        let m = match self.state.plain_record(&v)? {
            // A plain release: its bundle over the checksum file again,
            // and the file list that tarball gave.
            Some(r) => {
                let cosign = self.signatures.cosign.as_ref().ok_or_else(|| {
                    ReleaseError::SignaturePolicy(format!(
                        "{v} was installed from a plain artifact; its cosign bundle cannot be \
                         checked without a [signatures.cosign] table"
                    ))
                })?;
                r.verify(cosign, &self.limits)?.clone()
            }
            None => self.stored_signed_manifest(&v)?,
        };
        let mut preserve = m.preserve.clone();
        preserve.extend(self.cfg.update.preserve.iter().cloned());
        let setuid = self.setuid_policy()?;
        crate::host::verify::verify_tree(
            &self.release_dir(&v),
            &m,
            &compile_globs(&preserve)?,
            &setuid,
            &self.limits,
        )
    }

    /// The stored manifest envelope of `v`, its signatures checked again
    /// against the root in force.
    fn stored_signed_manifest(&self, v: &Version) -> Result<Manifest> {
        let root = self.trusted_root_offline()?;
        let bytes = self.state.manifest(v)?;
        // The stored manifest is re-verified (signature only: an expired
        // manifest still describes what was installed).
        let env = charter_keys::dsse::Envelope::from_slice(&bytes, &self.limits.envelope)?;
        let payload = root.verify_envelope(
            &env,
            charter_keys::dsse::PAYLOAD_MANIFEST,
            charter_keys::Role::Release,
        )?;
        let m = Manifest::from_payload(payload.payload())?;
        m.validate(&self.limits)?;
        Ok(m)
    }

    /// The trust root in force (kept or shipped), verified, offline.
    pub fn trust_root_in_force(&self) -> Result<VerifiedRoot> {
        self.trusted_root_offline()
    }

    fn trusted_root_offline(&self) -> Result<VerifiedRoot> {
        let env_limits = &self.limits.envelope;
        let path = if self.state.root_path().exists() {
            self.state.root_path()
        } else {
            self.trust_root_path()?.to_owned()
        };
        let bytes = charter_keys::fsutil::read_capped(
            &path,
            env_limits.max_envelope_bytes,
            "a trust root",
        )?;
        Ok(VerifiedRoot::from_trusted(&bytes, env_limits)?)
    }

    /// Removes releases beyond `keep_releases` (never current or previous)
    /// and their stored manifests.
    /// Removes old releases: `current` and `previous` always stay, then
    /// the newest `keep_releases` good ones; a bad version never takes a
    /// place, so it goes first (docs/SPEC.md §11.4).
    fn prune(&self, st: &HostState) -> Result<()> {
        let Ok(rd) = std::fs::read_dir(self.releases_dir()) else {
            return Ok(());
        };
        let mut versions: Vec<Version> = rd
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        for v in prune_list(versions.drain(..), st, self.cfg.update.keep_releases) {
            remove_tree(&self.release_dir(&v))?;
            let _ = std::fs::remove_file(self.state.manifest_path(&v));
            let _ = std::fs::remove_file(self.state.plain_record_path(&v));
            crate::host::backup::remove(self.state.path(), &v);
            let _ = std::fs::remove_file(self.state.sbom_path(&v));
        }
        Ok(())
    }

    /// `update.allow_setuid` as a policy (checked at config load already).
    fn setuid_policy(&self) -> Result<SetuidPolicy> {
        self.cfg
            .setuid_policy()
            .map_err(|reason| ReleaseError::InvalidInput {
                what: "update.allow_setuid",
                reason,
            })
            .map_err(crate::Error::from)
    }

    /// The clock in use.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

/// The installed versions pruning removes, given `keep` (at least 2):
/// `current` and `previous` always stay and count; the other good
/// versions fill the remaining places newest first; bad versions take
/// none.
fn prune_list(
    installed: impl Iterator<Item = Version>,
    st: &HostState,
    keep: usize,
) -> Vec<Version> {
    let mut versions: Vec<Version> = installed.collect();
    versions.sort();
    versions.reverse();
    let pinned = |v: &Version| st.current.as_ref() == Some(v) || st.previous.as_ref() == Some(v);
    let mut kept = versions.iter().filter(|v| pinned(v)).count();
    let mut gone = Vec::new();
    for v in versions {
        if pinned(&v) {
            continue;
        }
        if !st.bad.contains(&v) && kept < keep {
            kept += 1;
            continue;
        }
        gone.push(v);
    }
    gone
}

/// Removes a directory tree if it exists (making read-only directories
/// writable first, since releases may contain them).
pub fn remove_tree(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("stat", path, e)),
        Ok(md) if !md.is_dir() => {
            return std::fs::remove_file(path).map_err(|e| Error::io("remove", path, e));
        }
        Ok(_) => {}
    }
    if std::fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    let mut stack = vec![path.to_owned()];
    while let Some(d) = stack.pop() {
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700));
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
    std::fs::remove_dir_all(path).map_err(|e| Error::io("remove", path, e))
}

/// Refuses a directory root works in when another user could change it or
/// what it holds: the directory (when it exists; the updater makes it
/// otherwise) and every directory above it, both as configured and with
/// symlinks resolved, must be owned by root or by this process's user,
/// and not writable by others, nor by a group other than root's, unless
/// sticky (as `/tmp` is). Like sshd's StrictModes.
pub fn trusted_dir(dir: &Path, what: &'static str) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let euid = rustix::process::geteuid().as_raw();
    let mut paths: Vec<PathBuf> = dir.ancestors().map(Path::to_owned).collect();
    if let Ok(real) = std::fs::canonicalize(dir) {
        paths.extend(real.ancestors().map(Path::to_owned));
    }
    for p in paths {
        let md = match std::fs::metadata(&p) {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("stat", &p, e)),
        };
        let mode = md.mode() & 0o7777;
        let sticky = mode & 0o1000 != 0;
        let problem = if md.uid() != 0 && md.uid() != euid {
            Some(format!("is owned by uid {}", md.uid()))
        } else if !sticky && mode & 0o002 != 0 {
            Some(format!("is writable by everyone (mode {mode:o})"))
        } else if !sticky && mode & 0o020 != 0 && md.gid() != 0 {
            Some(format!("is writable by group {} (mode {mode:o})", md.gid()))
        } else {
            None
        };
        if let Some(reason) = problem {
            return Err(ReleaseError::InvalidInput {
                what,
                reason: format!(
                    "{} {reason}: another user could change what the updater, as root, \
                     installs or reads there",
                    p.display()
                ),
            }
            .into());
        }
    }
    Ok(())
}

/// Makes `dir` (0700) unless it exists, then refuses it when it is a
/// symlink, another user's, or writable by group or others: root writes
/// there, and nobody else may choose what it reads back.
pub fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("create", dir, e)),
    }
    let md = std::fs::symlink_metadata(dir).map_err(|e| Error::io("stat", dir, e))?;
    let euid = rustix::process::geteuid().as_raw();
    let problem = if !md.file_type().is_dir() {
        Some("is not a directory (a symlink?)".to_owned())
    } else if md.uid() != euid {
        Some(format!("is owned by uid {}, not {euid}", md.uid()))
    } else if md.mode() & 0o022 != 0 {
        Some(format!(
            "has mode {:o}: writable by others",
            md.mode() & 0o7777
        ))
    } else {
        None
    };
    match problem {
        Some(reason) => Err(ReleaseError::InvalidInput {
            what: "staging directory",
            reason: format!("{} {reason}", dir.display()),
        }
        .into()),
        None => Ok(()),
    }
}

/// Flushes a staged tree to disk: one syncfs(2) of its file system, then
/// an fsync of the tree's top directory.
fn sync_tree(path: &Path) -> Result<()> {
    let dir = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    rustix::fs::syncfs(&dir).map_err(|e| Error::io("syncfs", path, e.into()))?;
    dir.sync_all().map_err(|e| Error::io("sync", path, e))
}

/// Carries config files (dpkg conffile rules) and preserved paths from the
/// running release `old` into the staged release `new_dir`
/// (docs/SPEC.md §11.3, step 7). Returns notes for the operator.
pub fn carry_over(
    old: &Path,
    old_manifest: Option<&Manifest>,
    new_dir: &Path,
    new: &Manifest,
    extra_preserve: &[String],
) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let mut buf = vec![0u8; charter_release::tree::READ_BUF];
    let old_entries = old_manifest
        .map(Manifest::entries_by_path)
        .unwrap_or_default();
    // Config files.
    for e in &new.files {
        let Entry::File {
            path,
            sha256: new_default,
            kind: FileKind::Config,
            ..
        } = e
        else {
            continue;
        };
        let old_file = old.join(path.as_str());
        let Ok(md) = std::fs::symlink_metadata(&old_file) else {
            continue;
        };
        if !md.is_file() {
            continue;
        }
        let (old_digest, _) = charter_release::tree::hash_file(&old_file, &mut buf)?;
        let old_default = match old_entries.get(path.as_str()) {
            Some(Entry::File { sha256, .. }) => Some(*sha256),
            _ => None,
        };
        if Some(old_digest) == old_default || old_digest == *new_default {
            continue; // unmodified by the operator, or already the new default
        }
        let dest = new_dir.join(path.as_str());
        if old_default != Some(*new_default) {
            let beside = new_dir.join(format!("{path}.charter-new"));
            std::fs::rename(&dest, &beside).map_err(|e| Error::io("rename", &dest, e))?;
            notes.push(format!(
                "kept your {path}; the new default is beside it as {path}.charter-new"
            ));
        } else {
            notes.push(format!("kept your {path}"));
        }
        if copy_replace(&old_file, &dest)? {
            notes.push(format!("{path}: setuid/setgid bits not carried over"));
        }
    }
    // Preserved paths.
    let mut globs = new.preserve.clone();
    globs.extend(extra_preserve.iter().cloned());
    if globs.is_empty() || !old.is_dir() {
        return Ok(notes);
    }
    let set = compile_globs(&globs)?;
    let configs: std::collections::BTreeSet<&str> = new
        .files
        .iter()
        .filter(|e| {
            matches!(
                e,
                Entry::File {
                    kind: FileKind::Config,
                    ..
                }
            )
        })
        .map(|e| e.path().as_str())
        .collect();
    let mut count = 0usize;
    for (p, md) in walk_tolerant(old) {
        if !set.is_match(&p) || configs.contains(p.as_str()) {
            continue;
        }
        let src = old.join(&p);
        let dest = new_dir.join(&p);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        }
        let ft = md.file_type();
        use std::os::unix::fs::MetadataExt;
        if ft.is_dir() {
            if !std::fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir()) {
                let _ = remove_tree(&dest);
                std::fs::create_dir(&dest).map_err(|e| Error::io("create", &dest, e))?;
            }
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(md.mode() & 0o7777))
                .map_err(|e| Error::io("chmod", &dest, e))?;
            keep_owner(&dest, &md, false);
        } else if ft.is_file() {
            if copy_replace(&src, &dest)? {
                notes.push(format!("{p}: setuid/setgid bits not carried over"));
            }
            count += 1;
        } else if ft.is_symlink() {
            // The product's own links under its preserved data are kept as
            // they are; they are never followed here.
            let target = std::fs::read_link(&src).map_err(|e| Error::io("read link", &src, e))?;
            let _ = remove_tree(&dest);
            std::os::unix::fs::symlink(&target, &dest)
                .map_err(|e| Error::io("create symlink", &dest, e))?;
            keep_owner(&dest, &md, true);
        } else {
            notes.push(format!("not carried over: {p} (socket, FIFO or device)"));
        }
    }
    if count > 0 {
        notes.push(format!("carried over {count} preserved file(s)"));
    }
    Ok(notes)
}

/// Every entry under `root` (relative path, lstat), never following
/// symlinks and skipping what cannot be read instead of failing: preserved
/// data is the product's, whatever it holds.
fn walk_tolerant(root: &Path) -> Vec<(String, std::fs::Metadata)> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(root.join(&rel)) else {
            continue;
        };
        for e in rd.flatten() {
            let r = rel.join(e.file_name());
            let Some(name) = r.to_str().map(str::to_owned) else {
                continue;
            };
            let Ok(md) = std::fs::symlink_metadata(root.join(&r)) else {
                continue;
            };
            if md.is_dir() {
                stack.push(r);
            }
            out.push((name, md));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Gives `path` the owner of the original (only possible as root; a
/// non-root updater keeps its own ownership).
fn keep_owner(path: &Path, md: &std::fs::Metadata, is_link: bool) {
    use std::os::unix::fs::MetadataExt;
    let (uid, gid) = (Some(md.uid()), Some(md.gid()));
    let _ = if is_link {
        std::os::unix::fs::lchown(path, uid, gid)
    } else {
        std::os::unix::fs::chown(path, uid, gid)
    };
}

/// Copies the regular file `src` over `dest`, keeping owner and mode but
/// not setuid/setgid bits (returns whether it dropped some). The
/// source is opened with O_NOFOLLOW and checked to be a regular file on the
/// open descriptor, so a file swapped for a symlink after the walk is not
/// followed (this runs as root); `dest` is created new, never through a
/// link.
fn copy_replace(src: &Path, dest: &Path) -> Result<bool> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    let mut from = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nofollow)
        .open(src)
        .map_err(|e| Error::io("open", src, e))?;
    let md = from.metadata().map_err(|e| Error::io("stat", src, e))?;
    if !md.is_file() {
        return Err(ReleaseError::FileChanged {
            path: src.to_owned(),
        }
        .into());
    }
    match std::fs::symlink_metadata(dest) {
        Ok(m) if m.is_dir() => remove_tree(dest)?,
        Ok(_) => std::fs::remove_file(dest).map_err(|e| Error::io("remove", dest, e))?,
        Err(_) => {}
    }
    // Setuid and setgid bits are never carried over: a kept config or
    // preserved file is data, and the host's setuid rule (§11.3 step 6)
    // governs only what the signed manifest lists. The owner goes first,
    // then the mode (chown would clear those bits anyway).
    let mode = md.mode() & 0o1777;
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nofollow)
        .open(dest)
        .map_err(|e| Error::io("create", dest, e))?;
    std::io::copy(&mut from, &mut to).map_err(|e| Error::io("copy", src, e))?;
    let _ = std::os::unix::fs::fchown(&to, Some(md.uid()), Some(md.gid()));
    to.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("chmod", dest, e))?;
    Ok(md.mode() & 0o6000 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (SPEC §12 Q45): with keep_releases = 3, a bad 1.2.0 was
    /// kept while a good 1.0.0 was pruned. Bad versions take no place.
    #[test]
    fn prune_removes_bad_versions_first() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        let mut st = HostState {
            current: Some(v("1.3.0")),
            previous: Some(v("1.1.0")),
            ..HostState::default()
        };
        st.mark_bad(&v("1.2.0"), Some(BadCause::HealthCheck));
        let all = || ["1.0.0", "1.1.0", "1.2.0", "1.3.0"].map(v).into_iter();
        assert_eq!(prune_list(all(), &st, 3), [v("1.2.0")]);
        // Nothing bad: the oldest goes.
        st.clear_bad(&v("1.2.0"));
        assert_eq!(prune_list(all(), &st, 3), [v("1.0.0")]);
        // Current and previous stay whatever their age or mark, and count.
        st.current = Some(v("1.0.0"));
        st.previous = Some(v("1.2.0"));
        st.mark_bad(&v("1.2.0"), Some(BadCause::Requested));
        st.mark_bad(&v("1.3.0"), Some(BadCause::Start));
        assert_eq!(prune_list(all(), &st, 2), [v("1.3.0"), v("1.1.0")]);
        assert_eq!(prune_list(all(), &st, 3), [v("1.3.0")]);
    }

    #[test]
    fn trusted_dirs_refuse_what_others_could_change() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("opt/panel");
        std::fs::create_dir_all(&d).unwrap();
        trusted_dir(&d, "paths.install_root").unwrap();
        // Not there yet: its parents are checked.
        trusted_dir(&d.join("later"), "paths.install_root").unwrap();
        // World-writable parent (not sticky), then the directory itself.
        let opt = t.path().join("opt");
        std::fs::set_permissions(&opt, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = trusted_dir(&d, "paths.install_root")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("paths.install_root") && e.contains("writable by everyone"),
            "{e}"
        );
        // Sticky is fine (like /tmp).
        std::fs::set_permissions(&opt, std::fs::Permissions::from_mode(0o1777)).unwrap();
        trusted_dir(&d, "paths.install_root").unwrap();
        std::fs::set_permissions(&opt, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o757)).unwrap();
        assert!(trusted_dir(&d, "x").is_err());
        // Through a symlink: the target is checked too.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let open = t.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&open, &link).unwrap();
        assert!(trusted_dir(&link, "x").is_err());
    }

    #[test]
    fn private_dir_is_made_0700_and_others_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("s");
        private_dir(&d).unwrap();
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700);
        private_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = private_dir(&d).unwrap_err().to_string();
        assert!(e.contains("writable by others"), "{e}");
        let link = t.path().join("l");
        std::os::unix::fs::symlink(&d, &link).unwrap();
        let e = private_dir(&link).unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
        let file = t.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(
            private_dir(&file)
                .unwrap_err()
                .to_string()
                .contains("not a directory")
        );
    }
}
