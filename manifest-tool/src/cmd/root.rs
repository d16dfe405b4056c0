use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use charter_keys::dsse::{Envelope, PAYLOAD_ROOT};
use charter_keys::root::{RoleEntry, RootDocument, VerifiedRoot};
use charter_keys::secret::Signer;
use charter_keys::{Limits, PublicKey, Role, SystemClock};
use jiff::Timestamp;
use serde_json::json;

use super::Ctx;
use crate::cli::{RoleArgs, RootCmd};
use crate::util::{load_public, load_secret, parse_expiry, print_json, write_atomic, write_new};

pub fn run(ctx: &Ctx, cmd: RootCmd) -> Result<()> {
    match cmd {
        RootCmd::Init {
            out,
            roles,
            expires,
            keys,
        } => {
            let expires = parse_expiry(&expires, Timestamp::now())?;
            let given = load_roles(ctx, &roles)?;
            let mut parts = Vec::new();
            for (role, keys, threshold) in &given {
                if keys.is_empty() {
                    bail!("role `{role}` needs at least one key: pass --{role}-key FILE");
                }
                parts.push((*role, keys.as_slice(), threshold.unwrap_or(1)));
            }
            let doc = RootDocument::build(1, expires, &parts, &Limits::default())?;
            let env = sign_new(ctx, &doc, &keys)?;
            write_new(&out, &env.to_json())?;
            report(ctx, &out, &doc, &env)
        }
        RootCmd::Rotate {
            from,
            out,
            roles,
            expires,
            keys,
        } => {
            let bytes = read_root_file(&from)?;
            let old = VerifiedRoot::from_trusted(&bytes, &Limits::default())
                .with_context(|| format!("{} is not a valid root", from.display()))?;
            let mut doc = old.document().clone();
            doc.version += 1;
            doc.expires = parse_expiry(&expires, Timestamp::now())?;
            for (role, new_keys, threshold) in load_roles(ctx, &roles)? {
                if !new_keys.is_empty() {
                    for k in &new_keys {
                        doc.keys
                            .insert(k.key_id(), charter_keys::root::KeyEntry::from_key(k));
                    }
                    *doc.roles.get_mut(role) = RoleEntry {
                        keyids: new_keys.iter().map(PublicKey::key_id).collect(),
                        threshold: threshold.unwrap_or(1),
                    };
                } else if let Some(t) = threshold {
                    doc.roles.get_mut(role).threshold = t;
                }
            }
            doc.prune_unused_keys();
            doc.validate(&Limits::default())?;
            doc.check_rotation_from(old.document(), &Limits::default())?;
            let env = sign_new(ctx, &doc, &keys)?;
            write_new(&out, &env.to_json())?;
            report(ctx, &out, &doc, &env)
        }
        RootCmd::Sign { key, file } => {
            let bytes = read_root_file(&file)?;
            let mut env = Envelope::from_slice(&bytes, &Limits::default())?;
            if env.payload_type() != PAYLOAD_ROOT {
                bail!(
                    "{} is not a root (payloadType `{}`)",
                    file.display(),
                    env.payload_type()
                );
            }
            // Refuse to sign something that is not a well-formed root.
            let doc: RootDocument = serde_json::from_slice(env.unverified_payload())
                .with_context(|| format!("{} holds a malformed root", file.display()))?;
            doc.validate(&Limits::default())?;
            let signer = load_secret(&key, &ctx.pass)?;
            let id = signer.public().key_id();
            if !doc.roles.root.keyids.contains(&id) {
                eprintln!(
                    "charter: warning: key {id} is not a root key of version {}; its signature only counts for the rotation from the previous root",
                    doc.version
                );
            }
            env.sign(&signer as &dyn Signer)?;
            write_atomic(&file, &env.to_json())?;
            report(ctx, &file, &doc, &env)
        }
        RootCmd::Verify { trusted, files } => verify(ctx, trusted.as_deref(), &files),
    }
}

