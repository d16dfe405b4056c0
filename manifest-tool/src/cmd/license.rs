use anyhow::{Context, Result, anyhow, bail};
use charter_agent::license::{
    License, LicenseStatus, StatusState, VerifiedLicense, VerifiedStatus,
};
use charter_keys::dsse::{Envelope, PAYLOAD_LICENSE, PAYLOAD_LICENSE_STATUS};
use charter_keys::root::VerifiedRoot;
use charter_keys::secret::Signer;
use jiff::Timestamp;
use serde_json::json;

use super::Ctx;
use crate::cli::{IssueArgs, LicenseCmd};
use crate::util::{load_secret, parse_duration, parse_expiry, print_json, write_atomic, write_new};

fn now() -> Result<Timestamp> {
    Ok(Timestamp::from_second(Timestamp::now().as_second())?)
}

fn secs(text: &str) -> Result<u64> {
    u64::try_from(parse_duration(text)?.as_secs())
        .map_err(|_| anyhow!("duration `{text}` is negative"))
}

fn sign(
    ctx: &Ctx,
    payload_type: &str,
    payload: Vec<u8>,
    keys: &[std::path::PathBuf],
) -> Result<Envelope> {
    let mut env = Envelope::new_unsigned(payload_type, payload);
    for k in keys {
        let key = load_secret(k, &ctx.pass)?;
        env.sign(&key as &dyn Signer)?;
    }
    Ok(env)
}

pub fn run(ctx: &Ctx, cmd: LicenseCmd) -> Result<()> {
    match cmd {
        LicenseCmd::Issue(a) => issue(ctx, *a),
        LicenseCmd::Status {
            keys,
            license_id,
            state,
            reason,
            valid_for,
            current_serial,
            out,
        } => {
            let state = match state.as_str() {
                "active" => StatusState::Active,
                "suspended" => StatusState::Suspended,
                "revoked" => StatusState::Revoked,
                other => bail!("--state `{other}`: use active, suspended or revoked"),
            };
            let issued_at = now()?;
            let status = LicenseStatus {
                license_id,
                state,
                reason,
                issued_at,
                valid_until: parse_expiry(&valid_for, issued_at)?,
                current_serial,
            };
            status.validate()?;
            let env = sign(ctx, PAYLOAD_LICENSE_STATUS, status.to_payload(), &keys)?;
            write_atomic(&out, &env.to_json())?;
            if ctx.json {
                print_json(
                    &json!({"status": out, "license_id": status.license_id, "state": status.state, "valid_until": status.valid_until.to_string()}),
                )
            } else {
                outln!(
                    "{}: license {} is {:?} until {}",
                    out.display(),
                    status.license_id,
                    status.state,
                    status.valid_until
                );
                Ok(())
            }
        }
        LicenseCmd::Inspect { root, file } => {
            let rb = charter_keys::fsutil::read_capped(&root, 32 << 20, "a root")?;
            let root = VerifiedRoot::from_trusted(&rb, &charter_keys::Limits::default())?;
            let bytes = charter_keys::fsutil::read_capped(
                &file,
                charter_agent::license::MAX_DOCUMENT_BYTES,
                "a license document",
            )?;
            let env = Envelope::from_slice(&bytes, &charter_keys::Limits::default())
                .with_context(|| format!("{} is not an envelope", file.display()))?;
            let value = match env.payload_type() {
                PAYLOAD_LICENSE => {
                    let v = VerifiedLicense::verify(&bytes, &root)
                        .with_context(|| format!("{} is not verified", file.display()))?;
                    json!({"kind": "license", "verified": true, "signers": v.signers().iter().map(ToString::to_string).collect::<Vec<_>>(), "license": v.license()})
                }
                PAYLOAD_LICENSE_STATUS => {
                    let v = VerifiedStatus::verify(&bytes, &root)
                        .with_context(|| format!("{} is not verified", file.display()))?;
                    json!({"kind": "status", "verified": true, "status": v.status()})
                }
                other => bail!(
                    "{} is neither a license nor a status document (payloadType `{other}`)",
                    file.display()
                ),
            };
            if ctx.json {
                print_json(&value)
            } else {
                // Written, not println!ed: a closed pipe (`| head`) is an
                // error main treats as success, not a panic.
                use std::io::Write as _;
                let text = format!(
                    "Verified OK: {}\n{}\n",
                    value["kind"].as_str().unwrap_or(""),
                    serde_json::to_string_pretty(
                        value
                            .get("license")
                            .or(value.get("status"))
                            .unwrap_or(&value)
                    )?
                );
                std::io::stdout().write_all(text.as_bytes())?;
                Ok(())
            }
        }
    }
}

fn issue(ctx: &Ctx, a: IssueArgs) -> Result<()> {
    if a.out.exists() {
        bail!(
            "{} already exists; remove it or choose another path",
            a.out.display()
        );
    }
    let issued_at = now()?;
    let not_before = match &a.not_before {
        Some(t) => t
            .parse::<Timestamp>()
            .with_context(|| format!("--not-before `{t}` is not an RFC 3339 time"))?,
        None => issued_at,
    };
    let expires_at = parse_expiry(&a.expires, issued_at)?;
    let updates_until = match &a.updates_until {
        Some(t) => parse_expiry(t, issued_at)?,
        None => expires_at,
    };
    let mut limits = std::collections::BTreeMap::new();
    for l in &a.limits {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| anyhow!("--limit `{l}`: use NAME=INTEGER"))?;
        let v: i64 = v
            .trim()
            .parse()
            .with_context(|| format!("--limit `{l}`: `{v}` is not an integer"))?;
        limits.insert(k.trim().to_owned(), v);
    }
    let license = License {
        license_id: a.license_id,
        serial: a.serial,
        customer: a.customer,
        product: a.product,
        issued_at,
        not_before,
        expires_at,
        grace_period_secs: secs(&a.grace)?,
        updates_until,
        security_updates_after: a.security_updates_after,
        features: a.features,
        limits,
        machines: a.machines,
        max_offline_secs: a.max_offline.as_deref().map(secs).transpose()?,
        status_url: a.status_url,
    };
    license.validate()?;
    let env = sign(ctx, PAYLOAD_LICENSE, license.to_payload(), &a.keys)?;
    write_new(&a.out, &env.to_json())?;
    if ctx.json {
        print_json(
            &json!({"license": a.out, "license_id": license.license_id, "serial": license.serial, "expires_at": license.expires_at.to_string()}),
        )
    } else {
        outln!(
            "{}: license {} (serial {}) for {} / {}, expires {}",
            a.out.display(),
            license.license_id,
            license.serial,
            license.customer,
            license.product,
            license.expires_at
        );
        Ok(())
    }
}
