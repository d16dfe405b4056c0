//! Safe, streaming extraction of a release artifact into a staging
//! directory, every entry checked against the signed manifest as it arrives
//! (docs/SPEC.md §11.3).
//!
//! Nothing outside the staging directory is touched. The artifact's digest
//! is only known at the end of the stream, so the caller renames the staging
//! directory into place only after [`extract`] returned `Ok`, which it does
//! only when the whole artifact matched its signed digest and size.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{Error, Result};
use charter_release::Error as ReleaseError;
use charter_release::Limits;
use charter_release::archive::{
    Layout, SetuidPolicy, bound_exceeded, bounded, forbidden_kind, link_target,
};
use charter_release::digest::Sha256Digest;
use charter_release::manifest::{ArtifactFormat, Entry, Manifest};
use charter_release::path::ArchivePath;

/// What was staged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staged {
    /// Regular files written.
    pub files: usize,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Hashes and counts the compressed bytes as the decompressor pulls them.
struct Tap<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Applies `policy` to a tree [`extract`] staged: every file signed with
/// setuid or setgid bits that the policy does not allow loses them.
/// Returns the paths changed. The staging directory is root's alone
/// (`.staging` is 0700), so nobody can run the file between the two modes.
pub fn apply_setuid_policy(
    staging: &Path,
    manifest: &Manifest,
    policy: &SetuidPolicy,
) -> Result<Vec<ArchivePath>> {
    let mut stripped = Vec::new();
    for e in &manifest.files {
        let Entry::File { path, mode, .. } = e else {
            continue;
        };
        let want = policy.installed_mode(path, *mode);
        if want == *mode {
            continue;
        }
        let dest = staging.join(path.as_str());
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&dest)
            .map_err(|e| Error::io("open", &dest, e))?;
        file.set_permissions(std::fs::Permissions::from_mode(want))
            .map_err(|e| Error::io("chmod", &dest, e))?;
        stripped.push(path.clone());
    }
    Ok(stripped)
}

/// Extracts `artifact` (the raw, compressed bytes) into `staging`, which
/// must not exist yet. Checks, in order, for every tar entry:
///
/// 1. its path is a valid [`ArchivePath`] (no absolute path, no `..`);
/// 2. the manifest lists it, with the same type, and it was not seen before;
/// 3. it is a file, directory or symlink (hard links, devices, FIFOs refused);
/// 4. its mode equals the manifest's (so setuid only where signed);
/// 5. a file's size and SHA-256 equal the manifest's; a symlink's target too;
/// 6. its parent directory was extracted before it;
///
/// then that every manifest entry was present, that the decompressed stream
/// stayed within [`tar_bound`], and that the whole artifact's SHA-256 and
/// size equal the manifest's. Files are created with `O_EXCL|O_NOFOLLOW`.
/// On error, the caller removes `staging`.
pub fn extract(
    artifact: &mut (dyn Read + Send),
    manifest: &Manifest,
    staging: &Path,
    limits: &Limits,
) -> Result<Staged> {
    extract_with(artifact, manifest, staging, limits, Layout::default())
}

