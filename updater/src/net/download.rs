//! The repository's downloads: a stream of exactly the signed size that
//! resumes after dropped connections and stalls ([`Fetcher::stream`]),
//! and the download of a plain artifact whose size nobody signed into a
//! file ([`Fetcher::download`]), both with HTTP Range and backoff
//! (docs/SPEC.md §11.2, §13.5).

use std::io::Read;

use charter_release::Error as ReleaseError;

use super::fetch::{Base, Fetcher};
use super::http::http_error;
use crate::host::fs::FREE_SPACE_RESERVE;
use crate::{Error, Result};

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

impl Fetcher {
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
