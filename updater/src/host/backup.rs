//! Config and license backups per update (docs/SPEC.md §11.9).
//!
//! Before an update departs from release R, the config files of R (the
//! manifest's `config` entries, which the update carries over) and the
//! license file are copied into `<state_dir>/backups/<R>/` with their
//! digests, modes and owners. A rollback to R restores any of them whose
//! bytes differ, so an update script that rewrote a config or the license
//! cannot survive the rollback. The backup is written to `<R>.partial` and
//! renamed, so it is whole or absent.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use semver::Version;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::{Error, Result};
use charter_release::Error as ReleaseError;
use charter_release::digest::Sha256Digest;

/// Largest file backed up (configs and licenses are small).
const MAX_BACKUP_FILE_BYTES: u64 = 16 << 20;
/// Largest backup index read.
const MAX_INDEX_BYTES: u64 = 1 << 20;
const INDEX: &str = "backup.json";

/// One backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// The release whose files these are.
    pub release: Version,
    /// The release the update went to.
    pub to: Version,
    /// The update's transaction id.
    pub txn: String,
    /// When it was taken.
    pub created: Timestamp,
    /// The files.
    pub files: Vec<BackedUp>,
}

/// One backed-up file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackedUp {
    /// `config` or `license`.
    pub kind: String,
    /// Where it lives.
    pub path: PathBuf,
    /// Its digest when backed up.
    pub sha256: Sha256Digest,
    /// Its size.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// File name inside the backup directory.
    pub stored: String,
}

/// A file to back up.
#[derive(Debug, Clone)]
pub struct Source {
    /// `config` or `license`.
    pub kind: &'static str,
    /// Its path.
    pub path: PathBuf,
}

fn dir(state: &Path) -> PathBuf {
    state.join("backups")
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Reads a regular file without following a final symlink, capped.
fn read_plain(path: &Path) -> Result<Option<(Vec<u8>, std::fs::Metadata)>> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // A symlink (ELOOP) or anything unreadable is not backed up.
        Err(_) => return Ok(None),
    };
    let md = file.metadata().map_err(io("stat", path))?;
    if !md.is_file() {
        return Ok(None);
    }
    if md.len() > MAX_BACKUP_FILE_BYTES {
        return Err(ReleaseError::InvalidInput {
            what: "backup",
            reason: format!(
                "{} is {} bytes, more than {MAX_BACKUP_FILE_BYTES}",
                path.display(),
                md.len()
            ),
        }
        .into());
    }
    let mut buf = Vec::with_capacity(md.len() as usize);
    file.take(MAX_BACKUP_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(io("read", path))?;
    Ok(Some((buf, md)))
}

/// Takes the backup of `release` (replacing an older one of the same
/// release). Missing files are skipped; symlinks are not followed.
pub fn take(
    state: &Path,
    release: &Version,
    to: &Version,
    txn: &str,
    sources: &[Source],
    now: Timestamp,
) -> Result<Backup> {
    let base = dir(state);
    std::fs::create_dir_all(&base).map_err(io("create", &base))?;
    let partial = base.join(format!("{release}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir(&partial).map_err(io("create", &partial))?;
    let mut files = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        let Some((bytes, md)) = read_plain(&s.path)? else {
            continue;
        };
        let stored = format!("{i}.{}", s.kind);
        charter_keys::fsutil::create_private(&partial.join(&stored), &bytes)?;
        files.push(BackedUp {
            kind: s.kind.to_owned(),
            path: s.path.clone(),
            sha256: Sha256Digest(sha2::Sha256::digest(&bytes).into()),
            size: bytes.len() as u64,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            stored,
        });
    }
    let b = Backup {
        release: release.clone(),
        to: to.clone(),
        txn: txn.to_owned(),
        created: now,
        files,
    };
    let json = serde_json::to_vec_pretty(&b).map_err(|e| ReleaseError::InvalidInput {
        what: "backup",
        reason: e.to_string(),
    })?;
    charter_keys::fsutil::create_private(&partial.join(INDEX), &json)?;
    let final_dir = base.join(release.to_string());
    if final_dir.exists() {
        let old = base.join(format!("{release}.old"));
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(&final_dir, &old).map_err(io("rename", &final_dir))?;
        std::fs::rename(&partial, &final_dir).map_err(io("rename", &partial))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&partial, &final_dir).map_err(io("rename", &partial))?;
    }
    charter_keys::fsutil::sync_dir(&base)?;
    Ok(b)
}

/// The backup of `release`, if one is kept.
pub fn load(state: &Path, release: &Version) -> Option<Backup> {
    let p = dir(state).join(release.to_string()).join(INDEX);
    let bytes = charter_keys::fsutil::read_capped(&p, MAX_INDEX_BYTES, "a backup index").ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Every kept backup, oldest release first.
pub fn list(state: &Path) -> Vec<Backup> {
    let mut out: Vec<Backup> = std::fs::read_dir(dir(state))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<Version>().ok())
        .filter_map(|v| load(state, &v))
        .collect();
    out.sort_by(|a, b| a.release.cmp(&b.release));
    out
}

/// Whether a backed-up file's current bytes differ from the backup
/// (missing counts as differing).
pub fn differs(f: &BackedUp) -> bool {
    match read_plain(&f.path) {
        Ok(Some((bytes, _))) => Sha256Digest(sha2::Sha256::digest(&bytes).into()) != f.sha256,
        _ => true,
    }
}

/// Which files of a backup a restore writes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// The release's config files only (the operator may have changed
    /// the license since).
    Config,
    /// The config files and the license (automatic rollbacks: nothing but
    /// the update can have changed it since).
    ConfigAndLicense,
}

/// Restores every file of `b` whose bytes differ (the license only under
/// [`Restore::ConfigAndLicense`]), byte for byte with its mode and owner.
/// Returns the paths restored.
pub fn restore(state: &Path, b: &Backup, which: Restore) -> Result<Vec<PathBuf>> {
    let base = dir(state).join(b.release.to_string());
    let mut restored = Vec::new();
    for f in &b.files {
        if (f.kind == "license" && which == Restore::Config) || !differs(f) {
            continue;
        }
        let src = base.join(&f.stored);
        let bytes =
            charter_keys::fsutil::read_capped(&src, MAX_BACKUP_FILE_BYTES, "a backed-up file")?;
        if Sha256Digest(sha2::Sha256::digest(&bytes).into()) != f.sha256 {
            return Err(ReleaseError::DigestMismatch {
                what: format!("backup copy of {}", f.path.display()),
                expected: f.sha256.to_string(),
                found: Sha256Digest(sha2::Sha256::digest(&bytes).into()).to_string(),
            }
            .into());
        }
        // A symlink planted where the file was is replaced, not followed.
        if std::fs::symlink_metadata(&f.path).is_ok_and(|m| m.file_type().is_symlink()) {
            std::fs::remove_file(&f.path).map_err(io("remove", &f.path))?;
        }
        charter_keys::fsutil::write_atomic(&f.path, &bytes, f.mode)?;
        // Best effort: only root can give a file away.
        let _ = std::os::unix::fs::lchown(&f.path, Some(f.uid), Some(f.gid));
        restored.push(f.path.clone());
    }
    Ok(restored)
}

/// Drops the backup of `release` (pruned with the release).
pub fn remove(state: &Path, release: &Version) {
    let _ = std::fs::remove_dir_all(dir(state).join(release.to_string()));
}
