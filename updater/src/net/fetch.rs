//! Fetching from a release repository over HTTP(S) or `file://`.
//!
//! Every fetch is capped by a size the caller knows from signed metadata
//! (or a fixed bound for metadata itself). Artifact downloads stream, resume
//! with HTTP Range after a dropped connection, retry with exponential
//! backoff, and refuse a single byte beyond the signed size (docs/SPEC.md
//! §11.2).

use charter_release::Error as ReleaseError;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::Repository;

/// What a download has written so far: the bytes' running SHA-256 and
/// count (the file's length).
#[derive(Default)]
struct Progress {
    hasher: sha2::Sha256,
    written: u64,
}

impl Progress {
    /// Back to nothing: the file emptied, the hash restarted.
    fn restart(&mut self, f: &mut std::fs::File, here: &std::path::Path) -> Result<()> {
        use std::io::Seek as _;
        f.set_len(0).map_err(|e| Error::io("truncate", here, e))?;
        f.seek(std::io::SeekFrom::Start(0))
            .map_err(|e| Error::io("seek", here, e))?;
        *self = Progress::default();
        Ok(())
    }
}

/// Free space a download of unknown size leaves on the file system it
/// writes to (the running release's, usually).
pub const FREE_SPACE_RESERVE: u64 = 64 << 20;
use crate::{Error, Result};

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

/// The answer to a (conditional) GET.
#[derive(Debug)]
pub enum Fetched {
    /// 304: the cached copy is current.
    NotModified,
    /// The document, with what to send next time.
    Body(Vec<u8>, Validator),
}

enum Base {
    Http {
        base: String,
        agent: ureq::Agent,
        /// The `Authorization` header value (a secret; never printed).
        auth: Option<zeroize::Zeroizing<String>>,
    },
    File(PathBuf),
}

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

/// A client for one repository.
pub struct Fetcher {
    base: Base,
    retries: u32,
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

