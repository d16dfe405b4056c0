//! The host's update state under `paths.state_dir` (docs/SPEC.md §11.1):
//!
//! ```text
//! lock                  flock(2): one charter-update at a time
//! state.json            ratchet, current/previous version, bad versions
//! journal.json          the transaction in progress, if any
//! history.jsonl         one JSON line per finished transaction
//! root.json             the newest trust root accepted
//! channel.json          last verified channel pointer + its HTTP validator
//! channel.manifest.json the manifest that pointer pins (bytes as fetched)
//! channel.manifest.bundle.json  its cosign bundle, when one was fetched
//! manifests/<v>.json    signed manifest of each installed release
//! ```
//!
//! Every file is replaced atomically (temp file, fsync, rename, fsync dir).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Suffix of a stored plain-release record in `state/manifests/`.
pub const PLAIN_RECORD_SUFFIX: &str = ".plain.json";

/// The manifest the channel pointer pins, kept from the last fetch.
const PINNED_MANIFEST: &str = "channel.manifest.json";
/// Its cosign bundle, when one was fetched with it.
const PINNED_BUNDLE: &str = "channel.manifest.bundle.json";

/// Largest state file read (they are small; this only bounds damage).
const MAX_STATE_BYTES: u64 = 16 << 20;
/// Largest `history.jsonl` read.
const MAX_HISTORY_BYTES: u64 = 64 << 20;

/// What is installed and what may be installed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostState {
    /// Highest version ever committed: lower ones are refused (rollback
    /// attacks) unless a signed pointer allows a downgrade.
    #[serde(default)]
    pub ratchet: Option<Version>,
    /// The release `current` points at.
    #[serde(default)]
    pub current: Option<Version>,
    /// The release before it (what `rollback` returns to).
    #[serde(default)]
    pub previous: Option<Version>,
    /// Versions that failed here or were rolled back by request: never
    /// applied again without `--retry-bad`.
    #[serde(default)]
    pub bad: BTreeSet<Version>,
    /// Why each bad version was marked (absent for marks made before
    /// charter recorded it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bad_causes: BTreeMap<Version, BadCause>,
    /// When the repository was last checked.
    #[serde(default)]
    pub last_check: Option<Timestamp>,
    /// The newest `published_at` of a channel pointer accepted here: an
    /// older pointer (even unexpired, even allowing a downgrade) is a
    /// replay and is refused.
    #[serde(default)]
    pub pointer_published: Option<Timestamp>,
    /// The version `auto` last found on offer and when this host first
    /// saw it there (the start of `min_age` when re-signed pointers would
    /// otherwise restart it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered: Option<Offered>,
    /// The operator's hold on automatic installs (`charter-update hold`),
    /// kept after it expires until cleared or replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
}

/// An operator's hold: no automatic install before `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// When the hold ends by itself.
    pub until: Timestamp,
    /// Why (shown by `status`, `auto` and the agent's API).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// When it was set.
    pub since: Timestamp,
}

impl Hold {
    /// Longest hold: a year.
    pub const MAX_SECS: i64 = 366 * 86_400;
    /// Longest reason.
    pub const MAX_REASON_BYTES: usize = 1024;

    /// Whether it holds at `now`.
    pub fn active(&self, now: Timestamp) -> bool {
        now < self.until
    }

    /// One line: "held until T (reason)".
    pub fn describe(&self, now: Timestamp) -> String {
        let why = if self.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", self.reason)
        };
        if self.active(now) {
            format!("held by the operator until {}{why}", self.until)
        } else {
            format!("a hold until {} has expired{why}", self.until)
        }
    }
}

pub use crate::error::BadCause;

impl HostState {
    /// Marks `v` bad for `cause`.
    pub fn mark_bad(&mut self, v: &Version, cause: Option<BadCause>) {
        self.bad.insert(v.clone());
        match cause {
            Some(c) => {
                self.bad_causes.insert(v.clone(), c);
            }
            None => {
                self.bad_causes.remove(v);
            }
        }
    }

