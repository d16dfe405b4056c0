//! The read-only commands: `status`, `history`, `verify`, `sbom` and
//! `backups` (each runs recovery first where SPEC §11.4 says so).

use charter_release::Error as ReleaseError;
use charter_release::manifest::{Manifest, compile_globs};
use semver::Version;

use super::{BackupReport, RolloutView, Status, Updater};
use crate::Result;
use crate::host::state::{HistoryEntry, Hold};
use crate::policy::rollout;

impl Updater {
    /// `status`.
    pub fn status(&self) -> Result<Status> {
        let recovered = self.recover()?;
        let releases_on_disk = self.cx().root.installed_versions();
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
            rollout: self.rollout_view()?,
        })
    }

    /// This host's position, and where it stands in the rollout of the
    /// last channel pointer accepted (verified when it was; read here
    /// from the state directory, which only root writes).
    fn rollout_view(&self) -> Result<RolloutView> {
        let position = self.position()?;
        let pointer = self
            .state
            .channel_cache()?
            .and_then(|c| c.pointer())
            .filter(|p| p.rollout.is_some());
        let standing = pointer
            .as_ref()
            .and_then(|p| rollout::standing(p, position.position, self.clock.now()));
        Ok(RolloutView {
            position,
            version: pointer.map(|p| p.version),
            standing,
        })
    }

    /// `hold --until`: no automatic install before `until` (docs/SPEC.md
    /// §11.12). Replaces a hold already set.
    pub fn hold(&self, until: jiff::Timestamp, reason: &str) -> Result<Hold> {
        let now = self.clock.now();
        let bad = |reason: String| ReleaseError::InvalidInput {
            what: "hold",
            reason,
        };
        if until <= now {
            return Err(bad(format!("--until {until} is not in the future")).into());
        }
        if until.duration_since(now).as_secs() > Hold::MAX_SECS {
            return Err(bad(format!("--until {until} is more than a year away")).into());
        }
        if reason.len() > Hold::MAX_REASON_BYTES || reason.contains(['\n', '\r']) {
            return Err(bad(format!(
                "--reason must be one line of at most {} bytes",
                Hold::MAX_REASON_BYTES
            ))
            .into());
        }
        let hold = Hold {
            until,
            reason: reason.to_owned(),
            since: now,
        };
        let mut st = self.state.state()?;
        st.hold = Some(hold.clone());
        self.state.save_state(&st)?;
        Ok(hold)
    }

    /// `hold --clear`: the hold that was set, if any.
    pub fn clear_hold(&self) -> Result<Option<Hold>> {
        let mut st = self.state.state()?;
        let old = st.hold.take();
        if old.is_some() {
            self.state.save_state(&st)?;
        }
        Ok(old)
    }

    /// `history`.
    pub fn history_entries(&self) -> Result<Vec<HistoryEntry>> {
        self.state.history()
    }

    /// `verify`: the installed tree against its signed manifest.
    pub fn verify_installed(&self) -> Result<crate::host::verify::Report> {
        self.recover()?;
        let st = self.state.state()?;
        let v = st.current.ok_or_else(|| crate::Error::NothingInstalled {
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
        let setuid = self.cx().setuid_policy()?;
        crate::host::verify::verify_tree(
            &self.cx().root.release(&v),
            &m,
            &compile_globs(&preserve)?,
            &setuid,
            &self.limits,
        )
    }

    /// The stored manifest envelope of `v`, its signatures checked again
    /// against the root in force.
    fn stored_signed_manifest(&self, v: &Version) -> Result<Manifest> {
        let root = self.trust_root_in_force()?;
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
        if let Some(s) = self.cx().stored_manifest(&v).and_then(|m| m.sbom) {
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
}
