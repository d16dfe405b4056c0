//! Packing a directory into a release: one pass that reads each file once,
//! hashes it while it streams into the archive, compresses on all cores
//! (zstd) and hashes the compressed output as it is written
//! (docs/SPEC.md §6.4).

use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::digest::Sha256Digest;
use crate::manifest::{
    Artifact, ArtifactFormat, Entry, HealthCheck, Manifest, compile_globs, validate_product,
};
use crate::tree::{self, Found, Scanned};
use crate::{Error, Limits, Result};
use charter_keys::dsse::{Envelope, PAYLOAD_MANIFEST};

/// Everything `charter manifest create` needs.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Product name.
    pub product: String,
    /// Release version.
    pub version: semver::Version,
    /// The tree to pack.
    pub from: PathBuf,
    /// Where manifest.json and the artifact go.
    pub out_dir: PathBuf,
    /// Archive format.
    pub format: ArtifactFormat,
    /// zstd level (1 to 19) or gzip level (0 to 9).
    pub level: i32,
    /// Compression threads (zstd only).
    pub threads: u32,
    /// Globs of preserved paths.
    pub preserve: Vec<String>,
    /// Globs of config paths.
    pub config: Vec<String>,
    /// Health check.
    pub health_check: Option<HealthCheck>,
    /// Release time (also every entry's mtime, so packing is reproducible).
    pub released_at: Timestamp,
    /// Manifest expiry.
    pub expires: Timestamp,
    /// Marks a security-fix-only release.
    pub security_fix: bool,
    /// Update scripts (paths inside the tree).
    pub scripts: crate::manifest::Scripts,
    /// A CycloneDX SBOM to ship beside the artifact.
    pub sbom: Option<PathBuf>,
}

/// What `create` wrote.
#[derive(Debug, Clone)]
pub struct Created {
    /// The manifest (also written, unsigned, to `manifest_path`).
    pub manifest: Manifest,
    /// OUTDIR/manifest.json.
    pub manifest_path: PathBuf,
    /// OUTDIR/<product>-<version>.<ext>.
    pub artifact_path: PathBuf,
}

