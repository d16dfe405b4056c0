//! The trust root: which keys may sign for which role, with thresholds, a
//! version and an expiry; and rotation from one root to the next
//! (TUF's rule). See docs/SPEC.md §4 and §5.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::dsse::{Envelope, PAYLOAD_ROOT, RoleKeys};
use crate::{Clock, Error, KeyId, Limits, PublicKey, Result, Role};

/// One key as listed in a root.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Always `ed25519`.
    pub keytype: String,
    /// Standard base64 of the 32 raw public key bytes.
    pub public: String,
}

impl KeyEntry {
    /// The entry for a public key.
    pub fn from_key(key: &PublicKey) -> Self {
        KeyEntry {
            keytype: "ed25519".into(),
            public: base64::engine::general_purpose::STANDARD.encode(key.as_raw()),
        }
    }
}

/// A role: the keys that may sign for it and how many must.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RoleEntry {
    /// Key ids (each must be listed under `keys`).
    pub keyids: Vec<KeyId>,
    /// How many distinct keys of `keyids` must sign (1 ..= keyids.len()).
    pub threshold: u32,
}

/// The four roles of a root.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Roles {
    /// Signs roots.
    pub root: RoleEntry,
    /// Signs release manifests.
    pub release: RoleEntry,
    /// Signs channel pointers.
    pub channel: RoleEntry,
    /// Signs licenses and status documents.
    pub license: RoleEntry,
}

impl Roles {
    /// The entry for a role.
    pub fn get(&self, role: Role) -> &RoleEntry {
        match role {
            Role::Root => &self.root,
            Role::Release => &self.release,
            Role::Channel => &self.channel,
            Role::License => &self.license,
        }
    }

    /// The entry for a role, mutable.
    pub fn get_mut(&mut self, role: Role) -> &mut RoleEntry {
        match role {
            Role::Root => &mut self.root,
            Role::Release => &mut self.release,
            Role::Channel => &mut self.channel,
            Role::License => &mut self.license,
        }
    }
}

/// The payload of root.json.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RootDocument {
    /// Starts at 1; each rotation adds exactly one.
    pub version: u64,
    /// After this instant the root is no longer trusted.
    pub expires: Timestamp,
    /// Every key any role uses, by key id.
    pub keys: BTreeMap<KeyId, KeyEntry>,
    /// The roles.
    pub roles: Roles,
}

impl RootDocument {
    /// Builds a root from the keys and threshold of each role. Every role
    /// must be given; the result is validated.
    pub fn build(
        version: u64,
        expires: Timestamp,
        roles: &[(Role, &[PublicKey], u32)],
        limits: &Limits,
    ) -> Result<Self> {
        let mut keys = BTreeMap::new();
        let mut entries: BTreeMap<Role, RoleEntry> = BTreeMap::new();
        for (role, role_keys, threshold) in roles {
            for k in role_keys.iter() {
                keys.insert(k.key_id(), KeyEntry::from_key(k));
            }
            entries.insert(
                *role,
                RoleEntry {
                    keyids: role_keys.iter().map(PublicKey::key_id).collect(),
                    threshold: *threshold,
                },
            );
        }
        let mut take = |role: Role| {
            entries
                .remove(&role)
                .ok_or_else(|| Error::InvalidRoot(format!("no keys given for role `{role}`")))
        };
        let doc = RootDocument {
            version,
            expires,
            keys,
            roles: Roles {
                root: take(Role::Root)?,
                release: take(Role::Release)?,
                channel: take(Role::Channel)?,
                license: take(Role::License)?,
            },
        };
        doc.validate(limits)?;
        Ok(doc)
    }

    /// Drops keys that no role lists any more (after a rotation removed them).
    pub fn prune_unused_keys(&mut self) {
        let used: BTreeSet<KeyId> = Role::ALL
            .iter()
            .flat_map(|r| self.roles.get(*r).keyids.iter().copied())
            .collect();
        self.keys.retain(|id, _| used.contains(id));
    }

