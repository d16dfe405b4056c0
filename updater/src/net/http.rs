//! The HTTP client the updater uses for the repository and the webhook:
//! its CA bundle, timeouts, redirects and the named opt-out from TLS
//! verification (house style §8).

use std::time::Duration;

use crate::config::Repository;
use crate::{Error, Result};

/// Largest CA bundle read (`repository.ca_file`, `notify.ca_file`).
const MAX_CA_BYTES: u64 = 4 << 20;

/// Whether an HTTP client checks the server's TLS certificate. There is no
/// boolean for this: turning the check off must be spelled out, and is said
/// on every run (house style §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVerification {
    /// Certificates are verified against the built-in roots, or only
    /// against `ca_file` when one is given.
    Verify,
    /// Certificates are **not** verified: anyone on the path can read the
    /// traffic and answer in the server's name. Signatures still protect
    /// every byte installed. Selected only by
    /// `repository.insecure_skip_tls_verify = true`.
    DangerousSkip,
}

impl TlsVerification {
    /// What the updater says on every run that uses [`TlsVerification::DangerousSkip`].
    pub const SKIP_WARNING: &str =
        "WARNING: repository.insecure_skip_tls_verify is set: TLS certificates are NOT verified";

    /// The mode a repository's config selects.
    pub fn for_repository(repo: &Repository) -> Self {
        if repo.insecure_skip_tls_verify {
            TlsVerification::DangerousSkip
        } else {
            TlsVerification::Verify
        }
    }
}

/// An HTTP client: `ca_file` (PEM) instead of the built-in roots when
/// given, certificates checked unless `tls` is
/// [`TlsVerification::DangerousSkip`] (whose warning is the caller's to
/// give), `timeout` for connecting and for each read, `redirects`
/// redirects followed, `overall` bounding a whole request when given, no
/// content encoding, HTTP errors returned as statuses.
pub fn http_agent(
    ca_file: Option<&std::path::Path>,
    tls: TlsVerification,
    timeout: Duration,
    redirects: u32,
    overall: Option<Duration>,
) -> Result<ureq::Agent> {
    let mut builder = ureq::tls::TlsConfig::builder();
    if let Some(ca) = ca_file {
        let pem = charter_keys::fsutil::read_capped(ca, MAX_CA_BYTES, "a CA bundle")?;
        let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Config {
                path: ca.to_owned(),
                reason: format!("not a PEM certificate bundle: {e}"),
            })?;
        if certs.is_empty() {
            return Err(Error::Config {
                path: ca.to_owned(),
                reason: "holds no certificate".into(),
            });
        }
        builder = builder.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
    }
    if tls == TlsVerification::DangerousSkip {
        builder = builder.disable_verification(true);
    }
    Ok(ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(timeout))
        .timeout_per_read(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .accept_encoding("identity")
        .user_agent(concat!("charter-update/", env!("CARGO_PKG_VERSION")))
        .max_redirects(redirects)
        .timeout_global(overall)
        .tls_config(builder.build())
        .build()
        .new_agent())
}

pub(super) fn http_error(url: &str, e: ureq::Error) -> Error {
    Error::Http {
        url: url.into(),
        reason: e.to_string(),
    }
}
