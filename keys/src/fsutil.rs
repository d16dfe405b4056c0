//! Small file helpers that every charter crate uses the same way: capped
//! reads, atomic replacement, and private (0600) files created exclusively.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::{Error, Result};

/// Reads a whole file, refusing it when it is larger than `max` bytes. The
/// size is checked on the open file and the read itself is bounded, so a file
/// that grows meanwhile cannot slip past the cap.
pub fn read_capped(path: &Path, max: u64, what: &'static str) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| Error::io("read", path, e))?;
    read_open_capped(file, path, max, what)
}

pub(crate) fn read_open_capped(
    file: File,
    path: &Path,
    max: u64,
    what: &'static str,
) -> Result<Vec<u8>> {
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat", path, e))?
        .len();
    let too_large = |size| Error::FileTooLarge {
        path: path.to_owned(),
        what,
        size,
        max,
    };
    if len > max {
        return Err(too_large(len));
    }
    match read_at_most(file, max, len) {
        Ok(Ok(buf)) => Ok(buf),
        Ok(Err(n)) => Err(too_large(n)),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Reads `r` to its end when it holds at most `max` bytes (`size_hint`
/// bytes are reserved first, capped at `max`). Reading stops one byte past
/// `max`: a longer stream, even an endless one, is `Err(max + 1)` at once,
/// never an I/O error. Shared by capped file reads and the capped HTTP
/// bodies of the updater and the agent.
pub fn read_at_most(
    r: impl Read,
    max: u64,
    size_hint: u64,
) -> std::io::Result<std::result::Result<Vec<u8>, u64>> {
    let mut buf = Vec::with_capacity(size_hint.min(max) as usize);
    r.take(max.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Ok(Err(buf.len() as u64));
    }
    Ok(Ok(buf))
}

/// Refuses a file that group or others can access in any way. Used for
/// private keys, passphrase files and host secrets.
pub fn check_private_mode(file: &File, path: &Path) -> Result<()> {
    let mode = file
        .metadata()
        .map_err(|e| Error::io("stat", path, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::InsecurePermissions {
            path: path.to_owned(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// Opens a private file for reading after checking its mode, and reads it
/// whole with a cap.
pub fn read_private(path: &Path, max: u64, what: &'static str) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| Error::io("read", path, e))?;
    check_private_mode(&file, path)?;
    read_open_capped(file, path, max, what)
}

/// Creates `path` with mode 0600, failing if anything already exists there,
/// writes `bytes`, and fsyncs the file and its directory. On a failed write
/// the partial file is removed.
pub fn create_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("create", path, e))?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("write", path, e));
    if let Err(e) = written {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    sync_parent(path)
}

/// Replaces `path` atomically: writes a temporary file in the same
/// directory, fsyncs it, renames it over `path`, and fsyncs the directory.
/// A crash at any instant leaves either the old or the new file whole.
/// `mode` sets the new file's permission bits.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".charter-tmp-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io("write", tmp.path().to_owned(), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("rename into place", path, e.error))?;
    sync_parent(path)
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// fsyncs the directory that holds `path`, so a rename or a new entry in it
/// survives power loss.
pub fn sync_parent(path: &Path) -> Result<()> {
    sync_dir(parent_dir(path))
}

/// fsyncs a directory.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync directory", dir, e))
}