    /// Checks that the document is internally consistent and returns the
    /// parsed keys (docs/SPEC.md §4):
    /// the version is at least 1; at most `max_root_keys` keys; every key is
    /// an Ed25519 key whose id is the id derived from it; every role lists
    /// at least one key, each listed under `keys`, none twice, and has a
    /// threshold between 1 and its number of keys and no higher than
    /// `max_signatures` (an envelope carries no more, so a higher threshold
    /// could never be met).
    pub fn validate(&self, limits: &Limits) -> Result<BTreeMap<KeyId, PublicKey>> {
        if self.version == 0 {
            return Err(Error::InvalidRoot("version must be at least 1".into()));
        }
        if self.keys.len() > limits.max_root_keys {
            return Err(Error::InvalidRoot(format!(
                "{} keys, more than the limit of {}",
                self.keys.len(),
                limits.max_root_keys
            )));
        }
        let mut parsed = BTreeMap::new();
        for (id, entry) in &self.keys {
            if entry.keytype != "ed25519" {
                return Err(Error::InvalidRoot(format!(
                    "key {id} has keytype `{}`; only `ed25519` is supported",
                    entry.keytype
                )));
            }
            let raw = base64::engine::general_purpose::STANDARD
                .decode(entry.public.as_bytes())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    Error::InvalidRoot(format!("key {id}: public is not base64 of 32 bytes"))
                })?;
            let key = PublicKey::from_raw(&raw)
                .map_err(|e| Error::InvalidRoot(format!("key {id}: {e}")))?;
            if key.key_id() != *id {
                return Err(Error::InvalidRoot(format!(
                    "key listed as {id} has key id {}",
                    key.key_id()
                )));
            }
            parsed.insert(*id, key);
        }
        for role in Role::ALL {
            let entry = self.roles.get(role);
            let unique: BTreeSet<_> = entry.keyids.iter().collect();
            if unique.len() != entry.keyids.len() {
                return Err(Error::InvalidRoot(format!(
                    "role `{role}` lists a key twice"
                )));
            }
            if let Some(missing) = entry.keyids.iter().find(|k| !parsed.contains_key(k)) {
                return Err(Error::InvalidRoot(format!(
                    "role `{role}` names key {missing}, which is not under `keys`"
                )));
            }
            if entry.threshold == 0 || entry.threshold as usize > entry.keyids.len() {
                return Err(Error::InvalidRoot(format!(
                    "role `{role}` has threshold {} with {} key(s); it must be between 1 and the number of keys",
                    entry.threshold,
                    entry.keyids.len()
                )));
            }
            if entry.threshold as usize > limits.max_signatures {
                return Err(Error::InvalidRoot(format!(
                    "role `{role}` has threshold {}, but an envelope carries at most {} signatures, so it could never be met",
                    entry.threshold, limits.max_signatures
                )));
            }
        }
        Ok(parsed)
    }

    /// Checks that this root, as the rotation from `previous`, can be
    /// signed at all (docs/SPEC.md §5): one envelope must carry a threshold
    /// of the old root keys and a threshold of the new ones, a key in both
    /// sets serving both, within `max_signatures`. Without this a root
    /// could be published that no envelope can ever carry to the hosts.
    pub fn check_rotation_from(&self, previous: &RootDocument, limits: &Limits) -> Result<()> {
        let (old, new) = (&previous.roles.root, &self.roles.root);
        let needed = rotation_signatures_needed(old, new);
        if needed > limits.max_signatures as u64 {
            let old_ids: BTreeSet<_> = old.keyids.iter().collect();
            let shared = new.keyids.iter().filter(|k| old_ids.contains(k)).count();
            return Err(Error::RotationCannotFit {
                from: previous.version,
                to: self.version,
                needed,
                old_threshold: old.threshold,
                new_threshold: new.threshold,
                shared,
                max: limits.max_signatures,
            });
        }
        Ok(())
    }

    /// The payload bytes: pretty-printed JSON with a final newline.
    pub fn to_payload(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    fn from_payload(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::Malformed {
            what: "root",
            reason: e.to_string(),
        })
    }
}

/// A trust root whose signatures have been checked. The only ways to get
/// one are [`VerifiedRoot::from_trusted`] (for the root the host was shipped
/// with, checked against its own root role) and [`VerifiedRoot::rotate`].
#[derive(Debug, Clone)]
pub struct VerifiedRoot {
    doc: RootDocument,
    keys: BTreeMap<KeyId, PublicKey>,
    envelope: Vec<u8>,
}

impl VerifiedRoot {
    /// Accepts a root the caller already trusts out of band (shipped in the
    /// package, pinned in the config), after checking it is well formed and
    /// signed by a threshold of its own root keys (docs/SPEC.md §5, step 1).
    /// Expiry is checked separately, after any rotation, by
    /// [`VerifiedRoot::check_expiry`].
    pub fn from_trusted(bytes: &[u8], limits: &Limits) -> Result<Self> {
        let env = Envelope::from_slice(bytes, limits)?;
        if env.payload_type() != PAYLOAD_ROOT {
            return Err(Error::WrongPayloadType {
                expected: PAYLOAD_ROOT.into(),
                found: env.payload_type().into(),
            });
        }
        let doc = RootDocument::from_payload(env.unverified_payload())?;
        let keys = doc.validate(limits)?;
        let own = role_keys(&doc, &keys, Role::Root);
        env.verify(PAYLOAD_ROOT, &own)?;
        Ok(VerifiedRoot {
            doc,
            keys,
            envelope: bytes.to_vec(),
        })
    }