/// [`extract`] with the archive's paths mapped by `layout`. With plain
/// rules, a directory the manifest lists but the archive only implies is
/// created (with the manifest's mode) when the first entry inside it
/// arrives, and may still arrive later itself.
pub fn extract_with(
    artifact: &mut (dyn Read + Send),
    manifest: &Manifest,
    staging: &Path,
    limits: &Limits,
    layout: Layout,
) -> Result<Staged> {
    let expected: BTreeMap<&str, &Entry> = manifest.entries_by_path();
    DirBuilder::new()
        .mode(0o700)
        .create(staging)
        .map_err(|e| Error::io("create", staging, e))?;
    let max = layout.stream_bound(manifest);
    let format = manifest.artifact.format;

    // Two stages on two threads, like `curl | zstd -d | tar -x` but with
    // every byte checked: the producer downloads, hashes the compressed
    // bytes and decompresses; this thread parses the tar stream, hashes and
    // writes each file. Chunks travel through a small bounded queue, so
    // memory stays flat whatever the artifact's size.
    let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(8);
    let (unpacked, produced) = std::thread::scope(|s| {
        let producer = s.spawn(move || produce(artifact, format, max, &tx));
        let mut reader = ChannelReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
        };
        let unpacked = unpack(&mut reader, &expected, staging, limits, layout).and_then(|st| {
            // Whatever follows the end-of-archive blocks is read too, so the
            // compressed frame is complete (and its checksum checked).
            io::copy(&mut reader, &mut io::sink()).map_err(|e| stream_error(staging, e))?;
            Ok(st)
        });
        drop(reader);
        let produced = producer.join().unwrap_or(Err(None));
        (unpacked, produced)
    });
    let staged = unpacked?;
    let (digest, count) = match produced {
        Ok(r) => r,
        Err(Some(e)) => return Err(stream_error(staging, e)),
        Err(None) => {
            return Err(Error::Corrupt {
                path: staging.to_owned(),
                reason: "the download stage stopped".into(),
            });
        }
    };
    let artifact = &manifest.artifact;
    if count != artifact.size {
        return Err(ReleaseError::SizeMismatch {
            what: format!("artifact {}", artifact.name),
            expected: artifact.size,
            found: count,
        }
        .into());
    }
    if digest != artifact.sha256 {
        return Err(ReleaseError::DigestMismatch {
            what: format!("artifact {}", artifact.name),
            expected: artifact.sha256.to_string(),
            found: digest.to_string(),
        }
        .into());
    }
    Ok(staged)
}

/// The download stage: raw bytes -> SHA-256 and count -> decompressor ->
/// bound -> 1 MiB chunks on `tx`. Errors travel down the queue (the tar
/// stage reports them); the return value carries the digest, or the error
/// when it could not be sent (`None` when the tar stage had already
/// stopped).
fn produce(
    artifact: &mut (dyn Read + Send),
    format: ArtifactFormat,
    max: u64,
    tx: &std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
) -> std::result::Result<(Sha256Digest, u64), Option<io::Error>> {
    let mut tap = Tap {
        inner: artifact,
        hasher: Sha256::new(),
        count: 0,
    };
    let fail = |e: io::Error| match tx.send(Err(e)) {
        Ok(()) => Err(None),
        Err(std::sync::mpsc::SendError(Err(e))) => Err(Some(e)),
        Err(_) => Err(None),
    };
    {
        let decoder: Box<dyn Read + '_> = match format {
            ArtifactFormat::TarZst => match zstd::stream::read::Decoder::new(&mut tap) {
                Ok(d) => Box::new(d),
                Err(e) => return fail(e),
            },
            ArtifactFormat::TarGz => Box::new(flate2::read::GzDecoder::new(&mut tap)),
        };
        let mut bounded = bounded(decoder, max);
        loop {
            let mut buf = vec![0u8; 1 << 20];
            let mut filled = 0;
            // Fill whole chunks: fewer, larger messages.
            while filled < buf.len() {
                match bounded.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return fail(e),
                }
            }
            if filled == 0 {
                break;
            }
            buf.truncate(filled);
            if tx.send(Ok(buf)).is_err() {
                return Err(None);
            }
        }
    }
    // Raw bytes after the compressed frame still count toward the digest.
    if let Err(e) = io::copy(&mut tap, &mut io::sink()) {
        return fail(e);
    }
    Ok((Sha256Digest(tap.hasher.finalize().into()), tap.count))
}

/// The tar stage's view of the queue.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(c)) => {
                    self.chunk = c;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn stream_error(staging: &Path, e: io::Error) -> Error {
    if let Some(max) = bound_exceeded(&e) {
        return Error::DecompressionBomb { max };
    }
    // Errors from the download (size caps, HTTP) travel inside io::Error.
    match e.into_inner() {
        Some(inner) => match inner.downcast::<Error>() {
            Ok(ours) => *ours,
            Err(other) => Error::Corrupt {
                path: staging.to_owned(),
                reason: other.to_string(),
            },
        },
        None => Error::Corrupt {
            path: staging.to_owned(),
            reason: "the artifact stream ended or failed".into(),
        },
    }
}

