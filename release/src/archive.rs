//! The rules every archive entry meets, shared by extraction (the host
//! staging a release) and the scan of a plain tarball (docs/SPEC.md §11.3,
//! §13.5): the cap on the decompressed stream, which entry types are
//! refused and how they are named, symlink targets, how archive paths map
//! to manifest paths, and which setuid/setgid bits are installed.

use std::collections::BTreeSet;
use std::io::{self, Read};

use crate::manifest::{Entry, Manifest};
use crate::path::ArchivePath;
use crate::{Error, Result};

/// Fails once more than `max` decompressed bytes were read: the signed
/// manifest bounds how large the tar stream can be, so a decompression bomb
/// stops there.
struct Bounded<R> {
    inner: R,
    left: u64,
    max: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut one = [0u8; 1];
            return match self.inner.read(&mut one)? {
                0 => Ok(0),
                _ => Err(io::Error::other(BoundExceeded(self.max))),
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

#[derive(Debug)]
struct BoundExceeded(u64);
impl std::fmt::Display for BoundExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "decompressed data exceeds the {} bytes the manifest allows",
            self.0
        )
    }
}
impl std::error::Error for BoundExceeded {}

/// Caps a decompressed stream at `max` bytes; reading past it fails with
/// an error [`bound_exceeded`] recognizes.
pub fn bounded<R: Read>(inner: R, max: u64) -> impl Read {
    Bounded {
        inner,
        left: max,
        max,
    }
}

/// The cap, when `e` is the error of a [`bounded`] reader.
pub fn bound_exceeded(e: &io::Error) -> Option<u64> {
    e.get_ref()?.downcast_ref::<BoundExceeded>().map(|b| b.0)
}

/// The host's rule for setuid and setgid bits (docs/SPEC.md §11.3): a
/// release may sign them, but they are installed only on the files the
/// host config names in `update.allow_setuid`; everywhere else they are
/// stripped, so a release key alone cannot plant a root setuid binary.
/// Directories keep their signed bits (setgid on a directory only makes
/// new files inherit its group; setuid on one means nothing on Linux).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetuidPolicy {
    allowed: BTreeSet<ArchivePath>,
}

impl SetuidPolicy {
    /// Allows setuid/setgid bits on exactly these files.
    pub fn allow(paths: impl IntoIterator<Item = ArchivePath>) -> Self {
        SetuidPolicy {
            allowed: paths.into_iter().collect(),
        }
    }

    /// The mode a file the manifest lists with `mode` is installed with.
    pub fn installed_mode(&self, path: &ArchivePath, mode: u32) -> u32 {
        if mode & 0o6000 != 0 && !self.allowed.contains(path) {
            mode & !0o6000
        } else {
            mode
        }
    }
}

/// How a refused tar entry type is named in messages.
pub fn forbidden_kind(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "FIFO",
        tar::EntryType::GNUSparse => "sparse file",
        _ => "entry of an unsupported type",
    }
}

/// How the archive's paths map to the manifest's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Layout {
    /// A charter artifact: one entry per manifest path, every directory an
    /// entry of its own before what it holds, the decompressed stream
    /// capped at [`tar_bound`] of the signed manifest.
    #[default]
    Charter,
    /// A plain artifact (docs/SPEC.md §13.5): paths may start with `./` or
    /// top directories, directories may be implied, pax global headers
    /// are skipped.
    Plain {
        /// Leading components dropped.
        strip_components: usize,
        /// Cap on the decompressed stream (the manifest was read from the
        /// archive, so it does not bound the archive's own metadata, such
        /// as pax records).
        max_unpacked: u64,
    },
}

impl Layout {
    /// The most decompressed bytes an archive of `manifest` may hold.
    pub fn stream_bound(&self, manifest: &Manifest) -> u64 {
        match self {
            Layout::Charter => tar_bound(manifest),
            Layout::Plain { max_unpacked, .. } => *max_unpacked,
        }
    }
}

/// A symlink entry's target: UTF-8, as the manifest holds it (bytes that
/// are not would be installed changed, so they are refused).
pub fn link_target<R: Read>(entry: &tar::Entry<'_, R>, path: &str) -> Result<String> {
    let raw = entry
        .link_name_bytes()
        .map(|b| b.into_owned())
        .unwrap_or_default();
    String::from_utf8(raw).map_err(|_| Error::UnsafePath {
        path: path.chars().take(300).collect(),
        reason: "symlink target not valid UTF-8",
    })
}

/// The largest tar stream a manifest can justify: headers, long-name
/// records, content rounded to blocks, end-of-archive and record padding.
pub fn tar_bound(manifest: &Manifest) -> u64 {
    let round = |n: u64| n.div_ceil(512) * 512;
    let mut total: u64 = 20 * 512 + 10_240;
    for e in &manifest.files {
        let name = e.path().as_str().len() as u64;
        let (size, link) = match e {
            Entry::File { size, .. } => (*size, 0),
            Entry::Symlink { target, .. } => (0, target.len() as u64),
            Entry::Dir { .. } => (0, 0),
        };
        total = total
            .saturating_add(3 * 512)
            .saturating_add(round(name + 1))
            .saturating_add(round(link + 1))
            .saturating_add(round(size));
    }
    total
}
