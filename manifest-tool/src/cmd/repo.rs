use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use charter_keys::root::VerifiedRoot;
use charter_keys::{Limits as KeyLimits, SystemClock};
use charter_release::manifest::VerifiedManifest;
use charter_release::repo::verify_repository;
use serde_json::json;

use super::Ctx;
use crate::cli::RepoCmd;
use crate::util::{print_json, write_new};

fn read_root(path: &Path) -> Result<Vec<u8>> {
    Ok(charter_keys::fsutil::read_capped(
        path,
        KeyLimits::default().max_envelope_bytes,
        "a root",
    )?)
}

/// Every `N.root.json` in a repository, by version.
fn root_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| {
                let e = e.ok()?;
                let n = e.file_name().into_string().ok()?;
                Some((n.strip_suffix(".root.json")?.parse().ok()?, e.path()))
            })
            .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The newest root of a repository, verified along its chain from the
/// lowest one kept there.
pub fn current_root(dir: &Path) -> Result<VerifiedRoot> {
    let files = root_files(dir);
    let Some((_, first)) = files.first() else {
        bail!(
            "{} has no N.root.json; run `charter repo init {} --root ROOT`",
            dir.display(),
            dir.display()
        );
    };
    let start = VerifiedRoot::from_trusted(&read_root(first)?, &KeyLimits::default())
        .with_context(|| format!("{} is not a valid root", first.display()))?;
    let (root, _) = start.update_chain(
        |v| {
            let p = dir.join(format!("{v}.root.json"));
            if p.exists() {
                read_root(&p)
                    .map(Some)
                    .map_err(|e| charter_keys::Error::Malformed {
                        what: "root",
                        reason: e.to_string(),
                    })
            } else {
                Ok(None)
            }
        },
        &KeyLimits::default(),
        &SystemClock,
    )?;
    Ok(root)
}