fn unpack(
    stream: &mut dyn Read,
    expected: &BTreeMap<&str, &Entry>,
    staging: &Path,
    limits: &Limits,
    layout: Layout,
) -> Result<Staged> {
    let mut archive = tar::Archive::new(stream);
    // Directories created because an entry inside them came first.
    let mut implied: BTreeSet<String> = BTreeSet::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut dirs: Vec<(String, u32)> = Vec::new();
    let mut dir_set: BTreeSet<String> = BTreeSet::new();
    let mut staged = Staged { files: 0, bytes: 0 };
    let mut buf = vec![0u8; 256 << 10];
    let entries = archive.entries().map_err(|e| stream_error(staging, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| stream_error(staging, e))?;
        let raw = entry.path_bytes().into_owned();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        // 1. A valid path (directories may carry one trailing slash).
        let trimmed = if kind.is_dir() {
            text.strip_suffix('/').unwrap_or(&text)
        } else {
            &text
        };
        if std::str::from_utf8(&raw).is_err() {
            return Err(ReleaseError::UnsafePath {
                path: text,
                reason: "not valid UTF-8",
            }
            .into());
        }
        let path = match layout {
            Layout::Plain { .. } if kind == tar::EntryType::XGlobalHeader => continue,
            Layout::Plain {
                strip_components, ..
            } => match charter_release::plain::normalize(
                &text,
                kind.is_dir(),
                strip_components,
                limits,
            )? {
                Some(p) => p,
                None => continue,
            },
            Layout::Charter => ArchivePath::new(trimmed, limits.max_path_bytes)?,
        };
        // 3. Only files, directories and symlinks.
        let allowed = matches!(
            kind,
            tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::Directory
                | tar::EntryType::Symlink
        );
        if !allowed {
            return Err(ReleaseError::ForbiddenEntry {
                path: path.to_string(),
                kind: forbidden_kind(kind),
            }
            .into());
        }
        // 2. Listed, once.
        let Some(want) = expected.get(path.as_str()) else {
            return Err(Error::UnexpectedEntry {
                path: path.to_string(),
            });
        };
        // A directory created earlier because the archive implied it.
        let late_dir = kind == tar::EntryType::Directory && implied.remove(path.as_str());
        if !late_dir && !seen.insert(path.as_str().to_owned()) {
            return Err(ReleaseError::EntryMismatch {
                path: path.to_string(),
                reason: "appears twice in the archive".into(),
            }
            .into());
        }
        // 6. Parent first (plain archives: created now when implied).
        if let Some(parent) = path.parent()
            && !dir_set.contains(parent)
        {
            if layout == Layout::Charter {
                return Err(ReleaseError::EntryMismatch {
                    path: path.to_string(),
                    reason: format!("comes before its directory `{parent}`"),
                }
                .into());
            }
            implied_dirs(
                parent,
                expected,
                staging,
                &mut ImpliedState {
                    seen: &mut seen,
                    dirs: &mut dirs,
                    dir_set: &mut dir_set,
                    implied: &mut implied,
                },
            )?;
        }
        let mode = entry
            .header()
            .mode()
            .map_err(|e| stream_error(staging, e))?
            & 0o7777;
        let mismatch = |reason: String| ReleaseError::EntryMismatch {
            path: path.to_string(),
            reason,
        };
        let dest = staging.join(path.as_str());
        match (kind, want) {
            (tar::EntryType::Directory, Entry::Dir { mode: m, .. }) => {
                if mode != *m {
                    return Err(mismatch(format!("mode {mode:o}, manifest says {m:o}")).into());
                }
                if !late_dir {
                    DirBuilder::new()
                        .mode(0o700)
                        .create(&dest)
                        .map_err(|e| Error::io("create", &dest, e))?;
                    dirs.push((path.as_str().to_owned(), *m));
                    dir_set.insert(path.as_str().to_owned());
                }
            }
            (
                tar::EntryType::Regular | tar::EntryType::Continuous,
                Entry::File {
                    mode: m,
                    size,
                    sha256,
                    ..
                },
            ) => {
                if mode != *m {
                    return Err(mismatch(format!("mode {mode:o}, manifest says {m:o}")).into());
                }
                // The size the tar reader goes by (a pax record's, when
                // there is one).
                let declared = entry.size();
                if declared != *size {
                    return Err(mismatch(format!("{declared} bytes, manifest says {size}")).into());
                }
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&dest)
                    .map_err(|e| Error::io("create", &dest, e))?;
                let mut h = Sha256::new();
                let mut written = 0u64;
                loop {
                    let n = entry.read(&mut buf).map_err(|e| stream_error(staging, e))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                    file.write_all(&buf[..n])
                        .map_err(|e| Error::io("write", &dest, e))?;
                    written += n as u64;
                }
                if written != *size {
                    return Err(
                        mismatch(format!("{written} bytes arrived, manifest says {size}")).into(),
                    );
                }
                let got = Sha256Digest(h.finalize().into());
                if got != *sha256 {
                    return Err(ReleaseError::DigestMismatch {
                        what: format!("file {path}"),
                        expected: sha256.to_string(),
                        found: got.to_string(),
                    }
                    .into());
                }
                file.set_permissions(std::fs::Permissions::from_mode(*m))
                    .map_err(|e| Error::io("chmod", &dest, e))?;
                staged.files += 1;
                staged.bytes += written;
                if staged.files == 1 {
                    crate::failpoint::hit("apply:mid-extract");
                }
            }
            (tar::EntryType::Symlink, Entry::Symlink { target, .. }) => {
                let link = link_target(&entry, path.as_str())?;
                if link != *target {
                    return Err(
                        mismatch(format!("links to `{link}`, manifest says `{target}`")).into(),
                    );
                }
                std::os::unix::fs::symlink(target, &dest)
                    .map_err(|e| Error::io("create symlink", &dest, e))?;
            }
            (_, want) => {
                let want = match want {
                    Entry::Dir { .. } => "directory",
                    Entry::File { .. } => "regular file",
                    Entry::Symlink { .. } => "symlink",
                };
                return Err(mismatch(format!(
                    "is a {kind:?} in the archive, the manifest says {want}"
                ))
                .into());
            }
        }
    }
    if let Some(missing) = expected.keys().find(|p| !seen.contains(**p)) {
        return Err(Error::MissingEntry {
            path: (*missing).to_owned(),
        });
    }
    // Directory modes last (deepest first), so a read-only directory did
    // not block writing into it.
    for (path, mode) in dirs.iter().rev() {
        let p = staging.join(path);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))
            .map_err(|e| Error::io("chmod", &p, e))?;
    }
    std::fs::set_permissions(staging, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io("chmod", staging, e))?;
    Ok(staged)
}

