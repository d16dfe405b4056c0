//! This host's fingerprints (docs/SPEC.md §10.3). Both are HMAC-SHA256
//! keyed by the product name, so fingerprints of one host differ between
//! vendors and the raw ids never leave the host.
//!
//! - **v1** (64 hex digits): over `/etc/machine-id` and the DMI product
//!   UUID only when that file is world-readable, which it rarely is. In
//!   practice machine-id alone, so a cloned VM keeps it. Kept so that
//!   licenses issued for it keep working.
//! - **v2** (`v2:` and 64 hex digits): over machine-id **and** the DMI
//!   product UUID as root reads it. The unprivileged agent cannot read that
//!   file (mode 0400), so root writes a product-keyed digest of it to
//!   `host_ids` at every agent start (`charter-agent host-ids`, the unit's
//!   `ExecStartPre=+`), and the root updater reads the DMI file itself.
//!
//! A license names the form it binds by the form of each `machines` entry.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What marks a v2 fingerprint (and a v2 `machines` entry).
pub const V2_PREFIX: &str = "v2:";

/// Largest `host_ids` file read.
const MAX_HOST_IDS_BYTES: u64 = 4096;

/// Where the ids are read from (tests point these elsewhere).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sources {
    /// systemd's machine id.
    #[serde(default = "default_machine_id")]
    pub machine_id: PathBuf,
    /// The DMI product UUID (root-readable only on most systems).
    #[serde(default = "default_dmi")]
    pub dmi_product_uuid: PathBuf,
    /// Where root leaves a digest of the DMI product UUID for the agent
    /// (`charter-agent host-ids`).
    #[serde(default = "default_host_ids")]
    pub host_ids: PathBuf,
    /// The uid owning the agent's config file (set by `Config::load`): a
    /// `host_ids` file it owns is trusted like a root-owned one, since that
    /// user chooses where `host_ids` is anyway.
    #[serde(skip)]
    pub(crate) config_owner: Option<u32>,
}

fn default_machine_id() -> PathBuf {
    PathBuf::from("/etc/machine-id")
}
fn default_dmi() -> PathBuf {
    PathBuf::from("/sys/class/dmi/id/product_uuid")
}
fn default_host_ids() -> PathBuf {
    PathBuf::from("/run/charter-host-ids")
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            machine_id: default_machine_id(),
            dmi_product_uuid: default_dmi(),
            host_ids: default_host_ids(),
            config_owner: None,
        }
    }
}

/// The two forms of a fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// machine-id (and a world-readable DMI UUID): 64 hex digits.
    V1,
    /// machine-id and the DMI product UUID: `v2:` and 64 hex digits.
    V2,
}

impl Form {
    /// The form of a license's `machines` entry, or None when it is neither
    /// 64 lowercase hex digits nor `v2:` followed by them.
    pub fn of_entry(entry: &str) -> Option<Form> {
        match entry.strip_prefix(V2_PREFIX) {
            Some(rest) if hex64(rest) => Some(Form::V2),
            Some(_) => None,
            None if hex64(entry) => Some(Form::V1),
            None => None,
        }
    }
}

fn hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// How the DMI product UUID is learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmiRead {
    /// Read `dmi_product_uuid` itself: root (the updater, `host-ids`, and
    /// `charter-agent fingerprint` run as root).
    Direct,
    /// Read the digest root left at `host_ids`: the unprivileged agent.
    Copy,
}

impl DmiRead {
    /// Direct for root, the copy for anyone else (`charter-agent
    /// fingerprint` and `config test`).
    pub fn for_this_process() -> Self {
        if rustix::process::geteuid().is_root() {
            DmiRead::Direct
        } else {
            DmiRead::Copy
        }
    }
}

/// The DMI product UUID as this process learned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dmi {
    /// Its digest (HMAC keyed by the product), 64 hex digits.
    Present(String),
    /// This host has none (no `/sys/class/dmi`: containers, many ARM
    /// boards).
    Absent,
    /// It could not be learned, and why (the `host_ids` copy is missing,
    /// not root's, for another product; the DMI file is unreadable).
    Unknown(String),
}

