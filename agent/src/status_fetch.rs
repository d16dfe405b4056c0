//! Getting a signed status document from where the license says it is
//! served (http(s) or `file://`), capped in size, with the status token
//! when one is configured (docs/SPEC.md §10.2, Fetching). Verifying and
//! accepting it is the agent's ([`crate::license`], `Agent::accept_status`).

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::license::MAX_DOCUMENT_BYTES;

/// One status fetch, taken from the agent so that it can run without the
/// agent's lock (docs/SPEC.md §10.2, Fetching). No `Debug`: it holds the
/// token.
pub struct StatusRequest {
    url: String,
    timeout: Duration,
    token: Option<zeroize::Zeroizing<String>>,
}

impl StatusRequest {
    /// A fetch of `url` within `timeout`, with the status token if any.
    pub(crate) fn new(
        url: String,
        timeout: Duration,
        token: Option<zeroize::Zeroizing<String>>,
    ) -> Self {
        StatusRequest {
            url,
            timeout,
            token,
        }
    }

    /// GETs the status document ([`fetch`]).
    pub fn fetch(&self) -> Result<Vec<u8>> {
        fetch(
            &self.url,
            self.timeout,
            self.token.as_ref().map(|t| t.as_str()),
        )
    }
}

/// GETs a status document (http(s) or file://), capped in size.
/// `token`, when given, goes in an `Authorization: Bearer` header (never
/// for `file://`, and never across a redirect: ureq drops it).
pub fn fetch(url: &str, timeout: Duration, token: Option<&str>) -> Result<Vec<u8>> {
    if let Some(path) = url.strip_prefix("file://") {
        return Ok(charter_keys::fsutil::read_capped(
            Path::new(path),
            MAX_DOCUMENT_BYTES,
            "a license status",
        )?);
    }
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .new_agent();
    let mut req = agent.get(url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let resp = req.call().map_err(|e| Error::Http {
        url: url.into(),
        reason: e.to_string(),
    })?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(Error::Http {
            url: url.into(),
            reason: format!("HTTP status {status}"),
        });
    }
    let http = |reason: String| Error::Http {
        url: url.into(),
        reason,
    };
    match charter_keys::fsutil::read_at_most(resp.into_body().into_reader(), MAX_DOCUMENT_BYTES, 0)
    {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(http(format!(
            "status document larger than {MAX_DOCUMENT_BYTES} bytes"
        ))),
        Err(e) => Err(http(e.to_string())),
    }
}