    /// Clears `v`'s bad mark (it was installed and found healthy).
    pub fn clear_bad(&mut self, v: &Version) {
        self.bad.remove(v);
        self.bad_causes.remove(v);
    }

    /// The state once `to`, installed over `from`, is committed
    /// (docs/SPEC.md §11.4): the release running before becomes
    /// `previous` (the journal's `from` when the state names none), `to`
    /// is `current`, the ratchet rises to it, and it is no longer bad.
    pub fn commit(&mut self, to: &Version, from: Option<&Version>) {
        if self.current.as_ref() != Some(to) {
            self.previous = self.current.take().or(from.cloned());
        }
        self.current = Some(to.clone());
        if self.ratchet.as_ref().is_none_or(|r| to > r) {
            self.ratchet = Some(to.clone());
        }
        self.clear_bad(to);
    }

    /// The state once a rollback returned to `to` (none: nothing runs),
    /// with `bad` (the release left and why) marked bad: `previous` is
    /// cleared when it was the release returned to. The ratchet stays.
    pub fn roll_back(&mut self, to: Option<&Version>, bad: Option<(&Version, Option<BadCause>)>) {
        if let Some((v, cause)) = bad {
            self.mark_bad(v, cause);
        }
        self.current = to.cloned();
        if self.previous.as_ref() == to {
            self.previous = None;
        }
    }
}

/// A version on offer and since when this host has seen it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offered {
    /// The version.
    pub version: Version,
    /// First seen on offer.
    pub since: Timestamp,
}

/// What a conditional GET remembers about a document.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Validator {
    /// The ETag the server sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The Last-Modified the server sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// When the document was fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_at: Option<jiff::Timestamp>,
}

impl Validator {
    /// Whether a conditional request may rely on this validator. Servers
    /// derive validators from the file's mtime in whole seconds (and nginx's
    /// ETag from mtime and size), so a document fetched in the same second
    /// it was written could be replaced within that second without its
    /// validator changing: the host would then be told "not modified"
    /// until the next publication. Such validators are not used.
    pub fn usable(&self) -> bool {
        let Some(fetched) = self.fetched_at else {
            return false;
        };
        match self.last_modified.as_deref().and_then(parse_http_date) {
            Some(lm) => fetched.as_second() - lm.as_second() >= 2,
            None => self.etag.is_some() && self.last_modified.is_none(),
        }
    }
}

/// Parses an HTTP date (IMF-fixdate, as servers send in Last-Modified).
fn parse_http_date(s: &str) -> Option<jiff::Timestamp> {
    jiff::fmt::rfc2822::parse(s).ok().map(|z| z.timestamp())
}

/// The last verified channel pointer, for conditional GETs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelCache {
    /// The pointer envelope bytes (re-verified on every use).
    pub envelope: String,
    /// What the server said about it.
    pub validator: Validator,
}

impl ChannelCache {
    /// The cached pointer's payload, read without verifying it again: for
    /// what the host shows and reports of the pointer it last accepted
    /// (verified then; the state directory is root's alone). Never for a
    /// decision to install.
    pub fn pointer(&self) -> Option<charter_release::channel::ChannelPointer> {
        let env = charter_keys::dsse::Envelope::from_slice(
            self.envelope.as_bytes(),
            &charter_keys::Limits::default(),
        )
        .ok()?;
        serde_json::from_slice(env.unverified_payload()).ok()
    }
}

/// Which transaction is in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Installing `to` over `from`.
    Apply,
    /// Returning from `from` (failed or unwanted) to `to`.
    Rollback,
}

/// Steps of a transaction, in order. `Begin` is written before anything is
/// done; every later step is written right after the action it names
/// (so recovery also reads the `current` link to learn whether a swap
/// happened after the last journaled step; docs/SPEC.md §11.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Nothing outside the staging directory touched yet.
    Begin,
    /// `releases/<to>` complete and fsynced; `current` untouched.
    Staged,
    /// The pre-swap script ran.
    PreSwapDone,
    /// `current` points at `to`.
    Swapped,
    /// The service was restarted on `to`.
    Restarted,
    /// The post-swap script ran.
    PostSwapDone,
    /// The health check passed.
    Healthy,
}

