//! Walking and hashing a release tree. The same code builds a manifest on
//! the release engineer's machine and (in the updater) checks an installed
//! tree against one, like `rpm -V`.
//!
//! Files are hashed in parallel on all cores, streamed through a fixed
//! buffer per thread, never read whole into memory.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

use crate::digest::Sha256Digest;
use crate::manifest::{Entry, FileKind};
use crate::path::ArchivePath;
use crate::{Error, Limits, Result};

/// Read size for hashing: large enough that syscalls vanish from profiles,
/// small enough that memory stays flat (one buffer per thread).
pub const READ_BUF: usize = 1 << 20;

/// What was found at a path while walking a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A directory.
    Dir {
        /// Permission bits.
        mode: u32,
    },
    /// A regular file.
    File {
        /// Permission bits.
        mode: u32,
        /// Size when walked.
        size: u64,
    },
    /// A symlink with a target inside the tree.
    Symlink {
        /// The target as written.
        target: String,
    },
}

/// One entry found while walking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    /// Path inside the tree.
    pub path: ArchivePath,
    /// What it is.
    pub found: Found,
}

/// Walks `root` without following symlinks and returns every entry sorted
/// by path. Refuses devices, FIFOs and sockets, symlinks that leave the
/// tree, non-UTF-8 names, and more than `limits.max_files` entries.
pub fn scan(root: &Path, limits: &Limits) -> Result<Vec<Scanned>> {
    let meta = std::fs::metadata(root).map_err(|e| Error::io("read", root, e))?;
    if !meta.is_dir() {
        return Err(Error::InvalidInput {
            what: "release directory",
            reason: format!("{} is not a directory", root.display()),
        });
    }
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel_dir) = stack.pop() {
        let dir = root.join(&rel_dir);
        let rd = std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
        for item in rd {
            let item = item.map_err(|e| Error::io("list", &dir, e))?;
            let rel = rel_dir.join(item.file_name());
            let full = root.join(&rel);
            let path = ArchivePath::from_relative(&rel, limits.max_path_bytes)?;
            let md = std::fs::symlink_metadata(&full).map_err(|e| Error::io("stat", &full, e))?;
            let ft = md.file_type();
            let mode = md.mode() & 0o7777;
            let found = if ft.is_dir() {
                stack.push(rel);
                Found::Dir { mode }
            } else if ft.is_file() {
                Found::File {
                    mode,
                    size: md.len(),
                }
            } else if ft.is_symlink() {
                let target =
                    std::fs::read_link(&full).map_err(|e| Error::io("read link", &full, e))?;
                let target =
                    target
                        .to_str()
                        .map(str::to_owned)
                        .ok_or_else(|| Error::SymlinkEscape {
                            path: full.clone(),
                            target: target.to_string_lossy().into_owned(),
                        })?;
                if path.resolve_link_target(&target).is_none() {
                    return Err(Error::SymlinkEscape { path: full, target });
                }
                Found::Symlink { target }
            } else {
                let kind = if ft.is_block_device() {
                    "block device"
                } else if ft.is_char_device() {
                    "character device"
                } else if ft.is_fifo() {
                    "FIFO"
                } else if ft.is_socket() {
                    "socket"
                } else {
                    "special file"
                };
                return Err(Error::SpecialFile { path: full, kind });
            };
            out.push(Scanned { path, found });
            if out.len() > limits.max_files {
                return Err(Error::InvalidInput {
                    what: "release directory",
                    reason: format!("more than {} entries", limits.max_files),
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Hashes one file through `buf`, returning its digest and length.
pub fn hash_file(path: &Path, buf: &mut [u8]) -> Result<(Sha256Digest, u64)> {
    let mut file = File::open(path).map_err(|e| Error::io("read", path, e))?;
    let mut h = Sha256::new();
    let mut len = 0u64;
    loop {
        let n = match file.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read", path, e)),
        };
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok((Sha256Digest(h.finalize().into()), len))
}

/// Hashes `files` (paths relative to `root`) on `threads` threads, largest
/// files first so the last thread does not finish long after the others.
/// `progress` is called with byte counts as they are hashed. Results are in
/// the order of `files`. Stops at the first error.
pub fn hash_files(
    root: &Path,
    files: &[(&ArchivePath, u64)],
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<(Sha256Digest, u64)>> {
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(files[i].1));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<(Sha256Digest, u64)>>> = Mutex::new(vec![None; files.len()]);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let threads = threads.clamp(1, files.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = vec![0u8; READ_BUF];
                while !failed.load(Ordering::Relaxed) {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = order.get(k) else { break };
                    let (rel, _) = files[i];
                    match hash_file(&root.join(rel.as_str()), &mut buf) {
                        Ok(r) => {
                            progress(r.1);
                            if let Ok(mut v) = results.lock() {
                                v[i] = Some(r);
                            }
                        }
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            if let Ok(mut slot) = first_error.lock() {
                                slot.get_or_insert(e);
                            }
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let results = results.into_inner().unwrap_or_default();
    results
        .into_iter()
        .zip(files)
        .map(|(r, (p, _))| {
            r.ok_or_else(|| Error::InvalidInput {
                what: "tree",
                reason: format!("{p} was not hashed"),
            })
        })
        .collect()
}

/// The kind of a file: config when a config glob matches, program when any
/// execute bit is set, data otherwise.
pub fn classify(path: &ArchivePath, mode: u32, config: &globset::GlobSet) -> FileKind {
    if config.is_match(path.as_str()) {
        FileKind::Config
    } else if mode & 0o111 != 0 {
        FileKind::Program
    } else {
        FileKind::Data
    }
}

/// Walks and hashes a whole tree into manifest entries (no packing): what
/// `charter hash-tree` prints and what the updater's `verify` compares.
pub fn hash_tree(
    root: &Path,
    config: &globset::GlobSet,
    threads: usize,
    limits: &Limits,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<Entry>> {
    let scanned = scan(root, limits)?;
    let files: Vec<(&ArchivePath, u64)> = scanned
        .iter()
        .filter_map(|s| match s.found {
            Found::File { size, .. } => Some((&s.path, size)),
            _ => None,
        })
        .collect();
    let digests = hash_files(root, &files, threads, progress)?;
    let mut digests = digests.into_iter();
    scanned
        .into_iter()
        .map(|s| {
            Ok(match s.found {
                Found::Dir { mode } => Entry::Dir { path: s.path, mode },
                Found::Symlink { target } => Entry::Symlink {
                    path: s.path,
                    target,
                },
                Found::File { mode, .. } => {
                    let (sha256, size) = digests.next().ok_or_else(|| Error::InvalidInput {
                        what: "tree",
                        reason: "digest count mismatch".into(),
                    })?;
                    Entry::File {
                        kind: classify(&s.path, mode, config),
                        path: s.path,
                        mode,
                        size,
                        sha256,
                    }
                }
            })
        })
        .collect()
}

/// How many threads to hash with: every core the process may use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
