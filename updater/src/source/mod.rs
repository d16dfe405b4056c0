//! Where a release comes from (docs/SPEC.md §11.2): the trust root and
//! its rotations, the channel pointer and its cache, the signed manifest
//! (with its cosign bundle when the policy asks), or a plain artifact's
//! checksum file and bundle. Each way ends in a verified [`Candidate`];
//! [`to_install`] then turns a candidate into the manifest to install.

mod channel;
mod plain;
mod signed;
mod trust;

use charter_keys::Clock;
use charter_keys::root::VerifiedRoot;
use charter_release::Limits;
use charter_release::channel::ChannelPointer;
use charter_release::manifest::{CosignProof, Manifest, VerifiedManifest};
use charter_release::signatures::SignaturePolicy;
use semver::Version;

use crate::config::Config;
use crate::host::layout::InstallRoot;
use crate::host::state::StateDir;
use crate::net::fetch::{Fetched, Fetcher};
use crate::{Error, Result};

pub(crate) use trust::trusted_root;
pub use trust::trusted_root_offline;

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

/// A candidate as the repository offered it.
#[derive(Debug, Clone)]
pub struct Offered {
    /// The verified candidate.
    pub candidate: Candidate,
    /// Whether the channel pointer was unchanged since the last check
    /// (a 304 answer; always false without a pointer).
    pub not_modified: bool,
    /// The trust root in force (none for plain artifacts, which no
    /// charter root signs).
    pub root: Option<VerifiedRoot>,
}

/// What fetching and verifying a release works with: the config, the
/// state dir (trust root and channel caches, the pointer replay rule),
/// the repository client, the clock, the limits, the signature policy and
/// where progress is said.
pub(crate) struct Source<'a> {
    pub(crate) cfg: &'a Config,
    pub(crate) state: &'a StateDir,
    pub(crate) fetcher: &'a Fetcher,
    pub(crate) clock: &'a dyn Clock,
    pub(crate) limits: &'a Limits,
    pub(crate) signatures: &'a SignaturePolicy,
    pub(crate) notes: &'a dyn Fn(&str),
}

impl Source<'_> {
    /// GETs a small document that must exist.
    fn body(&self, rel: &str, max: u64) -> Result<Vec<u8>> {
        match self.fetcher.get(rel, max, None)? {
            Fetched::Body(b, _) => Ok(b),
            Fetched::NotModified => Err(Error::NotFound {
                url: self.fetcher.url_of(rel),
            }),
        }
    }

    /// GETs a small document that may be missing (`None`).
    fn optional_body(&self, rel: &str, max: u64) -> Result<Option<Vec<u8>>> {
        match self.fetcher.get(rel, max, None) {
            Ok(Fetched::Body(b, _)) => Ok(Some(b)),
            Ok(Fetched::NotModified) | Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Fetches and verifies the target's metadata (docs/SPEC.md §11.2, steps
/// 1 to 6). Nothing on disk changes except the channel cache and the kept
/// trust root.
pub(crate) fn candidate(src: &Source<'_>, target: &Target) -> Result<Offered> {
    match &src.cfg.plain {
        Some(p) => Ok(Offered {
            candidate: plain::candidate(src, p, target)?,
            not_modified: false,
            root: None,
        }),
        None => signed::candidate(src, target),
    }
}

/// A candidate made ready to install.
pub(crate) struct ToInstall {
    /// The manifest to install (a plain artifact's synthesized from its
    /// verified tarball).
    pub(crate) manifest: Manifest,
    /// What vouched for it, kept in the state dir once it is staged.
    pub(crate) evidence: Evidence,
    /// A plain artifact's verified tarball, unlinked, to extract from.
    pub(crate) download: Option<std::fs::File>,
}

/// What the host keeps of an installed release's verification
/// (`state/manifests/`): the manifest envelope, or a plain release's
/// encoded record.
pub(crate) enum Evidence {
    /// A charter manifest's DSSE envelope.
    Envelope(Vec<u8>),
    /// A plain release's record (`charter_release::plain::InstallRecord`).
    PlainRecord(Vec<u8>),
}

impl Evidence {
    /// Keeps it as the evidence of release `v`.
    pub(crate) fn save(&self, state: &StateDir, v: &Version) -> Result<()> {
        match self {
            Evidence::Envelope(e) => state.save_manifest(v, e),
            Evidence::PlainRecord(r) => state.save_plain_record(v, r),
        }
    }
}

/// The manifest to install, the evidence to keep and, for a plain
/// artifact, its downloaded tarball (see [`plain::download`]).
pub(crate) fn to_install(
    src: &Source<'_>,
    root: InstallRoot<'_>,
    c: &Candidate,
) -> Result<ToInstall> {
    match &c.release {
        Release::Signed { manifest, envelope } => Ok(ToInstall {
            manifest: manifest.manifest().clone(),
            evidence: Evidence::Envelope(envelope.clone()),
            download: None,
        }),
        Release::Plain(checked) => plain::download(src, root, checked),
    }
}
