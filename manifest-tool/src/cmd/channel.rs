use std::path::Path;

use anyhow::{Context, Result, bail};
use charter_keys::dsse::{Envelope, PAYLOAD_CHANNEL};
use charter_keys::secret::Signer;
use charter_keys::{Limits as KeyLimits, Role, SystemClock};
use charter_release::channel::{
    ChannelPointer, MAX_POINTER_BYTES, ManifestRef, PreviousRelease, Reverted,
};
use charter_release::digest::Sha256Digest;
use charter_release::manifest::{Manifest, VerifiedManifest};
use charter_release::path::ArchivePath;
use charter_release::rollout::{self as plan, Rollout, Wave};
use jiff::Timestamp;
use serde_json::json;

use super::Ctx;
use super::repo::current_root;
use crate::cli::{ChannelCmd, PointerAt};
use crate::util::{load_secret, parse_expiry, print_json, write_atomic};

pub fn run(ctx: &Ctx, cmd: ChannelCmd) -> Result<()> {
    match cmd {
        ChannelCmd::Publish {
            repo,
            product,
            channel,
            version,
            manifest,
            keys,
            expires,
            allow_downgrade,
            rollout,
        } => {
            let manifest_path = match (&manifest, &version) {
                (Some(m), _) => m.clone(),
                (None, Some(v)) => repo
                    .join("releases")
                    .join(&product)
                    .join(v)
                    .join("manifest.json"),
                (None, None) => bail!("pass --version or --manifest"),
            };
            let rel = manifest_path
                .canonicalize()
                .with_context(|| format!("cannot read {}", manifest_path.display()))?
                .strip_prefix(
                    repo.canonicalize()
                        .with_context(|| format!("cannot read {}", repo.display()))?,
                )
                .map(Path::to_owned)
                .map_err(|_| {
                    anyhow::anyhow!(
                        "{} is not inside the repository {}",
                        manifest_path.display(),
                        repo.display()
                    )
                })?;
            let rel = ArchivePath::from_relative(&rel, 4096)?;
            let bytes = charter_keys::fsutil::read_capped(
                &manifest_path,
                KeyLimits::default().max_envelope_bytes,
                "a manifest",
            )?;
            // Publish only what hosts will accept: the manifest must verify
            // against the repository's current root.
            let root = current_root(&repo)?;
            let vm = VerifiedManifest::verify(
                &bytes,
                &root,
                &SystemClock,
                &charter_release::Limits::default(),
            )
            .with_context(|| {
                format!(
                    "{} does not verify; sign it before publishing",
                    manifest_path.display()
                )
            })?;
            let m: &Manifest = vm.manifest();
            if m.product != product {
                bail!(
                    "{} is for product `{}`, not `{product}`",
                    manifest_path.display(),
                    m.product
                );
            }
            if let Some(v) = &version
                && m.version.to_string() != *v
            {
                bail!(
                    "{} is version {}, not {v}",
                    manifest_path.display(),
                    m.version
                );
            }
            use sha2::Digest as _;
            let manifest = ManifestRef {
                path: rel,
                sha256: Sha256Digest(sha2::Sha256::digest(&bytes).into()),
                size: bytes.len() as u64,
            };
            // What the channel named before: the release `halt --revert`
            // goes back to, and the rollout a re-publication keeps.
            let before = match existing(&repo, &product, &channel) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!(
                        "charter: warning: the channel's current pointer is not used ({e:#}); \
                         no previous release is recorded"
                    );
                    None
                }
            };
            let now = match &before {
                Some(b) => after(b)?,
                None => Timestamp::from_second(Timestamp::now().as_second())?,
            };
            let same = before.as_ref().filter(|b| b.version == m.version);
            let previous = match (&before, same) {
                (_, Some(b)) => b.previous.clone(),
                (Some(b), None) => Some(PreviousRelease {
                    version: b.version.clone(),
                    manifest: b.manifest.clone(),
                }),
                (None, None) => None,
            };
            let kept = same.and_then(|b| b.rollout.clone());
            let rollout = match &rollout {
                None => kept,
                Some(plan) => {
                    let (name, waves) = rollout_plan(plan)?;
                    Some(Rollout {
                        plan: name,
                        // The same version's rollout goes on from its start:
                        // a slower plan never takes back an eligibility.
                        start: kept.as_ref().map_or(now, |k| k.start),
                        waves,
                        halted: kept.and_then(|k| k.halted),
                    })
                }
            };
            let pointer = ChannelPointer {
                product: product.clone(),
                channel: channel.clone(),
                version: m.version.clone(),
                manifest,
                published_at: now,
                expires: parse_expiry(&expires, now)?,
                allow_downgrade,
                previous,
                rollout,
                reverted: None,
            };
            let (out, signatures) = write_pointer(ctx, &repo, &pointer, &keys)?;
            report(ctx, &out, &pointer, signatures)
        }
        ChannelCmd::Halt { at, reason, revert } => {
            let (out, pointer, signatures) = halt(ctx, &at, reason, revert)?;
            report(ctx, &out, &pointer, signatures)
        }
        ChannelCmd::Resume { at } => {
            let (before, now) = current(&at)?;
            let Some(r) = before.rollout.as_ref().filter(|r| r.halted.is_some()) else {
                bail!(
                    "the rollout of {} on {}/{} is not halted",
                    before.version,
                    at.on.product,
                    at.on.channel
                );
            };
            let pointer = ChannelPointer {
                published_at: now,
                expires: parse_expiry(&at.expires, now)?,
                rollout: Some(r.resume(now)),
                ..before
            };
            let (out, signatures) = write_pointer(ctx, &at.on.repo, &pointer, &at.keys)?;
            report(ctx, &out, &pointer, signatures)
        }
        ChannelCmd::Sign { key, file } => {
            let bytes =
                charter_keys::fsutil::read_capped(&file, MAX_POINTER_BYTES, "a channel pointer")?;
            let mut env = Envelope::from_slice(&bytes, &KeyLimits::default())
                .with_context(|| format!("{} is not an envelope", file.display()))?;
            if env.payload_type() != PAYLOAD_CHANNEL {
                bail!(
                    "{} is not a channel pointer (payloadType `{}`)",
                    file.display(),
                    env.payload_type()
                );
            }
            let pointer: ChannelPointer = serde_json::from_slice(env.unverified_payload())
                .with_context(|| format!("{} holds a malformed pointer", file.display()))?;
            pointer.validate()?;
            let key = load_secret(&key, &ctx.pass)?;
            env.sign(&key as &dyn Signer)?;
            write_atomic(&file, &env.to_json())?;
            if ctx.json {
                print_json(&json!({"pointer": file, "signatures": env.signatures().len()}))
            } else {
                outln!(
                    "{}: {} signature(s)",
                    file.display(),
                    env.signatures().len()
                );
                Ok(())
            }
        }
    }
}

