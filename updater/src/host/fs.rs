//! File system helpers of the host side: removing a tree, the checks of
//! directories root works in, and flushing a staged tree.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Free space an update leaves on the file system it writes to: what a
/// download of unknown size stops before, and what staging needs beyond
/// the release tree itself.
pub const FREE_SPACE_RESERVE: u64 = 64 << 20;
use charter_release::Error as ReleaseError;

/// Removes a directory tree if it exists (making read-only directories
/// writable first, since releases may contain them).
pub fn remove_tree(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("stat", path, e)),
        Ok(md) if !md.is_dir() => {
            return std::fs::remove_file(path).map_err(|e| Error::io("remove", path, e));
        }
        Ok(_) => {}
    }
    if std::fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    let mut stack = vec![path.to_owned()];
    while let Some(d) = stack.pop() {
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700));
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
    std::fs::remove_dir_all(path).map_err(|e| Error::io("remove", path, e))
}

/// Refuses a directory root works in when another user could change it or
/// what it holds: the directory (when it exists; the updater makes it
/// otherwise) and every directory above it, both as configured and with
/// symlinks resolved, must be owned by root or by this process's user,
/// and not writable by others, nor by a group other than root's, unless
/// sticky (as `/tmp` is). Like sshd's StrictModes.
pub fn trusted_dir(dir: &Path, what: &'static str) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let euid = rustix::process::geteuid().as_raw();
    let mut paths: Vec<PathBuf> = dir.ancestors().map(Path::to_owned).collect();
    if let Ok(real) = std::fs::canonicalize(dir) {
        paths.extend(real.ancestors().map(Path::to_owned));
    }
    for p in paths {
        let md = match std::fs::metadata(&p) {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("stat", &p, e)),
        };
        let mode = md.mode() & 0o7777;
        let sticky = mode & 0o1000 != 0;
        let problem = if md.uid() != 0 && md.uid() != euid {
            Some(format!("is owned by uid {}", md.uid()))
        } else if !sticky && mode & 0o002 != 0 {
            Some(format!("is writable by everyone (mode {mode:o})"))
        } else if !sticky && mode & 0o020 != 0 && md.gid() != 0 {
            Some(format!("is writable by group {} (mode {mode:o})", md.gid()))
        } else {
            None
        };
        if let Some(reason) = problem {
            return Err(ReleaseError::InvalidInput {
                what,
                reason: format!(
                    "{} {reason}: another user could change what the updater, as root, \
                     installs or reads there",
                    p.display()
                ),
            }
            .into());
        }
    }
    Ok(())
}

/// Makes `dir` (0700) unless it exists, then refuses it when it is a
/// symlink, another user's, or writable by group or others: root writes
/// there, and nobody else may choose what it reads back.
pub fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("create", dir, e)),
    }
    let md = std::fs::symlink_metadata(dir).map_err(|e| Error::io("stat", dir, e))?;
    let euid = rustix::process::geteuid().as_raw();
    let problem = if !md.file_type().is_dir() {
        Some("is not a directory (a symlink?)".to_owned())
    } else if md.uid() != euid {
        Some(format!("is owned by uid {}, not {euid}", md.uid()))
    } else if md.mode() & 0o022 != 0 {
        Some(format!(
            "has mode {:o}: writable by others",
            md.mode() & 0o7777
        ))
    } else {
        None
    };
    match problem {
        Some(reason) => Err(ReleaseError::InvalidInput {
            what: "staging directory",
            reason: format!("{} {reason}", dir.display()),
        }
        .into()),
        None => Ok(()),
    }
}

/// Flushes a staged tree to disk: one syncfs(2) of its file system, then
/// an fsync of the tree's top directory.
pub fn sync_tree(path: &Path) -> Result<()> {
    let dir = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    rustix::fs::syncfs(&dir).map_err(|e| Error::io("syncfs", path, e.into()))?;
    dir.sync_all().map_err(|e| Error::io("sync", path, e))
}

/// Every entry under `root`: its path relative to `root` and its lstat,
/// never following symlinks and skipping what cannot be read instead of
/// failing (an installed tree holds the product's data, whatever it is).
/// In no particular order.
pub fn walk_tolerant(root: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(root.join(&rel)) else {
            continue;
        };
        for e in rd.flatten() {
            let r = rel.join(e.file_name());
            let Ok(md) = std::fs::symlink_metadata(root.join(&r)) else {
                continue;
            };
            if md.is_dir() {
                stack.push(r.clone());
            }
            out.push((r, md));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_dirs_refuse_what_others_could_change() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("opt/panel");
        std::fs::create_dir_all(&d).unwrap();
        trusted_dir(&d, "paths.install_root").unwrap();
        // Not there yet: its parents are checked.
        trusted_dir(&d.join("later"), "paths.install_root").unwrap();
        // World-writable parent (not sticky), then the directory itself.
        let opt = t.path().join("opt");
        std::fs::set_permissions(&opt, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = trusted_dir(&d, "paths.install_root")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("paths.install_root") && e.contains("writable by everyone"),
            "{e}"
        );
        // Sticky is fine (like /tmp).
        std::fs::set_permissions(&opt, std::fs::Permissions::from_mode(0o1777)).unwrap();
        trusted_dir(&d, "paths.install_root").unwrap();
        std::fs::set_permissions(&opt, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o757)).unwrap();
        assert!(trusted_dir(&d, "x").is_err());
        // Through a symlink: the target is checked too.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let open = t.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&open, &link).unwrap();
        assert!(trusted_dir(&link, "x").is_err());
    }

    #[test]
    fn private_dir_is_made_0700_and_others_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("s");
        private_dir(&d).unwrap();
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700);
        private_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = private_dir(&d).unwrap_err().to_string();
        assert!(e.contains("writable by others"), "{e}");
        let link = t.path().join("l");
        std::os::unix::fs::symlink(&d, &link).unwrap();
        let e = private_dir(&link).unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
        let file = t.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(
            private_dir(&file)
                .unwrap_err()
                .to_string()
                .contains("not a directory")
        );
    }
}