impl Dmi {
    /// What the v2 fingerprint and the runtime state use for it.
    fn token(&self) -> Option<&str> {
        match self {
            Dmi::Present(d) => Some(d),
            Dmi::Absent => Some("none"),
            Dmi::Unknown(_) => None,
        }
    }
}

/// The ids the runtime state remembers (digests keyed by the product, never
/// the raw ids), to notice a state copied to a clone (docs/SPEC.md §10.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeenIds {
    /// Digest of the machine id.
    pub machine_id: String,
    /// Digest of the DMI product UUID, or `none` when the host has none.
    pub dmi: String,
}

/// The `host_ids` file root writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostIdsFile {
    /// The product whose key made the digest.
    product: String,
    /// The DMI product UUID's digest; null: this host has none.
    dmi: Option<String>,
}

/// This host's ids for one product, and the fingerprints made of them.
#[derive(Debug, Clone)]
pub struct HostIds {
    machine_digest: String,
    dmi: Dmi,
    v1: String,
    v2: Option<String>,
}

fn mac(product: &str, label: &[u8], parts: &[&[u8]]) -> Result<String> {
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(product.as_bytes()).map_err(|_| {
        Error::Invalid {
            what: "product name",
            reason: "cannot key the fingerprint".into(),
        }
    })?;
    m.update(label);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            m.update(b"\0");
        }
        m.update(p);
    }
    Ok(hex::encode(m.finalize().into_bytes()))
}

fn normalize(bytes: Vec<u8>) -> Option<String> {
    let s = String::from_utf8(bytes).ok()?.trim().to_ascii_lowercase();
    (!s.is_empty()).then_some(s)
}

fn read_id(path: &Path) -> Option<String> {
    normalize(charter_keys::fsutil::read_capped(path, 4096, "a machine id").ok()?)
}

fn read_machine_id(sources: &Sources) -> Result<String> {
    read_id(&sources.machine_id).ok_or_else(|| Error::Invalid {
        what: "machine id",
        reason: format!("{} is missing or empty", sources.machine_id.display()),
    })
}

/// The v1 fingerprint of this host for `product`: 64 lowercase hex digits.
pub fn fingerprint(product: &str, sources: &Sources) -> Result<String> {
    let machine = read_machine_id(sources)?;
    // v1 reads the DMI UUID only when world-readable, so that root and the
    // agent agree; on most systems it is 0400 and v1 is machine-id alone.
    let dmi = std::fs::metadata(&sources.dmi_product_uuid)
        .ok()
        .filter(|m| m.permissions().mode() & 0o004 != 0)
        .and_then(|_| read_id(&sources.dmi_product_uuid))
        .unwrap_or_default();
    mac(
        product,
        b"charter-fingerprint-v1\0",
        &[machine.as_bytes(), dmi.as_bytes()],
    )
}

/// Reads the DMI product UUID file itself (root), as its digest.
pub fn read_dmi_direct(product: &str, sources: &Sources) -> Dmi {
    let path = &sources.dmi_product_uuid;
    match charter_keys::fsutil::read_capped(path, 4096, "a DMI product UUID") {
        Err(charter_keys::Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Dmi::Absent
        }
        Err(e) => Dmi::Unknown(e.to_string()),
        Ok(bytes) => match normalize(bytes) {
            None => Dmi::Absent,
            Some(uuid) => match mac(product, b"charter-dmi-v2\0", &[uuid.as_bytes()]) {
                Ok(d) => Dmi::Present(d),
                Err(e) => Dmi::Unknown(e.to_string()),
            },
        },
    }
}

