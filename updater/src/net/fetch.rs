//! Fetching from a release repository over HTTP(S) or `file://`.
//!
//! Every fetch is capped by a size the caller knows from signed metadata
//! (or a fixed bound for metadata itself). Artifact downloads stream, resume
//! with HTTP Range after a dropped connection, retry with exponential
//! backoff, and refuse a single byte beyond the signed size (docs/SPEC.md
//! §11.2); they are in [`super::download`], the HTTP client in
//! [`super::http`].

use std::path::PathBuf;
use std::time::Duration;

use super::http::{TlsVerification, http_agent, http_error};
use crate::config::{Repository, secret};
use crate::host::state::Validator;
use crate::{Error, Result};

/// The answer to a (conditional) GET.
#[derive(Debug)]
pub enum Fetched {
    /// 304: the cached copy is current.
    NotModified,
    /// The document, with what to send next time.
    Body(Vec<u8>, Validator),
}

pub(super) enum Base {
    Http {
        base: String,
        agent: ureq::Agent,
        /// The `Authorization` header value (a secret; never printed).
        auth: Option<zeroize::Zeroizing<String>>,
    },
    File(PathBuf),
}

/// A client for one repository.
pub struct Fetcher {
    pub(super) base: Base,
    pub(super) retries: u32,
    /// First backoff delay; doubles each retry, capped at 8 s.
    backoff: Duration,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&match &self.base {
            Base::Http { base, .. } => format!("Fetcher({base})"),
            Base::File(p) => format!("Fetcher({})", p.display()),
        })
    }
}

