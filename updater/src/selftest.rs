//! `charter-update config test`: every check a host needs to update,
//! each reported ok or failed with its reason (docs/SPEC.md §11.10). Fit
//! for a readiness probe (exit status) and a support ticket (`--json`).
//! Secrets are decrypted but never shown.

use std::path::Path;

use crate::config::Config;
use crate::txn::{Target, Updater};

// The report types are the agent's (same shape, one definition).
pub use charter_agent::selftest::{Check, Report};

/// Runs every check against the config at `path`. Checks that depend on
/// a failed one are not run (the report says so).
pub fn run(path: &Path, clock: Box<dyn charter_keys::Clock>) -> Report {
    let mut r = Report::new(path);
    // 1. The file parses and validates (without decrypting).
    let parsed = std::fs::read(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
        .and_then(|b| String::from_utf8(b).map_err(|_| "not UTF-8".to_owned()))
        .and_then(|t| Config::parse(&t, path).map_err(|e| e.to_string()));
    let ok = r.push(
        "config",
        parsed
            .as_ref()
            .map(|c| {
                format!(
                    "product {}, channel {}, repository {}",
                    c.product, c.channel, c.repository.url
                )
            })
            .map_err(Clone::clone),
    );
    if !ok {
        return r;
    }
    // 2. Secrets decrypt with the master key that would be used.
    let secrets = Config::load(path).map(|cfg| {
        let names: Vec<String> = cfg
            .secrets()
            .iter()
            .map(|(n, v)| {
                format!(
                    "{n} ({})",
                    if v.is_encrypted() {
                        "encrypted"
                    } else {
                        "PLAIN TEXT"
                    }
                )
            })
            .collect();
        (cfg, names)
    });
    let cfg = match secrets {
        Ok((cfg, names)) => {
            let plain = !cfg.plain_secrets().is_empty();
            let detail = if names.is_empty() {
                "no secret fields".to_owned()
            } else {
                names.join(", ")
            };
            // Plain values work (with a warning), so they do not fail
            // the test; the detail says so.
            r.push(
                "secrets",
                Ok(if plain {
                    format!("{detail}; warning: encrypt with `charter secrets encrypt`")
                } else {
                    detail
                }),
            );
            cfg
        }
        Err(e) => {
            r.push("secrets", Err(e.to_string()));
            return r;
        }
    };
    // 3. The signature policy: key file and Sigstore trusted root.
    let policy = match cfg.signatures.load() {
        Ok(p) => {
            r.push("signature policy", Ok(p.describe()));
            p
        }
        Err(e) => {
            r.push("signature policy", Err(e.to_string()));
            return r;
        }
    };
    // 4. The state directory (lock) and the updater, with that policy.
    let updater =
        match Updater::open_with_policy(cfg.clone(), policy, clock, Box::new(|_: &str| {})) {
            Ok(u) => {
                r.push(
                    "state",
                    Ok(format!("{} (locked)", cfg.paths.state_dir.display())),
                );
                u
            }
            Err(e) => {
                r.push("state", Err(e.to_string()));
                return r;
            }
        };
    // 4b. Nobody else can change where root installs and keeps state.
    r.push(
        "paths",
        updater
            .check_paths()
            .map(|()| {
                format!(
                    "{} and {} are root's alone",
                    cfg.paths.install_root.display(),
                    cfg.paths.state_dir.display()
                )
            })
            .map_err(|e| e.to_string()),
    );
    // 4c. The operator's hold and this host's rollout position (shown,
    //     never a failure).
    if let Ok(s) = updater.status() {
        let now = updater.now();
        r.push(
            "hold",
            Ok(s.state
                .hold
                .map_or("none: automatic installs as [update] says".into(), |h| {
                    h.describe(now)
                })),
        );
        r.push(
            "rollout position",
            Ok(format!(
                "{} ({})",
                s.rollout.position.position, s.rollout.position.source
            )),
        );
    }
    // 5. The shipped trust root and the one in force (kept after
    //    rotations), offline. Plain artifacts have none.
    let limits = charter_keys::Limits::default();
    let root = match &cfg.paths.trust_root {
        None => Ok("none: releases are plain artifacts ([plain])".to_owned()),
        Some(tr) => {
            charter_keys::fsutil::read_capped(tr, limits.max_envelope_bytes, "a trust root")
                .and_then(|b| charter_keys::root::VerifiedRoot::from_trusted(&b, &limits))
                .map_err(|e| format!("{}: {e}", tr.display()))
                .and_then(|s| {
                    updater
                        .trust_root_in_force()
                        .map(|root| {
                            format!(
                                "version {} in force, expires {} (shipped: version {})",
                                root.version(),
                                root.expires(),
                                s.version()
                            )
                        })
                        .map_err(|e| e.to_string())
                })
        }
    };
    if !r.push("trust root", root) {
        return r;
    }
    // 6. The repository: rotation walk, channel pointer, manifest and its
    //    signatures as the policy says; for plain artifacts the `latest`
    //    file, the checksum file and its bundle.
    let plain_without_latest = cfg.plain.as_ref().is_some_and(|p| p.latest.is_none());
    let repo = if plain_without_latest {
        Ok(
            "plain artifacts with no `latest` file: checked when a version is named \
            (`check --version V`)"
                .to_owned(),
        )
    } else {
        updater
            .candidate(&Target::Channel)
            .map(|crate::source::Offered { candidate: c, root, .. }| {
                let who = match c.cosign() {
                    Some(p) => format!(
                        "; cosign: {}",
                        p.identity.as_deref().unwrap_or("managed key")
                    ),
                    None => String::new(),
                };
                match (&c.release, root) {
                    (crate::txn::Release::Plain(p), _) => format!(
                        "`latest` names {} {} ({} signed by the bundle{who})",
                        cfg.product,
                        p.version(),
                        p.located().checksums
                    ),
                    (_, root) => format!(
                        "channel {} offers {} {} (root version {}, {} release key signature(s){who})",
                        cfg.channel,
                        cfg.product,
                        c.version(),
                        root.map_or(0, |r| r.version()),
                        c.release_keys().len()
                    ),
                }
            })
            .map_err(|e| e.to_string())
    };
    r.push("repository", repo);
    // 7. What the timer may install by itself (the time zone is looked up
    //    here), and the webhook.
    r.push(
        "auto",
        cfg.auto_policy().map(|p| p.describe(&cfg.update.windows)),
    );
    if let Some(n) = &cfg.notify {
        r.push(
            "notify",
            crate::net::notify::Notifier::new(n)
                .map(|_| {
                    format!(
                        "events {} to {}",
                        n.events
                            .iter()
                            .map(|e| e.name())
                            .collect::<Vec<_>>()
                            .join(", "),
                        crate::net::notify::redacted(&n.url)
                    )
                })
                .map_err(|e| e.to_string()),
        );
    }
    // 8. The license, when updates are gated on it.
    if let Some(lc) = &cfg.license {
        let lic = charter_agent::config::Config::load(&lc.agent_config)
            .map_err(|e| e.to_string())
            .and_then(|acfg| {
                let dmi = charter_agent::fingerprint::DmiRead::Direct;
                charter_agent::entitlement::read(&acfg, &charter_keys::SystemClock, dmi)
                    .map_err(|e| e.to_string())
            })
            .and_then(|ent| match ent.license() {
                Some(l) => Ok(format!(
                    "{} for {}: {}",
                    l.license_id,
                    l.customer,
                    ent.state()
                )),
                None => Err(format!("{}: {}", ent.state(), ent.reasons().join("; "))),
            });
        r.push("license", lic);
    }
    r
}

/// What `charter-update version --json` reports: this build, and for the
/// host the trust root in force and the installed release (read without
/// taking the state lock, so it answers during an update too).
pub fn inventory(cfg: Option<&Config>) -> serde_json::Value {
    let mut v = serde_json::json!({ "build": charter_keys::build_info!("charter-update") });
    let Some(cfg) = cfg else {
        return v;
    };
    v["trust_root"] = match &cfg.paths.trust_root {
        None if !crate::host::state::kept_root_path(&cfg.paths.state_dir).exists() => {
            serde_json::Value::Null
        }
        _ => match crate::source::trusted_root_offline(cfg, &charter_release::Limits::default()) {
            Ok(r) => serde_json::json!({"version": r.version(), "expires": r.expires()}),
            Err(e) => serde_json::json!({"error": e.to_string()}),
        },
    };
    let state: Option<crate::host::state::HostState> =
        std::fs::read(cfg.paths.state_dir.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
    v["installed"] = serde_json::json!({
        "product": cfg.product,
        "channel": cfg.channel,
        "current": state.as_ref().and_then(|s| s.current.as_ref()),
        "previous": state.as_ref().and_then(|s| s.previous.as_ref()),
    });
    v
}