/// The journal of the transaction in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    /// Transaction id (start time in ms, for history).
    pub id: String,
    /// Apply or rollback.
    pub op: Op,
    /// Release running before (None: first install).
    pub from: Option<Version>,
    /// Release being installed (or returned to; None: nothing to return to).
    pub to: Option<Version>,
    /// Last step reached.
    pub step: Step,
    /// Why a rollback happens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Mark `from` bad when the rollback completes.
    #[serde(default)]
    pub mark_bad: bool,
    /// Why `from` is marked bad (journals written before charter recorded
    /// it have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad_cause: Option<BadCause>,
    /// Restore the license file from the update's backup too (automatic
    /// rollbacks: nothing but the update can have changed it since).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restore_license: bool,
    /// When the transaction started.
    pub started: Timestamp,
}

/// One finished transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When it finished.
    pub time: Timestamp,
    /// apply, rollback, recover.
    pub op: String,
    /// From.
    pub from: Option<Version>,
    /// To.
    pub to: Option<Version>,
    /// committed, rolled-back, aborted, failed.
    pub result: String,
    /// Details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The state directory, locked for the lifetime of this value.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    _lock: File,
}

impl StateDir {
    /// Creates the directory if needed (with the umask's mode: packaging
    /// makes it 0755, checked by `trusted_dir`) and takes the lock, or
    /// fails naming the process that holds it.
    pub fn lock(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir.join("manifests")).map_err(|e| Error::io("create", dir, e))?;
        let path = dir.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(Error::Locked {
                path,
                holder: holder.trim().to_owned(),
            });
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        Ok(StateDir {
            dir: dir.to_owned(),
            _lock: file,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A random id of this host kept in `rollout-id` (0600), made on first
    /// use: what the rollout position is derived from on a host without a
    /// machine id.
    pub fn rollout_id(&self) -> Result<Vec<u8>> {
        let path = self.dir.join("rollout-id");
        match charter_keys::fsutil::read_capped(&path, 4096, "a rollout id") {
            Ok(b) if !b.is_empty() => return Ok(b),
            Ok(_) => {}
            Err(charter_keys::Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| {
            Error::io(
                "make a random id for",
                &path,
                std::io::Error::other(e.to_string()),
            )
        })?;
        let text = format!("{}\n", hex::encode(id));
        charter_keys::fsutil::write_atomic(&path, text.as_bytes(), 0o600)?;
        Ok(text.into_bytes())
    }

    fn read_json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        let path = self.dir.join(name);
        if !path.exists() {
            return Ok(None);
        }
        let bytes = charter_keys::fsutil::read_capped(&path, MAX_STATE_BYTES, "a state file")?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::StateCorrupt {
                path,
                reason: e.to_string(),
            })
    }

    fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
        bytes.push(b'\n');
        charter_keys::fsutil::write_atomic(&self.dir.join(name), &bytes, 0o600)?;
        Ok(())
    }

    /// The host state (default when none was written yet).
    pub fn state(&self) -> Result<HostState> {
        Ok(self.read_json("state.json")?.unwrap_or_default())
    }

    /// Replaces the host state.
    pub fn save_state(&self, s: &HostState) -> Result<()> {
        self.write_json("state.json", s)
    }

    /// The transaction in progress.
    pub fn journal(&self) -> Result<Option<Journal>> {
        self.read_json("journal.json")
    }

    /// Records a transaction step (durably, before acting on it).
    pub fn save_journal(&self, j: &Journal) -> Result<()> {
        self.write_json("journal.json", j)
    }

    /// Ends the transaction.
    pub fn clear_journal(&self) -> Result<()> {
        let path = self.dir.join("journal.json");
        match std::fs::remove_file(&path) {
            Ok(()) => charter_keys::fsutil::sync_dir(&self.dir).map_err(Error::from),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", &path, e)),
        }
    }

