//! `charter secrets`: encrypted secret values in host configs
//! (docs/SPEC.md §14). Configs are edited with toml_edit, so comments and
//! layout survive; each file is replaced atomically with its mode kept.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use charter_keys::confsecret::{self, DEFAULT_KEY_FILE, MasterKey};
use serde_json::json;
use toml_edit::DocumentMut;

use super::Ctx;
use crate::cli::SecretsCmd;
use crate::util::print_json;

/// Every secret field of charter's configs: `table.key`.
pub const SECRET_FIELDS: &[&str] = &[
    "repository.token",
    "repository.password",
    "notify.secret",
    "status.token",
];

const MAX_CONFIG: u64 = 1 << 20;

fn current_key() -> Result<MasterKey> {
    MasterKey::locate()?.ok_or_else(|| {
        anyhow!(
            "no master key: set CHARTER_MASTER_KEY or CHARTER_MASTER_KEY_FILE, or create \
             {DEFAULT_KEY_FILE} with `charter secrets generate-key`"
        )
    })
}

struct Config {
    path: PathBuf,
    doc: DocumentMut,
    mode: u32,
}

fn load(path: &Path) -> Result<Config> {
    let bytes = charter_keys::fsutil::read_capped(path, MAX_CONFIG, "a config file")?;
    let text = String::from_utf8(bytes).map_err(|_| anyhow!("{} is not UTF-8", path.display()))?;
    let doc: DocumentMut = text
        .parse()
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("cannot stat {}", path.display()))?
        .permissions()
        .mode()
        & 0o7777;
    Ok(Config {
        path: path.to_owned(),
        doc,
        mode,
    })
}

/// The secret fields present in `doc`, with their values.
fn fields(doc: &DocumentMut) -> Vec<(&'static str, String)> {
    SECRET_FIELDS
        .iter()
        .filter_map(|f| {
            let (table, key) = f.split_once('.')?;
            let v = doc.get(table)?.get(key)?.as_str()?;
            Some((*f, v.to_owned()))
        })
        .collect()
}

fn set(doc: &mut DocumentMut, field: &str, value: String) {
    if let Some((table, key)) = field.split_once('.')
        && let Some(item) = doc.get_mut(table).and_then(|t| t.get_mut(key))
        && let Some(v) = item.as_value_mut()
    {
        // Keep the comments and spacing around the value.
        let decor = v.decor().clone();
        *v = toml_edit::Value::from(value);
        *v.decor_mut() = decor;
    }
}

fn write(path: &Path, doc: &DocumentMut, mode: u32) -> Result<()> {
    charter_keys::fsutil::write_atomic(path, doc.to_string().as_bytes(), mode)?;
    Ok(())
}

pub fn run(ctx: &Ctx, cmd: SecretsCmd) -> Result<()> {
    match cmd {
        SecretsCmd::GenerateKey { out, print } => {
            let key = MasterKey::generate()?;
            if print {
                out!("{}", key.to_text().as_str());
                return Ok(());
            }
            let out = out.unwrap_or_else(|| PathBuf::from(DEFAULT_KEY_FILE));
            charter_keys::fsutil::create_private(&out, key.to_text().as_bytes())
                .with_context(|| format!("cannot write the master key to {}", out.display()))?;
            if ctx.json {
                print_json(&json!({"key_id": key.id_hex(), "file": out}))?;
            } else {
                outln!(
                    "master key {} written to {} (mode 0600)",
                    key.id_hex(),
                    out.display()
                );
            }
            Ok(())
        }
        SecretsCmd::Encrypt { config, output } => {
            let key = current_key()?;
            let mut c = load(&config)?;
            let mut done = Vec::new();
            for (field, value) in fields(&c.doc) {
                if !confsecret::is_encrypted(&value) {
                    let enc = key.encrypt(field, &value)?;
                    set(&mut c.doc, field, enc);
                    done.push(field);
                }
            }
            let out = output.unwrap_or_else(|| c.path.clone());
            write(&out, &c.doc, c.mode)?;
            if ctx.json {
                print_json(&json!({"file": out, "encrypted": done, "key_id": key.id_hex()}))?;
            } else if done.is_empty() {
                outln!("{}: no plain secret field", c.path.display());
            } else {
                outln!(
                    "{}: encrypted {} under master key {}",
                    out.display(),
                    done.join(", "),
                    key.id_hex()
                );
            }
            Ok(())
        }
        SecretsCmd::Status { configs } => {
            let key = MasterKey::locate().ok().flatten();
            let mut report = Vec::new();
            let mut bad = 0;
            for path in &configs {
                let c = load(path)?;
                for (field, value) in fields(&c.doc) {
                    let (state, detail) = if !confsecret::is_encrypted(&value) {
                        ("plain", "not encrypted".to_owned())
                    } else {
                        match &key {
                            None => {
                                bad += 1;
                                ("undecryptable", "no master key found".to_owned())
                            }
                            Some(k) => match k.decrypt(field, &value) {
                                Ok(_) => ("encrypted", format!("master key {}", k.id_hex())),
                                Err(e) => {
                                    bad += 1;
                                    ("undecryptable", e.to_string())
                                }
                            },
                        }
                    };
                    report.push(
                        json!({"file": path, "field": field, "state": state, "detail": detail}),
                    );
                }
            }
            if ctx.json {
                print_json(&json!({"fields": report}))?;
            } else {
                for r in &report {
                    outln!(
                        "{:<13} {} {} ({})",
                        r["state"].as_str().unwrap_or(""),
                        r["file"].as_str().unwrap_or(""),
                        r["field"].as_str().unwrap_or(""),
                        r["detail"].as_str().unwrap_or("")
                    );
                }
            }
            if bad > 0 {
                bail!("{bad} secret field(s) do not decrypt with the current master key");
            }
            Ok(())
        }
        SecretsCmd::RotateKey { new_key, paths } => rotate(ctx, &new_key, &paths),
    }
}

