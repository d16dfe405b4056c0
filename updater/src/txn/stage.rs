//! Staging (docs/SPEC.md §11.3): room for the release, then its tree in
//! `.staging/<to>.partial`, checked entry by entry as it streams in, the
//! host's setuid rule, carry-over, a flush and one rename into
//! `releases/<to>`. [`abort`] undoes it, for a failed apply and for
//! recovery alike.

use charter_release::archive::Layout;
use charter_release::manifest::{Entry, Manifest};
use semver::Version;

use super::Ctx;
use super::carry_over::carry_over;
use crate::failpoint;
use crate::host::fs::{remove_tree, sync_tree};
use crate::host::layout::InstallRoot;
use crate::host::state::HostState;
use crate::net::fetch::{Fetched, Fetcher};
use crate::{Error, Result};

/// Step 1: `releases/` must have room for the tree (every file rounded
/// up to 4 KiB plus 4 KiB, 4 KiB an other entry) plus 64 MiB.
pub(crate) fn check_space(root: InstallRoot<'_>, m: &Manifest) -> Result<()> {
    let need: u64 = m
        .files
        .iter()
        .map(|e| match e {
            Entry::File { size, .. } => size.div_ceil(4096) * 4096 + 4096,
            _ => 4096,
        })
        .sum::<u64>()
        .saturating_add(crate::host::fs::FREE_SPACE_RESERVE);
    let releases = root.releases();
    std::fs::create_dir_all(&releases).map_err(|e| Error::io("create", &releases, e))?;
    let vfs =
        rustix::fs::statvfs(&releases).map_err(|e| Error::io("statvfs", &releases, e.into()))?;
    let avail = vfs.f_bavail.saturating_mul(vfs.f_frsize);
    if avail < need {
        return Err(Error::NoSpace {
            path: releases,
            needed: need,
            available: avail,
        });
    }
    Ok(())
}

/// Steps 3 to 9: stages `m` from the repository or, for a plain artifact,
/// from the `download` the source verified; `from` is the running
/// release, whose config and preserved paths are carried over.
pub(crate) fn stage(
    cx: &Ctx<'_>,
    fetcher: &Fetcher,
    m: &Manifest,
    download: Option<std::fs::File>,
    from: Option<&Version>,
) -> Result<()> {
    let to = &m.version;
    let partial = cx.root.partial(to);
    cx.root.prepare_staging()?;
    remove_tree(&partial)?;
    cx.note(&format!("downloading and staging {} {to}", m.product));
    // The SBOM the manifest pins, first: small, and a mismatch stops the
    // update before the download.
    if let Some(s) = &m.sbom {
        let rel = format!("releases/{}/{to}/{}", m.product, s.name);
        let bytes = match fetcher.get(&rel, s.size, None)? {
            Fetched::Body(b, _) => b,
            Fetched::NotModified => {
                return Err(Error::NotFound {
                    url: fetcher.url_of(&rel),
                });
            }
        };
        s.matches(&bytes)?;
        cx.state.save_sbom(to, &bytes)?;
    }
    let (mut stream, layout): (Box<dyn std::io::Read + Send + '_>, _) = match download {
        None => {
            let rel = format!("releases/{}/{to}/{}", m.product, m.artifact.name);
            (fetcher.stream(&rel, m.artifact.size)?, Layout::Charter)
        }
        // Verified and scanned already; extracted from that same file
        // (whose digest extraction checks once more), under the plain
        // layout and the scan's decompression cap.
        Some(f) => {
            let layout = match cx.cfg.plain.as_ref() {
                Some(p) => Layout::Plain {
                    strip_components: usize::from(p.strip_components),
                    max_unpacked: p.max_unpacked_size,
                },
                None => Layout::Plain {
                    strip_components: 0,
                    max_unpacked: charter_release::archive::tar_bound(m),
                },
            };
            (Box::new(f), layout)
        }
    };
    crate::host::extract::extract_with(&mut stream, m, &partial, cx.limits, layout)?;
    drop(stream);
    // The host's rule for setuid/setgid bits, before anything can run the
    // tree (step 6).
    let setuid = cx.setuid_policy()?;
    for p in crate::host::extract::apply_setuid_policy(&partial, m, &setuid)? {
        cx.note(&format!(
            "{p}: setuid/setgid bits not installed (update.allow_setuid does not name it)"
        ));
    }
    failpoint::hit("apply:after-extract");
    // Carry config and preserved paths over from the running release.
    if let Some(old) = from {
        let old_dir = cx.root.release(old);
        let old_manifest = cx.stored_manifest(old);
        for note in carry_over(
            &old_dir,
            old_manifest.as_ref(),
            &partial,
            m,
            &cx.cfg.update.preserve,
        )? {
            cx.note(&note);
        }
    }
    sync_tree(&partial)?;
    let dest = cx.root.release(to);
    remove_tree(&dest)?;
    std::fs::rename(&partial, &dest).map_err(|e| Error::io("rename into place", &dest, e))?;
    charter_keys::fsutil::sync_dir(&cx.root.releases())?;
    failpoint::hit("apply:after-stage-rename");
    Ok(())
}

/// Undoes a staging of `to` that did not reach the swap: the partial
/// tree, a plain download, and `releases/<to>` unless the host state `st`
/// names it (`current` or `previous`). Best effort: what cannot be
/// removed now is removed by the next apply's cleanup or pruning.
pub(crate) fn abort(root: InstallRoot<'_>, st: &HostState, to: &Version) {
    let _ = remove_tree(&root.partial(to));
    let _ = std::fs::remove_file(root.download(to));
    if st.current.as_ref() != Some(to) && st.previous.as_ref() != Some(to) {
        let _ = remove_tree(&root.release(to));
    }
}
