//! The agent's runtime license state, kept in a file authenticated with a
//! host secret (docs/SPEC.md §10.4): the highest serial seen for each
//! license id, the last signed status, and a time high-water mark. An edited file, a
//! deleted file, or a clock moved back is noticed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hmac::{KeyInit, Mac};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Largest runtime state file read.
const MAX_STATE_BYTES: u64 = 4 << 20;

const SECRET_FILE: &str = "host.key";
const STATE_FILE: &str = "license-state.json";
const SECRET_LEN: usize = 32;

/// Most license ids whose serial the state remembers (docs/SPEC.md §10.4).
/// Past it, the id recorded longest ago is forgotten.
pub const MAX_SERIALS: usize = 256;

/// The highest serial seen for one license id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialMark {
    /// The highest serial.
    pub serial: u64,
    /// When it was recorded (host clock): the oldest mark goes first when
    /// the map is full.
    pub recorded_at: Timestamp,
}

/// What the state remembers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeState {
    /// The serial ratchet: the highest serial seen for each license id
    /// (at most [`MAX_SERIALS`] ids), so installing another license in
    /// between does not reopen an old serial of the first.
    pub serials: BTreeMap<String, SerialMark>,
    /// Time high-water mark: the latest instant this host is known to have
    /// reached (clock readings, signed documents). The clock must not fall
    /// below it by more than the tolerance.
    pub time_floor: Timestamp,
    /// The last verified status document (envelope JSON), if any.
    #[serde(default)]
    pub last_status: Option<String>,
    /// When the last status fetch succeeded (host clock).
    #[serde(default)]
    pub last_status_fetch: Option<Timestamp>,
    /// Audit log: number of lines and hash of the last one.
    #[serde(default)]
    pub audit_lines: u64,
    /// Hash of the last audit line (hex).
    #[serde(default)]
    pub audit_head: Option<String>,
    /// The host ids this state was last recorded on (digests), to notice a
    /// state copied to a cloned VM (docs/SPEC.md §10.4). Absent in states
    /// written before it existed, which keeps their MAC valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ids: Option<crate::fingerprint::SeenIds>,
    /// Set on a state this agent started from nothing (a first run, or
    /// the host secret and the state deleted together), cleared when the
    /// first signed status is accepted. While set, a license with a
    /// `status_url` is `invalid` (docs/SPEC.md §10.4, §10.5 rule 3b): a
    /// wiped state must not forget a revocation, a suspension or a newer
    /// serial. Absent (false) in states written before it existed, which
    /// keeps their MAC valid.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub awaiting_first_status: bool,
}

impl RuntimeState {
    /// The highest serial seen for `license_id`, if it was ever recorded.
    pub fn highest_serial(&self, license_id: &str) -> Option<u64> {
        self.serials.get(license_id).map(|m| m.serial)
    }

    /// Records `serial` for `license_id` when it is new or higher than the
    /// one held; when that adds an id past [`MAX_SERIALS`], the mark
    /// recorded longest ago is dropped. Returns whether anything changed.
    pub fn record_serial(&mut self, license_id: &str, serial: u64, now: Timestamp) -> bool {
        if self
            .highest_serial(license_id)
            .is_some_and(|held| held >= serial)
        {
            return false;
        }
        self.serials.insert(
            license_id.to_owned(),
            SerialMark {
                serial,
                recorded_at: now,
            },
        );
        while self.serials.len() > MAX_SERIALS {
            let oldest = self
                .serials
                .iter()
                .filter(|(id, _)| id.as_str() != license_id)
                .min_by_key(|(_, m)| m.recorded_at)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => self.serials.remove(&id),
                None => break,
            };
        }
        true
    }
}