/// Halts the channel's rollout (with `revert`: points it back at the
/// previous release): the new pointer, signed and written; its path, the
/// pointer and its signature count.
pub(super) fn halt(
    ctx: &Ctx,
    at: &PointerAt,
    reason: String,
    revert: bool,
) -> Result<(std::path::PathBuf, ChannelPointer, usize)> {
    let (before, now) = current(at)?;
    if let Some(h) = before.rollout.as_ref().and_then(|r| r.halted.as_ref()) {
        bail!(
            "the rollout of {} on {}/{} is halted already (since {}); \
             `charter channel resume` resumes it",
            before.version,
            at.on.product,
            at.on.channel,
            h.at
        );
    }
    let pointer = if revert {
        let Some(prev) = before.previous.clone() else {
            bail!(
                "{}/{} records no previous release to revert to; \
                 halt without --revert, or publish the release to go back to \
                 with --allow-downgrade",
                at.on.product,
                at.on.channel
            );
        };
        check_pinned(&at.on.repo, &prev.manifest)?;
        ChannelPointer {
            version: prev.version,
            manifest: prev.manifest,
            published_at: now,
            expires: parse_expiry(&at.expires, now)?,
            allow_downgrade: true,
            previous: None,
            rollout: None,
            reverted: Some(Reverted {
                version: before.version.clone(),
                at: now,
                reason,
            }),
            ..before
        }
    } else {
        // A pointer without a plan had every host eligible at once.
        let r = before.rollout.clone().unwrap_or_else(|| Rollout {
            plan: "all-at-once".into(),
            start: before.published_at,
            waves: vec![Wave {
                after_secs: 0,
                percent: 100,
            }],
            halted: None,
        });
        ChannelPointer {
            published_at: now,
            expires: parse_expiry(&at.expires, now)?,
            rollout: Some(r.halt(now, &reason)),
            ..before
        }
    };
    let (out, signatures) = write_pointer(ctx, &at.on.repo, &pointer, &at.keys)?;
    Ok((out, pointer, signatures))
}

/// The pointer now in the repository (none when there is none yet), its
/// signatures checked against the repository's current root. Its expiry
/// is not checked: an expired pointer may be re-signed.
pub(super) fn existing(
    repo: &Path,
    product: &str,
    channel: &str,
) -> Result<Option<ChannelPointer>> {
    let path = repo.join(ChannelPointer::repo_path(product, channel));
    if !path.exists() {
        return Ok(None);
    }
    let bytes = charter_keys::fsutil::read_capped(&path, MAX_POINTER_BYTES, "a channel pointer")?;
    let root = current_root(repo)?;
    let env = Envelope::from_slice(&bytes, &KeyLimits::default())
        .with_context(|| format!("{} is not an envelope", path.display()))?;
    let verified = root
        .verify_envelope(&env, PAYLOAD_CHANNEL, Role::Channel)
        .with_context(|| {
            format!(
                "{} does not verify against the repository's root",
                path.display()
            )
        })?;
    let pointer: ChannelPointer = serde_json::from_slice(verified.payload())
        .with_context(|| format!("{} holds a malformed pointer", path.display()))?;
    pointer
        .validate()
        .with_context(|| format!("{} holds an invalid pointer", path.display()))?;
    Ok(Some(pointer))
}

