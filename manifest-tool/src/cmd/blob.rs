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
        println!("{b64}");
        Ok(())
    }
}

pub fn verify(ctx: &Ctx, a: VerifyBlobArgs) -> Result<()> {
    let key = PublicKey::read_pem_file(&a.key)?;
    let raw = charter_keys::fsutil::read_capped(&a.signature, 4096, "a signature file")?;
    // Accept the base64 text sign-blob prints, or the 64 raw bytes openssl writes.
    let sig = if raw.len() == 64 {
        Signature::from_slice(&raw)?
    } else {
        let text = std::str::from_utf8(&raw).with_context(|| {
            format!(
                "{} is neither base64 nor 64 raw bytes",
                a.signature.display()
            )
        })?;
        Signature::from_base64(text)
            .with_context(|| format!("cannot read the signature in {}", a.signature.display()))?
    };
    blob::verify_file(&key, &a.file, &sig, mode(a.prehash), &Limits::default())
        .with_context(|| format!("{} is not verified", a.file.display()))?;
    if ctx.json {
        print_json(&json!({"verified": true, "key_id": key.key_id().to_string()}))
    } else {
        println!("Verified OK");
        Ok(())
    }
}