/// The state as the previous version wrote it (one license id, one
/// serial, MAC label v1): still loaded, and migrated into
/// [`RuntimeState::serials`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyState {
    #[serde(default)]
    license_id: Option<String>,
    #[serde(default)]
    highest_serial: u64,
    time_floor: Timestamp,
    #[serde(default)]
    last_status: Option<String>,
    #[serde(default)]
    last_status_fetch: Option<Timestamp>,
    #[serde(default)]
    audit_lines: u64,
    #[serde(default)]
    audit_head: Option<String>,
}

impl LegacyState {
    fn migrate(self) -> RuntimeState {
        let mut serials = BTreeMap::new();
        if let Some(id) = self.license_id {
            serials.insert(
                id,
                SerialMark {
                    serial: self.highest_serial,
                    recorded_at: self.time_floor,
                },
            );
        }
        RuntimeState {
            serials,
            time_floor: self.time_floor,
            last_status: self.last_status,
            last_status_fetch: self.last_status_fetch,
            audit_lines: self.audit_lines,
            audit_head: self.audit_head,
            host_ids: None,
            awaiting_first_status: false,
        }
    }
}

#[derive(Serialize)]
struct File<'a> {
    state: &'a RuntimeState,
    mac: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    state: serde_json::Value,
    mac: String,
}

const MAC_LABEL: &[u8] = b"charter-license-state-v2\0";
const LEGACY_MAC_LABEL: &[u8] = b"charter-license-state-v1\0";

/// The result of loading the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// First run: neither secret nor state existed.
    Fresh,
    /// The state verified.
    Ok(RuntimeState),
    /// The state file does not verify (edited, truncated, or written with
    /// another secret).
    Tampered(String),
    /// The secret exists but the state file is gone.
    Deleted,
}

/// The state directory with its host secret.
pub struct StateStore {
    dir: PathBuf,
    secret: Zeroizing<Vec<u8>>,
    created_secret: bool,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateStore({})", self.dir.display())
    }
}

