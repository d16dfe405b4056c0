use anyhow::{Context, Result, bail};
use charter_keys::blob::{self, BlobMode};
use charter_keys::{Limits, PublicKey, Signature};
use serde_json::json;

use super::Ctx;
use crate::cli::{SignBlobArgs, VerifyBlobArgs};
use crate::util::{load_secret, print_json, write_new};

fn mode(prehash: bool) -> BlobMode {
    if prehash {
        BlobMode::Prehash
    } else {
        BlobMode::Pure
    }
}

pub fn sign(ctx: &Ctx, a: SignBlobArgs) -> Result<()> {
    if let Some(out) = &a.output_signature
        && out.exists()
    {
        bail!(
            "{} already exists; remove it or choose another path",
            out.display()
        );
    }
    let key = load_secret(&a.key, &ctx.pass)?;
    let sig = blob::sign_file(&key, &a.file, mode(a.prehash), &Limits::default())?;
    let b64 = sig.to_base64();
    if let Some(out) = &a.output_signature {
        write_new(out, format!("{b64}\n").as_bytes())?;
    }
    if ctx.json {
        print_json(&json!({
            "signature": b64,
            "key_id": key.public().key_id().to_string(),
            "algorithm": if a.prehash { "ed25519ph" } else { "ed25519" },
        }))
    } else {
        outln!("{b64}");
        Ok(())
    }
}

pub fn verify(ctx: &Ctx, a: VerifyBlobArgs) -> Result<()> {
    if a.bundle.is_some() {
        return verify_bundle(ctx, &a);
    }
    let (Some(key), Some(sig_path)) = (&a.key, &a.signature) else {
        bail!("pass --key and --signature (an Ed25519 signature), or --bundle (a Sigstore bundle)");
    };
    if a.file.starts_with("sha256:") {
        bail!(
            "`sha256:<hex>` is accepted with --bundle only; a plain signature covers the file's bytes"
        );
    }
    let file = std::path::PathBuf::from(&a.file);
    let raw = charter_keys::fsutil::read_capped(sig_path, 4096, "a signature file")?;
    let pem = charter_keys::fsutil::read_capped(key, 64 << 10, "a public key")?;
    if PublicKey::from_pem(&String::from_utf8_lossy(&pem)).is_err() {
        // Not Ed25519: an ECDSA key, as `cosign generate-key-pair` makes,
        // whose `cosign sign-blob --key` signature is base64 DER over
        // SHA-256 of the file.
        use base64::Engine as _;
        let text = String::from_utf8_lossy(&raw);
        let der = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .with_context(|| format!("cannot read the signature in {}", sig_path.display()))?;
        let mut buf = vec![0u8; 1 << 20];
        let (digest, _) = charter_release::tree::hash_file(&file, &mut buf)?;
        charter_keys::sigstore::verify_ecdsa_blob(&pem, &digest.0, &der)
            .with_context(|| format!("{} is not verified", file.display()))?;
        return if ctx.json {
            print_json(&json!({"verified": true, "algorithm": "ecdsa"}))
        } else {
            outln!("Verified OK");
            Ok(())
        };
    }
    let key = PublicKey::read_pem_file(key)?;
    // Accept the base64 text sign-blob prints, or the 64 raw bytes openssl writes.
    let sig = if raw.len() == 64 {
        Signature::from_slice(&raw)?
    } else {
        let text = std::str::from_utf8(&raw).with_context(|| {
            format!("{} is neither base64 nor 64 raw bytes", sig_path.display())
        })?;
        Signature::from_base64(text)
            .with_context(|| format!("cannot read the signature in {}", sig_path.display()))?
    };
    blob::verify_file(&key, &file, &sig, mode(a.prehash), &Limits::default())
        .with_context(|| format!("{} is not verified", file.display()))?;
    if ctx.json {
        print_json(&json!({"verified": true, "key_id": key.key_id().to_string()}))
    } else {
        outln!("Verified OK");
        Ok(())
    }
}

