//! Checking an installed tree against its signed manifest, like `rpm -V`
//! or `debsums`: every listed entry present with its type, mode, size,
//! digest or link target; nothing unlisted except preserved paths. Config
//! files an operator edited are reported apart, as expected changes.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde::Serialize;

use crate::Result;
use charter_release::Limits;
use charter_release::archive::SetuidPolicy;
use charter_release::manifest::{Entry, FileKind, Manifest};
use charter_release::path::ArchivePath;

/// One difference between the tree and the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Path inside the release.
    pub path: String,
    /// missing, content, mode, type, target, extra.
    pub kind: &'static str,
    /// Details.
    pub detail: String,
}

/// The result of a verification.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Entries checked.
    pub checked: usize,
    /// Bytes hashed.
    pub bytes_hashed: u64,
    /// Differences that should not be there.
    pub problems: Vec<Problem>,
    /// Config files that differ from the release's default (kept edits).
    pub config_changed: Vec<String>,
}

impl Report {
    /// True when nothing unexpected was found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

struct Seen {
    is_dir: bool,
    is_file: bool,
    is_link: bool,
    mode: u32,
    size: u64,
}

fn walk(root: &Path) -> BTreeMap<String, Seen> {
    super::fs::walk_tolerant(root)
        .into_iter()
        .map(|(r, md)| {
            let ft = md.file_type();
            let seen = Seen {
                is_dir: ft.is_dir(),
                is_file: ft.is_file(),
                is_link: ft.is_symlink(),
                mode: md.permissions().mode() & 0o7777,
                size: md.size(),
            };
            (r.to_string_lossy().into_owned(), seen)
        })
        .collect()
}

/// Verifies `dir` against `m`. `preserve` matches paths that may exist
/// without being listed (and whose content may differ). A file's mode is
/// compared with the mode `setuid` installs it with: setuid/setgid bits
/// the host stripped are expected to be absent, and present ones are a
/// problem.
pub fn verify_tree(
    dir: &Path,
    m: &Manifest,
    preserve: &globset::GlobSet,
    setuid: &SetuidPolicy,
    limits: &Limits,
) -> Result<Report> {
    let seen = walk(dir);
    let mut report = Report::default();
    let mut to_hash: Vec<(&ArchivePath, u64)> = Vec::new();
    let mut problem = |path: &str, kind, detail: String| {
        report.problems.push(Problem {
            path: path.to_owned(),
            kind,
            detail,
        });
    };
    for e in &m.files {
        let p = e.path().as_str();
        report.checked += 1;
        let Some(s) = seen.get(p) else {
            if !preserve.is_match(p) {
                problem(p, "missing", "listed in the manifest, not on disk".into());
            }
            continue;
        };
        match e {
            Entry::Dir { mode, .. } => {
                if !s.is_dir {
                    problem(p, "type", "should be a directory".into());
                } else if s.mode != *mode {
                    problem(p, "mode", format!("{:o}, manifest says {mode:o}", s.mode));
                }
            }
            Entry::Symlink { target, .. } => {
                let actual = std::fs::read_link(dir.join(p))
                    .ok()
                    .map(|t| t.to_string_lossy().into_owned());
                if !s.is_link {
                    problem(p, "type", "should be a symlink".into());
                } else if actual.as_deref() != Some(target.as_str()) {
                    problem(
                        p,
                        "target",
                        format!(
                            "points to {:?}, manifest says {target:?}",
                            actual.unwrap_or_default()
                        ),
                    );
                }
            }
            Entry::File {
                mode, size, kind, ..
            } => {
                if !s.is_file {
                    problem(p, "type", "should be a regular file".into());
                    continue;
                }
                let editable = *kind == FileKind::Config || preserve.is_match(p);
                let installed = setuid.installed_mode(e.path(), *mode);
                if s.mode != installed && !editable {
                    let detail = if installed == *mode {
                        format!("{:o}, manifest says {mode:o}", s.mode)
                    } else {
                        format!(
                            "{:o}, expected {installed:o} (the manifest's {mode:o} without \
                             setuid/setgid: update.allow_setuid does not name it)",
                            s.mode
                        )
                    };
                    problem(p, "mode", detail);
                }
                if s.size != *size {
                    if *kind == FileKind::Config {
                        report.config_changed.push(p.to_owned());
                    } else if !preserve.is_match(p) {
                        problem(
                            p,
                            "content",
                            format!("{} bytes, manifest says {size}", s.size),
                        );
                    }
                    continue;
                }
                to_hash.push((e.path(), *size));
            }
        }
    }
    let listed = m.entries_by_path();
    // Directories that hold preserved paths are expected too.
    let mut holders = std::collections::BTreeSet::new();
    for p in seen.keys().filter(|p| preserve.is_match(p.as_str())) {
        let mut cur = p.as_str();
        while let Some(i) = cur.rfind('/') {
            cur = &cur[..i];
            holders.insert(cur.to_owned());
        }
    }
    for (p, s) in &seen {
        if listed.contains_key(p.as_str())
            || preserve.is_match(p)
            || (s.is_dir && holders.contains(p))
        {
            continue;
        }
        if let Some(base) = p.strip_suffix(".charter-new")
            && matches!(
                listed.get(base),
                Some(Entry::File {
                    kind: FileKind::Config,
                    ..
                })
            )
        {
            continue;
        }
        let what = if s.is_dir {
            "directory"
        } else if s.is_link {
            "symlink"
        } else if s.is_file {
            "file"
        } else {
            "special file"
        };
        problem(p, "extra", format!("{what} not in the manifest"));
    }
    // Setuid/setgid bits are granted only by the manifest and the host's
    // setuid rule: on an operator-editable file (config, preserved) or an
    // unlisted one they are a problem whatever else may change there.
    for (p, s) in &seen {
        if !s.is_file || s.mode & 0o6000 == 0 {
            continue;
        }
        let granted = match (listed.get(p.as_str()), ArchivePath::new(p, 4096)) {
            (Some(Entry::File { mode, kind, .. }), Ok(ap)) => {
                *kind != FileKind::Config
                    && !preserve.is_match(p)
                    && setuid.installed_mode(&ap, *mode) == s.mode
            }
            _ => false,
        };
        let reported = report
            .problems
            .iter()
            .any(|q| q.path == *p && q.kind == "mode");
        if !granted && !reported {
            report.problems.push(Problem {
                path: p.clone(),
                kind: "mode",
                detail: format!(
                    "{:o}: setuid/setgid bits that neither the manifest nor update.allow_setuid grants",
                    s.mode
                ),
            });
        }
    }
    let digests = charter_release::tree::hash_files(
        dir,
        &to_hash,
        charter_release::tree::default_threads(),
        &|_| {},
    )?;
    for ((path, size), (digest, _)) in to_hash.iter().zip(digests) {
        report.bytes_hashed += size;
        let Some(Entry::File { sha256, kind, .. }) = listed.get(path.as_str()) else {
            continue;
        };
        if digest != *sha256 {
            if *kind == FileKind::Config {
                report.config_changed.push(path.to_string());
            } else if !preserve.is_match(path.as_str()) {
                report.problems.push(Problem {
                    path: path.to_string(),
                    kind: "content",
                    detail: format!("sha256 {digest}, manifest says {sha256}"),
                });
            }
        }
    }
    let _ = limits;
    report.problems.sort_by(|a, b| a.path.cmp(&b.path));
    report.config_changed.sort();
    Ok(report)
}
