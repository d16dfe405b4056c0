//! This host's fingerprint: HMAC-SHA256 keyed by the product name over
//! `/etc/machine-id` and, when readable, the DMI product UUID. Keyed per
//! product, so fingerprints of one host differ between vendors, and the
//! raw ids never leave the host (docs/SPEC.md §10.3).

use std::path::{Path, PathBuf};

use hmac::{KeyInit, Mac};

use crate::{Error, Result};

/// Where the ids are read from (tests point these elsewhere).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sources {
    /// systemd's machine id.
    #[serde(default = "default_machine_id")]
    pub machine_id: PathBuf,
    /// The DMI product UUID (root-readable only on most systems; skipped
    /// when unreadable).
    #[serde(default = "default_dmi")]
    pub dmi_product_uuid: PathBuf,
}

fn default_machine_id() -> PathBuf {
    PathBuf::from("/etc/machine-id")
}
fn default_dmi() -> PathBuf {
    PathBuf::from("/sys/class/dmi/id/product_uuid")
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            machine_id: default_machine_id(),
            dmi_product_uuid: default_dmi(),
        }
    }
}

fn read_id(path: &Path) -> Option<String> {
    let bytes = charter_keys::fsutil::read_capped(path, 4096, "a machine id").ok()?;
    let s = String::from_utf8(bytes).ok()?.trim().to_ascii_lowercase();
    (!s.is_empty()).then_some(s)
}

/// The fingerprint of this host for `product`: 64 lowercase hex digits.
pub fn fingerprint(product: &str, sources: &Sources) -> Result<String> {
    let machine = read_id(&sources.machine_id).ok_or_else(|| Error::Invalid {
        what: "machine id",
        reason: format!("{} is missing or empty", sources.machine_id.display()),
    })?;
    // The DMI UUID is only used when readable by this process, so the
    // agent (unprivileged) and the updater (root) must agree: it is read
    // only when the file is world-readable.
    let dmi = std::fs::metadata(&sources.dmi_product_uuid)
        .ok()
        .filter(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o004 != 0)
        .and_then(|_| read_id(&sources.dmi_product_uuid))
        .unwrap_or_default();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(product.as_bytes()).map_err(|_| {
        Error::Invalid {
            what: "product name",
            reason: "cannot key the fingerprint".into(),
        }
    })?;
    mac.update(b"charter-fingerprint-v1\0");
    mac.update(machine.as_bytes());
    mac.update(b"\0");
    mac.update(dmi.as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}
