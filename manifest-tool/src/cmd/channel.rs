use std::path::Path;

use anyhow::{Context, Result, bail};
use charter_keys::dsse::{Envelope, PAYLOAD_CHANNEL, PAYLOAD_MANIFEST};
use charter_keys::secret::Signer;
use charter_keys::{Limits as KeyLimits, SystemClock};
use charter_release::channel::{ChannelPointer, MAX_POINTER_BYTES, ManifestRef};
use charter_release::digest::Sha256Digest;
use charter_release::manifest::{Manifest, VerifiedManifest};
use charter_release::path::ArchivePath;
use jiff::Timestamp;
use serde_json::json;

use super::Ctx;
use super::repo::current_root;
use crate::cli::ChannelCmd;
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
            let now = Timestamp::from_second(Timestamp::now().as_second())?;
            let pointer = ChannelPointer {
                product: product.clone(),
                channel: channel.clone(),
                version: m.version.clone(),
                manifest: ManifestRef {
                    path: rel,
                    sha256: Sha256Digest(sha2::Sha256::digest(&bytes).into()),
                    size: bytes.len() as u64,
                },
                published_at: now,
                expires: parse_expiry(&expires, now)?,
                allow_downgrade,
            };
            pointer.validate()?;
            let mut env = Envelope::new_unsigned(PAYLOAD_CHANNEL, pointer.to_payload());
            for k in &keys {
                let key = load_secret(k, &ctx.pass)?;
                env.sign(&key as &dyn Signer)?;
            }
            let out = repo.join(ChannelPointer::repo_path(&product, &channel));
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            write_atomic(&out, &env.to_json())?;
            if ctx.json {
                print_json(&json!({
                    "pointer": out,
                    "product": product,
                    "channel": channel,
                    "version": pointer.version.to_string(),
                    "expires": pointer.expires.to_string(),
                    "signatures": env.signatures().len(),
                }))
            } else {
                outln!(
                    "{}: {product}/{channel} -> {} (expires {}, {} signature(s))",
                    out.display(),
                    pointer.version,
                    pointer.expires,
                    env.signatures().len()
                );
                Ok(())
            }
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
            let _ = PAYLOAD_MANIFEST;
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
