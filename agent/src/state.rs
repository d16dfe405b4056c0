//! The agent's runtime license state, kept in a file authenticated with a
//! host secret (docs/SPEC.md §10.4): the highest license serial seen, the
//! last signed status, and a time high-water mark. An edited file, a
//! deleted file, or a clock moved back is noticed.

use std::path::{Path, PathBuf};

use hmac::{KeyInit, Mac};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{Error, Result};

const SECRET_FILE: &str = "host.key";
const STATE_FILE: &str = "license-state.json";
const SECRET_LEN: usize = 32;

/// What the state remembers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeState {
    /// The license id the state belongs to.
    #[serde(default)]
    pub license_id: Option<String>,
    /// Highest license serial ever loaded.
    #[serde(default)]
    pub highest_serial: u64,
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
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    state: RuntimeState,
    mac: String,
}

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

    fn mac(&self, state: &RuntimeState) -> String {
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.secret)
            .expect("HMAC takes any key length");
        m.update(b"charter-license-state-v1\0");
        m.update(&serde_json::to_vec(state).unwrap_or_default());
        hex::encode(m.finalize().into_bytes())
    }

    /// Loads and authenticates the state.
    pub fn load(&self) -> Result<Loaded> {
        let path = self.dir.join(STATE_FILE);
        if !path.exists() {
            return Ok(if self.created_secret {
                Loaded::Fresh
            } else {
                Loaded::Deleted
            });
        }
        let bytes = charter_keys::fsutil::read_capped(&path, 4 << 20, "a license state file")?;
        let Ok(file) = serde_json::from_slice::<File>(&bytes) else {
            return Ok(Loaded::Tampered(format!(
                "{} does not parse",
                path.display()
            )));
        };
        let want = self.mac(&file.state);
        // Constant-time comparison of the MACs.
        let ok = want.len() == file.mac.len()
            && want
                .bytes()
                .zip(file.mac.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !ok {
            return Ok(Loaded::Tampered(format!(
                "{} fails its authentication check",
                path.display()
            )));
        }
        Ok(Loaded::Ok(file.state))
    }

    /// Writes the state atomically with its MAC (mode 0600).
    pub fn save(&self, state: &RuntimeState) -> Result<()> {
        let file = File {
            mac: self.mac(state),
            state: state.clone(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
        bytes.push(b'\n');
        charter_keys::fsutil::write_atomic(&self.dir.join(STATE_FILE), &bytes, 0o600)?;
        Ok(())
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
