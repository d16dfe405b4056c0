use std::path::Path;

use anyhow::{Context, Result, bail};
use charter_keys::dsse::{Envelope, PAYLOAD_MANIFEST};
use charter_keys::root::VerifiedRoot;
use charter_keys::secret::Signer;
use charter_keys::{Limits as KeyLimits, SystemClock};
use charter_release::manifest::{
    ArtifactFormat, Entry, HealthCheck, Manifest, Probe, Scripts, VerifiedManifest, compile_globs,
};
use charter_release::pack::{self, CreateOptions};
use charter_release::path::ArchivePath;
use charter_release::{Limits, tree};
use jiff::Timestamp;
use serde_json::json;

use super::Ctx;
use crate::cli::{CreateArgs, HashTreeArgs, ManifestCmd};
use crate::util::{
    duration_secs, load_secret, parse_expiry, print_json, progress_bar, write_atomic,
};

pub fn run(ctx: &Ctx, cmd: ManifestCmd) -> Result<()> {
    match cmd {
        ManifestCmd::Create(a) => create(ctx, *a),
        ManifestCmd::Sign { key, file } => sign(ctx, &key, &file),
        ManifestCmd::Verify {
            root,
            artifact,
            file,
        } => verify(ctx, &root, artifact.as_deref(), &file),
    }
}

fn create(ctx: &Ctx, a: CreateArgs) -> Result<()> {
    let version = semver::Version::parse(&a.version)
        .with_context(|| format!("--version `{}` is not a semantic version", a.version))?;
    let format: ArtifactFormat = a.format.parse()?;
    let released_at = match &a.released_at {
        Some(t) => t
            .parse::<Timestamp>()
            .with_context(|| format!("--released-at `{t}` is not an RFC 3339 time"))?,
        None => Timestamp::now(),
    };
    // Whole seconds: the same instant becomes every entry's mtime.
    let released_at = Timestamp::from_second(released_at.as_second())?;
    let expires = parse_expiry(&a.expires, released_at)?;
    let probe = match (&a.health_url, &a.health_cmd) {
        (Some(url), _) => Some(Probe::Http {
            url: url.clone(),
            expect_status: a.health_status,
        }),
        (None, Some(cmd)) => Some(Probe::Command {
            argv: cmd.split_whitespace().map(str::to_owned).collect(),
        }),
        (None, None) => None,
    };
    let health_check = match probe {
        Some(probe) => Some(HealthCheck {
            probe,
            timeout_secs: duration_secs(&a.health_timeout)?,
            retries: a.health_retries,
            interval_secs: duration_secs(&a.health_interval)?,
        }),
        None => None,
    };
    let level = a.level.unwrap_or(match format {
        ArtifactFormat::TarZst => 3,
        ArtifactFormat::TarGz => 6,
    });
    let opts = CreateOptions {
        product: a.product,
        version,
        from: a.from,
        out_dir: a.out,
        format,
        level,
        threads: tree::default_threads() as u32,
        preserve: a.preserve,
        config: a.config,
        health_check,
        released_at,
        expires,
        security_fix: a.security_fix,
        scripts: Scripts {
            pre_swap: script_path(a.pre_swap_script.as_deref())?,
            post_swap: script_path(a.post_swap_script.as_deref())?,
            on_rollback: script_path(a.rollback_script.as_deref())?,
        },
        sbom: a.sbom,
    };
    let bar = progress_bar(0, "packing");
    let created = pack::create(&opts, &Limits::default(), &|n| bar.inc(n))?;
    bar.finish_and_clear();
    let m = &created.manifest;
    let files = m
        .files
        .iter()
        .filter(|e| matches!(e, Entry::File { .. }))
        .count();
    let bytes: u64 = m
        .files
        .iter()
        .map(|e| match e {
            Entry::File { size, .. } => *size,
            _ => 0,
        })
        .sum();
    if ctx.json {
        print_json(&json!({
            "manifest": created.manifest_path,
            "artifact": created.artifact_path,
            "product": m.product,
            "version": m.version.to_string(),
            "artifact_sha256": m.artifact.sha256.to_string(),
            "artifact_size": m.artifact.size,
            "files": files,
            "entries": m.files.len(),
            "content_bytes": bytes,
            "expires": m.expires.to_string(),
            "signatures": 0,
        }))
    } else {
        outln!(
            "{} {}: {} files, {} bytes packed into {} ({} bytes, sha256 {})",
            m.product,
            m.version,
            files,
            bytes,
            created.artifact_path.display(),
            m.artifact.size,
            m.artifact.sha256
        );
        outln!(
            "unsigned manifest: {} (sign it with `charter manifest sign --key KEY {}`)",
            created.manifest_path.display(),
            created.manifest_path.display()
        );
        Ok(())
    }
}

