//! Channel pointers: a signed, expiring statement "channel C of product P
//! is at version V, whose manifest has this digest and size"
//! (docs/SPEC.md §9). The pointer pins the manifest, so a repository cannot
//! mix and match metadata, and its expiry bounds freeze attacks.

use charter_keys::dsse::{Envelope, PAYLOAD_CHANNEL};
use charter_keys::root::VerifiedRoot;
use charter_keys::{Clock, KeyId, Role};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::manifest::validate_product;
use crate::path::ArchivePath;
use crate::rollout::Rollout;
use crate::{Error, Limits, Result};

/// Largest channel pointer envelope read (hosts, `charter channel sign`).
pub const MAX_POINTER_BYTES: u64 = 1 << 20;

/// Where the manifest is and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestRef {
    /// Path of manifest.json relative to the repository root.
    pub path: ArchivePath,
    /// SHA-256 of the manifest envelope bytes.
    pub sha256: Sha256Digest,
    /// Size of the manifest envelope in bytes (downloads are capped at it).
    pub size: u64,
}

/// The channel pointer payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelPointer {
    /// Product name.
    pub product: String,
    /// Channel name (same syntax as product names).
    pub channel: String,
    /// The version the channel points at.
    pub version: semver::Version,
    /// The manifest of that version.
    pub manifest: ManifestRef,
    /// When the pointer was signed.
    pub published_at: Timestamp,
    /// After this instant hosts refuse the pointer.
    pub expires: Timestamp,
    /// Lets hosts install `version` even when it is lower than what they
    /// ran before: the signed instruction to downgrade.
    #[serde(default)]
    pub allow_downgrade: bool,
    /// The release the channel named before this one (what
    /// `charter channel halt --revert` goes back to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousRelease>,
    /// The phased rollout of `version` (§9.6); none: every host at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// Set when this pointer reverted a halted rollout: which version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverted: Option<Reverted>,
}

/// The release a channel pointed at before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousRelease {
    /// Its version.
    pub version: semver::Version,
    /// Its manifest.
    pub manifest: ManifestRef,
}

/// A halted rollout this pointer went back from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reverted {
    /// The version whose rollout was halted and reverted.
    pub version: semver::Version,
    /// When.
    pub at: Timestamp,
    /// Why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl ChannelPointer {
    /// The payload bytes: pretty JSON with a final newline.
    pub fn to_payload(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Checks names and times.
    pub fn validate(&self) -> Result<()> {
        validate_product(&self.product)?;
        validate_product(&self.channel).map_err(|_| Error::InvalidInput {
            what: "channel name",
            reason: format!("`{}`: use 1 to 64 of a-z 0-9 . _ -", self.channel),
        })?;
        if self.expires <= self.published_at {
            return Err(Error::InvalidManifest(
                "channel pointer expires before it was published".into(),
            ));
        }
        if let Some(r) = &self.rollout {
            r.validate(self.published_at)?;
        }
        if let Some(p) = &self.previous
            && p.version == self.version
        {
            return Err(Error::InvalidManifest(format!(
                "channel pointer: previous release {} is the pointer's own version",
                p.version
            )));
        }
        if let Some(r) = &self.reverted
            && r.version == self.version
        {
            return Err(Error::InvalidManifest(format!(
                "channel pointer: reverted from {}, its own version",
                r.version
            )));
        }
        Ok(())
    }

    /// Where a channel pointer lives in a repository.
    pub fn repo_path(product: &str, channel: &str) -> String {
        format!("channels/{product}/{channel}.json")
    }
}

/// A channel pointer that met the `channel` role's threshold, is current,
/// and names the expected product and channel.
#[derive(Debug, Clone)]
pub struct VerifiedChannel {
    pointer: ChannelPointer,
    signers: Vec<KeyId>,
}

impl VerifiedChannel {
    /// Verifies pointer bytes (docs/SPEC.md §9.2):
    ///
    /// 1. the envelope parses within limits;
    /// 2. its payloadType is the channel type and a threshold of distinct
    ///    `channel` keys signed it;
    /// 3. the payload parses and is valid;
    /// 4. product and channel are the ones the host follows;
    /// 5. it has not expired.
    pub fn verify(
        bytes: &[u8],
        root: &VerifiedRoot,
        clock: &dyn Clock,
        limits: &Limits,
        product: &str,
        channel: &str,
    ) -> Result<Self> {
        let env = Envelope::from_slice(bytes, &limits.envelope)?;
        let verified = root.verify_envelope(&env, PAYLOAD_CHANNEL, Role::Channel)?;
        let pointer: ChannelPointer = serde_json::from_slice(verified.payload())
            .map_err(|e| Error::InvalidManifest(format!("channel pointer: {e}")))?;
        pointer.validate()?;
        if pointer.product != product || pointer.channel != channel {
            return Err(Error::Mismatch {
                what: "channel pointer",
                expected: format!("{product}/{channel}"),
                found: format!("{}/{}", pointer.product, pointer.channel),
            });
        }
        let now = clock.now();
        if now >= pointer.expires {
            return Err(Error::Expired {
                what: format!("channel pointer {product}/{channel} ({})", pointer.version),
                expires: pointer.expires,
                now,
            });
        }
        Ok(VerifiedChannel {
            pointer,
            signers: verified.into_signers(),
        })
    }

    /// The pointer.
    pub fn pointer(&self) -> &ChannelPointer {
        &self.pointer
    }

    /// The keys whose signatures counted.
    pub fn signers(&self) -> &[KeyId] {
        &self.signers
    }
}