/// Reads the digest root left at `host_ids`. It must be a regular file
/// owned by root (or by the agent config's owner) that neither group nor
/// others may write, and written for `product`.
pub fn read_dmi_copy(product: &str, sources: &Sources) -> Dmi {
    let path = &sources.host_ids;
    let md = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Dmi::Unknown(format!(
                "{} is missing: root writes it with `charter-agent host-ids` \
                 (the agent's unit does, before the agent starts)",
                path.display()
            ));
        }
        Err(e) => return Dmi::Unknown(format!("cannot stat {}: {e}", path.display())),
        Ok(md) => md,
    };
    let trusted = md.uid() == 0 || Some(md.uid()) == sources.config_owner;
    if !md.is_file() || !trusted || md.mode() & 0o022 != 0 {
        return Dmi::Unknown(format!(
            "{} is not a regular file owned by root and writable by root alone \
             (uid {}, mode {:o}): not trusted",
            path.display(),
            md.uid(),
            md.mode() & 0o7777
        ));
    }
    let parsed = charter_keys::fsutil::read_capped(path, MAX_HOST_IDS_BYTES, "a host ids file")
        .map_err(|e| e.to_string())
        .and_then(|b| {
            serde_json::from_slice::<HostIdsFile>(&b)
                .map_err(|e| format!("{} does not parse: {e}", path.display()))
        });
    match parsed {
        Err(why) => Dmi::Unknown(why),
        Ok(f) if f.product != product => Dmi::Unknown(format!(
            "{} was written for product `{}`, not `{product}`",
            path.display(),
            f.product
        )),
        Ok(HostIdsFile { dmi: None, .. }) => Dmi::Absent,
        Ok(HostIdsFile { dmi: Some(d), .. }) if hex64(&d) => Dmi::Present(d),
        Ok(_) => Dmi::Unknown(format!(
            "{} holds a DMI digest that is not 64 hex digits",
            path.display()
        )),
    }
}

/// Before root writes `host_ids` (`charter-agent host-ids`, run as root by
/// the agent's unit): root writes where the config says and what its
/// `product` says, so when run as root the config must be root's alone
/// (owned by root, writable by nobody else), the product a plain product
/// name, and `host_ids` an absolute path in a directory root owns that
/// nobody else can write. Otherwise whoever could edit the config (the
/// agent's user, say) could make root write or delete any file.
pub fn check_host_ids_target(config: &Path, product: &str, sources: &Sources) -> Result<()> {
    let refuse = |reason: String| Error::Invalid {
        what: "host ids",
        reason,
    };
    let valid_product = !product.is_empty()
        && product.len() <= 64
        && product.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || (i > 0 && matches!(b, b'.' | b'_' | b'-'))
        });
    if !valid_product {
        return Err(refuse(format!(
            "product `{}` is not a product name (1 to 64 of a-z 0-9 . _ -)",
            product.chars().take(80).collect::<String>()
        )));
    }
    let out = &sources.host_ids;
    let Some(parent) = out.parent().filter(|_| out.is_absolute()) else {
        return Err(refuse(format!(
            "fingerprint.host_ids `{}` must be an absolute path",
            out.display()
        )));
    };
    if !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    let owned_by_root_alone = |p: &Path, what: &str| -> Result<()> {
        let md = std::fs::metadata(p)
            .map_err(|e| refuse(format!("cannot stat {what} {}: {e}", p.display())))?;
        if md.uid() != 0 || md.mode() & 0o022 != 0 {
            return Err(refuse(format!(
                "{what} {} must be owned by root and writable by root alone to be \
                 used by root (uid {}, mode {:o})",
                p.display(),
                md.uid(),
                md.mode() & 0o7777
            )));
        }
        Ok(())
    };
    owned_by_root_alone(config, "the config")?;
    owned_by_root_alone(parent, "the directory of fingerprint.host_ids")?;
    match std::fs::symlink_metadata(out) {
        Ok(md) if !md.is_file() => Err(refuse(format!(
            "{} exists and is not a regular file",
            out.display()
        ))),
        _ => Ok(()),
    }
}

/// Reads the DMI product UUID as root and writes its digest to `host_ids`
/// (mode 0644, atomically): `charter-agent host-ids`. When it cannot be
/// read, a stale copy is removed and the error returned. Returns what was
/// written.
pub fn write_host_ids(product: &str, sources: &Sources) -> Result<Dmi> {
    let dmi = read_dmi_direct(product, sources);
    let file = match &dmi {
        Dmi::Present(d) => HostIdsFile {
            product: product.into(),
            dmi: Some(d.clone()),
        },
        Dmi::Absent => HostIdsFile {
            product: product.into(),
            dmi: None,
        },
        Dmi::Unknown(why) => {
            let _ = std::fs::remove_file(&sources.host_ids);
            return Err(Error::Invalid {
                what: "host ids",
                reason: format!("{why}; only root can read the DMI product UUID: run this as root"),
            });
        }
    };
    let mut bytes = serde_json::to_vec(&file).unwrap_or_default();
    bytes.push(b'\n');
    charter_keys::fsutil::write_atomic(&sources.host_ids, &bytes, 0o644)?;
    Ok(dmi)
}