/// The channel's pointer, which must exist, and now (whole seconds, and
/// after the pointer's publication, so that hosts take the new one).
fn current(at: &PointerAt) -> Result<(ChannelPointer, Timestamp)> {
    let Some(p) = existing(&at.on.repo, &at.on.product, &at.on.channel)? else {
        bail!(
            "{} has no pointer for {}/{}; `charter channel publish` writes one",
            at.on.repo.display(),
            at.on.product,
            at.on.channel
        );
    };
    let now = after(&p)?;
    Ok((p, now))
}

/// Now, in whole seconds, strictly after the pointer `p` it replaces:
/// hosts refuse an older pointer but accept one of the same second, so
/// two pointers of one second could be swapped for each other (a halt for
/// the rollout it halts). Waits for the next second when needed.
fn after(p: &ChannelPointer) -> Result<Timestamp> {
    let now = || Timestamp::from_second(Timestamp::now().as_second());
    let mut t = now()?;
    if t <= p.published_at {
        let wait = p.published_at.duration_since(t).as_secs() + 1;
        if wait > 2 {
            bail!(
                "the channel's pointer was published at {}, after now ({t}); check the clock",
                p.published_at
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(wait as u64 * 1000 + 50));
        t = now()?;
    }
    Ok(t)
}

/// A `--rollout` value: a preset's name or a plan file.
fn rollout_plan(text: &str) -> Result<(String, Vec<Wave>)> {
    if let Some(w) = plan::preset(text) {
        return Ok((text.to_owned(), w));
    }
    let path = Path::new(text);
    if !path.is_file() {
        let names: Vec<_> = plan::PRESETS.iter().map(|(n, _)| *n).collect();
        bail!(
            "--rollout `{text}` is neither a preset ({}) nor a plan file",
            names.join(", ")
        );
    }
    let bytes =
        charter_keys::fsutil::read_capped(path, plan::MAX_PLAN_FILE_BYTES, "a rollout plan")?;
    let waves = plan::parse_plan_file(&bytes).with_context(|| format!("{}", path.display()))?;
    Ok(("file".into(), waves))
}

/// The manifest a pin names is in the repository, byte for byte.
fn check_pinned(repo: &Path, m: &ManifestRef) -> Result<()> {
    use sha2::Digest as _;
    let path = repo.join(m.path.as_str());
    let bytes = charter_keys::fsutil::read_capped(&path, m.size, "a manifest")
        .with_context(|| format!("the previous release's manifest {}", path.display()))?;
    let got = Sha256Digest(sha2::Sha256::digest(&bytes).into());
    if got != m.sha256 || bytes.len() as u64 != m.size {
        bail!(
            "{} is not the manifest the channel pointed at before (sha256 {got}, expected {})",
            path.display(),
            m.sha256
        );
    }
    Ok(())
}

/// Validates, signs and writes a pointer; its path and signature count.
fn write_pointer(
    ctx: &Ctx,
    repo: &Path,
    pointer: &ChannelPointer,
    keys: &[std::path::PathBuf],
) -> Result<(std::path::PathBuf, usize)> {
    pointer.validate()?;
    let mut env = Envelope::new_unsigned(PAYLOAD_CHANNEL, pointer.to_payload());
    for k in keys {
        let key = load_secret(k, &ctx.pass)?;
        env.sign(&key as &dyn Signer)?;
    }
    let out = repo.join(ChannelPointer::repo_path(
        &pointer.product,
        &pointer.channel,
    ));
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    write_atomic(&out, &env.to_json())?;
    Ok((out, env.signatures().len()))
}

/// Says what was written.
fn report(ctx: &Ctx, out: &Path, p: &ChannelPointer, signatures: usize) -> Result<()> {
    let rollout = p.rollout.as_ref().map(|r| {
        json!({
            "plan": r.plan,
            "start": r.start.to_string(),
            "waves": r.waves,
            "halted": r.halted,
        })
    });
    if ctx.json {
        return print_json(&json!({
            "pointer": out,
            "product": p.product,
            "channel": p.channel,
            "version": p.version.to_string(),
            "expires": p.expires.to_string(),
            "signatures": signatures,
            "allow_downgrade": p.allow_downgrade,
            "previous": p.previous.as_ref().map(|x| x.version.to_string()),
            "rollout": rollout,
            "reverted": p.reverted,
        }));
    }
    let mut how = String::new();
    if let Some(r) = &p.rollout {
        how = match &r.halted {
            Some(h) if h.reason.is_empty() => format!(", rollout `{}` HALTED at {}", r.plan, h.at),
            Some(h) => format!(", rollout `{}` HALTED at {} ({})", r.plan, h.at, h.reason),
            None => format!(", rollout `{}` from {}", r.plan, r.start),
        };
    }
    if let Some(r) = &p.reverted {
        how.push_str(&format!(
            ", reverted from {} (hosts may downgrade)",
            r.version
        ));
    }
    outln!(
        "{}: {}/{} -> {}{how} (expires {}, {signatures} signature(s))",
        out.display(),
        p.product,
        p.channel,
        p.version,
        p.expires,
    );
    Ok(())
}