    fn auth(&self) -> Option<&str> {
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

    fn delay(&self, attempt: u32) -> Duration {
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
        let mut bytes = Vec::new();
        resp.into_body()
            .into_with_config()
            .limit(max.saturating_add(1))
            .reader()
            .read_to_end(&mut bytes)
            .map_err(|e| Error::Http {
                url: url.into(),
                reason: e.to_string(),
            })?;
        if bytes.len() as u64 > max {
            return Err(Error::TooLarge {
                url: url.into(),
                max,
                found: None,
            });
        }
        Ok(Fetched::Body(bytes, validator))
    }

    /// Downloads a file whose size nobody signed (a plain artifact,
    /// docs/SPEC.md §13.5) into `dest`, refusing more than `max` bytes and
    /// stopping before the file system's free space drops under
    /// [`FREE_SPACE_RESERVE`]; returns its SHA-256 and size. Transient
    /// failures retry as often as `repository.retries` allows, resuming
    /// with an HTTP Range from the bytes already written when the server
    /// honours it (and starting over when it does not). `dest_dir` names
    /// where `dest` is, for messages.
    pub fn download(
        &self,
        rel: &str,
        max: u64,
        dest: &mut std::fs::File,
        dest_dir: &std::path::Path,
    ) -> Result<(charter_release::digest::Sha256Digest, u64)> {
        use sha2::Digest as _;
        let url = self.url_of(rel);
        let mut got = Progress::default();
        got.restart(dest, dest_dir)?;
        self.retrying(|| self.download_once(&url, rel, max, dest, dest_dir, &mut got))?;
        Ok((
            charter_release::digest::Sha256Digest(got.hasher.clone().finalize().into()),
            got.written,
        ))
    }

    /// Runs `f` again after transient failures, with backoff, as often as
    /// `repository.retries` allows.
    fn retrying<T>(&self, mut f: impl FnMut() -> Result<T>) -> Result<T> {
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

    fn download_once(
        &self,
        url: &str,
        rel: &str,
        max: u64,
        dest: &mut std::fs::File,
        dest_dir: &std::path::Path,
        got: &mut Progress,
    ) -> Result<()> {
        use sha2::Digest as _;
        use std::io::Write as _;
        let here = dest_dir.to_owned();
        let mut body: Box<dyn Read> = match &self.base {
            Base::File(root) => {
                let path = root.join(rel);
                let file = std::fs::File::open(&path).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Error::NotFound { url: url.into() }
                    } else {
                        Error::io("read", &path, e)
                    }
                })?;
                got.restart(dest, &here)?;
                Box::new(file)
            }
            Base::Http { agent, .. } => {
                let mut req = agent.get(url);
                if let Some(a) = self.auth() {
                    req = req.header("Authorization", a);
                }
                if got.written > 0 {
                    req = req.header("Range", format!("bytes={}-", got.written));
                }
                let resp = req.call().map_err(|e| http_error(url, e))?;
                let header = |name: &str| {
                    resp.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                match resp.status().as_u16() {
                    200 => got.restart(dest, &here)?,
                    206 if got.written > 0 => {
                        use std::io::Seek as _;
                        dest.seek(std::io::SeekFrom::Start(got.written))
                            .map_err(|e| Error::io("seek", &here, e))?;
                        let range = header("content-range").unwrap_or_default();
                        if !range.starts_with(&format!("bytes {}-", got.written)) {
                            got.restart(dest, &here)?;
                            return Err(Error::Http {
                                url: url.into(),
                                reason: format!(
                                    "asked for bytes {}-, the server sent range `{range}`; \
                                     starting over",
                                    got.written
                                ),
                            });
                        }
                    }
                    404 | 410 => return Err(Error::NotFound { url: url.into() }),
                    status => {
                        // A resume the server cannot serve (416, say):
                        // the next attempt starts from the beginning.
                        got.restart(dest, &here)?;
                        return Err(Error::HttpStatus {
                            url: url.into(),
                            status,
                        });
                    }
                }
                if let Some(len) = header("content-length").and_then(|v| v.parse::<u64>().ok())
                    && got.written.saturating_add(len) > max
                {
                    return Err(Error::TooLarge {
                        url: url.into(),
                        max,
                        found: Some(got.written.saturating_add(len)),
                    });
                }
                Box::new(resp.into_body().into_with_config().limit(u64::MAX).reader())
            }
        };
        let out = dest;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::Http {
                        url: url.into(),
                        reason: e.to_string(),
                    });
                }
            };
            let total = got.written + n as u64;
            if total > max {
                return Err(Error::TooLarge {
                    url: url.into(),
                    max,
                    found: None,
                });
            }
            // Every 16 MiB: still room for the running service?
            if total / (16 << 20) != got.written / (16 << 20) || got.written == 0 {
                let vfs = rustix::fs::fstatvfs(&*out)
                    .map_err(|e| Error::io("statvfs", &here, e.into()))?;
                let avail = vfs.f_bavail.saturating_mul(vfs.f_frsize);
                if avail < FREE_SPACE_RESERVE + n as u64 {
                    return Err(Error::NoSpace {
                        path: here,
                        needed: FREE_SPACE_RESERVE + n as u64,
                        available: avail,
                    });
                }
            }
            out.write_all(&buf[..n])
                .map_err(|e| Error::io("write", &here, e))?;
            got.hasher.update(&buf[..n]);
            got.written = total;
        }
        out.sync_all().map_err(|e| Error::io("sync", &here, e))?;
        Ok(())
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

    /// Opens a stream of exactly `size` bytes of `rel`. The stream resumes
    /// after dropped connections and stalls (HTTP Range from the offset
    /// reached), retrying with backoff, and fails with [`Error::TooLarge`]
    /// if the server has more than `size` bytes to give.
    pub fn stream(&self, rel: &str, size: u64) -> Result<Box<dyn Read + Send + '_>> {
        let url = self.url_of(rel);
        match &self.base {
            Base::File(root) => {
                let path = root.join(rel);
                let file = std::fs::File::open(&path).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Error::NotFound { url: url.clone() }
                    } else {
                        Error::io("read", &path, e)
                    }
                })?;
                let len = file
                    .metadata()
                    .map_err(|e| Error::io("stat", &path, e))?
                    .len();
                if len != size {
                    return Err(ReleaseError::SizeMismatch {
                        what: url,
                        expected: size,
                        found: len,
                    }
                    .into());
                }
                Ok(Box::new(file.take(size)))
            }
            Base::Http { agent, .. } => Ok(Box::new(ResumingReader {
                fetcher: self,
                agent,
                url,
                size,
                offset: 0,
                body: None,
                failures: 0,
            })),
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
        let pem = charter_keys::fsutil::read_capped(ca, 4 << 20, "a CA bundle")?;
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

fn http_error(url: &str, e: ureq::Error) -> Error {
    Error::Http {
        url: url.into(),
        reason: e.to_string(),
    }
}

/// A reader over an HTTP body that reconnects from where it stopped.
struct ResumingReader<'a> {
    fetcher: &'a Fetcher,
    agent: &'a ureq::Agent,
    url: String,
    size: u64,
    offset: u64,
    body: Option<Box<dyn Read + Send>>,
    failures: u32,
}