/// Passes bytes through while hashing and counting them.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes and counts what goes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Digest and byte count so far, and the inner writer.
    pub fn finish(self) -> (Sha256Digest, u64, W) {
        (
            Sha256Digest(self.hasher.finalize().into()),
            self.count,
            self.inner,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Removes the output directory on drop unless disarmed: a refused or
/// failed `create` leaves nothing behind.
struct CleanupDir(Option<PathBuf>);

impl Drop for CleanupDir {
    fn drop(&mut self) {
        if let Some(d) = self.0.take() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Packs `opts.from` into `opts.out_dir`: validates everything first, then
/// writes the artifact and the unsigned manifest envelope through temporary
/// files that are renamed into place only when complete. On any error no
/// file is left behind (and an output directory this call created is
/// removed). `progress` is called with bytes of file content packed.
pub fn create(
    opts: &CreateOptions,
    limits: &Limits,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Created> {
    validate_product(&opts.product)?;
    let levels = match opts.format {
        ArtifactFormat::TarZst => 1..=19,
        ArtifactFormat::TarGz => 0..=9,
    };
    if !levels.contains(&opts.level) {
        return Err(Error::InvalidInput {
            what: "compression level",
            reason: format!(
                "{} for {}; use {}..={}",
                opts.level,
                opts.format.extension(),
                levels.start(),
                levels.end()
            ),
        });
    }
    if let Some(hc) = &opts.health_check {
        hc.validate().map_err(|reason| Error::InvalidInput {
            what: "health check",
            reason,
        })?;
    }
    if opts.expires <= opts.released_at {
        return Err(Error::InvalidInput {
            what: "expiry",
            reason: "the manifest would already be expired".into(),
        });
    }
    let config = compile_globs(&opts.config)?;
    compile_globs(&opts.preserve)?;
    let scanned = tree::scan(&opts.from, limits)?;

    let name = format!(
        "{}-{}.{}",
        opts.product,
        opts.version,
        opts.format.extension()
    );
    let manifest_path = opts.out_dir.join("manifest.json");
    let artifact_path = opts.out_dir.join(&name);
    // The SBOM is checked before anything is written.
    let sbom = opts
        .sbom
        .as_ref()
        .map(|p| crate::sbom::prepare(p, &opts.product, &opts.version))
        .transpose()?;
    let sbom_path = sbom.as_ref().map(|(_, s)| opts.out_dir.join(&s.name));
    let mut cleanup = CleanupDir(None);
    if !opts.out_dir.exists() {
        std::fs::create_dir_all(&opts.out_dir)
            .map_err(|e| Error::io("create", &opts.out_dir, e))?;
        cleanup.0 = Some(opts.out_dir.clone());
    }
    for p in [
        Some(&manifest_path),
        Some(&artifact_path),
        sbom_path.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        if p.exists() {
            return Err(Error::OutputExists { path: p.clone() });
        }
    }

    let tmp_artifact = tempfile::Builder::new()
        .prefix(".charter-artifact-")
        .tempfile_in(&opts.out_dir)
        .map_err(|e| Error::io("create a temporary file in", &opts.out_dir, e))?;
    let file = tmp_artifact
        .as_file()
        .try_clone()
        .map_err(|e| Error::io("open", tmp_artifact.path(), e))?;
    let out = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, file));
    let mtime = opts.released_at.as_second().max(0) as u64;

    let (entries, out) = match opts.format {
        ArtifactFormat::TarZst => {
            let mut enc = zstd::stream::write::Encoder::new(out, opts.level)
                .map_err(|e| Error::io("start zstd for", &artifact_path, e))?;
            // Jobs of 4 MiB (the default at level 3 is 8 MiB): half the
            // buffers per worker, so peak memory stays under 64 MiB, at a
            // cost in ratio too small to see (bench/manifest.sh).
            enc.include_checksum(true)
                .and_then(|()| enc.multithread(opts.threads.max(1)))
                .and_then(|()| enc.set_parameter(zstd::stream::raw::CParameter::JobSize(4 << 20)))
                .map_err(|e| Error::io("configure zstd for", &artifact_path, e))?;
            let (entries, enc) = write_tar(&opts.from, scanned, enc, mtime, &config, progress)?;
            let out = enc
                .finish()
                .map_err(|e| Error::io("write", &artifact_path, e))?;
            (entries, out)
        }
        ArtifactFormat::TarGz => {
            let level = flate2::Compression::new(opts.level.clamp(0, 9) as u32);
            let enc = flate2::write::GzEncoder::new(out, level);
            let (entries, enc) = write_tar(&opts.from, scanned, enc, mtime, &config, progress)?;
            let out = enc
                .finish()
                .map_err(|e| Error::io("write", &artifact_path, e))?;
            (entries, out)
        }
    };
    let (sha256, size, buffered) = out.finish();
    buffered
        .into_inner()
        .map_err(|e| Error::io("write", &artifact_path, e.into_error()))?
        .sync_all()
        .map_err(|e| Error::io("sync", &artifact_path, e))?;

    let manifest = Manifest {
        product: opts.product.clone(),
        version: opts.version.clone(),
        released_at: opts.released_at,
        expires: opts.expires,
        security_fix: opts.security_fix,
        artifact: Artifact {
            name,
            format: opts.format,
            size,
            sha256,
        },
        preserve: opts.preserve.clone(),
        config: opts.config.clone(),
        health_check: opts.health_check.clone(),
        scripts: opts.scripts.clone(),
        sbom: sbom.as_ref().map(|(_, s)| s.clone()),
        files: entries,
    };
    manifest.validate(limits)?;
    let envelope = Envelope::new_unsigned(PAYLOAD_MANIFEST, manifest.to_payload()).to_json();

    use std::os::unix::fs::PermissionsExt;
    tmp_artifact
        .as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(|e| Error::io("chmod", tmp_artifact.path(), e))?;
    tmp_artifact
        .persist_noclobber(&artifact_path)
        .map_err(|e| Error::io("rename into place", &artifact_path, e.error))?;
    let written = match (&sbom, &sbom_path) {
        (Some((bytes, _)), Some(p)) => write_new(p, bytes),
        _ => Ok(()),
    }
    .and_then(|()| write_new(&manifest_path, &envelope));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&artifact_path);
        if let Some(p) = &sbom_path {
            let _ = std::fs::remove_file(p);
        }
        return Err(e);
    }
    charter_keys::fsutil::sync_dir(&opts.out_dir)?;
    cleanup.0 = None;
    Ok(Created {
        manifest,
        manifest_path,
        artifact_path,
    })
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = charter_keys::fsutil::parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".charter-tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, e))?;
    use std::os::unix::fs::PermissionsExt;
    tmp.write_all(bytes)
        .and_then(|()| {
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
        })
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io("write", path, e))?;
    tmp.persist_noclobber(path)
        .map_err(|e| Error::io("rename into place", path, e.error))?;
    Ok(())
}