/// The config files named, directories expanded to their `*.toml` files.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot read {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn rotate(ctx: &Ctx, new_key: &Path, paths: &[PathBuf]) -> Result<()> {
    let new = MasterKey::read_file(new_key)?;
    let old = current_key()?;
    if old.id_hex() == new.id_hex() {
        bail!(
            "the new key {} is the current key ({}); make one with `charter secrets generate-key`",
            new_key.display(),
            old.source()
        );
    }
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    // 1. Check every file first: the current key must decrypt each
    //    encrypted value (values already under the new key are skipped).
    struct Plan {
        c: Config,
        rotate: Vec<(&'static str, zeroize::Zeroizing<String>)>,
    }
    let mut plans = Vec::new();
    let mut failed = Vec::new();
    let mut summary = Vec::new();
    for path in expand(paths)? {
        let c = match load(&path) {
            Ok(c) => c,
            Err(e) => {
                failed.push(json!({"file": path, "error": format!("{e:#}")}));
                continue;
            }
        };
        let mut rotate = Vec::new();
        let mut problem = None;
        let mut already = 0;
        for (field, value) in fields(&c.doc) {
            if !confsecret::is_encrypted(&value) {
                continue;
            }
            if confsecret::key_id(field, &value).ok().as_deref() == Some(new.id_hex().as_str()) {
                already += 1;
                continue;
            }
            match old.decrypt(field, &value) {
                Ok(plain) => rotate.push((field, plain)),
                Err(e) => {
                    problem = Some(e.to_string());
                    break;
                }
            }
        }
        match problem {
            Some(e) => failed.push(json!({"file": path, "error": e})),
            None if rotate.is_empty() => summary.push(json!({
                "file": path, "rotated": [], "already_rotated": already,
            })),
            None => plans.push(Plan { c, rotate }),
        }
    }
    // 2. Back up, re-encrypt and replace each file, one at a time; each is
    //    either wholly under the old key or wholly under the new one.
    for mut p in plans {
        let backup = PathBuf::from(format!("{}.bak-{stamp}", p.c.path.display()));
        let bytes = charter_keys::fsutil::read_capped(&p.c.path, MAX_CONFIG, "a config file")?;
        charter_keys::fsutil::create_private(&backup, &bytes)
            .with_context(|| format!("cannot back up {}", p.c.path.display()))?;
        let mut names = Vec::new();
        for (field, plain) in &p.rotate {
            let enc = new.encrypt(field, plain)?;
            set(&mut p.c.doc, field, enc);
            names.push(*field);
        }
        write(&p.c.path, &p.c.doc, p.c.mode)?;
        charter_binkit::failpoint::hit("secrets:after-file");
        summary.push(json!({"file": p.c.path, "rotated": names, "backup": backup}));
    }
    if ctx.json {
        print_json(&json!({
            "old_key": old.id_hex(), "new_key": new.id_hex(),
            "files": summary, "failed": failed,
        }))?;
    } else {
        for s in &summary {
            let rotated: Vec<&str> = s["rotated"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
                .collect();
            if rotated.is_empty() {
                outln!("unchanged {}", s["file"].as_str().unwrap_or(""));
            } else {
                outln!(
                    "rotated   {}: {} (backup {})",
                    s["file"].as_str().unwrap_or(""),
                    rotated.join(", "),
                    s["backup"].as_str().unwrap_or("")
                );
            }
        }
        for f in &failed {
            outln!(
                "FAILED    {}: {} (left untouched)",
                f["file"].as_str().unwrap_or(""),
                f["error"].as_str().unwrap_or("")
            );
        }
        outln!(
            "master key {} -> {}: {} file(s) rotated or current, {} failed; \
             now make {} the master key",
            old.id_hex(),
            new.id_hex(),
            summary.len(),
            failed.len(),
            new_key.display()
        );
    }
    if !failed.is_empty() {
        bail!("{} file(s) could not be rotated", failed.len());
    }
    Ok(())
}
