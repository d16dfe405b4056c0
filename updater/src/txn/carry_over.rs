//! Carry-over (docs/SPEC.md §11.3, step 7): config files under dpkg's
//! conffile rules and the operator's preserved paths, from the running
//! release into the one being staged.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use charter_release::Error as ReleaseError;
use charter_release::manifest::{Entry, FileKind, Manifest, compile_globs};

use crate::host::fs::remove_tree;
use crate::{Error, Result};

/// Carries config files (dpkg conffile rules) and preserved paths from the
/// running release `old` into the staged release `new_dir`
/// (docs/SPEC.md §11.3, step 7). Returns notes for the operator.
pub(crate) fn carry_over(
    old: &Path,
    old_manifest: Option<&Manifest>,
    new_dir: &Path,
    new: &Manifest,
    extra_preserve: &[String],
) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let mut buf = vec![0u8; charter_release::tree::READ_BUF];
    let old_entries = old_manifest
        .map(Manifest::entries_by_path)
        .unwrap_or_default();
    // Config files.
    for e in &new.files {
        let Entry::File {
            path,
            sha256: new_default,
            kind: FileKind::Config,
            ..
        } = e
        else {
            continue;
        };
        let old_file = old.join(path.as_str());
        let Ok(md) = std::fs::symlink_metadata(&old_file) else {
            continue;
        };
        if !md.is_file() {
            continue;
        }
        let (old_digest, _) = charter_release::tree::hash_file(&old_file, &mut buf)?;
        let old_default = match old_entries.get(path.as_str()) {
            Some(Entry::File { sha256, .. }) => Some(*sha256),
            _ => None,
        };
        if Some(old_digest) == old_default || old_digest == *new_default {
            continue; // unmodified by the operator, or already the new default
        }
        let dest = new_dir.join(path.as_str());
        if old_default != Some(*new_default) {
            let beside = new_dir.join(format!("{path}.charter-new"));
            std::fs::rename(&dest, &beside).map_err(|e| Error::io("rename", &dest, e))?;
            notes.push(format!(
                "kept your {path}; the new default is beside it as {path}.charter-new"
            ));
        } else {
            notes.push(format!("kept your {path}"));
        }
        if copy_replace(&old_file, &dest)? {
            notes.push(format!("{path}: setuid/setgid bits not carried over"));
        }
    }
    // Preserved paths.
    let mut globs = new.preserve.clone();
    globs.extend(extra_preserve.iter().cloned());
    if globs.is_empty() || !old.is_dir() {
        return Ok(notes);
    }
    let set = compile_globs(&globs)?;
    let configs: std::collections::BTreeSet<&str> = new
        .files
        .iter()
        .filter(|e| {
            matches!(
                e,
                Entry::File {
                    kind: FileKind::Config,
                    ..
                }
            )
        })
        .map(|e| e.path().as_str())
        .collect();
    let mut count = 0usize;
    for (p, md) in walk_tolerant(old) {
        if !set.is_match(&p) || configs.contains(p.as_str()) {
            continue;
        }
        let src = old.join(&p);
        let dest = new_dir.join(&p);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        }
        let ft = md.file_type();
        use std::os::unix::fs::MetadataExt;
        if ft.is_dir() {
            if !std::fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir()) {
                let _ = remove_tree(&dest);
                std::fs::create_dir(&dest).map_err(|e| Error::io("create", &dest, e))?;
            }
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(md.mode() & 0o7777))
                .map_err(|e| Error::io("chmod", &dest, e))?;
            keep_owner(&dest, &md, false);
        } else if ft.is_file() {
            if copy_replace(&src, &dest)? {
                notes.push(format!("{p}: setuid/setgid bits not carried over"));
            }
            count += 1;
        } else if ft.is_symlink() {
            // The product's own links under its preserved data are kept as
            // they are; they are never followed here.
            let target = std::fs::read_link(&src).map_err(|e| Error::io("read link", &src, e))?;
            let _ = remove_tree(&dest);
            std::os::unix::fs::symlink(&target, &dest)
                .map_err(|e| Error::io("create symlink", &dest, e))?;
            keep_owner(&dest, &md, true);
        } else {
            notes.push(format!("not carried over: {p} (socket, FIFO or device)"));
        }
    }
    if count > 0 {
        notes.push(format!("carried over {count} preserved file(s)"));
    }
    Ok(notes)
}

/// Every entry under `root` with a UTF-8 path (relative path, lstat),
/// sorted by path: preserved data is the product's, whatever it holds.
fn walk_tolerant(root: &Path) -> Vec<(String, std::fs::Metadata)> {
    let mut out: Vec<(String, std::fs::Metadata)> = crate::host::fs::walk_tolerant(root)
        .into_iter()
        .filter_map(|(r, md)| Some((r.to_str()?.to_owned(), md)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Gives `path` the owner of the original (only possible as root; a
/// non-root updater keeps its own ownership).
fn keep_owner(path: &Path, md: &std::fs::Metadata, is_link: bool) {
    use std::os::unix::fs::MetadataExt;
    let (uid, gid) = (Some(md.uid()), Some(md.gid()));
    let _ = if is_link {
        std::os::unix::fs::lchown(path, uid, gid)
    } else {
        std::os::unix::fs::chown(path, uid, gid)
    };
}

/// Copies the regular file `src` over `dest`, keeping owner and mode but
/// not setuid/setgid bits (returns whether it dropped some). The
/// source is opened with O_NOFOLLOW and checked to be a regular file on the
/// open descriptor, so a file swapped for a symlink after the walk is not
/// followed (this runs as root); `dest` is created new, never through a
/// link.
fn copy_replace(src: &Path, dest: &Path) -> Result<bool> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    let mut from = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nofollow)
        .open(src)
        .map_err(|e| Error::io("open", src, e))?;
    let md = from.metadata().map_err(|e| Error::io("stat", src, e))?;
    if !md.is_file() {
        return Err(ReleaseError::FileChanged {
            path: src.to_owned(),
        }
        .into());
    }
    match std::fs::symlink_metadata(dest) {
        Ok(m) if m.is_dir() => remove_tree(dest)?,
        Ok(_) => std::fs::remove_file(dest).map_err(|e| Error::io("remove", dest, e))?,
        Err(_) => {}
    }
    // Setuid and setgid bits are never carried over: a kept config or
    // preserved file is data, and the host's setuid rule (§11.3 step 6)
    // governs only what the signed manifest lists. The owner goes first,
    // then the mode (chown would clear those bits anyway).
    let mode = md.mode() & 0o1777;
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nofollow)
        .open(dest)
        .map_err(|e| Error::io("create", dest, e))?;
    std::io::copy(&mut from, &mut to).map_err(|e| Error::io("copy", src, e))?;
    let _ = std::os::unix::fs::fchown(&to, Some(md.uid()), Some(md.gid()));
    to.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("chmod", dest, e))?;
    Ok(md.mode() & 0o6000 != 0)
}