/// Writes every scanned entry into a tar stream on `w`, hashing file
/// contents as they stream. Headers are deterministic: ustar/GNU with
/// uid/gid 0, no user names, one mtime.
fn write_tar<W: Write>(
    root: &Path,
    scanned: Vec<Scanned>,
    w: W,
    mtime: u64,
    config: &globset::GlobSet,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(Vec<Entry>, W)> {
    let mut builder = tar::Builder::new(w);
    let mut entries = Vec::with_capacity(scanned.len());
    let tar_err = |p: &Path, e: io::Error| Error::io("archive", p, e);
    for s in scanned {
        let full = root.join(s.path.as_str());
        let mut header = tar::Header::new_gnu();
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        match s.found {
            Found::Dir { mode } => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(mode);
                header.set_size(0);
                builder
                    .append_data(&mut header, s.path.as_str(), io::empty())
                    .map_err(|e| tar_err(&full, e))?;
                entries.push(Entry::Dir { path: s.path, mode });
            }
            Found::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder
                    .append_link(&mut header, s.path.as_str(), &target)
                    .map_err(|e| tar_err(&full, e))?;
                entries.push(Entry::Symlink {
                    path: s.path,
                    target,
                });
            }
            Found::File { mode, size } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(mode);
                header.set_size(size);
                // O_NOFOLLOW, then fstat: a file swapped for a symlink (or
                // anything else) since the walk is refused, not followed.
                let file = {
                    use std::os::unix::fs::OpenOptionsExt;
                    std::fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                        .open(&full)
                        .map_err(|e| Error::io("read", &full, e))?
                };
                let md = file.metadata().map_err(|e| Error::io("stat", &full, e))?;
                if !md.is_file() {
                    return Err(Error::FileChanged { path: full });
                }
                let mut reader = HashingReader {
                    inner: file.take(size),
                    hasher: Sha256::new(),
                    count: 0,
                };
                builder
                    .append_data(
                        &mut header,
                        s.path.as_str(),
                        BufReader::with_capacity(tree::READ_BUF, &mut reader),
                    )
                    .map_err(|e| tar_err(&full, e))?;
                let mut probe = [0u8; 1];
                let grew = reader
                    .inner
                    .get_mut()
                    .read(&mut probe)
                    .map_err(|e| Error::io("read", &full, e))?;
                if reader.count != size || grew != 0 {
                    return Err(Error::FileChanged { path: full });
                }
                progress(size);
                entries.push(Entry::File {
                    kind: tree::classify(&s.path, mode, config),
                    path: s.path,
                    mode,
                    size,
                    sha256: Sha256Digest(reader.hasher.finalize().into()),
                });
            }
        }
    }
    let w = builder
        .into_inner()
        .map_err(|e| Error::io("finish archive", root, e))?;
    Ok((entries, w))
}