pub fn run(ctx: &Ctx, cmd: RepoCmd) -> Result<()> {
    match cmd {
        RepoCmd::Init { dir, root } => {
            let bytes = read_root(&root)?;
            let r = VerifiedRoot::from_trusted(&bytes, &KeyLimits::default())
                .with_context(|| format!("{} is not a valid root", root.display()))?;
            r.check_expiry(&SystemClock)?;
            if !root_files(&dir).is_empty() {
                bail!(
                    "{} already holds a root; use `charter repo add-root`",
                    dir.display()
                );
            }
            for sub in ["channels", "releases"] {
                std::fs::create_dir_all(dir.join(sub))
                    .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
            }
            let name = dir.join(format!("{}.root.json", r.version()));
            write_new(&name, &bytes)?;
            charter_keys::fsutil::write_atomic(&dir.join("root.json"), &bytes, 0o644)?;
            report(
                ctx,
                &dir,
                &format!("repository initialised with root version {}", r.version()),
            )
        }
        RepoCmd::AddRoot { dir, root } => {
            let current = current_root(&dir)?;
            let bytes = read_root(&root)?;
            let next = current
                .rotate(&bytes, &KeyLimits::default())
                .with_context(|| {
                    format!(
                        "{} does not follow root version {}",
                        root.display(),
                        current.version()
                    )
                })?;
            write_new(&dir.join(format!("{}.root.json", next.version())), &bytes)?;
            charter_keys::fsutil::write_atomic(&dir.join("root.json"), &bytes, 0o644)?;
            report(ctx, &dir, &format!("root version {} added", next.version()))
        }
        RepoCmd::Add { dir, release } => {
            let root = current_root(&dir)?;
            let mpath = release.join("manifest.json");
            let bytes = charter_keys::fsutil::read_capped(
                &mpath,
                KeyLimits::default().max_envelope_bytes,
                "a manifest",
            )?;
            let vm = VerifiedManifest::verify(
                &bytes,
                &root,
                &SystemClock,
                &charter_release::Limits::default(),
            )
            .with_context(|| {
                format!(
                    "{} does not verify against the repository's root",
                    mpath.display()
                )
            })?;
            let m = vm.manifest();
            let src = release.join(&m.artifact.name);
            let mut buf = vec![0u8; charter_release::tree::READ_BUF];
            let (digest, size) = charter_release::tree::hash_file(&src, &mut buf)?;
            if digest != m.artifact.sha256 || size != m.artifact.size {
                bail!(
                    "{} does not match its manifest (sha256 {digest}, {size} bytes)",
                    src.display()
                );
            }
            let sbom = match &m.sbom {
                Some(s) => {
                    let p = release.join(&s.name);
                    let b = charter_keys::fsutil::read_capped(
                        &p,
                        charter_release::sbom::MAX_SBOM_BYTES,
                        "an SBOM",
                    )?;
                    s.matches(&b)
                        .with_context(|| format!("{} does not match its manifest", p.display()))?;
                    Some((s.name.clone(), b))
                }
                None => None,
            };
            let dest = dir
                .join("releases")
                .join(&m.product)
                .join(m.version.to_string());
            if dest.exists() {
                bail!(
                    "{} already exists: a published release is never replaced",
                    dest.display()
                );
            }
            let tmp = dir
                .join("releases")
                .join(format!(".{}-{}.adding", m.product, m.version));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            // A cosign bundle over the manifest travels with it (hosts
            // whose signature policy asks for one check it).
            let bundle_name = format!(
                "manifest.json{}",
                charter_release::signatures::BUNDLE_SUFFIX
            );
            let bundle = match release.join(&bundle_name) {
                p if p.exists() => {
                    Some(charter_keys::sigstore::read_json_file(&p, "cosign bundle")?)
                }
                _ => None,
            };
            let copied = std::fs::copy(&src, tmp.join(&m.artifact.name))
                .and_then(|_| std::fs::write(tmp.join("manifest.json"), &bytes))
                .and_then(|()| match &bundle {
                    Some(b) => std::fs::write(tmp.join(&bundle_name), b),
                    None => Ok(()),
                })
                .and_then(|()| match &sbom {
                    Some((name, b)) => std::fs::write(tmp.join(name), b),
                    None => Ok(()),
                })
                .and_then(|()| std::fs::create_dir_all(dest.parent().unwrap_or(&dir)))
                .and_then(|()| std::fs::rename(&tmp, &dest));
            if let Err(e) = copied {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(anyhow::Error::new(e).context(format!(
                    "cannot add {} to {}",
                    release.display(),
                    dir.display()
                )));
            }
            report(
                ctx,
                &dir,
                &format!("added {} {} ({})", m.product, m.version, dest.display()),
            )
        }
        RepoCmd::Verify { dir, root } => {
            let trusted = match root {
                Some(r) => read_root(&r)?,
                None => match root_files(&dir).first() {
                    Some((_, p)) => read_root(p)?,
                    None => bail!("{} has no N.root.json; pass --root", dir.display()),
                },
            };
            let r = verify_repository(
                &dir,
                &trusted,
                &SystemClock,
                &charter_release::Limits::default(),
            )?;
            if ctx.json {
                print_json(&serde_json::to_value(&r)?)?;
            } else {
                for f in &r.findings {
                    outln!(
                        "{} {}: {}",
                        if f.ok { "ok    " } else { "FAILED" },
                        f.path,
                        f.detail
                    );
                }
            }
            if !r.ok() {
                bail!(
                    "{} check(s) failed in {}",
                    r.findings.iter().filter(|f| !f.ok).count(),
                    dir.display()
                );
            }
            Ok(())
        }
    }
}

fn report(ctx: &Ctx, dir: &Path, what: &str) -> Result<()> {
    if ctx.json {
        print_json(&json!({"repository": dir, "result": what}))
    } else {
        outln!("{}: {what}", dir.display());
        Ok(())
    }
}