fn script_path(p: Option<&str>) -> Result<Option<ArchivePath>> {
    p.map(|p| ArchivePath::new(p, 4096).with_context(|| format!("script path `{p}`")))
        .transpose()
}

fn read_envelope_file(path: &Path) -> Result<Vec<u8>> {
    Ok(charter_keys::fsutil::read_capped(
        path,
        KeyLimits::default().max_envelope_bytes,
        "a manifest",
    )?)
}

fn sign(ctx: &Ctx, key: &Path, file: &Path) -> Result<()> {
    let bytes = read_envelope_file(file)?;
    let mut env = Envelope::from_slice(&bytes, &KeyLimits::default())
        .with_context(|| format!("{} is not a manifest envelope", file.display()))?;
    if env.payload_type() != PAYLOAD_MANIFEST {
        bail!(
            "{} is not a manifest (payloadType `{}`)",
            file.display(),
            env.payload_type()
        );
    }
    // Never sign something that would not verify as a manifest.
    let manifest = Manifest::from_payload(env.unverified_payload())
        .with_context(|| format!("{} holds a malformed manifest", file.display()))?;
    manifest.validate(&Limits::default())?;
    let signer = load_secret(key, &ctx.pass)?;
    env.sign(&signer as &dyn Signer)?;
    write_atomic(file, &env.to_json())?;
    if ctx.json {
        print_json(&json!({
            "manifest": file,
            "key_id": signer.public().key_id().to_string(),
            "signatures": env.signatures().len(),
        }))
    } else {
        outln!(
            "{}: signed by {} ({} signature(s))",
            file.display(),
            signer.public().key_id(),
            env.signatures().len()
        );
        Ok(())
    }
}

fn verify(ctx: &Ctx, root: &Path, artifact: Option<&Path>, file: &Path) -> Result<()> {
    let root_bytes =
        charter_keys::fsutil::read_capped(root, KeyLimits::default().max_envelope_bytes, "a root")?;
    let root = VerifiedRoot::from_trusted(&root_bytes, &KeyLimits::default())
        .with_context(|| format!("trust root {} is not valid", root.display()))?;
    root.check_expiry(&SystemClock)?;
    let bytes = read_envelope_file(file)?;
    let vm = VerifiedManifest::verify(&bytes, &root, &SystemClock, &Limits::default())
        .with_context(|| format!("{} is not verified", file.display()))?;
    let m = vm.manifest();
    if let Some(path) = artifact {
        let mut buf = vec![0u8; tree::READ_BUF];
        let (digest, size) = tree::hash_file(path, &mut buf)?;
        if size != m.artifact.size {
            bail!(
                "{} is not verified: {} bytes, the manifest says {}",
                path.display(),
                size,
                m.artifact.size
            );
        }
        if digest != m.artifact.sha256 {
            bail!(
                "{} is not verified: sha256 {}, the manifest says {}",
                path.display(),
                digest,
                m.artifact.sha256
            );
        }
    }
    if ctx.json {
        print_json(&json!({
            "verified": true,
            "product": m.product,
            "version": m.version.to_string(),
            "expires": m.expires.to_string(),
            "signers": vm.signers().iter().map(ToString::to_string).collect::<Vec<_>>(),
            "artifact_checked": artifact.is_some(),
            "envelope_sha256": vm.envelope_sha256().to_string(),
        }))
    } else {
        outln!(
            "Verified OK: {} {} signed by {} release key(s){}",
            m.product,
            m.version,
            vm.signers().len(),
            if artifact.is_some() {
                ", artifact matches"
            } else {
                ""
            }
        );
        Ok(())
    }
}

pub fn hash_tree(ctx: &Ctx, a: HashTreeArgs) -> Result<()> {
    use std::io::Write;
    let config = compile_globs(&a.config)?;
    let threads = a.threads.unwrap_or_else(tree::default_threads);
    let bar = progress_bar(0, "hashing");
    let entries = tree::hash_tree(&a.dir, &config, threads, &Limits::default(), &|n| {
        bar.inc(n)
    })?;
    bar.finish_and_clear();
    if ctx.json {
        return print_json(&serde_json::to_value(&entries)?);
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for e in &entries {
        if let Entry::File { path, sha256, .. } = e {
            writeln!(out, "{sha256}  {path}")?;
        }
    }
    out.flush()?;
    Ok(())
}
