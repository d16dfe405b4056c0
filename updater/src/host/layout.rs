//! Where things are under the install root (docs/SPEC.md §11.1, §11.3):
//!
//! ```text
//! <install_root>/releases/<v>/          one directory per installed release
//! <install_root>/current -> releases/<v> the release that runs
//! <install_root>/.current.tmp           the next `current`, before its rename
//! <install_root>/.staging/<v>.partial   a release being staged
//! <install_root>/.staging/<v>.download  a plain artifact being downloaded
//! ```

use std::path::{Path, PathBuf};

use semver::Version;

use super::fs::private_dir;
use crate::Result;

/// The paths of one install root.
#[derive(Debug, Clone, Copy)]
pub struct InstallRoot<'a>(&'a Path);

impl<'a> InstallRoot<'a> {
    /// The layout under `root` (`paths.install_root`).
    pub fn new(root: &'a Path) -> Self {
        InstallRoot(root)
    }

    /// The install root itself.
    pub fn path(&self) -> &'a Path {
        self.0
    }

    /// `releases/`.
    pub fn releases(&self) -> PathBuf {
        self.0.join("releases")
    }

    /// `releases/<v>`.
    pub fn release(&self, v: &Version) -> PathBuf {
        self.releases().join(v.to_string())
    }

    /// The `current` symlink.
    pub fn current(&self) -> PathBuf {
        self.0.join("current")
    }

    /// Where the next `current` is made before it is renamed over it.
    pub fn current_tmp(&self) -> PathBuf {
        self.0.join(".current.tmp")
    }

    /// `.staging/`, where releases are staged and plain artifacts
    /// downloaded: on the same file system as `releases/` so the final
    /// move is one rename, and apart from it so a refused release leaves
    /// `releases/` untouched.
    pub fn staging(&self) -> PathBuf {
        self.0.join(".staging")
    }

    /// Makes `.staging/` (0700) unless it exists, and refuses it when
    /// anyone but this user could change it ([`private_dir`]).
    pub fn prepare_staging(&self) -> Result<PathBuf> {
        let dir = self.staging();
        private_dir(&dir)?;
        Ok(dir)
    }

    /// `.staging/<v>.partial`: release `v` while it is staged.
    pub fn partial(&self, v: &Version) -> PathBuf {
        self.staging().join(format!("{v}.partial"))
    }

    /// `.staging/<v>.download`: a plain artifact of `v` while it is
    /// downloaded, before it is scanned and staged.
    pub fn download(&self, v: &Version) -> PathBuf {
        self.staging().join(format!("{v}.download"))
    }

    /// The versions under `releases/`, oldest first (names that are not
    /// versions are not releases).
    pub fn installed_versions(&self) -> Vec<Version> {
        let mut versions: Vec<Version> = std::fs::read_dir(self.releases())
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        versions.sort();
        versions
    }

    /// The version `current` points at, read from the file system.
    pub fn current_link(&self) -> Option<Version> {
        let link = std::fs::read_link(self.current()).ok()?;
        link.to_str()?.strip_prefix("releases/")?.parse().ok()
    }
}
