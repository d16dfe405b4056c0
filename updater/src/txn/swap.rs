//! The swap (docs/SPEC.md §11.4, apply row 5 and rollback step 1):
//! `current` changes by one rename(2) of a fresh symlink over it.

use semver::Version;

use crate::host::layout::InstallRoot;
use crate::{Error, Result};

/// Points `current` at `releases/<v>` with one rename(2) of a fresh
/// symlink over it, or removes it (first install undone); then flushes
/// the install root.
pub(crate) fn point_current(root: InstallRoot<'_>, v: Option<&Version>) -> Result<()> {
    let current = root.current();
    match v {
        Some(v) => {
            let tmp = root.current_tmp();
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(format!("releases/{v}"), &tmp)
                .map_err(|e| Error::io("create symlink", &tmp, e))?;
            std::fs::rename(&tmp, &current)
                .map_err(|e| Error::io("rename into place", &current, e))?;
        }
        None => match std::fs::remove_file(&current) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &current, e)),
        },
    }
    charter_keys::fsutil::sync_dir(root.path())?;
    Ok(())
}