    /// Appends one history line (and fsyncs it).
    pub fn append_history(&self, h: &HistoryEntry) -> Result<()> {
        let path = self.dir.join("history.jsonl");
        let mut line = serde_json::to_vec(h).unwrap_or_default();
        line.push(b'\n');
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        f.write_all(&line)
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io("write", &path, e))
    }

    /// Every history line, oldest first (unparseable lines are skipped).
    pub fn history(&self) -> Result<Vec<HistoryEntry>> {
        let path = self.dir.join("history.jsonl");
        if !path.exists() {
            return Ok(Vec::new());
        }
        let bytes = charter_keys::fsutil::read_capped(&path, MAX_HISTORY_BYTES, "a history file")?;
        Ok(bytes
            .split(|b| *b == b'\n')
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect())
    }

    /// The cached channel pointer.
    pub fn channel_cache(&self) -> Result<Option<ChannelCache>> {
        self.read_json("channel.json")
    }

    /// Replaces the cached channel pointer.
    pub fn save_channel_cache(&self, c: &ChannelCache) -> Result<()> {
        self.write_json("channel.json", c)
    }

    /// The manifest envelope kept from the last fetch through the
    /// channel pointer, and its cosign bundle when one came with it; `None`
    /// when there is none or it is longer than `size` (the pointer's pin).
    /// A cache only: the caller checks the pin's digest and verifies the
    /// signatures again on every use, and fetches anew on any doubt.
    pub fn pinned_manifest(&self, size: u64) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
        let read = |name: &str, max: u64| {
            charter_keys::fsutil::read_capped(&self.dir.join(name), max, "a cached manifest").ok()
        };
        let envelope = read(PINNED_MANIFEST, size)?;
        let bundle = read(PINNED_BUNDLE, charter_keys::sigstore::MAX_BUNDLE_BYTES);
        Some((envelope, bundle))
    }

    /// Keeps the manifest (and bundle) just fetched and verified through
    /// the channel pointer, so that an unchanged pointer needs no download.
    pub fn save_pinned_manifest(&self, envelope: &[u8], bundle: Option<&[u8]>) -> Result<()> {
        // A crash between the two writes may leave a bundle beside a
        // manifest it does not sign: that pair fails to verify, and the
        // caller then fetches both anew.
        let bundle_path = self.dir.join(PINNED_BUNDLE);
        match bundle {
            Some(b) => charter_keys::fsutil::write_atomic(&bundle_path, b, 0o644)?,
            None => match std::fs::remove_file(&bundle_path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", bundle_path, e)),
            },
        }
        charter_keys::fsutil::write_atomic(&self.dir.join(PINNED_MANIFEST), envelope, 0o644)?;
        Ok(())
    }

    /// Path of the stored manifest of an installed version.
    pub fn manifest_path(&self, v: &Version) -> PathBuf {
        self.dir.join("manifests").join(format!("{v}.json"))
    }

    /// Stores the signed manifest of a release being installed.
    pub fn save_manifest(&self, v: &Version, envelope: &[u8]) -> Result<()> {
        charter_keys::fsutil::write_atomic(&self.manifest_path(v), envelope, 0o644)?;
        let _ = std::fs::remove_file(self.plain_record_path(v));
        Ok(())
    }

    /// Path of the record of an installed plain release.
    pub fn plain_record_path(&self, v: &Version) -> PathBuf {
        self.dir
            .join("manifests")
            .join(format!("{v}{}", PLAIN_RECORD_SUFFIX))
    }

    /// Stores the (encoded) record of a plain release being installed.
    pub fn save_plain_record(&self, v: &Version, record: &[u8]) -> Result<()> {
        charter_keys::fsutil::write_atomic(&self.plain_record_path(v), record, 0o644)?;
        let _ = std::fs::remove_file(self.manifest_path(v));
        Ok(())
    }

    /// The record of an installed plain release, if it is one.
    pub fn plain_record(
        &self,
        v: &Version,
    ) -> Result<Option<charter_release::plain::InstallRecord>> {
        let p = self.plain_record_path(v);
        if !p.exists() {
            return Ok(None);
        }
        // The file list of a large tree: as large as a manifest may be.
        let bytes = charter_keys::fsutil::read_capped(
            &p,
            charter_keys::Limits::default().max_envelope_bytes,
            "a plain release record",
        )?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| crate::Error::StateCorrupt {
                path: p,
                reason: e.to_string(),
            })
    }

    /// Where a release's SBOM is kept.
    pub fn sbom_path(&self, v: &Version) -> PathBuf {
        self.dir.join("sboms").join(format!("{v}.cdx.json"))
    }

    /// Keeps a release's (verified) SBOM.
    pub fn save_sbom(&self, v: &Version, bytes: &[u8]) -> Result<()> {
        let p = self.sbom_path(v);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(|e| crate::Error::io("create", d, e))?;
        }
        charter_keys::fsutil::write_atomic(&p, bytes, 0o644)?;
        Ok(())
    }

    /// The stored manifest envelope of a version.
    pub fn manifest(&self, v: &Version) -> Result<Vec<u8>> {
        Ok(charter_keys::fsutil::read_capped(
            &self.manifest_path(v),
            charter_keys::Limits::default().max_envelope_bytes,
            "a stored manifest",
        )?)
    }

    /// Path of the newest accepted trust root.
    pub fn root_path(&self) -> PathBuf {
        kept_root_path(&self.dir)
    }
}