impl ResumingReader<'_> {
    fn open(&mut self) -> Result<Box<dyn Read + Send>> {
        let mut req = self.agent.get(&self.url);
        if let Some(a) = self.fetcher.auth() {
            req = req.header("Authorization", a);
        }
        if self.offset > 0 {
            req = req.header("Range", format!("bytes={}-", self.offset));
        }
        let resp = req.call().map_err(|e| http_error(&self.url, e))?;
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let remaining = self.size - self.offset;
        let mut skip = 0;
        match status {
            206 if self.offset > 0 => {
                let range = header("content-range").unwrap_or_default();
                let expect = format!("bytes {}-", self.offset);
                let total_ok = range
                    .rsplit('/')
                    .next()
                    .is_some_and(|t| t == "*" || t.parse::<u64>().ok() == Some(self.size));
                if !range.starts_with(&expect) || !total_ok {
                    return Err(Error::Http {
                        url: self.url.clone(),
                        reason: format!(
                            "asked for bytes {}-, server sent range `{range}`",
                            self.offset
                        ),
                    });
                }
            }
            200 => skip = self.offset,
            404 | 410 => {
                return Err(Error::NotFound {
                    url: self.url.clone(),
                });
            }
            _ => {
                return Err(Error::HttpStatus {
                    url: self.url.clone(),
                    status,
                });
            }
        }
        if let Some(len) = header("content-length").and_then(|v| v.parse::<u64>().ok()) {
            let expected = remaining + skip;
            if len > expected {
                return Err(Error::TooLarge {
                    url: self.url.clone(),
                    max: expected,
                    found: Some(len),
                });
            }
            if len < expected {
                return Err(ReleaseError::SizeMismatch {
                    what: format!("{} (Content-Length)", self.url),
                    expected,
                    found: len,
                }
                .into());
            }
        }
        let mut body: Box<dyn Read + Send> =
            Box::new(resp.into_body().into_with_config().limit(u64::MAX).reader());
        if skip > 0 {
            // The server ignored Range: discard what we already have.
            let copied =
                std::io::copy(&mut (&mut body).take(skip), &mut std::io::sink()).map_err(|e| {
                    Error::Http {
                        url: self.url.clone(),
                        reason: e.to_string(),
                    }
                })?;
            if copied != skip {
                return Err(Error::Http {
                    url: self.url.clone(),
                    reason: "connection closed while skipping to the resume offset".into(),
                });
            }
        }
        Ok(body)
    }

    fn read_inner(&mut self, buf: &mut [u8]) -> Result<usize> {
        loop {
            if self.offset == self.size {
                // Exactly the signed size arrived; anything more is refused.
                if let Some(body) = self.body.as_mut() {
                    let mut one = [0u8; 1];
                    if let Ok(n) = body.read(&mut one)
                        && n > 0
                    {
                        return Err(Error::TooLarge {
                            url: self.url.clone(),
                            max: self.size,
                            found: None,
                        });
                    }
                }
                self.body = None;
                return Ok(0);
            }
            if self.body.is_none() {
                match self.open() {
                    Ok(b) => self.body = Some(b),
                    Err(e) if e.is_transient() && self.failures < self.fetcher.retries => {
                        self.backoff();
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let want = buf
                .len()
                .min(usize::try_from(self.size - self.offset).unwrap_or(usize::MAX));
            let Some(body) = self.body.as_mut() else {
                continue;
            };
            match body.read(&mut buf[..want]) {
                Ok(0) | Err(_) if self.failures < self.fetcher.retries => {
                    // Dropped or stalled: reconnect from the offset reached.
                    self.body = None;
                    self.backoff();
                }
                Ok(0) => {
                    return Err(Error::Http {
                        url: self.url.clone(),
                        reason: format!(
                            "connection closed at byte {} of {} after {} retries",
                            self.offset, self.size, self.failures
                        ),
                    });
                }
                Ok(n) => {
                    self.offset += n as u64;
                    // Progress resets the retry budget: a flaky link that
                    // keeps moving is not given up on.
                    self.failures = 0;
                    return Ok(n);
                }
                Err(e) => {
                    return Err(Error::Http {
                        url: self.url.clone(),
                        reason: format!(
                            "{e} at byte {} of {} after {} retries",
                            self.offset, self.size, self.failures
                        ),
                    });
                }
            }
        }
    }

    fn backoff(&mut self) {
        std::thread::sleep(self.fetcher.delay(self.failures));
        self.failures += 1;
    }
}

impl Read for ResumingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.read_inner(buf).map_err(std::io::Error::other)
    }
}

/// The plaintext of a resolved secret field.
/// A resolved secret field's plain text (an error names the field when
/// it is still encrypted).
pub(crate) fn secret(
    v: &charter_keys::confsecret::SecretValue,
    field: &str,
) -> Result<zeroize::Zeroizing<String>> {
    v.expose()
        .map(|s| zeroize::Zeroizing::new(s.to_owned()))
        .ok_or_else(|| {
            Error::Keys(charter_keys::Error::Secret {
                field: field.into(),
                reason: "it is encrypted and was not decrypted".into(),
            })
        })
}