impl HostIds {
    /// Reads this host's ids for `product`. A missing machine id is an
    /// error; a DMI UUID that cannot be learned leaves the v2 fingerprint
    /// unknown (v2-bound licenses then say why).
    pub fn read(product: &str, sources: &Sources, how: DmiRead) -> Result<Self> {
        let dmi = match how {
            DmiRead::Direct => read_dmi_direct(product, sources),
            DmiRead::Copy => read_dmi_copy(product, sources),
        };
        Self::from_parts(
            product,
            &read_machine_id(sources)?,
            dmi,
            fingerprint(product, sources)?,
        )
    }

    /// Builds the ids from a machine id, a DMI reading and the v1
    /// fingerprint (the v2 fingerprint is derived here).
    fn from_parts(product: &str, machine: &str, dmi: Dmi, v1: String) -> Result<Self> {
        let v2 = match dmi.token() {
            Some(t) => Some(format!(
                "{V2_PREFIX}{}",
                mac(
                    product,
                    b"charter-fingerprint-v2\0",
                    &[machine.as_bytes(), t.as_bytes()]
                )?
            )),
            None => None,
        };
        Ok(HostIds {
            machine_digest: mac(product, b"charter-machine-id-v2\0", &[machine.as_bytes()])?,
            dmi,
            v1,
            v2,
        })
    }

    /// The v1 fingerprint.
    pub fn v1(&self) -> &str {
        &self.v1
    }

    /// The v2 fingerprint, or why it is unknown.
    pub fn v2(&self) -> std::result::Result<&str, &str> {
        match (&self.v2, &self.dmi) {
            (Some(v2), _) => Ok(v2),
            (None, Dmi::Unknown(why)) => Err(why),
            (None, _) => Err("unknown"),
        }
    }

    /// The one to give the vendor: v2 when known, else v1.
    pub fn preferred(&self) -> &str {
        self.v2().unwrap_or(&self.v1)
    }

    /// The DMI reading.
    pub fn dmi(&self) -> &Dmi {
        &self.dmi
    }

    /// What the runtime state remembers; None while the DMI UUID is
    /// unknown.
    pub fn seen(&self) -> Option<SeenIds> {
        Some(SeenIds {
            machine_id: self.machine_digest.clone(),
            dmi: self.dmi.token()?.to_owned(),
        })
    }