impl Fetcher {
    /// A client for `repo`. TLS is verified against the built-in roots, or
    /// only against `ca_file` when given; `insecure_skip_tls_verify` turns
    /// verification off ([`TlsVerification::DangerousSkip`]), and then
    /// `warn` is given [`TlsVerification::SKIP_WARNING`], every time a
    /// client is made.
    pub fn new(repo: &Repository, warn: &dyn Fn(&str)) -> Result<Self> {
        let retries = repo.retries;
        let backoff = Duration::from_millis(200);
        if let Some(path) = repo.url.strip_prefix("file://") {
            return Ok(Fetcher {
                base: Base::File(PathBuf::from(path)),
                retries,
                backoff,
            });
        }
        let timeout = Duration::from_secs(u64::from(repo.timeout_secs.max(1)));
        let tls = TlsVerification::for_repository(repo);
        if tls == TlsVerification::DangerousSkip {
            warn(TlsVerification::SKIP_WARNING);
        }
        let agent = http_agent(repo.ca_file.as_deref(), tls, timeout, 5, None)?;
        let mut base = repo.url.clone();
        if !base.ends_with('/') {
            base.push('/');
        }
        let auth = match (&repo.token, &repo.username, &repo.password) {
            (Some(t), _, _) => Some(zeroize::Zeroizing::new(format!(
                "Bearer {}",
                secret(t, "repository.token")?.as_str()
            ))),
            (None, Some(u), Some(p)) => {
                use base64::Engine as _;
                let pair = zeroize::Zeroizing::new(format!(
                    "{u}:{}",
                    secret(p, "repository.password")?.as_str()
                ));
                Some(zeroize::Zeroizing::new(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
                )))
            }
            _ => None,
        };
        Ok(Fetcher {
            base: Base::Http { base, agent, auth },
            retries,
            backoff,
        })
    }

    pub(super) fn auth(&self) -> Option<&str> {
        match &self.base {
            Base::Http { auth, .. } => auth.as_deref().map(String::as_str),
            Base::File(_) => None,
        }
    }

    /// Sets the first backoff delay (tests use a few milliseconds).
    pub fn with_backoff(mut self, first: Duration) -> Self {
        self.backoff = first;
        self
    }

    /// The URL (or file path) of a repository path, for messages.
    pub fn url_of(&self, rel: &str) -> String {
        match &self.base {
            Base::Http { base, .. } => format!("{base}{rel}"),
            Base::File(p) => format!("file://{}", p.join(rel).display()),
        }
    }

    pub(super) fn delay(&self, attempt: u32) -> Duration {
        (self.backoff * 2u32.saturating_pow(attempt)).min(Duration::from_secs(8))
    }

    /// GETs a small document of at most `max` bytes, conditionally when a
    /// validator is given. A missing document is [`Error::NotFound`].
    pub fn get(&self, rel: &str, max: u64, cached: Option<&Validator>) -> Result<Fetched> {
        let url = self.url_of(rel);
        match &self.base {
            Base::File(root) => {
                let path = root.join(rel);
                if !path.is_file() {
                    return Err(Error::NotFound { url });
                }
                let bytes = charter_keys::fsutil::read_capped(&path, max, "a repository document")
                    .map_err(|e| match e {
                        charter_keys::Error::FileTooLarge { size, .. } => Error::TooLarge {
                            url: url.clone(),
                            max,
                            found: Some(size),
                        },
                        other => Error::Keys(other),
                    })?;
                Ok(Fetched::Body(bytes, Validator::default()))
            }
            Base::Http { agent, .. } => {
                self.retrying(|| self.get_http_once(agent, &url, max, cached))
            }
        }
    }

    fn get_http_once(
        &self,
        agent: &ureq::Agent,
        url: &str,
        max: u64,
        cached: Option<&Validator>,
    ) -> Result<Fetched> {
        let mut req = agent.get(url);
        if let Some(a) = self.auth() {
            req = req.header("Authorization", a);
        }
        let cached = cached.filter(|v| v.usable());
        if let Some(v) = cached {
            if let Some(etag) = &v.etag {
                req = req.header("If-None-Match", etag);
            }
            if let Some(lm) = &v.last_modified {
                req = req.header("If-Modified-Since", lm);
            }
        }
        let resp = req.call().map_err(|e| http_error(url, e))?;
        let status = resp.status().as_u16();
        match status {
            200 => {}
            304 if cached.is_some() => return Ok(Fetched::NotModified),
            404 | 410 => return Err(Error::NotFound { url: url.into() }),
            _ => {
                return Err(Error::HttpStatus {
                    url: url.into(),
                    status,
                });
            }
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let validator = Validator {
            etag: header("etag"),
            last_modified: header("last-modified"),
            fetched_at: Some(jiff::Timestamp::now()),
        };
        if let Some(len) = header("content-length").and_then(|v| v.parse::<u64>().ok())
            && len > max
        {
            return Err(Error::TooLarge {
                url: url.into(),
                max,
                found: Some(len),
            });
        }
        // Capped by the reader, not by ureq's limit: a body over the cap
        // is `TooLarge` (an answer, not retried), never a transient error.
        match charter_keys::fsutil::read_at_most(resp.into_body().into_reader(), max, 0) {
            Ok(Ok(bytes)) => Ok(Fetched::Body(bytes, validator)),
            Ok(Err(_)) => Err(Error::TooLarge {
                url: url.into(),
                max,
                found: None,
            }),
            Err(e) => Err(Error::Http {
                url: url.into(),
                reason: e.to_string(),
            }),
        }
    }

    /// Runs `f` again after transient failures, with backoff, as often as
    /// `repository.retries` allows.
    pub(super) fn retrying<T>(&self, mut f: impl FnMut() -> Result<T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            match f() {
                Err(e) if e.is_transient() && attempt < self.retries => {
                    std::thread::sleep(self.delay(attempt));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Whether a document exists, asked as cheaply as HTTP allows: a
    /// `HEAD` (a few hundred bytes on the wire when it is missing, no
    /// body), falling back to a capped `GET` on a server that does not
    /// answer `HEAD` (405, 501). Only the answer's status is used; what a
    /// document says is always read with [`Fetcher::get`].
    pub fn exists(&self, rel: &str, max: u64) -> Result<bool> {
        let url = self.url_of(rel);
        match &self.base {
            Base::File(root) => Ok(root.join(rel).is_file()),
            Base::Http { agent, .. } => {
                let status = self.retrying(|| {
                    let mut req = agent.head(&url);
                    if let Some(a) = self.auth() {
                        req = req.header("Authorization", a);
                    }
                    let resp = req.call().map_err(|e| http_error(&url, e))?;
                    match resp.status().as_u16() {
                        s @ (200 | 404 | 410 | 405 | 501) => Ok(s),
                        // Retried when transient (5xx, 408, 429).
                        status => Err(Error::HttpStatus {
                            url: url.clone(),
                            status,
                        }),
                    }
                })?;
                match status {
                    200 => Ok(true),
                    404 | 410 => Ok(false),
                    _ => Ok(self.get_optional(rel, max)?.is_some()),
                }
            }
        }
    }

    /// GETs a small document, answering `None` when it does not exist
    /// (the next root in a rotation chain).
    pub fn get_optional(&self, rel: &str, max: u64) -> Result<Option<Vec<u8>>> {
        match self.get(rel, max, None) {
            Ok(Fetched::Body(b, _)) => Ok(Some(b)),
            Ok(Fetched::NotModified) => Ok(None),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
