use anyhow::{Context, Result};
use charter_keys::secret::{Protection, SecretKey};
use serde_json::json;

use super::Ctx;
use crate::cli::KeyCmd;
use crate::util::{load_public, print_json, write_new};

pub fn run(ctx: &Ctx, cmd: KeyCmd) -> Result<()> {
    match cmd {
        KeyCmd::Generate { out, unencrypted } => {
            let mut pub_path = out.clone().into_os_string();
            pub_path.push(".pub");
            let pub_path = std::path::PathBuf::from(pub_path);
            // Check both outputs before asking for a passphrase or writing.
            for p in [&out, &pub_path] {
                if p.exists() {
                    anyhow::bail!(
                        "{} already exists; refusing to overwrite a key",
                        p.display()
                    );
                }
            }
            let key = SecretKey::generate()?;
            if unencrypted {
                key.write_file(&out, Protection::InsecureUnencrypted)?;
                eprintln!(
                    "charter: warning: {} is written unencrypted, as asked",
                    out.display()
                );
            } else {
                let pass = ctx.pass.new_passphrase(&out)?;
                if pass.is_empty() {
                    anyhow::bail!("the passphrase is empty; give one, or pass --unencrypted");
                }
                key.write_file(&out, Protection::Passphrase(&pass))?;
            }
            let public = key.public();
            if let Err(e) = write_new(&pub_path, public.to_pem().as_bytes()) {
                let _ = std::fs::remove_file(&out);
                return Err(e);
            }
            if ctx.json {
                print_json(&json!({
                    "private_key": out,
                    "public_key": pub_path,
                    "key_id": public.key_id().to_string(),
                    "encrypted": !unencrypted,
                }))
            } else {
                outln!("private key: {}", out.display());
                outln!("public key:  {}", pub_path.display());
                outln!("key id:      {}", public.key_id());
                Ok(())
            }
        }
        KeyCmd::Public { file } => {
            let public = load_public(&file, &ctx.pass)
                .with_context(|| format!("cannot read a key from {}", file.display()))?;
            if ctx.json {
                print_json(&json!({
                    "key_id": public.key_id().to_string(),
                    "public_key_pem": public.to_pem(),
                }))
            } else {
                out!("{}", public.to_pem());
                outln!("key id: {}", public.key_id());
                Ok(())
            }
        }
    }
}