fn verify(ctx: &Ctx, trusted: Option<&Path>, files: &[PathBuf]) -> Result<()> {
    let limits = Limits::default();
    let (start, rest) = match trusted {
        Some(t) => (t.to_owned(), files),
        None => (files[0].clone(), &files[1..]),
    };
    let first = VerifiedRoot::from_trusted(&read_root_file(&start)?, &limits)
        .with_context(|| format!("{} is not verified", start.display()))?;
    let mut chain = Vec::new();
    for f in rest {
        chain.push((f.clone(), read_root_file(f)?));
    }
    let base = first.version();
    let names: Vec<PathBuf> = chain.iter().map(|(p, _)| p.clone()).collect();
    let mut taken = 0usize;
    let result = first.update_chain(
        |v| {
            let i = (v - base - 1) as usize;
            taken = i;
            Ok(chain.get(i).map(|(_, b)| b.clone()))
        },
        &limits,
        &SystemClock,
    );
    let (last, rotations) = match result {
        Ok(r) => r,
        Err(e) => {
            // Expiry is checked on the last root reached; other failures
            // happen at the file being rotated to.
            let at = if matches!(e, charter_keys::Error::Expired { .. }) {
                names.last().unwrap_or(&start)
            } else {
                names.get(taken).unwrap_or(&start)
            };
            return Err(anyhow::Error::new(e).context(format!("{} is not verified", at.display())));
        }
    };
    let doc = last.document();
    if ctx.json {
        print_json(&json!({
            "verified": true,
            "version": doc.version,
            "expires": doc.expires.to_string(),
            "rotations": rotations,
            "roles": roles_json(doc),
        }))
    } else {
        outln!(
            "Verified OK: root version {} (expires {}), {} rotation(s) checked",
            doc.version,
            doc.expires,
            rotations
        );
        for role in Role::ALL {
            let e = doc.roles.get(role);
            outln!("  {role:<8} {} of {} key(s)", e.threshold, e.keyids.len());
        }
        Ok(())
    }
}

fn read_root_file(path: &Path) -> Result<Vec<u8>> {
    Ok(charter_keys::fsutil::read_capped(
        path,
        Limits::default().max_envelope_bytes,
        "a root",
    )?)
}

/// Keys and threshold (when given) of one role, as passed on the command line.
type RoleSpec = (Role, Vec<PublicKey>, Option<u32>);

fn load_roles(ctx: &Ctx, r: &RoleArgs) -> Result<Vec<RoleSpec>> {
    let load = |files: &[PathBuf]| -> Result<Vec<PublicKey>> {
        files.iter().map(|f| load_public(f, &ctx.pass)).collect()
    };
    Ok(vec![
        (Role::Root, load(&r.root_keys)?, r.root_threshold),
        (Role::Release, load(&r.release_keys)?, r.release_threshold),
        (Role::Channel, load(&r.channel_keys)?, r.channel_threshold),
        (Role::License, load(&r.license_keys)?, r.license_threshold),
    ])
}

fn sign_new(ctx: &Ctx, doc: &RootDocument, keys: &[PathBuf]) -> Result<Envelope> {
    let mut env = Envelope::new_unsigned(PAYLOAD_ROOT, doc.to_payload());
    for k in keys {
        let signer = load_secret(k, &ctx.pass)?;
        env.sign(&signer as &dyn Signer)?;
    }
    Ok(env)
}

fn roles_json(doc: &RootDocument) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for role in Role::ALL {
        let e = doc.roles.get(role);
        m.insert(
            role.to_string(),
            json!({"threshold": e.threshold, "keyids": e.keyids.iter().map(ToString::to_string).collect::<Vec<_>>()}),
        );
    }
    serde_json::Value::Object(m)
}

fn report(ctx: &Ctx, path: &Path, doc: &RootDocument, env: &Envelope) -> Result<()> {
    let threshold = doc.roles.root.threshold;
    if ctx.json {
        print_json(&json!({
            "path": path,
            "version": doc.version,
            "expires": doc.expires.to_string(),
            "signatures": env.signatures().len(),
            "root_threshold": threshold,
            "roles": roles_json(doc),
        }))
    } else {
        outln!(
            "{}: root version {}, expires {}, {} signature(s) (root threshold {})",
            path.display(),
            doc.version,
            doc.expires,
            env.signatures().len(),
            threshold
        );
        Ok(())
    }
}