/// Where the trust root in force is kept in state dir `dir` (readable
/// without the lock: `version` reports it).
pub fn kept_root_path(dir: &Path) -> PathBuf {
    dir.join("root.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    /// Commit and rollback as state transitions, without a disk.
    #[test]
    fn commit_and_rollback_transitions() {
        // First install: nothing before.
        let mut st = HostState::default();
        st.commit(&v("1.0.0"), None);
        assert_eq!(st.current, Some(v("1.0.0")));
        assert_eq!(
            (st.previous.clone(), st.ratchet.clone()),
            (None, Some(v("1.0.0")))
        );
        // An update: the old current becomes previous, the ratchet rises,
        // a bad mark on the new version goes.
        st.mark_bad(&v("2.0.0"), Some(BadCause::HealthCheck));
        st.commit(&v("2.0.0"), Some(&v("1.0.0")));
        assert_eq!(st.current, Some(v("2.0.0")));
        assert_eq!(st.previous, Some(v("1.0.0")));
        assert_eq!(st.ratchet, Some(v("2.0.0")));
        assert!(!st.bad.contains(&v("2.0.0")) && st.bad_causes.is_empty());
        // Committing what is current again (recovery of a committed
        // journal) keeps previous.
        st.commit(&v("2.0.0"), Some(&v("1.5.0")));
        assert_eq!(st.previous, Some(v("1.0.0")));
        // A signed downgrade never lowers the ratchet.
        st.commit(&v("1.5.0"), Some(&v("2.0.0")));
        assert_eq!(
            (st.current.clone(), st.ratchet.clone()),
            (Some(v("1.5.0")), Some(v("2.0.0")))
        );
        // Rolling back to previous: marked bad with its cause, previous
        // cleared, the ratchet where it was.
        st.roll_back(
            Some(&v("2.0.0")),
            Some((&v("1.5.0"), Some(BadCause::Start))),
        );
        assert_eq!(st.current, Some(v("2.0.0")));
        assert_eq!(st.previous, None);
        assert_eq!(st.bad_causes.get(&v("1.5.0")), Some(&BadCause::Start));
        assert_eq!(st.ratchet, Some(v("2.0.0")));
        // An interrupted update undone: nothing marked bad; a first
        // install undone leaves nothing current.
        let mut first = HostState::default();
        first.roll_back(None, None);
        assert_eq!((first.current, first.bad.len()), (None, 0));
    }
}