/// The bookkeeping of [`unpack`] that implied directories update.
struct ImpliedState<'a> {
    seen: &'a mut BTreeSet<String>,
    dirs: &'a mut Vec<(String, u32)>,
    dir_set: &'a mut BTreeSet<String>,
    implied: &'a mut BTreeSet<String>,
}

/// Creates `dir` and its missing ancestors, each of which the manifest
/// must list as a directory (plain archives only).
fn implied_dirs(
    dir: &str,
    expected: &BTreeMap<&str, &Entry>,
    staging: &Path,
    st: &mut ImpliedState<'_>,
) -> Result<()> {
    let mut chain = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur.filter(|d| !st.dir_set.contains(*d)) {
        chain.push(d);
        cur = d.rsplit_once('/').map(|(p, _)| p);
    }
    for d in chain.into_iter().rev() {
        let Some(Entry::Dir { mode, .. }) = expected.get(d) else {
            return Err(Error::MissingEntry { path: d.to_owned() });
        };
        let dest = staging.join(d);
        DirBuilder::new()
            .mode(0o700)
            .create(&dest)
            .map_err(|e| Error::io("create", &dest, e))?;
        st.seen.insert(d.to_owned());
        st.dirs.push((d.to_owned(), *mode));
        st.dir_set.insert(d.to_owned());
        st.implied.insert(d.to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Extraction under the plain layout (`[plain]` tarballs, scanned by
    //! charter_release::plain::scan).
    use super::*;
    use charter_release::manifest::{Artifact, compile_globs};
    use charter_release::plain::scan;
    use jiff::Timestamp;
    use semver::Version;

    /// `(path, type, mode, body)`; a symlink's body is its target.
    type TarEntry<'a> = (&'a str, tar::EntryType, u32, &'a [u8]);

    /// A gzip'd tar of entries with raw paths.
    fn tgz(entries: &[TarEntry]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (path, kind, mode, body) in entries {
            let mut h = tar::Header::new_gnu();
            let name = path.as_bytes();
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_entry_type(*kind);
            h.set_mode(*mode);
            h.set_size(body.len() as u64);
            if *kind == tar::EntryType::Symlink {
                h.set_link_name(std::str::from_utf8(body).unwrap()).unwrap();
                h.set_size(0);
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            } else {
                h.set_cksum();
                b.append(&h, *body).unwrap();
            }
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    fn scan_tgz(bytes: &[u8], strip: usize, max: u64) -> charter_release::Result<Vec<Entry>> {
        scan(
            &mut &bytes[..],
            "t.tar.gz",
            ArtifactFormat::TarGz,
            strip,
            &compile_globs(&["etc/*".to_owned()]).unwrap(),
            max,
            &Limits::default(),
        )
    }

    /// The manifest the host would synthesize for tarball bytes `t` with
    /// no signature behind them (what `charter_release::plain::synthesize`
    /// makes of a verified checksum file; unit tests of extraction).
    fn plain_manifest(t: &[u8], config: &[String], files: Vec<Entry>) -> Manifest {
        let m = Manifest {
            product: "p".into(),
            version: Version::new(1, 0, 0),
            released_at: Timestamp::UNIX_EPOCH,
            expires: Timestamp::MAX,
            security_fix: false,
            artifact: Artifact {
                name: "p-1.0.0.tar.gz".into(),
                format: ArtifactFormat::TarGz,
                size: t.len() as u64,
                sha256: Sha256Digest(Sha256::digest(t).into()),
            },
            preserve: Vec::new(),
            config: config.to_vec(),
            health_check: None,
            scripts: Default::default(),
            sbom: None,
            files,
        };
        m.validate(&Limits::default()).unwrap();
        m
    }

    #[test]
    fn extraction_follows_the_plain_layout() {
        use std::os::unix::fs::PermissionsExt;
        use tar::EntryType as T;
        let t = tgz(&[
            ("./p-1/", T::Directory, 0o755, b""),
            ("./p-1/bin/app", T::Regular, 0o755, b"#!/bin/sh\n"),
            ("./p-1/bin/", T::Directory, 0o750, b""),
            ("./p-1/etc/app.conf", T::Regular, 0o640, b"a=1\n"),
        ]);
        let files = scan_tgz(&t, 1, 1 << 20).unwrap();
        let m = plain_manifest(&t, &["etc/*".to_owned()], files);
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("s");
        let layout = charter_release::archive::Layout::Plain {
            strip_components: 1,
            max_unpacked: 1 << 20,
        };
        extract_with(&mut &t[..], &m, &staging, &Limits::default(), layout).unwrap();
        let mode = |p: &str| {
            std::fs::metadata(staging.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("bin"), 0o750);
        assert_eq!(mode("etc"), 0o755);
        assert_eq!(mode("etc/app.conf"), 0o640);
        assert_eq!(
            std::fs::read(staging.join("bin/app")).unwrap(),
            b"#!/bin/sh\n"
        );
        // The same archive under the strict (charter) layout is refused.
        let strict = dir.path().join("strict");
        assert!(extract(&mut &t[..], &m, &strict, &Limits::default()).is_err());
    }

    #[test]
    fn pax_sizes_count_in_extraction() {
        use tar::EntryType as T;
        // A file whose size only a pax record gives: scanned and extracted
        // by the same size.
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        b.append_pax_extensions([("size", &b"5"[..])]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_path("f").unwrap();
        h.set_entry_type(T::Regular);
        h.set_mode(0o644);
        h.set_size(0);
        h.set_cksum();
        b.append(&h, &b"hello"[..]).unwrap();
        let t = b.into_inner().unwrap().finish().unwrap();
        let files = scan_tgz(&t, 0, 1 << 20).unwrap();
        assert!(
            matches!(files.as_slice(), [Entry::File { size: 5, .. }]),
            "{files:?}"
        );
        let m = plain_manifest(&t, &[], files);
        let dir = tempfile::tempdir().unwrap();
        let layout = charter_release::archive::Layout::Plain {
            strip_components: 0,
            max_unpacked: 1 << 20,
        };
        extract_with(
            &mut &t[..],
            &m,
            &dir.path().join("s"),
            &Limits::default(),
            layout,
        )
        .unwrap();
        assert_eq!(std::fs::read(dir.path().join("s/f")).unwrap(), b"hello");
    }
}