fn verify_bundle(ctx: &Ctx, a: &VerifyBlobArgs) -> Result<()> {
    use charter_keys::sigstore::{self, Identity, Policy, Subject};
    let bundle_path = a
        .bundle
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no --bundle"))?;
    let policy = match (
        &a.key,
        &a.certificate_identity,
        &a.certificate_identity_regexp,
        &a.certificate_oidc_issuer,
    ) {
        (Some(k), None, None, None) => Policy::Key(charter_keys::fsutil::read_capped(
            k,
            64 << 10,
            "a public key",
        )?),
        (None, Some(i), None, Some(o)) => Policy::Keyless {
            identity: Identity::Exact(i.clone()),
            issuer: o.clone(),
        },
        (None, None, Some(r), Some(o)) => Policy::Keyless {
            identity: Identity::regex(r)?,
            issuer: o.clone(),
        },
        (None, _, _, None) => bail!(
            "a keyless bundle needs --certificate-oidc-issuer and --certificate-identity or --certificate-identity-regexp"
        ),
        (None, None, None, Some(_)) => {
            bail!("pass --certificate-identity or --certificate-identity-regexp")
        }
        _ => {
            bail!("pass either --key (a managed-key bundle) or the --certificate-* flags, not both")
        }
    };
    let root_json = match &a.trusted_root {
        Some(p) => sigstore::read_json_file(p, "a trusted root")?,
        None => sigstore::PRODUCTION_TRUSTED_ROOT.as_bytes().to_vec(),
    };
    let root = sigstore::trusted_root(&root_json)?;
    let bundle = sigstore::read_json_file(bundle_path, "a Sigstore bundle")?;
    // A file is hashed as it streams (any size) and verified by its
    // digest, which is what the bundle's signature or statement binds.
    let mut d = [0u8; 32];
    match a.file.strip_prefix("sha256:") {
        Some(hex_digest) => hex::decode_to_slice(hex_digest, &mut d)
            .map_err(|_| anyhow::anyhow!("`{}` is not sha256: and 64 hex digits", a.file))?,
        None => {
            let mut buf = vec![0u8; 1 << 20];
            let (digest, _) =
                charter_release::tree::hash_file(std::path::Path::new(&a.file), &mut buf)?;
            d = digest.0;
        }
    }
    let v = match &a.sha256_file {
        // The bundle signs the sidecar; the sidecar pins the file.
        Some(sidecar) => {
            let text = charter_keys::fsutil::read_capped(sidecar, 1 << 20, "a checksum file")?;
            let v = sigstore::verify(&bundle, Subject::Bytes(&text), &policy, &root)
                .with_context(|| format!("{} is not verified", sidecar.display()))?;
            // A nameless `<hex>` line matches any file here (the
            // `FILE.sha256` habit), and a `sha256:` argument has no name.
            let name = std::path::Path::new(&a.file)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or(&a.file);
            let listed = if a.file.starts_with("sha256:") {
                // No name to look for: the digest must be listed.
                charter_release::plain::checksum_lines(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", sidecar.display()))?
                    .iter()
                    .map(|(x, _)| x.0)
                    .find(|x| *x == d)
                    .ok_or_else(|| {
                        anyhow::anyhow!("{} does not list {}", sidecar.display(), a.file)
                    })?
            } else {
                charter_release::plain::checksum_for(
                    &text,
                    name,
                    charter_release::plain::NamelessLine::MatchesAnyName,
                )
                .map_err(|e| anyhow::anyhow!("{}: {e}", sidecar.display()))?
                .0
            };
            if listed != d {
                bail!(
                    "{} is not verified: its sha256 is {}, and {} lists {}",
                    a.file,
                    hex::encode(d),
                    sidecar.display(),
                    hex::encode(listed)
                );
            }
            v
        }
        None => sigstore::verify(&bundle, Subject::Sha256(d), &policy, &root)
            .with_context(|| format!("{} is not verified", a.file))?,
    };
    if ctx.json {
        print_json(&json!({
            "verified": true,
            "identity": v.identity(),
            "issuer": v.issuer(),
            "integrated_time": v.integrated_time().map(|t| t.to_string()),
        }))
    } else {
        match v.identity() {
            Some(i) => outln!("Verified OK: signed by {i} ({})", v.issuer().unwrap_or("")),
            None => outln!("Verified OK"),
        }
        Ok(())
    }
}