    /// Ids made from a raw machine id and a DMI reading, with the v1
    /// fingerprint of a host whose DMI file is private (tests, and the
    /// evaluation placeholder).
    pub fn from_raw(product: &str, machine: &str, dmi: Dmi) -> Self {
        let v1 = mac(
            product,
            b"charter-fingerprint-v1\0",
            &[machine.as_bytes(), b""],
        )
        .unwrap_or_default();
        Self::from_parts(product, machine, dmi, v1).unwrap_or(HostIds {
            machine_digest: String::new(),
            dmi: Dmi::Unknown("no ids".into()),
            v1: String::new(),
            v2: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(dir: &Path) -> Sources {
        Sources {
            machine_id: dir.join("machine-id"),
            dmi_product_uuid: dir.join("product_uuid"),
            host_ids: dir.join("host-ids"),
            config_owner: Some(rustix::process::geteuid().as_raw()),
        }
    }

    /// Regression (review of issue 12): `charter-agent host-ids` runs as
    /// root and writes where the config says. A config another user could
    /// edit, a product that is no product name, or a target outside a
    /// root-only directory would let that user steer root's write (for
    /// example onto /etc/ld.so.preload).
    #[test]
    fn host_ids_as_root_refuses_a_config_another_user_could_edit() {
        let t = tempfile::tempdir().unwrap();
        let cfg = t.path().join("agent.toml");
        std::fs::write(&cfg, "").unwrap();
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
        let s = sources(t.path());
        check_host_ids_target(&cfg, "panel", &s).unwrap();
        let e = check_host_ids_target(&cfg, "x /tmp/p.so y", &s).unwrap_err();
        assert!(e.to_string().contains("is not a product name"), "{e}");
        let mut rel = s.clone();
        rel.host_ids = PathBuf::from("host-ids");
        let e = check_host_ids_target(&cfg, "panel", &rel).unwrap_err();
        assert!(e.to_string().contains("must be an absolute path"), "{e}");
        if rustix::process::geteuid().is_root() {
            std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o666)).unwrap();
            let e = check_host_ids_target(&cfg, "panel", &s).unwrap_err();
            assert!(e.to_string().contains("the config"), "{e}");
            std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
            let open = t.path().join("open");
            std::fs::create_dir(&open).unwrap();
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
            let mut o = s.clone();
            o.host_ids = open.join("host-ids");
            let e = check_host_ids_target(&cfg, "panel", &o).unwrap_err();
            assert!(
                e.to_string().contains("directory of fingerprint.host_ids"),
                "{e}"
            );
            let mut d = s.clone();
            d.host_ids = t.path().join("a-dir");
            std::fs::create_dir(&d.host_ids).unwrap();
            let e = check_host_ids_target(&cfg, "panel", &d).unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
    }

    const MID: &str = "0123456789abcdef0123456789abcdef\n";
    const UUID: &str = "4C4C4544-0042-3510-8052-B4C04F564433\n";

    #[test]
    fn v1_is_unchanged_machine_id_alone_when_dmi_is_private() {
        let d = tempfile::tempdir().unwrap();
        let s = sources(d.path());
        std::fs::write(&s.machine_id, MID).unwrap();
        std::fs::write(&s.dmi_product_uuid, UUID).unwrap();
        std::fs::set_permissions(&s.dmi_product_uuid, PermissionsExt::from_mode(0o400)).unwrap();
        // The value licenses were issued for before v2: a fixed vector.
        let want = mac(
            "panel",
            b"charter-fingerprint-v1\0",
            &[b"0123456789abcdef0123456789abcdef", b""],
        )
        .unwrap();
        assert_eq!(fingerprint("panel", &s).unwrap(), want);
        assert_eq!(Form::of_entry(&want), Some(Form::V1));
    }

    #[test]
    fn v2_binds_the_dmi_uuid_and_copy_agrees_with_direct() {
        let d = tempfile::tempdir().unwrap();
        let s = sources(d.path());
        std::fs::write(&s.machine_id, MID).unwrap();
        std::fs::write(&s.dmi_product_uuid, UUID).unwrap();
        std::fs::set_permissions(&s.dmi_product_uuid, PermissionsExt::from_mode(0o400)).unwrap();
        assert!(matches!(
            write_host_ids("panel", &s).unwrap(),
            Dmi::Present(_)
        ));
        let direct = HostIds::read("panel", &s, DmiRead::Direct).unwrap();
        let copy = HostIds::read("panel", &s, DmiRead::Copy).unwrap();
        let v2 = direct.v2().unwrap().to_owned();
        assert_eq!(copy.v2(), Ok(v2.as_str()));
        assert_eq!(Form::of_entry(&v2), Some(Form::V2));
        assert_ne!(&v2[3..], direct.v1(), "v2 is domain-separated from v1");
        assert_eq!(direct.seen(), copy.seen());
        // The copy never holds the raw UUID.
        let text = std::fs::read_to_string(&s.host_ids).unwrap();
        assert!(!text.to_ascii_lowercase().contains("4c4c4544"), "{text}");
        // Another SMBIOS UUID (a clone), same machine id: another v2, same v1.
        std::fs::set_permissions(&s.dmi_product_uuid, PermissionsExt::from_mode(0o600)).unwrap();
        std::fs::write(
            &s.dmi_product_uuid,
            "4C4C4544-0042-3510-8052-B4C04F564434\n",
        )
        .unwrap();
        let clone = HostIds::read("panel", &s, DmiRead::Direct).unwrap();
        assert_ne!(clone.v2().unwrap(), v2);
        assert_eq!(clone.v1(), direct.v1());
        // Case and whitespace do not matter.
        std::fs::write(&s.dmi_product_uuid, " 4c4c4544-0042-3510-8052-b4c04f564433").unwrap();
        assert_eq!(
            HostIds::read("panel", &s, DmiRead::Direct).unwrap().v2(),
            Ok(v2.as_str())
        );
        // Keyed per product.
        let other = HostIds::read("mail", &s, DmiRead::Direct).unwrap();
        assert_ne!(other.v2().unwrap(), v2);
    }

    #[test]
    fn host_without_dmi_gets_a_v2_of_its_machine_id() {
        let d = tempfile::tempdir().unwrap();
        let s = sources(d.path());
        std::fs::write(&s.machine_id, MID).unwrap();
        assert_eq!(write_host_ids("panel", &s).unwrap(), Dmi::Absent);
        let copy = HostIds::read("panel", &s, DmiRead::Copy).unwrap();
        assert_eq!(copy.dmi(), &Dmi::Absent);
        let direct = HostIds::read("panel", &s, DmiRead::Direct).unwrap();
        assert_eq!(copy.v2(), direct.v2());
        assert!(copy.v2().is_ok());
        assert_eq!(copy.seen().unwrap().dmi, "none");
    }

    #[test]
    fn untrusted_or_foreign_copy_leaves_v2_unknown() {
        let d = tempfile::tempdir().unwrap();
        let mut s = sources(d.path());
        std::fs::write(&s.machine_id, MID).unwrap();
        std::fs::write(&s.dmi_product_uuid, UUID).unwrap();
        // Missing.
        let ids = HostIds::read("panel", &s, DmiRead::Copy).unwrap();
        assert!(
            ids.v2().unwrap_err().contains("is missing"),
            "{:?}",
            ids.v2()
        );
        assert_eq!(ids.preferred(), ids.v1());
        assert_eq!(ids.seen(), None);
        write_host_ids("panel", &s).unwrap();
        // For another product.
        let ids = HostIds::read("mail", &s, DmiRead::Copy).unwrap();
        assert!(ids.v2().unwrap_err().contains("for product `panel`"));
        // Writable by others.
        std::fs::set_permissions(&s.host_ids, PermissionsExt::from_mode(0o666)).unwrap();
        let ids = HostIds::read("panel", &s, DmiRead::Copy).unwrap();
        assert!(ids.v2().unwrap_err().contains("not trusted"));
        // Owned by someone who is neither root nor the config's owner (the
        // agent's user, say).
        std::fs::set_permissions(&s.host_ids, PermissionsExt::from_mode(0o644)).unwrap();
        s.config_owner = None;
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::chown(&s.host_ids, Some(65534), None).unwrap();
        }
        let ids = HostIds::read("panel", &s, DmiRead::Copy).unwrap();
        assert!(ids.v2().unwrap_err().contains("not trusted"));
        // A symlink to a trusted file is not the file.
        std::fs::remove_file(&s.host_ids).unwrap();
        s.config_owner = Some(rustix::process::geteuid().as_raw());
        write_host_ids("panel", &s).unwrap();
        let real = d.path().join("real-host-ids");
        std::fs::rename(&s.host_ids, &real).unwrap();
        std::os::unix::fs::symlink(&real, &s.host_ids).unwrap();
        let ids = HostIds::read("panel", &s, DmiRead::Copy).unwrap();
        assert!(ids.v2().unwrap_err().contains("not trusted"));
    }

    #[test]
    fn unreadable_dmi_removes_a_stale_copy() {
        let d = tempfile::tempdir().unwrap();
        let s = sources(d.path());
        std::fs::write(&s.machine_id, MID).unwrap();
        std::fs::write(&s.dmi_product_uuid, UUID).unwrap();
        write_host_ids("panel", &s).unwrap();
        // A directory where the file should be cannot be read as one.
        std::fs::remove_file(&s.dmi_product_uuid).unwrap();
        std::fs::create_dir(&s.dmi_product_uuid).unwrap();
        assert!(write_host_ids("panel", &s).is_err());
        assert!(!s.host_ids.exists());
    }

    #[test]
    fn entry_forms() {
        let h = "a".repeat(64);
        assert_eq!(Form::of_entry(&h), Some(Form::V1));
        assert_eq!(Form::of_entry(&format!("v2:{h}")), Some(Form::V2));
        assert_eq!(Form::of_entry(&format!("v3:{h}")), None);
        assert_eq!(Form::of_entry(&format!("v2:{}", "A".repeat(64))), None);
        assert_eq!(Form::of_entry(&"a".repeat(63)), None);
        assert_eq!(Form::of_entry("v2:"), None);
    }
}