impl StateStore {
    /// Opens the state directory, creating the host secret (0600, create
    /// new) on first use. A secret file that group or others can access is
    /// refused.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        let path = dir.join(SECRET_FILE);
        let mut created_secret = false;
        if !path.exists() {
            let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
            getrandom::fill(secret.as_mut()).map_err(|_| charter_keys::Error::Rng)?;
            match charter_keys::fsutil::create_private(&path, secret.as_ref()) {
                Ok(()) => created_secret = true,
                Err(charter_keys::Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
        }
        let secret = Zeroizing::new(charter_keys::fsutil::read_private(
            &path,
            1024,
            "a host secret",
        )?);
        if secret.len() != SECRET_LEN {
            return Err(Error::Invalid {
                what: "host secret",
                reason: format!("{} is not {SECRET_LEN} bytes", path.display()),
            });
        }
        Ok(StateStore {
            dir: dir.to_owned(),
            secret,
            created_secret,
        })
    }

    /// Opens the state read-only (the updater, as root, checking an
    /// entitlement): never creates the secret.
    pub fn open_existing(dir: &Path) -> Result<Self> {
        let path = dir.join(SECRET_FILE);
        if !path.exists() {
            return Err(Error::Invalid {
                what: "license state",
                reason: format!(
                    "{} has no host key yet: the agent creates it on its first start \
                     (`systemctl start charter-agent`, or `charter-agent run`)",
                    dir.display()
                ),
            });
        }
        let secret = Zeroizing::new(charter_keys::fsutil::read_private(
            &path,
            1024,
            "a host secret",
        )?);
        Ok(StateStore {
            dir: dir.to_owned(),
            secret,
            created_secret: false,
        })
    }

    fn mac(&self, label: &[u8], state: &impl Serialize) -> String {
        self.keyed_hash(label, &serde_json::to_vec(state).unwrap_or_default())
    }

    fn mac_matches(&self, label: &[u8], state: &impl Serialize, mac: &str) -> bool {
        let want = self.mac(label, state);
        // Constant-time comparison of the MACs.
        want.len() == mac.len()
            && want
                .bytes()
                .zip(mac.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// Loads and authenticates the state. A state the previous version
    /// wrote (one license id and serial) is authenticated as it was
    /// written and migrated; the next save writes the current format.
    pub fn load(&self) -> Result<Loaded> {
        let path = self.dir.join(STATE_FILE);
        if !path.exists() {
            return Ok(if self.created_secret {
                Loaded::Fresh
            } else {
                Loaded::Deleted
            });
        }
        let bytes =
            charter_keys::fsutil::read_capped(&path, MAX_STATE_BYTES, "a license state file")?;
        let Ok(file) = serde_json::from_slice::<RawFile>(&bytes) else {
            return Ok(Loaded::Tampered(format!(
                "{} does not parse",
                path.display()
            )));
        };
        let state = match serde_json::from_value::<RuntimeState>(file.state.clone()) {
            Ok(state) => self
                .mac_matches(MAC_LABEL, &state, &file.mac)
                .then_some(state),
            Err(_) => match serde_json::from_value::<LegacyState>(file.state) {
                Ok(old) => self
                    .mac_matches(LEGACY_MAC_LABEL, &old, &file.mac)
                    .then(|| old.migrate()),
                Err(_) => {
                    return Ok(Loaded::Tampered(format!(
                        "{} does not parse",
                        path.display()
                    )));
                }
            },
        };
        Ok(match state {
            Some(state) => Loaded::Ok(state),
            None => Loaded::Tampered(format!("{} fails its authentication check", path.display())),
        })
    }

    /// Writes the state atomically with its MAC (mode 0600).
    pub fn save(&self, state: &RuntimeState) -> Result<()> {
        let file = File {
            mac: self.mac(MAC_LABEL, state),
            state,
        };
        let mut bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
        bytes.push(b'\n');
        charter_keys::fsutil::write_atomic(&self.dir.join(STATE_FILE), &bytes, 0o600)?;
        Ok(())
    }

    /// The state file.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// An HMAC of `data` under the host secret with a purpose label (the
    /// audit log uses it).
    pub fn keyed_hash(&self, label: &[u8], data: &[u8]) -> String {
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.secret)
            .expect("HMAC takes any key length");
        m.update(label);
        m.update(data);
        hex::encode(m.finalize().into_bytes())
    }
}

/// The state opened for reading only (the updater, as root, checking an
/// entitlement): it authenticates and loads the state and has no way to
/// save it or to create the host secret.
#[derive(Debug)]
pub struct StateReader(StateStore);

impl StateReader {
    /// Opens an existing state ([`StateStore::open_existing`]).
    pub fn open_existing(dir: &Path) -> Result<Self> {
        StateStore::open_existing(dir).map(StateReader)
    }

    /// Loads and authenticates the state ([`StateStore::load`]).
    pub fn load(&self) -> Result<Loaded> {
        self.0.load()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn serial_ratchet_keeps_each_license_id() {
        let mut rt = RuntimeState::default();
        assert!(rt.record_serial("a", 2, at(0)));
        assert!(rt.record_serial("b", 1, at(1)));
        assert!(
            !rt.record_serial("a", 1, at(2)),
            "a lower serial never lowers the mark"
        );
        assert!(!rt.record_serial("a", 2, at(3)));
        assert_eq!(rt.highest_serial("a"), Some(2));
        assert_eq!(rt.highest_serial("b"), Some(1));
        assert_eq!(rt.highest_serial("c"), None);
    }

    #[test]
    fn serial_ratchet_is_bounded_and_forgets_the_oldest() {
        let mut rt = RuntimeState::default();
        for i in 0..MAX_SERIALS {
            rt.record_serial(&format!("lic-{i}"), 1, at(i as i64));
        }
        assert!(rt.record_serial("new", 1, at(10_000)));
        assert_eq!(rt.serials.len(), MAX_SERIALS);
        assert_eq!(rt.highest_serial("lic-0"), None, "the oldest mark went");
        assert_eq!(rt.highest_serial("lic-1"), Some(1));
        assert_eq!(rt.highest_serial("new"), Some(1));
    }
}