    /// Accepts root version N+1 on the strength of this root, version N
    /// (docs/SPEC.md §5, step 2, TUF's rule):
    ///
    /// a. the envelope meets the threshold of **this** root's root role,
    ///    checked before the new payload is parsed;
    /// b. the new payload is a well-formed root;
    /// c. its version is exactly N+1;
    /// d. the envelope also meets the threshold of the **new** root's own
    ///    root role.
    ///
    /// The new root's expiry is not checked here: an intermediate root in a
    /// chain may have expired; only the last one must be current.
    pub fn rotate(&self, bytes: &[u8], limits: &Limits) -> Result<VerifiedRoot> {
        let env = Envelope::from_slice(bytes, limits)?;
        let verified = env.verify(PAYLOAD_ROOT, &self.role_keys(Role::Root))?;
        let doc = RootDocument::from_payload(verified.payload())?;
        let keys = doc.validate(limits)?;
        if Some(doc.version) != self.doc.version.checked_add(1) {
            return Err(Error::RootVersion {
                trusted: self.doc.version,
                found: doc.version,
            });
        }
        env.verify(PAYLOAD_ROOT, &role_keys(&doc, &keys, Role::Root))?;
        Ok(VerifiedRoot {
            doc,
            keys,
            envelope: bytes.to_vec(),
        })
    }

    /// Walks the rotation chain from this root: asks `fetch` for version
    /// N+1, N+2, ... until it answers `None`, accepting each with
    /// [`VerifiedRoot::rotate`], at most `limits.max_root_rotations` times;
    /// then checks that the last root has not expired (docs/SPEC.md §5,
    /// steps 2 to 4). Returns the newest root and how many rotations were
    /// taken.
    pub fn update_chain<F>(
        self,
        mut fetch: F,
        limits: &Limits,
        clock: &dyn Clock,
    ) -> Result<(VerifiedRoot, u32)>
    where
        F: FnMut(u64) -> Result<Option<Vec<u8>>>,
    {
        let mut current = self;
        let mut rotations = 0u32;
        while let Some(next) = current.version().checked_add(1)
            && let Some(bytes) = fetch(next)?
        {
            if rotations == limits.max_root_rotations {
                return Err(Error::TooManyRotations {
                    max: limits.max_root_rotations,
                });
            }
            current = current.rotate(&bytes, limits)?;
            rotations += 1;
        }
        current.check_expiry(clock)?;
        Ok((current, rotations))
    }

    /// Fails with [`Error::Expired`] when the root's expiry has passed.
    pub fn check_expiry(&self, clock: &dyn Clock) -> Result<()> {
        let now = clock.now();
        if now >= self.doc.expires {
            return Err(Error::Expired {
                what: format!("trust root version {}", self.doc.version),
                expires: self.doc.expires,
                now,
            });
        }
        Ok(())
    }

    /// The root's version.
    pub fn version(&self) -> u64 {
        self.doc.version
    }

    /// The root's expiry.
    pub fn expires(&self) -> Timestamp {
        self.doc.expires
    }

    /// The verified document.
    pub fn document(&self) -> &RootDocument {
        &self.doc
    }

    /// The envelope bytes this root was verified from.
    pub fn envelope_bytes(&self) -> &[u8] {
        &self.envelope
    }

    /// The keys and threshold of a role.
    pub fn role_keys(&self, role: Role) -> RoleKeys {
        role_keys(&self.doc, &self.keys, role)
    }

    /// Verifies an envelope of `payload_type` against `role` of this root,
    /// returning its payload. The caller parses the payload only after this.
    pub fn verify_envelope<'e>(
        &self,
        envelope: &'e Envelope,
        payload_type: &str,
        role: Role,
    ) -> Result<crate::dsse::VerifiedPayload<'e>> {
        envelope.verify(payload_type, &self.role_keys(role))
    }
}

/// The fewest signatures one envelope needs to meet both the old root
/// role's threshold and the new one's: `t_old + t_new - min(shared, t_old,
/// t_new)`, since a signature by a key both roles list counts for both.
/// (Both thresholds are at most their role's key count, which validation
/// checks, so this many distinct keys exist.)
pub fn rotation_signatures_needed(old: &RoleEntry, new: &RoleEntry) -> u64 {
    let old_ids: BTreeSet<_> = old.keyids.iter().collect();
    let shared = new.keyids.iter().filter(|k| old_ids.contains(k)).count() as u64;
    let (t_old, t_new) = (u64::from(old.threshold), u64::from(new.threshold));
    t_old + t_new - shared.min(t_old).min(t_new)
}

fn role_keys(doc: &RootDocument, keys: &BTreeMap<KeyId, PublicKey>, role: Role) -> RoleKeys {
    let entry = doc.roles.get(role);
    RoleKeys {
        role,
        threshold: entry.threshold,
        keys: entry
            .keyids
            .iter()
            .filter_map(|id| keys.get(id).map(|k| (*id, k.clone())))
            .collect(),
    }
}
