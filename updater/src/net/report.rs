//! Rollout reports (docs/SPEC.md §9.8): after an update installs, rolls
//! back or fails, a host with `[rollout] report_url` POSTs one signed
//! line saying so, with its position, wave and anonymous id, for the
//! vendor's `charter rollout watch`. Best effort, as webhooks are: a
//! report that cannot be delivered never fails or undoes an update.

use std::path::Path;
use std::time::Duration;

use charter_release::Error as ReleaseError;
use charter_release::report::{MAX_LICENSE_ID_BYTES, Report};
use serde::Deserialize;

use crate::Result;
use crate::config::rollout::RolloutConfig;

/// Largest report key file read.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// Sends this host's reports.
pub struct Reporter {
    url: String,
    license: String,
    key: zeroize::Zeroizing<[u8; 32]>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Reporter({}, license {})",
            super::notify::redacted(&self.url),
            self.license
        )
    }
}

/// The report key file: `{"license": ID, "key": 64 hex digits}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile<'a> {
    license: String,
    /// Borrowed from the (zeroized) bytes read: no copy of the key.
    key: &'a str,
}

/// Reads a report key file (mode 0600, else refused): the license id and
/// its key. The message names the file, never the key.
pub fn read_key(path: &Path) -> Result<(String, zeroize::Zeroizing<[u8; 32]>)> {
    let bytes = zeroize::Zeroizing::new(charter_keys::fsutil::read_private(
        path,
        MAX_KEY_FILE_BYTES,
        "a report key file",
    )?);
    let bad = |reason: &str| -> crate::Error {
        ReleaseError::InvalidInput {
            what: "rollout.report_key",
            reason: format!("{}: {reason}", path.display()),
        }
        .into()
    };
    let f: KeyFile = serde_json::from_slice(&bytes)
        .map_err(|_| bad("not a report key file (`charter rollout report-key` writes one)"))?;
    if f.license.is_empty() || f.license.len() > MAX_LICENSE_ID_BYTES {
        return Err(bad("its license id is empty or too long"));
    }
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(f.key.as_bytes(), &mut key[..])
        .map_err(|_| bad("its key is not 64 hex digits"))?;
    Ok((f.license, key))
}

impl Reporter {
    /// Prepares the client: `None` without `report_url`.
    pub fn new(cfg: &RolloutConfig) -> Result<Option<Self>> {
        let (Some(url), Some(key_path)) = (&cfg.report_url, &cfg.report_key) else {
            return Ok(None);
        };
        let (license, key) = read_key(key_path)?;
        let t = Duration::from_secs(u64::from(cfg.report_timeout_secs));
        let agent = crate::net::http::http_agent(
            cfg.report_ca_file.as_deref(),
            crate::net::http::TlsVerification::Verify,
            t,
            0,
            Some(t),
        )?;
        Ok(Some(Reporter {
            url: url.clone(),
            license,
            key,
            agent,
        }))
    }

    /// The license the reports are signed for.
    pub fn license(&self) -> &str {
        &self.license
    }

    /// Signs and POSTs `r` (whose `license` is set here).
    pub fn send(&self, mut r: Report) -> std::result::Result<(), String> {
        r.license = self.license.clone();
        let line = r.sign(&self.key).map_err(|e| e.to_string())?;
        super::notify::post(
            &self.agent,
            &self.url,
            "rollout.report_url",
            &[("X-Charter-Report", r.outcome.name().to_owned())],
            line.as_bytes(),
        )
    }
}
